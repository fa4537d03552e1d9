"""The check a provider release goes through before it is stored (mirror.services.provider_release).

Each release is built for real in tmp_path, as GoReleaser's standard Terraform provider set-up
lays it out: one zip per platform holding the provider binary, a SHA256SUMS listing them (and the
manifest), a binary detached signature over SHA256SUMS made with pysequoia, and a manifest.json.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pysequoia
import pytest

from mirror.domain.errors import BadRequest, InvalidArchive, MirrorError, PayloadTooLarge
from mirror.domain.providers import DEFAULT_PROTOCOLS, Platform, ProviderAddress
from mirror.formats.openpgp import SigningKey, parse_public_key
from mirror.formats.provider_zip import ProviderZipLimits, check_provider_zip
from mirror.services.provider_release import CheckedRelease, check_release
from tests.providers import zip_file_entry

ADDRESS = ProviderAddress("acme", "example")
BINARY = b"\x7fELF provider binary " * 64
MANIFEST = b'{"version": 1, "metadata": {"protocol_versions": ["6.0"]}}\n'


def _generate(suite: pysequoia.CipherSuite) -> pysequoia.Tsk:
    return pysequoia.Tsk.generate("Provider Signing <sign@example.com>", cipher_suite=suite)


@pytest.fixture(scope="module")
def tsks() -> dict[str, pysequoia.Tsk]:
    return {"rsa": _generate(pysequoia.CipherSuite.RSA2k), "ecdsa": _generate(pysequoia.CipherSuite.P256)}


@pytest.fixture(scope="module")
def keys(tsks: dict[str, pysequoia.Tsk]) -> dict[str, SigningKey]:
    return {name: parse_public_key(str(tsk.extract_certificate())) for name, tsk in tsks.items()}


def _sign(tsk: pysequoia.Tsk, data: bytes, *, armor: bool = False) -> bytes:
    return pysequoia.sign(tsk.signer(), data, mode=pysequoia.SignatureMode.DETACHED, armor=armor)


def _write_zip(path: Path, type_: str, version: str, *, directory: bool = False, extra: bytes = b"") -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        if directory:
            archive.writestr(zipfile.ZipInfo("docs/", date_time=(2024, 1, 1, 0, 0, 0)), b"")
        archive.writestr(zip_file_entry(f"terraform-provider-{type_}_v{version}"), BINARY + extra)
        archive.writestr(zip_file_entry("LICENSE", 0o644), b"MPL-2.0\n")
    return path


def _sums(paths: list[Path]) -> bytes:
    return b"".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n".encode() for p in paths)


def build_release(
    directory: Path,
    tsk: pysequoia.Tsk,
    *,
    platforms: tuple[str, ...] = ("linux_amd64", "darwin_arm64"),
    manifest: bool = True,
    directory_entry: bool = False,
) -> dict[str, Path]:
    """A signed release of acme/example 1.0.0 in ``directory``: ``{file name: path}``."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = "terraform-provider-example_1.0.0"
    zips = [
        _write_zip(directory / f"{stem}_{platform}.zip", "example", "1.0.0", directory=directory_entry)
        for platform in platforms
    ]
    listed = list(zips)
    if manifest:
        (directory / f"{stem}_manifest.json").write_bytes(MANIFEST)
        listed.append(directory / f"{stem}_manifest.json")
    shasums = directory / f"{stem}_SHA256SUMS"
    shasums.write_bytes(_sums(listed))
    (directory / f"{stem}_SHA256SUMS.sig").write_bytes(_sign(tsk, shasums.read_bytes()))
    return {path.name: path for path in directory.iterdir()}


async def _refused(
    files: dict[str, Path], keys: list[SigningKey], match: str, kind: type[MirrorError] = BadRequest, **options
) -> str:
    with pytest.raises(kind, match=match) as caught:
        await check_release(ADDRESS, "1.0.0", files, keys, **options)
    message = caught.value.message
    assert "\n" not in message and "Traceback" not in message
    return message


def _name(suffix: str) -> str:
    return f"terraform-provider-example_1.0.0_{suffix}"


# -- good releases


