"""The contract: module administration, provenance (each module has one owner source), installations."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mirror.domain.lifecycle import Deprecation
from mirror.domain.models import Installation, ModuleVersion, NewVersion
from mirror.domain.provenance import NotOwner, Owner
from mirror.domain.errors import Conflict
from mirror.storage.protocols import MetadataStore
from mirror.testing.store_suite.support import NOW, addr, events, ids, mv, publish, released
from mirror.testing.store_suite.support import backend, store  # noqa: F401  (the fixtures, registered here)


pytestmark = pytest.mark.asyncio


# -- module administration ---------------------------------------------------------------------


async def test_ensure_module(store: MetadataStore):
    network, repository = addr("acme/network/aws"), Owner.github(7)
    assert await store.ensure_module(network, owner=repository) is True
    assert await store.ensure_module(addr("ACME/NETWORK/aws"), owner=repository) is False
    assert [e[1:] for e in await events(store)] == [
        ("module.created", {"namespace": "acme", "name": "network", "provider": "aws"})
    ]
    [record] = await store.list_modules("acme")
    assert record.address == network and record.source_url is None and record.repository_id == 7
    assert (record.owner, record.installation_id, record.allow_uploads) == (repository, None, False)
    assert await store.latest_versions() == []  # no version yet: not listed
    url = "https://github.com/acme/terraform-aws-network"
    assert await store.ensure_module(network, owner=repository, source_url=url, installation_id=3) is False
    assert await store.ensure_module(network, owner=repository) is False  # None keeps what is stored
    [record] = await store.list_modules("Acme")
    assert (record.source_url, record.repository_id, record.installation_id) == (url, 7, 3)
    assert await store.module_by_repository(7) == record == await store.get_module(addr("ACME/Network/aws"))
    assert await store.module_by_repository(8) is None and await store.get_module(addr("acme/other/aws")) is None
    assert await publish(store, "acme/network/aws", "1.0.0") == "created"
    assert [e[1] for e in await events(store)] == ["module.created", "module.version_released"]  # created once
    [summary] = await store.latest_versions()
    assert summary.source_url == "https://github.com/acme/terraform-aws-network"


async def test_list_modules_in_name_order(store: MetadataStore):
    for number, text in enumerate(("acme/zeta/aws", "acme/Alpha/google", "acme/alpha/aws", "acme/alpha-x/aws", "other/beta/aws")):
        await store.ensure_module(addr(text), owner=Owner.github(number))
    assert [str(m.address) for m in await store.list_modules("ACME")] == [
        "acme/alpha/aws",
        "acme/Alpha/google",
        "acme/alpha-x/aws",
        "acme/zeta/aws",
    ]
    assert await store.list_modules("nobody") == []


async def test_rename_module(store: MetadataStore):
    old = addr("acme/network/aws")
    await store.ensure_module(old, owner=Owner.github(42), source_url="https://github.com/acme/terraform-aws-network")
    for number, version in enumerate(("1.0.0", "1.1.0")):
        await publish(store, "acme/network/aws", version, sha="ab"[number])
    await store.add_downloads({(old, "1.1.0"): 4})
    await store.revoke_version(old, "1.0.0")
    before = await store.latest_serial()
    assert await store.rename_module(addr("ACME/Network/aws"), "net") is True
    assert await events(store, before) == [
        (before + 1, "module.renamed", {"namespace": "ACME", "name": "net", "provider": "aws", "old_name": "Network"})
    ]
    assert await store.list_versions(old) == [] and await store.get_version(old, "1.1.0") is None
    new = addr("acme/net/aws")
    assert [(str(v.address), v.version) for v in await store.list_versions(new)] == [("acme/net/aws", "1.1.0")]
    assert (await store.get_version(new, "1.0.0")).revoked_at is not None
    [summary] = await store.latest_versions()
    assert ids([summary]) == ["acme/net/aws/1.1.0"] and summary.downloads == 4
    assert summary.source_url == "https://github.com/acme/terraform-aws-network"
    assert (await store.module_by_repository(42)).address == new
    assert ids((await store.browse_modules(query="net"))[0]) == ["acme/net/aws/1.1.0"]
    assert await store.rename_module(old, "other") is False  # no such module any more
    await store.ensure_module(addr("acme/taken/aws"))
    with pytest.raises(Conflict):
        await store.rename_module(new, "TAKEN")
    assert [str(m.address) for m in await store.list_modules("acme")] == ["acme/net/aws", "acme/taken/aws"]


async def test_rename_a_module_with_many_versions(store: MetadataStore):
    old = addr("acme/network/aws")
    for minor in range(60):
        await publish(store, "acme/network/aws", f"1.{minor}.0", sha="ab"[minor % 2], published_at=NOW)
    assert await store.rename_module(old, "net") is True
    assert await store.list_versions(old) == []
    assert len(await store.list_versions(addr("acme/net/aws"))) == 60
    assert ids(await store.latest_versions()) == ["acme/net/aws/1.59.0"]
    assert [e[1] for e in await events(store, 61)] == ["module.renamed"]


async def test_delete_module_reports_archives_nothing_uses(store: MetadataStore):
    shared = "modules/sh/shared.tar.gz"
    await store.ensure_module(addr(), owner=Owner.github(5))
    await publish(store, "acme/network/aws", "1.0.0", sha="a", blob=shared)
    await publish(store, "acme/network/aws", "1.1.0", sha="b")
    await publish(store, "acme/network/aws", "1.2.0", sha="c")
    await store.revoke_version(addr(), "1.2.0")  # revoked versions keep their archive
    await publish(store, "acme/other/aws", "1.0.0", sha="a", blob=shared)
    before = await store.latest_serial()
    orphans = await store.delete_module(addr("ACME/network/aws"))
    assert sorted(orphans) == sorted([mv(sha="b").blob_key, mv(sha="c").blob_key])
    assert await events(store, before) == [
        (before + 1, "module.deleted", {"namespace": "ACME", "name": "network", "provider": "aws"})
    ]
    assert await store.all_versions(addr()) == [] and await store.get_version(addr(), "1.0.0") is None
    assert await store.module_by_repository(5) is None
    assert [str(m.address) for m in await store.list_modules("acme")] == ["acme/other/aws"]
    assert ids(await store.latest_versions()) == ["acme/other/aws/1.0.0"]
    assert await store.delete_module(addr()) == []
    assert await store.latest_serial() == before + 1
    assert await store.delete_module(addr("acme/other/aws")) == [shared]  # the last user is gone
    assert await publish(store, "acme/network/aws", "1.0.0", sha="z") == "created"  # a new module
    assert [e[1] for e in await events(store, before + 2)] == ["module.created", "module.version_released"]


async def test_delete_a_module_with_many_versions(store: MetadataStore):
    for minor in range(60):
        await publish(store, "acme/network/aws", f"1.{minor}.0", sha="ab"[minor % 2])
    orphans = await store.delete_module(addr())
    assert sorted(orphans) == sorted({mv(sha="a").blob_key, mv(sha="b").blob_key})
    assert await store.all_versions(addr()) == [] and await store.list_modules("acme") == []
    assert [e[1] for e in await events(store, 61)] == ["module.deleted"]


# -- provenance: each module has one owner source ------------------------------------------------


def owned(version: ModuleVersion, owner: Owner, expected: Owner | None) -> NewVersion:
    return replace(released(version), owner=owner, expected_owner=expected)


async def test_a_new_module_belongs_to_the_source_that_created_it(store: MetadataStore):
    repository = Owner.github(11)
    assert (await store.publish_version(owned(mv(), repository, None))).status == "created"
    record = await store.get_module(addr("ACME/network/aws"))
    assert (record.owner, record.repository_id) == (repository, 11)
    assert await store.module_by_repository(11) == record
    assert record.to_json()["owner_source"] == "github:11"
    assert (await store.publish_version(owned(mv(version="1.1.0"), repository, repository))).status == "created"
    await store.publish_version(owned(mv("acme/synced/aws"), Owner.upstream("Registry.Example:8443"), None))
    assert str((await store.get_module(addr("acme/synced/aws"))).owner) == "upstream:registry.example:8443"


async def test_writes_decided_against_another_owner_change_nothing(store: MetadataStore):
    repository = Owner.github(11)
    await store.publish_version(owned(mv(), repository, None))
    before = await store.latest_serial()
    refused = [
        lambda: store.publish_version(owned(mv(version="2.0.0"), Owner.upload(), None)),  # "no module yet"
        lambda: store.publish_version(owned(mv(version="2.0.0"), Owner.upload(), Owner.upload())),
        lambda: store.ensure_module(addr(), owner=Owner.upload()),
        lambda: store.ensure_module(addr(), owner=Owner.github(12), source_url="https://example.com/x"),
        lambda: store.revoke_version(addr(), "1.0.0", owner=Owner.bundle()),
        lambda: store.rename_module(addr(), "other", owner=Owner.upstream("registry.example")),
        lambda: store.delete_module(addr(), owner=Owner.upload()),
    ]
    for attempt in refused:
        with pytest.raises(NotOwner) as caught:
            await attempt()
        assert "github:11" in str(caught.value)
    assert await store.latest_serial() == before
    assert [v.version for v in await store.list_versions(addr())] == ["1.0.0"]
    assert (await store.get_module(addr())).source_url is None
    assert await store.revoke_version(addr(), "1.0.0", owner=repository) is True
    assert await store.rename_module(addr(), "net", owner=repository) is True
    assert await store.delete_module(addr("acme/net/aws"), owner=repository) == [mv().blob_key]


async def test_an_admin_sets_the_owner_and_allows_uploads(store: MetadataStore):
    repository = Owner.github(11)
    await store.ensure_module(addr(), owner=repository, installation_id=4)
    assert await store.set_module_policy(addr("acme/missing/aws"), allow_uploads=True) is None
    before = await store.latest_serial()
    record = await store.set_module_policy(addr("ACME/network/aws"), allow_uploads=True)
    assert (record.owner, record.allow_uploads, record.installation_id) == (repository, True, 4)
    assert record == await store.get_module(addr())
    assert await events(store, before) == [
        (
            before + 1,
            "module.policy_changed",
            {"namespace": "ACME", "name": "network", "provider": "aws", "owner_source": "github:11", "allow_uploads": True},
        )
    ]
    # an upload decided against the repository's ownership goes in, and the module stays the repository's
    assert (await store.publish_version(owned(mv(), Owner.upload(), repository))).status == "created"
    assert (await store.get_module(addr())).owner == repository
    record = await store.set_module_policy(addr(), owner=Owner.upload())
    assert (record.owner, record.repository_id, record.installation_id, record.allow_uploads) == (
        Owner.upload(), None, None, True
    )
    assert record == await store.get_module(addr()) and await store.module_by_repository(11) is None
    with pytest.raises(NotOwner):  # decided before the change: refused
        await store.publish_version(owned(mv(version="1.1.0"), repository, repository))
    await store.ensure_module(addr("acme/other/aws"), owner=Owner.github(12))
    with pytest.raises(Conflict):  # a repository owns one module
        await store.set_module_policy(addr(), owner=Owner.github(12))
    record = await store.set_module_policy(addr(), owner=Owner.github(13), allow_uploads=False)
    assert (record.owner, record.repository_id, record.allow_uploads) == (Owner.github(13), 13, False)
    assert await store.module_by_repository(13) == record


async def test_uninstalling_removes_only_what_the_installation_brought(store: MetadataStore):
    await store.record_installation(Installation(9, "beta-corp", "beta", NOW))
    await store.ensure_module(addr("beta/vpc/aws"), owner=Owner.github(1), installation_id=9)
    await store.publish_version(owned(mv("beta/vpc/aws", sha="a"), Owner.github(1), Owner.github(1)))
    await store.ensure_module(addr("beta/later/aws"), owner=Owner.github(2), installation_id=10)
    await store.publish_version(owned(mv("beta/hand/aws", sha="b"), Owner.upload(), None))
    before = await store.latest_serial()
    assert await store.remove_installation(9) == [mv(sha="a").blob_key]
    assert await events(store, before) == [
        (before + 1, "module.deleted", {"namespace": "beta", "name": "vpc", "provider": "aws"}),
        (before + 2, "app.uninstalled", {"namespace": "beta"}),
    ]
    assert [str(m.address) for m in await store.list_modules("beta")] == ["beta/hand/aws", "beta/later/aws"]
    assert ids(await store.latest_versions()) == ["beta/hand/aws/1.0.0"]
    assert (await store.publish_version(owned(mv("beta/hand/aws", "1.1.0", sha="c"), Owner.upload(), Owner.upload()))).status == "created"


# -- installations -------------------------------------------------------------------------------


async def test_installations(store: MetadataStore):
    second = Installation(20, "beta-corp", "Beta", NOW)
    first = Installation(3, "acme-corp", "acme", NOW)
    assert await store.record_installation(second) is True
    assert await store.record_installation(first) is True
    assert await store.record_installation(replace(first, account="changed")) is False
    assert await store.installation(3) == first and await store.installation(4) is None
    assert await store.list_installations() == [first, second]
    assert [e[1:] for e in await events(store)] == [
        ("app.installed", {"namespace": "Beta"}),
        ("app.installed", {"namespace": "acme"}),
    ]
    assert (await store.events_after(0, 1))[0].occurred_at == NOW


async def test_removing_an_installation_removes_its_namespace(store: MetadataStore):
    await store.record_installation(Installation(9, "beta-corp", "beta", NOW))
    for number, text in enumerate(("BETA/vpc/aws", "beta/dns/azurerm", "beta/empty/aws")):
        await store.ensure_module(addr(text), owner=Owner.github(number), installation_id=9)
    await publish(store, "BETA/vpc/aws", "1.0.0", sha="a", blob="modules/sh/shared.tar.gz")
    await publish(store, "beta/dns/azurerm", "1.0.0", sha="b")
    await publish(store, "acme/keep/aws", "1.0.0", sha="a", blob="modules/sh/shared.tar.gz")
    before = await store.latest_serial()
    orphans = await store.remove_installation(9)
    assert orphans == [mv(sha="b").blob_key]
    assert await events(store, before) == [
        (before + 1, "module.deleted", {"namespace": "beta", "name": "dns", "provider": "azurerm"}),
        (before + 2, "module.deleted", {"namespace": "beta", "name": "empty", "provider": "aws"}),
        (before + 3, "module.deleted", {"namespace": "BETA", "name": "vpc", "provider": "aws"}),
        (before + 4, "app.uninstalled", {"namespace": "beta"}),
    ]
    assert await store.list_modules("beta") == [] and await store.installation(9) is None
    assert ids(await store.latest_versions()) == ["acme/keep/aws/1.0.0"]
    assert await store.remove_installation(9) == []
    assert await store.record_installation(Installation(9, "beta-corp", "beta", NOW)) is True  # installed again


# -- deprecation -------------------------------------------------------------------------------


async def test_a_deprecation_is_recorded_with_its_event_and_read_back(store: MetadataStore):
    network = addr("acme/network/aws")
    assert await publish(store, "acme/network/aws", "1.0.0") == "created"
    assert await publish(store, "acme/network/aws", "1.1.0", sha="b") == "created"
    serial = await store.latest_serial()
    first = Deprecation("Leaks the NAT gateway.", "1.1.0", NOW)
    assert await store.deprecate_version(network, "1.0.0", first, owner=Owner.upload()) is True
    assert (await store.get_version(addr("ACME/Network/aws"), "1.0.0")).deprecation == first
    assert (await store.get_version(network, "1.1.0")).deprecation is None
    second = Deprecation("Use 1.1.0.", None, NOW)
    assert await store.deprecate_version(network, "1.0.0", second) is True  # replaced
    assert {v.version: v.deprecation for v in await store.all_versions(network)} == {"1.0.0": second, "1.1.0": None}
    assert await publish(store, "acme/network/aws", "1.0.0") == "unchanged"  # a publish again keeps it
    assert (await store.get_version(network, "1.0.0")).deprecation == second
    assert sorted(v.version for v in await store.list_versions(network, readme=False)) == ["1.0.0", "1.1.0"]
    base = {"namespace": "acme", "name": "network", "provider": "aws", "version": "1.0.0"}
    assert [(t, d) for _s, t, d in await events(store, serial)] == [
        ("module.version_deprecated", {**base, "reason": "Leaks the NAT gateway.", "replacement": "1.1.0"}),
        ("module.version_deprecated", {**base, "reason": "Use 1.1.0.", "replacement": None}),
    ]
    serial = await store.latest_serial()
    assert await store.deprecate_version(network, "9.9.9", first) is False
    assert await store.deprecate_version(addr("acme/nope/aws"), "1.0.0", first) is False
    with pytest.raises(NotOwner, match="cannot deprecate versions of"):
        await store.deprecate_version(network, "1.1.0", first, owner=Owner.github(42))
    assert await store.latest_serial() == serial
    assert (await store.get_version(network, "1.1.0")).deprecation is None
    assert await store.revoke_version(network, "1.1.0") is True
    assert await store.deprecate_version(network, "1.1.0", first) is False  # not live
    assert (await store.get_version(network, "1.1.0")).deprecation is None
    await store.rename_module(network, "vpc")  # a rename keeps it
    assert (await store.get_version(addr("acme/vpc/aws"), "1.0.0")).deprecation == second


async def test_a_deprecation_is_for_the_owner_source_only(store: MetadataStore):
    network, repository = addr("acme/network/aws"), Owner.github(7)
    await store.ensure_module(network, owner=repository)
    assert await store.publish_version(replace(released(mv()), owner=repository)) is not None
    deprecation = Deprecation("Old.", None, NOW)
    with pytest.raises(NotOwner, match="uploads"):
        await store.deprecate_version(network, "1.0.0", deprecation, owner=Owner.upload())
    assert await store.deprecate_version(network, "1.0.0", deprecation, owner=repository) is True
    await store.set_module_policy(network, owner=Owner.upload())
    with pytest.raises(NotOwner):
        await store.deprecate_version(network, "1.0.0", deprecation, owner=repository)
    assert await store.deprecate_version(network, "1.0.0", deprecation, owner=Owner.upload()) is True
