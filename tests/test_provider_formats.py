"""Provider building blocks: addresses, platforms, GoReleaser release file names, SHA256SUMS and
manifest parsing (mirror.domain.providers), and the provider zip checks and hashes
(mirror.formats.provider_zip) against real zips built with zipfile."""

from __future__ import annotations

import base64
import hashlib
import stat
import zipfile
from pathlib import Path

import pytest

from tests.terraform import ALL, Terraform, base_env
from mirror.domain.errors import BadRequest, InvalidArchive, PayloadTooLarge
from mirror.domain.providers import (
    DEFAULT_PROTOCOLS,
    Platform,
    ProviderAddress,
    ReleaseFileKind,
    manifest_name,
    parse_manifest,
    parse_release_file_name,
    parse_shasums,
    shasums_name,
    signature_name,
    zip_name,
)
from mirror.formats.provider_zip import ProviderZipLimits, check_provider_zip, h1_hash
from tests.providers import zip_file_entry

BINARY = b"\x7fELF" + b"provider binary" * 100
HEX_A = "a" * 64
HEX_B = "0123456789abcdef" * 4


# Addresses and platforms -------------------------------------------------------------------------


def test_provider_address_parses_and_prints() -> None:
    address = ProviderAddress.parse("hashicorp/aws")
    assert (address.namespace, address.type) == ("hashicorp", "aws")
    assert str(address) == "hashicorp/aws"
    assert address.binary_prefix == "terraform-provider-aws"
    assert str(ProviderAddress.parse("My_Org-1/google-beta")) == "My_Org-1/google-beta"
    assert ProviderAddress.parse(" hashicorp/aws\n") == address  # surrounding blanks, as for modules


@pytest.mark.parametrize(
    "text",
    ["hashicorp", "a/b/c", "/aws", "hashicorp/", "-ns/aws", "ns/AWS", "ns/a_b", "ns/-aws", "ns/aws-",
     "ns/a--b", "ns/a\nws", "ns/aws\n/x", "ns/" + "a" * 65, "n s/aws"],
)
def test_provider_address_refuses_bad_text(text: str) -> None:
    with pytest.raises(BadRequest) as caught:
        ProviderAddress.parse(text)
    assert "\n" not in str(caught.value)


def test_platform_parses_and_sorts() -> None:
    assert Platform.parse("linux_amd64") == Platform("linux", "amd64")
    assert str(Platform.parse("windows_386")) == "windows_386"
    assert sorted([Platform.parse("linux_arm64"), Platform.parse("darwin_amd64")])[0].os == "darwin"


@pytest.mark.parametrize("text", ["linux", "linux_amd64_v2", "Linux_amd64", "linux_", "_amd64", "1inux_amd64",
                                  "linux_amd-64", "linux_amd64\n", "linux/amd64"])
def test_platform_refuses_bad_text(text: str) -> None:
    with pytest.raises(BadRequest, match="platform"):
        Platform.parse(text)


# Release file names ------------------------------------------------------------------------------


def test_release_file_names_are_goreleasers() -> None:
    linux = Platform("linux", "amd64")
    assert zip_name("aws", "5.1.0", linux) == "terraform-provider-aws_5.1.0_linux_amd64.zip"
    assert zip_name("aws", "v5.1", linux) == "terraform-provider-aws_5.1.0_linux_amd64.zip"
    assert shasums_name("aws", "5.1.0") == "terraform-provider-aws_5.1.0_SHA256SUMS"
    assert signature_name("aws", "5.1.0") == "terraform-provider-aws_5.1.0_SHA256SUMS.sig"
    assert manifest_name("aws", "5.1.0") == "terraform-provider-aws_5.1.0_manifest.json"
    with pytest.raises(BadRequest, match="version"):
        shasums_name("aws", "five")
    with pytest.raises(BadRequest, match="type"):
        shasums_name("a_b", "1.0.0")


@pytest.mark.parametrize(
    "name",
    [
        "terraform-provider-aws_5.1.0_linux_amd64.zip",
        "terraform-provider-google-beta_1.0.0-rc.1+build.5_darwin_arm64.zip",
        "terraform-provider-aws_5.1.0_SHA256SUMS",
        "terraform-provider-aws_5.1.0_SHA256SUMS.sig",
        "terraform-provider-aws_5.1.0_manifest.json",
        "terraform-provider-x_0.0.1_windows_386.zip",
    ],
)
def test_release_file_names_round_trip(name: str) -> None:
    parsed = parse_release_file_name(name)
    assert parsed.name == name