async def test_an_rsa_signed_release_passes(tmp_path: Path, tsks, keys) -> None:
    files = build_release(tmp_path, tsks["rsa"])
    release = await check_release(ADDRESS, "v1.0", files, [keys["rsa"]])
    assert isinstance(release, CheckedRelease)
    assert release.address == ADDRESS and release.version == "1.0.0"
    assert release.protocols == ("6.0",)
    assert release.key == keys["rsa"]
    assert release.shasums == files[_name("SHA256SUMS")].read_bytes()
    assert release.signature == files[_name("SHA256SUMS.sig")].read_bytes()
    assert release.shasums_filename == _name("SHA256SUMS")
    assert release.signature_filename == _name("SHA256SUMS.sig")
    assert [str(item.platform) for item in release.platforms] == ["darwin_arm64", "linux_amd64"]
    for item in release.platforms:
        path = files[_name(f"{item.platform}.zip")]
        info = check_provider_zip(path, "example")
        assert item.filename == path.name and item.path == path
        assert item.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() == release.sums[path.name]
        assert item.size == path.stat().st_size
        assert item.h1 == info.h1 and item.zh == info.zh
    assert release.platform(Platform("linux", "amd64")) is release.platforms[1]
    assert release.platform(Platform("windows", "amd64")) is None
    # one zh: per SHA256SUMS line, the manifest's included, as Terraform's lock file records them
    assert len(release.zh_hashes) == 3


async def test_an_ecdsa_signed_release_passes_with_keys_tried_in_order(tmp_path: Path, tsks, keys) -> None:
    files = build_release(tmp_path, tsks["ecdsa"], platforms=("linux_amd64",), manifest=False)
    release = await check_release(ADDRESS, "1.0.0", files, [keys["rsa"], keys["ecdsa"]])
    assert release.key == keys["ecdsa"]
    assert release.protocols == DEFAULT_PROTOCOLS
    assert [str(item.platform) for item in release.platforms] == ["linux_amd64"]


async def test_sha256sums_may_list_platforms_whose_zips_were_not_sent(tmp_path: Path, tsks, keys) -> None:
    files = build_release(tmp_path, tsks["rsa"], platforms=("linux_amd64", "windows_amd64"))
    del files[_name("windows_amd64.zip")]
    release = await check_release(ADDRESS, "1.0.0", files, [keys["rsa"]])
    assert [str(item.platform) for item in release.platforms] == ["linux_amd64"]
    assert _name("windows_amd64.zip") in release.sums
    assert release.shasums == files[_name("SHA256SUMS")].read_bytes()  # kept whole, as signed
    assert len(release.zh_hashes) == 3


# -- signatures and keys


async def test_a_signature_by_another_key_is_refused(tmp_path: Path, tsks, keys) -> None:
    files = build_release(tmp_path, tsks["ecdsa"])
    message = await _refused(files, [keys["rsa"]], "not one of the keys")
    assert message.startswith(_name("SHA256SUMS.sig") + ": ")
    assert keys["rsa"].key_id in message


async def test_a_tampered_sha256sums_is_refused(tmp_path: Path, tsks, keys) -> None:
    files = build_release(tmp_path, tsks["rsa"])
    shasums = files[_name("SHA256SUMS")]
    data = shasums.read_bytes()
    shasums.write_bytes(("0" if data[:1] != b"0" else "1").encode() + data[1:])
    message = await _refused(files, [keys["rsa"]], "does not match the signed file")
    assert message.startswith(_name("SHA256SUMS.sig") + ": ")


async def test_an_armored_signature_is_refused(tmp_path: Path, tsks, keys) -> None:
    files = build_release(tmp_path, tsks["rsa"])
    signature = files[_name("SHA256SUMS.sig")]
    signature.write_bytes(_sign(tsks["rsa"], files[_name("SHA256SUMS")].read_bytes(), armor=True))
    message = await _refused(files, [keys["rsa"]], "ASCII-armored")
    assert message.startswith(_name("SHA256SUMS.sig") + ": ") and "binary detached signature" in message


async def test_no_keys_is_refused_telling_how_to_add_one(tmp_path: Path, tsks) -> None:
    files = build_release(tmp_path, tsks["rsa"])
    message = await _refused(files, [], "no provider signing keys")
    assert "mirror provider keys add acme KEYFILE" in message


# -- zips against SHA256SUMS


async def test_a_tampered_zip_is_refused(tmp_path: Path, tsks, keys) -> None:
    files = build_release(tmp_path, tsks["rsa"])
    _write_zip(files[_name("linux_amd64.zip")], "example", "1.0.0", extra=b"backdoor")
    message = await _refused(files, [keys["rsa"]], "the signed SHA256SUMS lists", InvalidArchive)
    assert message.startswith(_name("linux_amd64.zip") + ": sha256 is ")


async def test_a_tampered_manifest_listed_in_sha256sums_is_refused(tmp_path: Path, tsks, keys) -> None:
    files = build_release(tmp_path, tsks["rsa"])
    files[_name("manifest.json")].write_bytes(b'{"version": 1, "metadata": {"protocol_versions": ["5.0"]}}\n')
    message = await _refused(files, [keys["rsa"]], "the signed SHA256SUMS lists", InvalidArchive)
    assert message.startswith(_name("manifest.json") + ": ")


