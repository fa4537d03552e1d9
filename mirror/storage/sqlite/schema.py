"""The SQLite schema: its migrations, applied in order on open."""

from __future__ import annotations

import aiosqlite

from mirror.domain import provenance
from mirror.domain.errors import StorageUnavailable
from mirror.storage.sqlite.rows import _refresh_latest


# Each entry moves the schema one version up; never edit a released entry, append a new one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE namespaces (
        name        TEXT PRIMARY KEY COLLATE NOCASE,
        created_at  TEXT NOT NULL
    );
    CREATE TABLE modules (
        id          INTEGER PRIMARY KEY,
        namespace   TEXT NOT NULL COLLATE NOCASE REFERENCES namespaces(name),
        name        TEXT NOT NULL COLLATE NOCASE,
        provider    TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        UNIQUE (namespace, name, provider)
    );
    CREATE TABLE versions (
        id           INTEGER PRIMARY KEY,
        module_id    INTEGER NOT NULL REFERENCES modules(id),
        version      TEXT NOT NULL,
        raw_version  TEXT NOT NULL,
        sha256       TEXT NOT NULL,
        size         INTEGER NOT NULL,
        blob_key     TEXT NOT NULL,
        readme       TEXT,
        source       TEXT,
        commit_sha   TEXT,
        published_at TEXT NOT NULL,
        revoked_at   TEXT,
        UNIQUE (module_id, version)
    );
    CREATE TABLE tokens (
        id          TEXT PRIMARY KEY,
        token_hash  TEXT NOT NULL UNIQUE,
        namespace   TEXT NOT NULL,
        scope       TEXT NOT NULL CHECK (scope IN ('read', 'publish', 'admin')),
        description TEXT NOT NULL DEFAULT '',
        created_at  TEXT NOT NULL,
        revoked_at  TEXT
    );
    CREATE TABLE events (
        serial      INTEGER PRIMARY KEY AUTOINCREMENT,
        type        TEXT NOT NULL,
        occurred_at TEXT NOT NULL,
        data        TEXT NOT NULL
    );
    CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    """
    ALTER TABLE modules ADD COLUMN source_url TEXT;
    ALTER TABLE modules ADD COLUMN repository_id INTEGER;
    CREATE INDEX modules_repository ON modules (repository_id);
    CREATE TABLE jobs (
        id          INTEGER PRIMARY KEY,
        kind        TEXT NOT NULL,
        payload     TEXT NOT NULL,
        dedupe_key  TEXT UNIQUE,
        state       TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
        attempts    INTEGER NOT NULL DEFAULT 0,
        run_after   REAL NOT NULL,
        lease_until REAL,
        last_error  TEXT,
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL
    );
    CREATE INDEX jobs_ready ON jobs (state, run_after);
    CREATE TABLE installations (
        id          INTEGER PRIMARY KEY,
        account     TEXT NOT NULL,
        namespace   TEXT NOT NULL COLLATE NOCASE,
        created_at  TEXT NOT NULL
    );
    """,
    """
    CREATE INDEX events_type ON events (type, serial);
    CREATE TABLE consumers (
        name            TEXT PRIMARY KEY,
        serial          INTEGER NOT NULL DEFAULT 0,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL DEFAULT 0,
        last_error      TEXT,
        updated_at      TEXT NOT NULL
    );
    CREATE TABLE webhook_subscriptions (
        id          TEXT PRIMARY KEY,
        url         TEXT NOT NULL,
        secret      TEXT NOT NULL,
        events      TEXT NOT NULL,
        namespaces  TEXT NOT NULL,
        source      TEXT NOT NULL CHECK (source IN ('config', 'api')),
        created_at  TEXT NOT NULL
    );
    CREATE TABLE webhook_failures (
        id              INTEGER PRIMARY KEY,
        subscription_id TEXT NOT NULL,
        serial          INTEGER NOT NULL,
        attempts        INTEGER NOT NULL,
        last_error      TEXT NOT NULL,
        failed_at       TEXT NOT NULL,
        redelivered_at  TEXT
    );
    CREATE INDEX webhook_failures_subscription ON webhook_failures (subscription_id, id);
    """,
    """
    ALTER TABLE versions ADD COLUMN analysis TEXT;
    """,
    """
    ALTER TABLE versions ADD COLUMN downloads INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX modules_provider ON modules (provider);
    """,
    # What lists and search read, kept on the module row by every write that changes it (so a
    # page of 10,000 modules is an index walk, not a pass over every version): the latest live
    # version (SemVer order, chosen in Python), its README's first paragraph, and the download
    # total. Filled for existing modules by ``_after_migration``.
    """
    ALTER TABLE modules ADD COLUMN latest_version_id INTEGER;
    ALTER TABLE modules ADD COLUMN description TEXT NOT NULL DEFAULT '';
    ALTER TABLE modules ADD COLUMN downloads INTEGER NOT NULL DEFAULT 0;
    UPDATE modules SET downloads = (SELECT COALESCE(SUM(downloads), 0) FROM versions WHERE module_id = modules.id);
    """,
    # Leases with owners: a job's claim token (its holder's later writes are conditional on it),
    # and a consumer's lease (one webhook dispatcher per subscriber across processes).
    """
    ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
    ALTER TABLE consumers ADD COLUMN lease_owner TEXT;
    ALTER TABLE consumers ADD COLUMN lease_until REAL NOT NULL DEFAULT 0;
    """,
    # The protocol's versions list without touching table rows: a README sits before the later
    # columns in a row, so reading them walked its overflow pages (a covering index).
    """
    CREATE INDEX versions_live ON versions (
        module_id, revoked_at, version, raw_version, sha256, size, blob_key, published_at, source, commit_sha
    );
    """,
    # Provenance: each module's one owner source, the installation that brought it, and an
    # admin's per-module allowance for uploads. Filled for existing modules by ``_after_migration``.
    """
    ALTER TABLE modules ADD COLUMN owner TEXT;
    ALTER TABLE modules ADD COLUMN installation_id INTEGER;
    ALTER TABLE modules ADD COLUMN allow_uploads INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX modules_owner ON modules (owner);
    CREATE INDEX modules_installation ON modules (installation_id);
    """,
    # Providers: namespaces' signing keys, providers (hostname '' for this registry's own) and
    # their versions, each with its signed SHA256SUMS and its platforms' zips as JSON.
    """
    CREATE TABLE provider_keys (
        id          INTEGER PRIMARY KEY,
        namespace   TEXT NOT NULL COLLATE NOCASE,
        key_id      TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        algorithm   TEXT NOT NULL,
        ascii_armor TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        UNIQUE (namespace, key_id)
    );
    CREATE TABLE providers (
        id          INTEGER PRIMARY KEY,
        hostname    TEXT NOT NULL COLLATE NOCASE,
        namespace   TEXT NOT NULL COLLATE NOCASE,
        type        TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        owner       TEXT NOT NULL,
        source_url  TEXT,
        UNIQUE (hostname, namespace, type)
    );
    CREATE TABLE provider_versions (
        id           INTEGER PRIMARY KEY,
        provider_id  INTEGER NOT NULL REFERENCES providers(id),
        version      TEXT NOT NULL,
        protocols    TEXT NOT NULL,
        platforms    TEXT NOT NULL,
        shasums      BLOB NOT NULL,
        signature    BLOB NOT NULL,
        key_id       TEXT NOT NULL,
        key_armor    TEXT NOT NULL,
        published_at TEXT NOT NULL,
        source       TEXT,
        revoked_at   TEXT,
        UNIQUE (provider_id, version)
    );
    """,
    # A provider version's deprecation ({reason, replacement, deprecated_at} as JSON).
    """
    ALTER TABLE provider_versions ADD COLUMN deprecation TEXT;
    """,
    # A module version's deprecation, as for providers.
    """
    ALTER TABLE versions ADD COLUMN deprecation TEXT;
    """,
    # Tokens as a resource: when each expires, who made it, when it was last used (coarsely).
    """
    ALTER TABLE tokens ADD COLUMN expires_at TEXT;
    ALTER TABLE tokens ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
    ALTER TABLE tokens ADD COLUMN last_used_at TEXT;
    """,
    # Audit: who made each change (mirror.domain.audit); NULL for the events recorded before.
    """
    ALTER TABLE events ADD COLUMN actor TEXT;
    """,
    # Signed-in people's sessions (mirror.domain.sessions): the cookie secret's SHA-256, who the
    # person is, their grants as JSON ([[namespace, scope], ...]). Purge deletes the ones that
    # expired or were revoked before a time: an index for each (the revoked ones are few).
    """
    CREATE TABLE sessions (
        id          TEXT PRIMARY KEY,
        secret_hash TEXT NOT NULL UNIQUE,
        issuer      TEXT NOT NULL,
        subject     TEXT NOT NULL,
        person      TEXT NOT NULL,
        name        TEXT NOT NULL DEFAULT '',
        grants      TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        expires_at  TEXT NOT NULL,
        revoked_at  TEXT
    );
    CREATE INDEX sessions_expires ON sessions (expires_at);
    CREATE INDEX sessions_revoked ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
    """,
)