def test_release_file_name_parts() -> None:
    parsed = parse_release_file_name("terraform-provider-google-beta_v1.2_freebsd_arm.zip")
    assert parsed.kind is ReleaseFileKind.ZIP
    assert (parsed.type, parsed.version, parsed.platform) == ("google-beta", "1.2.0", Platform("freebsd", "arm"))
    assert parsed.name == "terraform-provider-google-beta_1.2.0_freebsd_arm.zip"
    sums = parse_release_file_name("terraform-provider-aws_5.1.0_SHA256SUMS")
    assert (sums.kind, sums.platform) == (ReleaseFileKind.SHASUMS, None)
    assert parse_release_file_name("terraform-provider-aws_5.1.0_SHA256SUMS.sig").kind is ReleaseFileKind.SIGNATURE
    assert parse_release_file_name("terraform-provider-aws_5.1.0_manifest.json").kind is ReleaseFileKind.MANIFEST


@pytest.mark.parametrize(
    "name",
    [
        "terraform-provider-aws_5.1.0_linux_amd64.tar.gz",
        "terraform-provider-aws_5.1.0_linux.zip",
        "terraform-provider-aws_5.1.0_linux_amd64_v1.zip",
        "terraform-provider-aws_five_linux_amd64.zip",
        "terraform-provider-AWS_5.1.0_linux_amd64.zip",
        "terraform-provider-aws_5.1.0_Linux_amd64.zip",
        "terraform-provider-aws_5.1.0_linux_amd64_SHA256SUMS",
        "terraform-provider-aws_SHA256SUMS",
        "terraform-provider-aws_5.1.0_checksums.txt",
        "provider-aws_5.1.0_linux_amd64.zip",
        "terraform-provider-aws_5.1.0_linux_amd64.zip\n",
        "terraform-provider-" + "a" * 300 + "_1.0.0_SHA256SUMS",
    ],
)
def test_release_file_names_refused(name: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_release_file_name(name)
    assert "\n" not in str(caught.value)
    assert not isinstance(caught.value, InvalidArchive)


# SHA256SUMS --------------------------------------------------------------------------------------


def test_shasums_parse() -> None:
    data = (
        f"{HEX_A}  terraform-provider-aws_5.1.0_linux_amd64.zip\n"
        f"{HEX_B}  terraform-provider-aws_5.1.0_manifest.json\n"
    ).encode()
    assert parse_shasums(data) == {
        "terraform-provider-aws_5.1.0_linux_amd64.zip": HEX_A,
        "terraform-provider-aws_5.1.0_manifest.json": HEX_B,
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "lists no files"),
        (b"\n", "lists no files"),
        (f"{HEX_A}  a.zip".encode(), "newline"),
        (f"{HEX_A}  a.zip\n{HEX_B}  a.zip\n".encode(), "more than once"),
        (f"{HEX_A} a.zip\n".encode(), "line 1"),
        (f"{HEX_A} *a.zip\n".encode(), "line 1"),
        (f"{HEX_A}   a.zip\n".encode(), "line 1"),
        (f"{HEX_A.upper()}  a.zip\n".encode(), "lowercase"),
        (f"{HEX_A[:63]}  a.zip\n".encode(), "line 1"),
        (f"{HEX_A}  a.zip\n\n{HEX_B}  b.zip\n".encode(), "line 2"),
        (f"{HEX_A}  a.zip\r\n".encode(), "line 1"),
        (f"{HEX_A}  dir/a.zip\n".encode(), "line 1"),
        (f"{HEX_A}  a zip\n".encode(), "line 1"),
        (f"{HEX_A}  \n".encode(), "line 1"),
        ("{}  ä.zip\n".format(HEX_A).encode(), "line 1"),
        (b"\xff\xfe\n", "line 1"),
    ],
)
def test_shasums_refused(data: bytes, message: str) -> None:
    with pytest.raises(InvalidArchive, match=message) as caught:
        parse_shasums(data)
    assert "\n" not in str(caught.value)


