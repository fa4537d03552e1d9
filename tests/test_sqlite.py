"""The SQLite metadata store's own tests: databases of older schemas, written table by table, are
migrated by ``SqliteMetadataStore.open``. Only these tests read or write the SQLite tables; every
other test goes through the ``MetadataStore`` API."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from mirror.domain.addresses import ModuleAddress
from mirror.domain.provenance import Owner
from mirror.storage.sqlite import MIGRATIONS, SqliteMetadataStore


async def test_an_older_database_gets_its_latest_versions_filled_in(tmp_path):
    """A database made before modules kept their latest version (schema 5) is migrated: every
    module then points at its latest live version, with its description and download total."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        for script in MIGRATIONS[:5]:
            conn.executescript(script)
        conn.execute("PRAGMA user_version = 5")
        conn.execute("INSERT INTO namespaces VALUES ('acme', '2026-01-01T00:00:00Z')")
        conn.execute("INSERT INTO modules (id, namespace, name, provider, created_at) VALUES (1, 'acme', 'net', 'aws', 'x')")
        conn.execute("INSERT INTO modules (id, namespace, name, provider, created_at) VALUES (2, 'acme', 'gone', 'aws', 'x')")
        for version_id, module_id, version, revoked, downloads in (
            (1, 1, "1.9.0", None, 3),
            (2, 1, "1.10.0", None, 4),
            (3, 1, "2.0.0", "2026-02-01T00:00:00Z", 5),  # revoked: not the latest
            (4, 2, "1.0.0", "2026-02-01T00:00:00Z", 1),  # nothing live: not listed
        ):
            conn.execute(
                "INSERT INTO versions (id, module_id, version, raw_version, sha256, size, blob_key, readme, "
                "published_at, revoked_at, downloads) VALUES (?, ?, ?, ?, ?, 1, 'k', ?, 'x', ?, ?)",
                (version_id, module_id, version, version, "0" * 64, f"# t\n\nRelease {version}.", revoked, downloads),
            )
    store = SqliteMetadataStore(path)
    await store.open()
    try:
        summaries = await store.latest_versions()
        assert [(s.version.address.name, s.version.version, s.description, s.downloads) for s in summaries] == [
            ("net", "1.10.0", "Release 1.10.0.", 12)
        ]
        page, more = await store.browse_modules(query="RELEASE 1.10")
        assert [s.version.version for s in page] == ["1.10.0"] and not more
    finally:
        await store.close()


async def test_modules_recorded_before_owners_get_their_legacy_owner(tmp_path: Path):
    """Migration 9 on a database of schema 8: a module linked to a repository is the repository's
    (with the installation of its namespace), one whose versions carry a sync label is that
    upstream's, the rest are uploads'."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        for script in MIGRATIONS[:8]:
            conn.executescript(script)
        conn.execute("PRAGMA user_version = 8")
        conn.execute("INSERT INTO namespaces VALUES ('acme', 'x')")
        conn.execute("INSERT INTO installations VALUES (7, 'acme-corp', 'ACME', 'x')")
        for module_id, name, repository_id, source in (
            (1, "net", 42, "https://github.com/acme/terraform-aws-net"),
            (2, "dns", None, "registry.example.com:8443/hashicorp/dns/aws"),
            (3, "hand", None, "upload"),
            (4, "empty", None, None),
        ):
            conn.execute(
                "INSERT INTO modules (id, namespace, name, provider, created_at, repository_id) VALUES (?, 'acme', ?, 'aws', 'x', ?)",
                (module_id, name, repository_id),
            )
            if source:
                conn.execute(
                    "INSERT INTO versions (module_id, version, raw_version, sha256, size, blob_key, source, published_at) "
                    "VALUES (?, '1.0.0', '1.0.0', ?, 1, 'k', ?, 'x')",
                    (module_id, "0" * 64, source),
                )
    store = SqliteMetadataStore(path)
    await store.open()
    try:
        records = {m.address.name: m for m in await store.list_modules("acme")}
        assert (records["net"].owner, records["net"].installation_id) == (Owner.github(42), 7)
        assert records["dns"].owner == Owner.upstream("registry.example.com:8443")
        assert records["hand"].owner == Owner.upload() == records["empty"].owner
        assert records["dns"].installation_id is None and not records["hand"].allow_uploads
        assert (await store.module_by_repository(42)).address == ModuleAddress.parse("acme/net/aws")
    finally:
        await store.close()


async def test_a_write_cancelled_at_any_point_leaves_no_transaction_open(tmp_path):
    """A task cancelled while its write is on the connection's thread (during BEGIN, the body or
    COMMIT: the statement still runs there) must not leave the writer inside a transaction, or
    every later write fails with "cannot start a transaction within a transaction"."""
    import asyncio

    from mirror.domain.models import TokenRecord

    store = SqliteMetadataStore(tmp_path / "mirror.db")
    await store.open()
    try:
        for attempt in range(60):
            record = TokenRecord(
                id=f"t{attempt}", namespace="*", scope="read", token_hash=f"{attempt:064x}",
                created_at="2026-01-01T00:00:00Z",
            )
            task = asyncio.create_task(store.create_token(record))
            for _ in range(attempt % 6):
                await asyncio.sleep(0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            assert await store.revoke_token(f"absent-{attempt}") is False  # a write goes through
    finally:
        await store.close()
