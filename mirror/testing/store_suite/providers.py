"""The contract: providers' signing keys, providers and versions, their merge rules and events."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from mirror.domain.provenance import NotOwner, Owner
from mirror.domain.provider_records import (
    LOCAL_HOST,
    Deprecation,
    NewProviderVersion,
    ProviderKey,
    ProviderPlatformFile,
    ProviderVersion,
)
from mirror.domain.providers import Platform, ProviderAddress
from mirror.storage.protocols import MetadataStore
from mirror.testing.store_suite.support import NOW, Backend, events
from mirror.testing.store_suite.support import backend, store  # noqa: F401  (the fixtures, registered here)


pytestmark = pytest.mark.asyncio

WIDGET = ProviderAddress("acme", "widget")
UPSTREAM = "registry.example.com"
LINUX = Platform("linux", "amd64")
DARWIN = Platform("darwin", "arm64")


def key(namespace: str = "acme", key_id: str = "ABCDEF0123456789") -> ProviderKey:
    return ProviderKey(
        namespace=namespace,
        key_id=key_id,
        fingerprint="0" * 24 + key_id,
        algorithm="rsa",
        ascii_armor=f"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n{key_id}\n-----END PGP PUBLIC KEY BLOCK-----\n",
        created_at=NOW,
    )


def platform_file(platform: Platform = LINUX, *, sha: str = "a", version: str = "1.0.0", complete: bool = True) -> ProviderPlatformFile:
    sha256 = (sha * 64)[:64]
    return ProviderPlatformFile(
        platform=platform,
        filename=f"terraform-provider-widget_{version}_{platform}.zip",
        sha256=sha256,
        size=1234 if complete else None,
        h1="h1:" + "x" * 43 + "=" if complete else None,
        upstream_url=None if complete else f"https://dl.example.com/{platform}.zip",
    )


def pv(
    version: str = "1.0.0",
    *platforms: ProviderPlatformFile,
    hostname: str = LOCAL_HOST,
    address: ProviderAddress = WIDGET,
    shasums: bytes = b"sums-1\n",
    protocols: tuple[str, ...] = ("5.0",),
) -> ProviderVersion:
    return ProviderVersion(
        hostname=hostname,
        address=address,
        version=version,
        protocols=protocols,
        platforms=platforms or (platform_file(version=version),),
        shasums=shasums,
        signature=b"\x89\x02\x00binary-signature\x00\xff",
        key_id="ABCDEF0123456789",
        key_armor=key().ascii_armor,
        published_at=NOW,
        source="upload",
    )


async def put(store: MetadataStore, version: ProviderVersion, owner: Owner = Owner.upload()) -> str:
    return (await store.publish_provider_version(NewProviderVersion(version, owner))).status


# -- keys ------------------------------------------------------------------------------------------


async def test_signing_keys_are_per_namespace_in_the_order_added(store: MetadataStore):
    assert await store.list_provider_keys("acme") == []
    assert await store.add_provider_key(key(key_id="BBBBBBBBBBBBBBBB")) is True
    assert await store.add_provider_key(key(key_id="AAAAAAAAAAAAAAAA")) is True
    assert await store.add_provider_key(key(key_id="AAAAAAAAAAAAAAAA")) is False  # already there
    assert await store.add_provider_key(key("other", "CCCCCCCCCCCCCCCC")) is True
    listed = await store.list_provider_keys("acme")
    assert [k.key_id for k in listed] == ["BBBBBBBBBBBBBBBB", "AAAAAAAAAAAAAAAA"]
    assert listed[0] == key(key_id="BBBBBBBBBBBBBBBB")
    assert [k.key_id for k in await store.list_provider_keys("ACME")] == ["BBBBBBBBBBBBBBBB", "AAAAAAAAAAAAAAAA"]
    assert await store.remove_provider_key("acme", "BBBBBBBBBBBBBBBB") is True
    assert await store.remove_provider_key("acme", "BBBBBBBBBBBBBBBB") is False
    assert [k.key_id for k in await store.list_provider_keys("acme")] == ["AAAAAAAAAAAAAAAA"]
    assert [k.key_id for k in await store.list_provider_keys("other")] == ["CCCCCCCCCCCCCCCC"]


# -- versions --------------------------------------------------------------------------------------


async def test_a_provider_version_is_stored_whole_with_its_events(store: MetadataStore):
    assert await store.provider_versions(LOCAL_HOST, WIDGET) == []
    assert await store.get_provider(LOCAL_HOST, WIDGET) is None
    new = pv("1.0.0", platform_file(DARWIN, sha="d"), platform_file(LINUX))
    new = replace(new, platforms=tuple(sorted(new.platforms, key=lambda p: p.platform)))
    outcome = await store.publish_provider_version(NewProviderVersion(new, Owner.upload(), "https://example.com/src"))
    assert outcome.status == "created" and outcome.version == new
    assert outcome.added == (DARWIN, LINUX)
    assert await store.get_provider_version(LOCAL_HOST, WIDGET, "1.0.0") == new
    assert await store.provider_versions(LOCAL_HOST, WIDGET) == [new]
    record = await store.get_provider(LOCAL_HOST, WIDGET)
    assert record is not None and record.owner == Owner.upload() and record.source_url == "https://example.com/src"
    assert [(t, d) for _s, t, d in await events(store)] == [
        ("provider.created", {"hostname": "", "namespace": "acme", "type": "widget"}),
        (
            "provider.version_released",
            {"hostname": "", "namespace": "acme", "type": "widget", "version": "1.0.0",
             "platforms": ["darwin_arm64", "linux_amd64"]},
        ),
    ]


async def test_namespaces_match_without_case_and_hosts_keep_providers_apart(store: MetadataStore):
    assert await put(store, pv("1.0.0")) == "created"
    assert await put(store, pv("2.0.0", hostname=UPSTREAM, shasums=b"other\n"), Owner.upstream(UPSTREAM)) == "created"
    upper = ProviderAddress("ACME", "widget")
    assert [v.version for v in await store.provider_versions(LOCAL_HOST, upper)] == ["1.0.0"]
    assert [v.version for v in await store.provider_versions(UPSTREAM.upper(), WIDGET)] == ["2.0.0"]
    assert await store.get_provider_version(UPSTREAM, WIDGET, "1.0.0") is None
    listed = await store.list_providers()
    assert [(p.hostname, str(p.address)) for p in listed] == [("", "acme/widget"), (UPSTREAM, "acme/widget")]
    assert [p.hostname for p in await store.list_providers(UPSTREAM)] == [UPSTREAM]
    assert [p.hostname for p in await store.list_providers(LOCAL_HOST)] == [""]


async def test_same_sums_is_unchanged_other_sums_is_a_conflict(store: MetadataStore):
    assert await put(store, pv()) == "created"
    serial = await store.latest_serial()
    assert await put(store, pv()) == "unchanged"
    outcome = await store.publish_provider_version(NewProviderVersion(pv(shasums=b"tampered\n")))
    assert outcome.status == "conflict" and outcome.version == pv()
    assert await store.latest_serial() == serial
    assert await store.get_provider_version(LOCAL_HOST, WIDGET, "1.0.0") == pv()


async def test_new_platforms_of_the_same_sums_extend_the_version(store: MetadataStore):
    assert await put(store, pv("1.0.0", platform_file(LINUX))) == "created"
    serial = await store.latest_serial()
    outcome = await store.publish_provider_version(NewProviderVersion(pv("1.0.0", platform_file(DARWIN, sha="d"))))
    assert outcome.status == "extended" and outcome.added == (DARWIN,)
    stored = await store.get_provider_version(LOCAL_HOST, WIDGET, "1.0.0")
    assert stored is not None and [p.platform for p in stored.platforms] == [DARWIN, LINUX]
    assert [(t, d["platforms"]) for _s, t, d in await events(store, serial)] == [
        ("provider.platforms_added", ["darwin_arm64"])
    ]


async def test_a_fetched_zip_completes_its_platform_without_an_event(store: MetadataStore):
    pending = pv("1.0.0", platform_file(LINUX, complete=False), hostname=UPSTREAM)
    assert await put(store, pending, Owner.upstream(UPSTREAM)) == "created"
    serial = await store.latest_serial()
    fetched = replace(platform_file(LINUX), upstream_url=None)
    outcome = await store.publish_provider_version(
        NewProviderVersion(replace(pending, platforms=(fetched,)), Owner.upstream(UPSTREAM))
    )
    assert outcome.status == "extended" and outcome.added == ()
    stored = await store.get_provider_version(UPSTREAM, WIDGET, "1.0.0")
    assert stored is not None
    [platform] = stored.platforms
    assert platform.complete and platform.size == 1234
    assert platform.upstream_url == "https://dl.example.com/linux_amd64.zip"  # kept
    assert await store.latest_serial() == serial
    # a complete platform is never replaced
    assert await put(store, replace(pending, platforms=(replace(fetched, size=9),)), Owner.upstream(UPSTREAM)) == "unchanged"


async def test_another_owner_cannot_add_versions_or_revoke(store: MetadataStore):
    assert await put(store, pv()) == "created"
    serial = await store.latest_serial()
    with pytest.raises(NotOwner, match="uploads"):
        await put(store, pv("2.0.0"), Owner.github(42))
    with pytest.raises(NotOwner):
        await store.revoke_provider_version(LOCAL_HOST, WIDGET, "1.0.0", owner=Owner.bundle())
    assert await store.latest_serial() == serial
    assert [v.version for v in await store.provider_versions(LOCAL_HOST, WIDGET)] == ["1.0.0"]


async def test_revoke_hides_a_version_and_the_same_sums_reinstate_it(store: MetadataStore):
    assert await put(store, pv("1.0.0")) == "created"
    assert await put(store, pv("1.1.0", shasums=b"sums-2\n")) == "created"
    serial = await store.latest_serial()
    assert await store.revoke_provider_version(LOCAL_HOST, WIDGET, "1.0.0", owner=Owner.upload()) is True
    assert await store.revoke_provider_version(LOCAL_HOST, WIDGET, "1.0.0") is False
    assert await store.revoke_provider_version(LOCAL_HOST, WIDGET, "9.9.9") is False
    assert await store.revoke_provider_version(LOCAL_HOST, ProviderAddress("acme", "nope"), "1.0.0") is False
    assert [v.version for v in await store.provider_versions(LOCAL_HOST, WIDGET)] == ["1.1.0"]
    revoked = await store.get_provider_version(LOCAL_HOST, WIDGET, "1.0.0")
    assert revoked is not None and revoked.revoked_at is not None
    assert [(t, d["version"]) for _s, t, d in await events(store, serial)] == [("provider.version_revoked", "1.0.0")]
    assert await put(store, pv("1.0.0", shasums=b"other\n")) == "conflict"
    assert await put(store, pv("1.0.0")) == "created"
    assert sorted(v.version for v in await store.provider_versions(LOCAL_HOST, WIDGET)) == ["1.0.0", "1.1.0"]


async def test_concurrent_publishes_of_one_version_store_it_once(backend: Backend):
    stores = [await backend.replica() for _ in range(3)]
    results = await asyncio.gather(*(put(s, pv()) for s in stores for _ in range(3)))
    assert sorted(results) == ["created"] + ["unchanged"] * 8
    released = [t for _s, t, _d in await events(stores[0]) if t == "provider.version_released"]
    assert released == ["provider.version_released"]


async def test_a_deprecation_is_recorded_with_its_event_and_kept(store: MetadataStore):
    assert await put(store, pv("1.0.0")) == "created"
    serial = await store.latest_serial()
    first = Deprecation("Broken on ARM.", "1.1.0", NOW)
    assert await store.deprecate_provider_version(LOCAL_HOST, WIDGET, "1.0.0", first, owner=Owner.upload()) is True
    assert (await store.get_provider_version(LOCAL_HOST, WIDGET, "1.0.0")).deprecation == first
    second = Deprecation("Use the new one.", None, NOW)
    assert await store.deprecate_provider_version(LOCAL_HOST, WIDGET, "1.0.0", second) is True
    [listed] = await store.provider_versions(LOCAL_HOST, WIDGET)
    assert listed.deprecation == second
    assert await put(store, pv("1.0.0")) == "unchanged"  # a publish again keeps it
    assert (await store.get_provider_version(LOCAL_HOST, WIDGET, "1.0.0")).deprecation == second
    assert [(t, d) for _s, t, d in await events(store, serial)] == [
        ("provider.version_deprecated", {"hostname": "", "namespace": "acme", "type": "widget", "version": "1.0.0",
                                         "reason": "Broken on ARM.", "replacement": "1.1.0"}),
        ("provider.version_deprecated", {"hostname": "", "namespace": "acme", "type": "widget", "version": "1.0.0",
                                         "reason": "Use the new one.", "replacement": None}),
    ]
    assert await store.deprecate_provider_version(LOCAL_HOST, WIDGET, "9.9.9", first) is False
    assert await store.deprecate_provider_version(LOCAL_HOST, ProviderAddress("acme", "nope"), "1.0.0", first) is False
    with pytest.raises(NotOwner):
        await store.deprecate_provider_version(LOCAL_HOST, WIDGET, "1.0.0", first, owner=Owner.bundle())
    assert await store.revoke_provider_version(LOCAL_HOST, WIDGET, "1.0.0") is True
    assert await store.deprecate_provider_version(LOCAL_HOST, WIDGET, "1.0.0", first) is False  # not live


async def test_delete_provider_removes_it_and_its_versions_and_names_orphan_zips(store: MetadataStore):
    gadget = ProviderAddress("acme", "gadget")
    shared = platform_file(DARWIN, sha="c")  # the same zip in two providers: not an orphan while one lists it
    assert await put(store, pv("1.0.0", platform_file(sha="a"), shared)) == "created"
    assert await put(store, pv("1.1.0", platform_file(sha="b"), shasums=b"sums-2\n")) == "created"
    assert await store.revoke_provider_version(LOCAL_HOST, WIDGET, "1.1.0") is True  # revoked ones go too
    assert await put(store, pv("2.0.0", shared, address=gadget)) == "created"
    assert await put(store, pv("1.0.0", platform_file(sha="a"), hostname=UPSTREAM), Owner.upstream(UPSTREAM)) == "created"
    serial = await store.latest_serial()
    with pytest.raises(NotOwner, match="cannot delete"):
        await store.delete_provider(LOCAL_HOST, WIDGET, owner=Owner.bundle())
    assert await store.latest_serial() == serial
    assert await store.delete_provider(LOCAL_HOST, WIDGET, owner=Owner.upload()) == [platform_file(sha="b").blob_key]
    assert await store.get_provider(LOCAL_HOST, WIDGET) is None
    assert await store.provider_versions(LOCAL_HOST, WIDGET) == []
    assert await store.get_provider_version(LOCAL_HOST, WIDGET, "1.1.0") is None
    assert [(t, d) for _s, t, d in await events(store, serial)] == [
        ("provider.deleted", {"hostname": "", "namespace": "acme", "type": "widget"})
    ]
    assert await store.delete_provider(LOCAL_HOST, WIDGET) == []  # gone: nothing to do, no event
    assert await store.latest_serial() == serial + 1
    assert [str(p.address) for p in await store.list_providers(LOCAL_HOST)] == ["acme/gadget"]
    assert await store.delete_provider(LOCAL_HOST, gadget) == [shared.blob_key]
    assert await store.delete_provider(UPSTREAM, WIDGET) == [platform_file(sha="a").blob_key]
    assert await store.list_providers() == []
    assert await put(store, pv("1.0.0")) == "created"  # the address is free again
    assert (await store.get_provider(LOCAL_HOST, WIDGET)).owner == Owner.upload()