def test_shasums_size_limits() -> None:
    line = f"{HEX_A}  a.zip\n".encode()
    with pytest.raises(InvalidArchive, match="limit"):
        parse_shasums(line * 3, max_bytes=len(line) * 2)
    many = b"".join(f"{HEX_A}  f{i}.zip\n".encode() for i in range(10_001))
    with pytest.raises(InvalidArchive, match="lines"):
        parse_shasums(many, max_bytes=len(many))


# manifest.json -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "protocols"),
    [
        (b'{"version": 1, "metadata": {"protocol_versions": ["5.0"]}}', ("5.0",)),
        (b'{"version": 1, "metadata": {"protocol_versions": ["6.0"]}}', ("6.0",)),
        (b'{"version": 1, "metadata": {"protocol_versions": ["4.0", "5.0"]}}', ("4.0", "5.0")),
        (b'{"version": 1, "metadata": {}}', DEFAULT_PROTOCOLS),
        (b'{"version": 1}', DEFAULT_PROTOCOLS),
        (b"{}", DEFAULT_PROTOCOLS),
    ],
)
def test_manifest_parse(data: bytes, protocols: tuple[str, ...]) -> None:
    assert parse_manifest(data) == protocols


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"\xff", "not valid JSON"),
        (b"[]", "JSON object"),
        (b'{"version": 2}', "version"),
        (b'{"version": "1"}', "version"),
        (b'{"version": true}', "version"),
        (b'{"metadata": []}', "metadata"),
        (b'{"metadata": {"protocol_versions": []}}', "non-empty list"),
        (b'{"metadata": {"protocol_versions": "5.0"}}', "non-empty list"),
        (b'{"metadata": {"protocol_versions": [5]}}', "MAJOR.MINOR"),
        (b'{"metadata": {"protocol_versions": ["5"]}}', "MAJOR.MINOR"),
        (b'{"metadata": {"protocol_versions": ["5.0\\n"]}}', "MAJOR.MINOR"),
        (b'{"metadata": {"protocol_versions": ["5.0", "5.0"]}}', "more than once"),
        (b'{"metadata": {"protocol_versions": ["4.0"]}}', "none that Terraform can use"),
        (b'{"metadata": {"protocol_versions": ["7.0"]}}', "none that Terraform can use"),
        (b"[" * 100_000, "limit"),
    ],
)
def test_manifest_refused(data: bytes, message: str) -> None:
    with pytest.raises(InvalidArchive, match=message) as caught:
        parse_manifest(data)
    assert "\n" not in str(caught.value)


def test_manifest_deep_nesting_is_refused_not_crashed() -> None:
    with pytest.raises(InvalidArchive):
        parse_manifest(b"[" * 50_000 + b"]" * 50_000, max_bytes=200_000)


# Provider zips -----------------------------------------------------------------------------------


def build_zip(path: Path, members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in members:
            archive.writestr(zip_file_entry(info) if isinstance(info, str) else info, data)
    return path


def goreleaser_zip(tmp_path: Path) -> Path:
    return build_zip(
        tmp_path / "terraform-provider-example_1.0.0_linux_amd64.zip",
        [
            ("terraform-provider-example_v1.0.0", BINARY),
            (zip_file_entry("LICENSE", 0o644), b"MPL-2.0\n"),
            (zip_file_entry("README.md", 0o644), b"# example\n"),
        ],
    )


def expected_h1(files: dict[str, bytes]) -> str:
    lines = "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(files.items()))
    return "h1:" + base64.b64encode(hashlib.sha256(lines.encode()).digest()).decode()


def test_goreleaser_zip_passes_with_both_hashes(tmp_path: Path) -> None:
    path = goreleaser_zip(tmp_path)
    info = check_provider_zip(path, "example")
    assert info.binary == "terraform-provider-example_v1.0.0"
    assert info.files == 3
    assert info.unpacked_bytes == len(BINARY) + len(b"MPL-2.0\n") + len(b"# example\n")
    assert info.size == path.stat().st_size
    assert info.zh == "zh:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert info.h1 == expected_h1(
        {"terraform-provider-example_v1.0.0": BINARY, "LICENSE": b"MPL-2.0\n", "README.md": b"# example\n"}
    )