#: migrations after which ``_migrate`` has Python work to do
_REFRESH_LATEST_AFTER = 6


_RECORD_OWNERS_AFTER = 9


async def migrate(conn: aiosqlite.Connection) -> None:
    async with conn.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    current = row[0] if row else 0
    if current > len(MIGRATIONS):
        raise StorageUnavailable(
            f"database schema version {current} is newer than this mirror understands ({len(MIGRATIONS)})"
        )
    for number in range(current, len(MIGRATIONS)):
        await conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _split_statements(MIGRATIONS[number]):
                await conn.execute(statement)
            if number + 1 == _REFRESH_LATEST_AFTER:
                async with conn.execute("SELECT id FROM modules") as cursor:
                    for (module_id,) in await cursor.fetchall():
                        await _refresh_latest(conn, module_id)
            if number + 1 == _RECORD_OWNERS_AFTER:
                await _record_legacy_owners(conn)
            await conn.execute(f"PRAGMA user_version = {number + 1}")
            await conn.execute("COMMIT")
        except BaseException:
            await conn.execute("ROLLBACK")
            raise


async def _record_legacy_owners(conn: aiosqlite.Connection) -> None:
    """Migration 9: modules recorded before owners were kept get their legacy owner
    (``provenance.legacy_owner``: their repository, an upstream, or uploads), and a GitHub module
    the installation of its namespace (the only one that could have brought it)."""
    async with conn.execute(
        "SELECT m.id, m.repository_id, (SELECT source FROM versions v WHERE v.module_id = m.id ORDER BY v.id LIMIT 1), "
        "(SELECT MIN(i.id) FROM installations i WHERE i.namespace = m.namespace) FROM modules m"
    ) as cursor:
        rows = await cursor.fetchall()
    for module_id, repository_id, source, installation_id in rows:
        owner = provenance.legacy_owner(repository_id, source)
        await conn.execute(
            "UPDATE modules SET owner = ?, installation_id = ? WHERE id = ?",
            (str(owner), installation_id if owner.kind == "github" else None, module_id),
        )


def _split_statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