async def test_an_unlisted_zip_is_refused(tmp_path: Path, tsks, keys) -> None:
    files = build_release(tmp_path, tsks["rsa"])
    extra = _write_zip(tmp_path / _name("freebsd_amd64.zip"), "example", "1.0.0")
    files[extra.name] = extra
    message = await _refused(files, [keys["rsa"]], "not listed in", InvalidArchive)
    assert message.startswith(extra.name + ": ")


async def test_a_zip_with_a_directory_entry_is_refused(tmp_path: Path, tsks, keys) -> None:
    files = build_release(tmp_path, tsks["rsa"], platforms=("linux_amd64",), directory_entry=True)
    message = await _refused(files, [keys["rsa"]], "is a directory entry", InvalidArchive)
    assert message.startswith(_name("linux_amd64.zip") + ": provider zip member 'docs/'")


async def test_a_zip_over_the_size_limit_is_refused(tmp_path: Path, tsks, keys) -> None:
    files = build_release(tmp_path, tsks["rsa"], platforms=("linux_amd64",))
    limits = ProviderZipLimits(max_zip_bytes=100)
    message = await _refused(files, [keys["rsa"]], "the limit is 100 bytes", PayloadTooLarge, limits=limits)
    assert message.startswith(_name("linux_amd64.zip") + ": ")


# -- the set of files


async def test_a_zip_of_another_version_is_refused(tmp_path: Path, tsks, keys) -> None:
    files = build_release(tmp_path, tsks["rsa"])
    other = _write_zip(tmp_path / "terraform-provider-example_1.0.1_linux_arm64.zip", "example", "1.0.1")
    files[other.name] = other
    message = await _refused(files, [keys["rsa"]], "version 1.0.1, not of 1.0.0")
    assert other.name in message


async def test_a_zip_of_another_type_is_refused(tmp_path: Path, tsks, keys) -> None:
    files = build_release(tmp_path, tsks["rsa"])
    other = _write_zip(tmp_path / "terraform-provider-other_1.0.0_linux_arm64.zip", "other", "1.0.0")
    files[other.name] = other
    message = await _refused(files, [keys["rsa"]], "provider type 'other', not of 'example'")
    assert other.name in message


async def test_two_sha256sums_are_refused(tmp_path: Path, tsks, keys) -> None:
    files = build_release(tmp_path, tsks["rsa"])
    second = tmp_path / "terraform-provider-example_v1.0.0_SHA256SUMS"
    second.write_bytes(files[_name("SHA256SUMS")].read_bytes())
    files[second.name] = second
    message = await _refused(files, [keys["rsa"]], "exactly one SHA256SUMS file")
    assert _name("SHA256SUMS") in message and second.name in message


@pytest.mark.parametrize(
    ("drop", "match"),
    [("SHA256SUMS", "exactly one SHA256SUMS file; got none"), ("SHA256SUMS.sig", "exactly one SHA256SUMS.sig")],
)
async def test_a_missing_sha256sums_or_signature_is_refused(
    tmp_path: Path, tsks, keys, drop: str, match: str
) -> None:
    files = build_release(tmp_path, tsks["rsa"])
    del files[_name(drop)]
    await _refused(files, [keys["rsa"]], match)


async def test_a_release_without_zips_is_refused(tmp_path: Path, tsks, keys) -> None:
    files = build_release(tmp_path, tsks["rsa"], platforms=("linux_amd64",))
    del files[_name("linux_amd64.zip")]
    await _refused(files, [keys["rsa"]], "has no zip")


async def test_an_unexpected_file_is_refused_by_name(tmp_path: Path, tsks, keys) -> None:
    files = build_release(tmp_path, tsks["rsa"])
    readme = tmp_path / "README.md"
    readme.write_text("hello\n")
    files[readme.name] = readme
    message = await _refused(files, [keys["rsa"]], "unexpected provider release file name 'README.md'")
    assert "a provider release is" in message


async def test_a_file_name_with_a_v_version_is_refused_with_the_expected_name(tmp_path: Path, tsks, keys) -> None:
    files = build_release(tmp_path, tsks["rsa"], platforms=("linux_amd64",))
    path = files.pop(_name("linux_amd64.zip"))
    files["terraform-provider-example_v1.0.0_linux_amd64.zip"] = path
    await _refused(files, [keys["rsa"]], f"must be named '{_name('linux_amd64.zip')}'")