def test_h1_hash_sorts_names_by_bytes_and_ignores_zip_layout(tmp_path: Path) -> None:
    files = {"terraform-provider-x": BINARY, "Z": b"upper", "a": b"lower", "sub/b": b"nested", "\u00e9": b"utf8"}
    stored = tmp_path / "stored.zip"
    with zipfile.ZipFile(stored, "w", zipfile.ZIP_STORED) as archive:
        for name, data in reversed(list(files.items())):
            archive.writestr(name, data)
    deflated = build_zip(tmp_path / "deflated.zip", list(files.items()))
    first, second = check_provider_zip(stored, "x"), check_provider_zip(deflated, "x")
    assert first.h1 == second.h1 == expected_h1(files)
    assert first.zh != second.zh
    # the formula by hand: uppercase sorts before lowercase, and "é" (0xC3 0xA9) after both
    order = ["Z", "a", "sub/b", "terraform-provider-x", "\u00e9"]
    summary = "".join(f"{hashlib.sha256(files[n]).hexdigest()}  {n}\n" for n in order).encode()
    assert first.h1 == "h1:" + base64.b64encode(hashlib.sha256(summary).digest()).decode()
    assert h1_hash([(n, hashlib.sha256(files[n]).hexdigest()) for n in files]) == first.h1


def test_empty_member_hashes_as_empty_content(tmp_path: Path) -> None:
    path = build_zip(tmp_path / "p.zip", [("terraform-provider-x", BINARY), ("empty", b"")])
    assert check_provider_zip(path, "x").h1 == expected_h1({"terraform-provider-x": BINARY, "empty": b""})


@pytest.mark.parametrize(
    "binary",
    ["terraform-provider-x", "terraform-provider-x_v1.0.0", "terraform-provider-x_v1.0.0_x5",
     "terraform-provider-x.exe", "terraform-provider-x_v1.0.0.exe"],
)
def test_binary_names_accepted(tmp_path: Path, binary: str) -> None:
    path = build_zip(tmp_path / "p.zip", [(binary, BINARY)])
    assert check_provider_zip(path, "x").binary == binary


@pytest.mark.parametrize(
    "names",
    [["LICENSE"], ["terraform-provider-xy"], ["bin/terraform-provider-x"], ["terraform-provider-y_v1.0.0"], []],
)
def test_missing_binary_refused(tmp_path: Path, names: list[str]) -> None:
    path = build_zip(tmp_path / "p.zip", [(name, BINARY) for name in names])
    with pytest.raises(InvalidArchive, match="no terraform-provider-x executable at its root"):
        check_provider_zip(path, "x")


def test_directory_entry_refused_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "p.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(zip_file_entry("terraform-provider-x"), BINARY)
        archive.mkdir("docs")
        archive.writestr(zip_file_entry("docs/index.md", 0o644), b"doc")
    with pytest.raises(InvalidArchive, match="'docs/': is a directory entry; Terraform's lock check fails") as caught:
        check_provider_zip(path, "x")
    assert "re-download" in str(caught.value)


def test_directory_mode_without_slash_refused(tmp_path: Path) -> None:
    info = zip_file_entry("docs")
    info.external_attr = (stat.S_IFDIR | 0o755) << 16
    path = build_zip(tmp_path / "p.zip", [("terraform-provider-x", BINARY), (info, b"")])
    with pytest.raises(InvalidArchive, match="'docs': is a directory entry"):
        check_provider_zip(path, "x")


def test_symlink_refused(tmp_path: Path) -> None:
    link = zip_file_entry("LICENSE")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    path = build_zip(tmp_path / "p.zip", [("terraform-provider-x", BINARY), (link, b"/etc/passwd")])
    with pytest.raises(InvalidArchive, match="'LICENSE': is a symlink"):
        check_provider_zip(path, "x")


def test_special_file_and_setuid_refused(tmp_path: Path) -> None:
    fifo = zip_file_entry("pipe")
    fifo.external_attr = (stat.S_IFIFO | 0o644) << 16
    path = build_zip(tmp_path / "p.zip", [("terraform-provider-x", BINARY), (fifo, b"")])
    with pytest.raises(InvalidArchive, match="'pipe': has file type"):
        check_provider_zip(path, "x")
    path = build_zip(tmp_path / "q.zip", [(zip_file_entry("terraform-provider-x", 0o4755), BINARY)])
    with pytest.raises(InvalidArchive, match="setuid"):
        check_provider_zip(path, "x")


