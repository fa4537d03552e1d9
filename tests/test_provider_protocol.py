"""The provider protocols' JSON answers have exactly the shapes of PROTOCOL.md section 5."""

from __future__ import annotations

import json

import pytest

from mirror.domain.errors import BadRequest
from mirror.domain.provider_protocol import (
    ProviderVersionInfo,
    download_answer,
    mirror_index_answer,
    mirror_version_answer,
    versions_answer,
)
from mirror.domain.providers import Platform, ProviderAddress
from mirror.formats.openpgp import SigningKey

LINUX = Platform("linux", "amd64")
DARWIN = Platform("darwin", "arm64")
ADDRESS = ProviderAddress("acme", "widget")


def test_versions_answer_has_the_protocol_shape():
    answer = versions_answer(ADDRESS, [ProviderVersionInfo("1.0.0", ("5.0",), (LINUX,))], ["deprecated"])
    assert answer == {
        "id": "acme/widget",
        "versions": [{"version": "1.0.0", "protocols": ["5.0"], "platforms": [{"os": "linux", "arch": "amd64"}]}],
        "warnings": ["deprecated"],
    }
    assert json.loads(json.dumps(answer)) == answer


def test_versions_answer_leaves_out_empty_warnings():
    answer = versions_answer(ADDRESS, [ProviderVersionInfo("1.0.0", ("5.0",), (LINUX,))])
    assert "warnings" not in answer
    assert versions_answer(ADDRESS, []) == {"id": "acme/widget", "versions": []}


def test_versions_answer_orders_newest_first_and_sorts_platforms():
    infos = [
        ProviderVersionInfo("1.2.0-beta.1", ("6.0",), (LINUX,)),
        ProviderVersionInfo("1.10.0", ("5.0", "6.0"), (LINUX, DARWIN, LINUX)),
        ProviderVersionInfo("1.2.0", ("5.0",), (LINUX,)),
        ProviderVersionInfo("1.10.0", ("4.0",), ()),  # a repeat keeps the first entry
    ]
    answer = versions_answer(ADDRESS, infos)
    assert [v["version"] for v in answer["versions"]] == ["1.10.0", "1.2.0", "1.2.0-beta.1"]
    assert answer["versions"][0] == {
        "version": "1.10.0",
        "protocols": ["5.0", "6.0"],
        "platforms": [{"os": "darwin", "arch": "arm64"}, {"os": "linux", "arch": "amd64"}],
    }


def test_versions_answer_refuses_a_version_that_is_not_semver():
    with pytest.raises(BadRequest):
        versions_answer(ADDRESS, [ProviderVersionInfo("latest", ("5.0",), (LINUX,))])


def test_download_answer_has_the_protocol_shape():
    key = SigningKey(key_id="0123456789ABCDEF", fingerprint="F" * 40, algorithm="rsa", ascii_armor="-----BEGIN...")
    answer = download_answer(
        LINUX,
        protocols=("5.0",),
        filename="terraform-provider-widget_1.0.0_linux_amd64.zip",
        download_url="../../archives/abc.zip",
        shasums_url="../../shasums",
        shasums_signature_url="../../shasums.sig",
        shasum="a" * 64,
        signing_keys=[key],
        key_source="acme",
    )
    assert answer == {
        "protocols": ["5.0"],
        "os": "linux",
        "arch": "amd64",
        "filename": "terraform-provider-widget_1.0.0_linux_amd64.zip",
        "download_url": "../../archives/abc.zip",
        "shasums_url": "../../shasums",
        "shasums_signature_url": "../../shasums.sig",
        "shasum": "a" * 64,
        "signing_keys": {
            "gpg_public_keys": [
                {
                    "key_id": "0123456789ABCDEF",
                    "ascii_armor": "-----BEGIN...",
                    "trust_signature": "",
                    "source": "acme",
                    "source_url": None,
                }
            ]
        },
    }
    assert json.loads(json.dumps(answer)) == answer


def test_download_answer_keeps_the_keys_in_order():
    keys = [
        SigningKey(key_id=f"{n:016X}", fingerprint="F" * 40, algorithm="ecdsa", ascii_armor=f"armor {n}")
        for n in (3, 1, 2)
    ]
    answer = download_answer(
        DARWIN,
        protocols=("6.0",),
        filename="f.zip",
        download_url="https://x/f.zip",
        shasums_url="https://x/s",
        shasums_signature_url="https://x/s.sig",
        shasum="b" * 64,
        signing_keys=keys,
        key_source="Acme",
        key_source_url="https://acme.example/security",
    )
    listed = answer["signing_keys"]["gpg_public_keys"]
    assert [k["ascii_armor"] for k in listed] == ["armor 3", "armor 1", "armor 2"]
    assert {k["source_url"] for k in listed} == {"https://acme.example/security"}
    assert (answer["os"], answer["arch"]) == ("darwin", "arm64")


def test_mirror_index_answer_has_the_protocol_shape():
    assert mirror_index_answer(["1.0.0"]) == {"versions": {"1.0.0": {}}}
    answer = mirror_index_answer(["1.0.0", "2.0.0", "1.10.0", "1.0.0"])
    assert list(answer["versions"]) == ["2.0.0", "1.10.0", "1.0.0"]
    assert mirror_index_answer([]) == {"versions": {}}


def test_mirror_version_answer_has_the_protocol_shape():
    answer = mirror_version_answer(
        {
            LINUX: ("terraform-provider-widget_1.0.0_linux_amd64.zip", ["h1:abc=", "zh:" + "c" * 64]),
            DARWIN: ("https://h/d.zip", ("h1:def=",)),
        }
    )
    assert answer == {
        "archives": {
            "darwin_arm64": {"url": "https://h/d.zip", "hashes": ["h1:def="]},
            "linux_amd64": {
                "url": "terraform-provider-widget_1.0.0_linux_amd64.zip",
                "hashes": ["h1:abc=", "zh:" + "c" * 64],
            },
        }
    }
    assert list(answer["archives"]) == ["darwin_arm64", "linux_amd64"]
    assert json.loads(json.dumps(answer)) == answer


def test_mirror_version_answer_leaves_out_empty_hashes():
    assert mirror_version_answer({LINUX: ("a.zip", [])}) == {"archives": {"linux_amd64": {"url": "a.zip"}}}