def test_zip_without_unix_modes_passes(tmp_path: Path) -> None:
    info = zipfile.ZipInfo("terraform-provider-x.exe")
    info.create_system = 0  # MS-DOS: external attributes hold no unix mode
    info.external_attr = 0x20
    path = build_zip(tmp_path / "p.zip", [(info, BINARY)])
    assert check_provider_zip(path, "x").binary == "terraform-provider-x.exe"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("/etc/cron.d/x", "absolute"),
        ("C:/x", "absolute"),
        ("../x", "'..'"),
        ("a/../../x", "'..'"),
        ("a\\b", "backslash"),
        ("./a", "'.' component"),
        ("a//b", "empty or '.' component"),
        ("a\tb", "control character"),
    ],
)
def test_unsafe_paths_refused(tmp_path: Path, name: str, message: str) -> None:
    path = build_zip(tmp_path / "p.zip", [("terraform-provider-x", BINARY), (name, b"x")])
    with pytest.raises(InvalidArchive, match=message) as caught:
        check_provider_zip(path, "x")
    assert "provider zip member" in str(caught.value)


def test_nul_in_name_refused(tmp_path: Path) -> None:
    path = build_zip(tmp_path / "p.zip", [("terraform-provider-x", BINARY), ("LICENSE", b"x")])
    raw = path.read_bytes().replace(b"LICENSE", b"LIC\0NSE")
    path.write_bytes(raw)
    with pytest.raises(InvalidArchive, match="NUL"):
        check_provider_zip(path, "x")


def test_non_ascii_name_without_utf8_flag_refused(tmp_path: Path) -> None:
    path = build_zip(tmp_path / "p.zip", [("terraform-provider-x", BINARY), ("LICENSE", b"x")])
    raw = path.read_bytes().replace(b"LICENSE", b"LIC\x82NSE")  # cp437 "é", no UTF-8 flag
    path.write_bytes(raw)
    with pytest.raises(InvalidArchive, match="not marked as UTF-8"):
        check_provider_zip(path, "x")


def test_duplicate_and_case_colliding_names_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.zip"
    with pytest.warns(UserWarning, match="Duplicate name"):
        build_zip(path, [("terraform-provider-x", BINARY), ("LICENSE", b"1"), ("LICENSE", b"2")])
    with pytest.raises(InvalidArchive, match="'LICENSE': appears more than once"):
        check_provider_zip(path, "x")
    build_zip(path, [("terraform-provider-x", BINARY), ("docs/a.md", b"1"), ("DOCS/b.md", b"2")])
    with pytest.raises(InvalidArchive, match="'DOCS/b.md': differs only in letter case from 'docs'"):
        check_provider_zip(path, "x")
    build_zip(path, [("terraform-provider-x", BINARY), ("Terraform-Provider-X", b"2")])
    with pytest.raises(InvalidArchive, match="letter case"):
        check_provider_zip(path, "x")


def test_bomb_by_size_refused(tmp_path: Path) -> None:
    path = build_zip(tmp_path / "p.zip", [("terraform-provider-x", b"\0" * (4 * 1024 * 1024))])
    assert path.stat().st_size < 64 * 1024
    with pytest.raises(PayloadTooLarge, match="unpacks to 4 MiB; the limit is 1 MiB"):
        check_provider_zip(path, "x", ProviderZipLimits(max_unpacked_bytes=1024 * 1024))


def test_lying_declared_size_refused(tmp_path: Path) -> None:
    content = b"\0" * 100_000
    path = build_zip(tmp_path / "p.zip", [("terraform-provider-x", content)])
    raw = bytearray(path.read_bytes())
    # shrink the declared uncompressed size in both headers: zipfile stops there and the CRC fails
    size_le = len(content).to_bytes(4, "little")
    assert raw.count(size_le) == 2
    path.write_bytes(bytes(raw).replace(size_le, (10).to_bytes(4, "little")))
    with pytest.raises(InvalidArchive, match="not a valid zip"):
        check_provider_zip(path, "x")


def test_too_many_members_refused(tmp_path: Path) -> None:
    path = build_zip(tmp_path / "p.zip", [("terraform-provider-x", BINARY)] + [(f"f{i}", b"") for i in range(20)])
    with pytest.raises(InvalidArchive, match="21 members; the limit is 10"):
        check_provider_zip(path, "x", ProviderZipLimits(max_files=10))


def test_zip_file_size_limit(tmp_path: Path) -> None:
    path = goreleaser_zip(tmp_path)
    with pytest.raises(PayloadTooLarge, match="provider zip is"):
        check_provider_zip(path, "example", ProviderZipLimits(max_zip_bytes=100))


def test_not_a_zip_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.zip"
    path.write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(InvalidArchive, match="not a valid zip"):
        check_provider_zip(path, "x")
    good = goreleaser_zip(tmp_path)
    path.write_bytes(good.read_bytes()[:-30])  # truncated end of central directory
    with pytest.raises(InvalidArchive, match="not a valid zip"):
        check_provider_zip(path, "example")


def test_corrupt_content_refused(tmp_path: Path) -> None:
    good = goreleaser_zip(tmp_path)
    raw = bytearray(good.read_bytes())
    raw[60] ^= 0xFF  # inside the first member's compressed data
    good.write_bytes(bytes(raw))
    with pytest.raises(InvalidArchive, match="not a valid zip"):
        check_provider_zip(good, "example")


def test_unsupported_compression_and_encryption_refused(tmp_path: Path) -> None:
    info = zip_file_entry("terraform-provider-x")
    info.compress_type = zipfile.ZIP_BZIP2
    path = build_zip(tmp_path / "p.zip", [(info, BINARY)])
    with pytest.raises(InvalidArchive, match="compression method 12"):
        check_provider_zip(path, "x")
    path = build_zip(tmp_path / "q.zip", [("terraform-provider-x", BINARY)])
    raw = bytearray(path.read_bytes())
    raw[6] |= 0x1  # local header flag bits
    central = raw.rfind(b"PK\x01\x02")
    raw[central + 8] |= 0x1  # central directory flag bits
    path.write_bytes(bytes(raw))
    with pytest.raises(InvalidArchive, match="encrypted"):
        check_provider_zip(path, "x")


def test_declared_member_count_refused_before_reading_the_directory(tmp_path: Path) -> None:
    path = build_zip(tmp_path / "p.zip", [("terraform-provider-x", BINARY), ("LICENSE", b"x")])
    raw = bytearray(path.read_bytes())
    end = raw.rfind(b"PK\x05\x06")
    raw[end + 8 : end + 12] = (60_000).to_bytes(2, "little") * 2  # entries on this disk, and in all
    path.write_bytes(bytes(raw))
    with pytest.raises(InvalidArchive, match="60000 members; the limit is 1000"):
        check_provider_zip(path, "x")


def test_zip64_member_count_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("terraform-provider-x", BINARY)
        for i in range(0xFFFF):
            archive.writestr(f"f{i}", b"")
    assert path.read_bytes().rfind(b"PK\x06\x06") > 0  # a zip64 end record: the classic one says 0xFFFF
    with pytest.raises(InvalidArchive, match="65536 members; the limit is 1000"):
        check_provider_zip(path, "x")
    assert check_provider_zip(path, "x", ProviderZipLimits(max_files=70_000)).files == 0x10000


@pytest.mark.terraform
@pytest.mark.parametrize("terraform", ALL, ids=lambda tf: tf.version)
def test_h1_hash_equals_terraforms(tmp_path: Path, terraform: Terraform) -> None:
    """``terraform providers lock`` from a packed filesystem mirror records the zip's h1: hash."""
    package = tmp_path / "mirror" / "example.com" / "acme" / "example"
    package.mkdir(parents=True)
    path = build_zip(
        package / "terraform-provider-example_1.0.0_linux_amd64.zip",
        [("terraform-provider-example_v1.0.0", BINARY), ("LICENSE", b"MPL-2.0\n"), ("docs/index.md", b"# x\n")],
    )
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "main.tf").write_text(
        'terraform {\n  required_providers {\n    example = { source = "example.com/acme/example", '
        'version = "1.0.0" }\n  }\n}\n'
    )
    config = tmp_path / "cli.tfrc"
    config.write_text("")
    env = base_env(config, tmp_path)
    result = terraform.run(
        workdir, "providers", "lock", f"-fs-mirror={tmp_path / 'mirror'}", "-platform=linux_amd64", env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lock = (workdir / ".terraform.lock.hcl").read_text()
    assert f'"{check_provider_zip(path, "example").h1}"' in lock
