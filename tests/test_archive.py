"""mirror.formats.archive against real tar.gz files built with the standard library."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import stat
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mirror.formats.archive import ArchiveInfo, ArchiveLimits, check_archive, pack_directory, strip_top_level_directory
from mirror.domain.errors import InvalidArchive, PayloadTooLarge

MiB = 1024 * 1024
MAIN_TF = b'variable "name" {\n  type = string\n}\n'
Member = tuple[tarfile.TarInfo, bytes | None]


# Building archives ------------------------------------------------------------------------------


def regular(name: str, data: bytes = MAIN_TF, mode: int = 0o644) -> Member:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    return info, data


def special(name: str, type_: bytes, linkname: str = "") -> Member:
    info = tarfile.TarInfo(name)
    info.type = type_
    info.linkname = linkname
    info.mode = 0o755
    return info, None


def directory(name: str) -> Member:
    return special(name, tarfile.DIRTYPE)


def symlink(name: str, target: str) -> Member:
    return special(name, tarfile.SYMTYPE, target)


def hardlink(name: str, target: str) -> Member:
    return special(name, tarfile.LNKTYPE, target)


def tar_bytes(*members: Member, format: int = tarfile.PAX_FORMAT, pax_headers: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=format, pax_headers=pax_headers) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def raw_member(info: tarfile.TarInfo, data: bytes = b"") -> bytes:
    """One member's header and padded data, for hand-made (and broken) streams."""
    return info.tobuf(tarfile.PAX_FORMAT) + data + bytes(-len(data) % 512)


def pax_header(body: bytes) -> Member:
    info = tarfile.TarInfo("PaxHeader")
    info.type = tarfile.XHDTYPE
    info.size = len(body)
    return info, body


def write_tar_gz(path: Path, *members: Member, format: int = tarfile.PAX_FORMAT) -> Path:
    path.write_bytes(gzip.compress(tar_bytes(*members, format=format)))
    return path


def gzip_of_zeros(prefix: bytes, zero_mib: int) -> bytes:
    """A valid multi-member gzip stream inflating to ``prefix`` then ``zero_mib`` MiB of zeros,
    built without compressing them all: one compressed MiB of zeros, repeated."""
    return gzip.compress(prefix) + gzip.compress(bytes(MiB)) * zero_mib


def check(path: Path, **limits: int) -> ArchiveInfo:
    return check_archive(path, ArchiveLimits(**limits))


# check_archive: valid archives -------------------------------------------------------------------


def test_a_module_with_submodules_passes_and_is_described(tmp_path: Path) -> None:
    archive = write_tar_gz(
        tmp_path / "m.tar.gz",
        regular("main.tf"),
        regular("outputs.tf.json", b'{"output": {}}'),
        regular("README.md", b"# Network\n"),
        regular(".editor-backup.tf"),  # Terraform ignores hidden files, so it is no root config
        directory("modules"),
        directory("modules/a"),
        regular("modules/a/main.tf"),
        regular("modules/a/README.md", b"# not the root readme\n"),
        symlink("modules/current", "a"),
        symlink("modules/a/shared.tf", "../../main.tf"),
        hardlink("copy.txt", "main.tf"),
    )
    info = check(archive)
    assert info.files == 11
    assert info.unpacked_bytes == 3 * len(MAIN_TF) + len(b'{"output": {}}') + len(b"# Network\n") + 22
    assert info.root_tf_files == ("main.tf", "outputs.tf.json")
    assert info.readme == "# Network\n"


def test_dot_slash_names_are_at_the_root(tmp_path: Path) -> None:
    archive = write_tar_gz(tmp_path / "m.tar.gz", directory("."), regular("./main.tf"), regular("./README", b"plain"))
    info = check(archive)
    assert info.root_tf_files == ("main.tf",)
    assert info.readme == "plain"


def test_readme_prefers_markdown_and_is_truncated_to_512_kib(tmp_path: Path) -> None:
    limit = 512 * 1024
    # an invalid byte first, and a two-byte character cut in half by the truncation
    body = b"\xff" + b"a" * (limit - 2) + "é".encode() + b"tail"
    archive = write_tar_gz(
        tmp_path / "m.tar.gz", regular("README", b"plain"), regular("main.tf"), regular("readme.md", body)
    )
    assert check(archive).readme == "\ufffd" + "a" * (limit - 2)


@pytest.mark.parametrize("format", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT], ids=["pax", "gnu"])
def test_long_names_work(tmp_path: Path, format: int) -> None:
    long_root_file = "n" * 150 + ".tf"
    archive = write_tar_gz(
        tmp_path / "m.tar.gz",
        regular(long_root_file),
        regular("modules/" + "d" * 120 + "/main.tf"),
        symlink("link.tf", long_root_file),
        format=format,
    )
    assert check(archive).root_tf_files == (long_root_file,)


# check_archive: refusals -------------------------------------------------------------------------

REFUSED_MEMBERS: dict[str, tuple[list[Member], str]] = {
    "absolute path": ([regular("/etc/cron.d/evil")], "archive member '/etc/cron.d/evil': path is absolute"),
    "windows drive path": ([regular("C:\\evil\\main.tf")], "path is absolute"),
    "backslash path": ([regular("..\\evil.tf")], "path contains a backslash"),
    "dot-dot component": ([regular("modules/../../evil.tf")], "path contains a '..' component"),
    "symlink escaping": (
        [symlink("modules/up", "../../etc")],
        "archive member 'modules/up': symlink target '../../etc' points outside the module",
    ),
    "absolute symlink": ([symlink("passwd", "/etc/passwd")], "symlink target '/etc/passwd' is absolute"),
    "symlink escaping through another symlink": (
        [symlink("a", "b/.."), symlink("b", ".")],
        "archive member 'a': symlink target 'b/..' points outside the module once the archive's other symlinks",
    ),
    "symlink loop": ([symlink("a", "b"), symlink("b", "a")], "archive member 'a': symlink target 'b' loops"),
    "hardlink escaping": (
        [hardlink("evil", "../outside")],
        "archive member 'evil': hardlink target '../outside' contains a '..' component",
    ),
    "absolute hardlink": ([hardlink("evil", "/etc/shadow")], "hardlink target '/etc/shadow' is absolute"),
    "hardlink to a later member": (
        [hardlink("evil", "later.tf"), regular("later.tf")],
        "hardlink target 'later.tf' is not an earlier regular file",
    ),
    "character device": ([special("dev/tty", tarfile.CHRTYPE)], "'dev/tty': is a character device"),
    "block device": ([special("dev/sda", tarfile.BLKTYPE)], "'dev/sda': is a block device"),
    "fifo": ([special("pipe", tarfile.FIFOTYPE)], "'pipe': is a FIFO"),
    "duplicate member": ([regular("main.tf")], "'main.tf': appears more than once"),
}


@pytest.mark.parametrize("members, message", REFUSED_MEMBERS.values(), ids=REFUSED_MEMBERS.keys())
def test_unsafe_members_are_refused(tmp_path: Path, members: list[Member], message: str) -> None:
    archive = write_tar_gz(tmp_path / "m.tar.gz", regular("main.tf"), *members)
    with pytest.raises(InvalidArchive, match=re.escape(message)):
        check(archive)


def test_no_root_tf_file_is_refused(tmp_path: Path) -> None:
    archive = write_tar_gz(
        tmp_path / "m.tar.gz",
        regular("module/main.tf"),
        regular(".hidden.tf"),
        regular("main.tf.orig"),
        symlink("link.tf", "module/main.tf"),
    )
    with pytest.raises(InvalidArchive, match="archive has no .tf file at its root"):
        check(archive)


def test_too_many_members_are_refused(tmp_path: Path) -> None:
    archive = write_tar_gz(tmp_path / "m.tar.gz", regular("main.tf"), directory("a"), regular("a/b"), regular("a/c"))
    with pytest.raises(InvalidArchive, match=re.escape("more than 3 members (refused at 'a/c')")):
        check(archive, max_files=3)


def test_too_many_unpacked_bytes_are_refused(tmp_path: Path) -> None:
    archive = write_tar_gz(tmp_path / "m.tar.gz", regular("main.tf"), regular("big.bin", bytes(30_000)))
    with pytest.raises(PayloadTooLarge, match=re.escape("'big.bin': takes the archive's unpacked size over")):
        check(archive, max_unpacked_bytes=20_000)


def test_a_gzip_bomb_member_is_refused_quickly(tmp_path: Path) -> None:
    bomb = tarfile.TarInfo("zeros.bin")
    bomb.size = 200 * MiB
    archive = tmp_path / "bomb.tar.gz"
    # the 200 MiB of data, then one more MiB of zeros as the end-of-archive blocks
    archive.write_bytes(gzip_of_zeros(raw_member(*regular("main.tf")) + raw_member(bomb), 201))
    assert archive.stat().st_size < MiB
    started = time.monotonic()
    with pytest.raises(PayloadTooLarge, match="'zeros.bin'"):
        check(archive, max_unpacked_bytes=10 * MiB)
    assert time.monotonic() - started < 1


def test_a_gzip_bomb_after_the_end_of_the_archive_is_refused_quickly(tmp_path: Path) -> None:
    archive = tmp_path / "bomb.tar.gz"
    archive.write_bytes(gzip_of_zeros(raw_member(*regular("main.tf")), 200))
    started = time.monotonic()
    with pytest.raises(PayloadTooLarge, match="archive decompresses to more than 10 MiB"):
        check(archive, max_unpacked_bytes=10 * MiB)
    assert time.monotonic() - started < 1


def test_an_archive_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    archive = write_tar_gz(tmp_path / "m.tar.gz", regular("main.tf"))
    with pytest.raises(PayloadTooLarge, match="the limit is 100 bytes"):
        check(archive, max_archive_bytes=100)


def _truncated_gzip(valid: bytes) -> bytes:
    return valid[: len(valid) // 2]


def _corrupt_crc(valid: bytes) -> bytes:
    return valid[:-8] + bytes([valid[-8] ^ 0xFF]) + valid[-7:]


MAIN_MEMBER = raw_member(*regular("main.tf"))
BROKEN_ARCHIVES = {
    "truncated file": (_truncated_gzip, "Compressed file ended before the end-of-stream marker"),
    "corrupt crc": (_corrupt_crc, "CRC check failed"),
    "not gzip": (lambda _: b"PK\x03\x04 a zip file, not a gzip one", "Not a gzipped file"),
    "gzip but not tar": (lambda _: gzip.compress(b"just some text\n" * 100), "not a valid .tar.gz: invalid header"),
    "empty": (lambda _: b"", "empty file"),
    "tar truncated in a header": (lambda _: gzip.compress(MAIN_MEMBER + MAIN_MEMBER[:300]), "truncated header"),
    "tar truncated in data": (lambda _: gzip.compress(MAIN_MEMBER[:-500]), "unexpected end of data"),
    "corrupt tar header": (lambda _: gzip.compress(MAIN_MEMBER + b"x" * 512), "not a valid .tar.gz: invalid header"),
    "corrupt pax header": (
        lambda _: gzip.compress(MAIN_MEMBER + raw_member(*pax_header(b"0 path=x\n")) + MAIN_MEMBER),
        "archive member 'main.tf': has a malformed pax record at byte 0 of its pax header",
    ),
    "data after the end marker": (
        lambda _: gzip.compress(MAIN_MEMBER + bytes(512) + raw_member(*regular("hidden.tf")) + bytes(1024)),
        "archive has data after its end-of-archive marker",
    ),
}


@pytest.mark.parametrize("damage, message", BROKEN_ARCHIVES.values(), ids=BROKEN_ARCHIVES.keys())
def test_broken_archives_are_refused(tmp_path: Path, damage: Callable[[bytes], bytes], message: str) -> None:
    valid = gzip.compress(tar_bytes(regular("main.tf"), regular("data.bin", os.urandom(100_000))))
    archive = tmp_path / "broken.tar.gz"
    archive.write_bytes(damage(valid))
    with pytest.raises(InvalidArchive, match=re.escape(message)):
        check(archive)


def test_an_oversized_extended_header_is_refused(tmp_path: Path) -> None:
    info, data = regular("main.tf")
    info.pax_headers = {"comment": "x" * (2 * MiB)}
    archive = write_tar_gz(tmp_path / "m.tar.gz", (info, data))
    with pytest.raises(InvalidArchive, match="extended header"):
        check(archive)


# pack_directory ----------------------------------------------------------------------------------


def build_tree(root: Path, *, reverse: bool, mtime: int, private: bool) -> Path:
    """The same module content, created in a different order, with different mtimes and modes."""
    files = {
        "main.tf": MAIN_TF,
        "README.md": b"# Network\n",
        "modules/a/main.tf": MAIN_TF,
        "modules/a-b/main.tf": MAIN_TF,
        "scripts/run.sh": b"#!/bin/sh\n",
    }
    for rel in sorted(files, reverse=reverse):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(files[rel])
    (root / "main.tf").chmod(0o600 if private else 0o664)
    (root / "scripts/run.sh").chmod(0o700 if private else 0o775)
    (root / "modules/current").symlink_to("a")
    for path in [root, *root.rglob("*")]:
        os.utime(path, (mtime, mtime), follow_symlinks=False)
    return root


def pack_to_file(src: Path, out: Path) -> bytes:
    with out.open("wb") as file:
        pack_directory(src, file)
    return out.read_bytes()


def test_pack_directory_is_deterministic(tmp_path: Path) -> None:
    first = build_tree(tmp_path / "one", reverse=False, mtime=1_000_000, private=True)
    second = build_tree(tmp_path / "two", reverse=True, mtime=2_000_000, private=False)
    packed = pack_to_file(first, tmp_path / "one.tar.gz")
    assert pack_to_file(first, tmp_path / "again.tar.gz") == packed
    assert pack_to_file(second, tmp_path / "two.tar.gz") == packed
    assert packed[3] == 0  # gzip flags: no file name
    assert packed[4:8] == bytes(4)  # gzip mtime

    with tarfile.open(fileobj=io.BytesIO(packed)) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == [
        "README.md",
        "main.tf",
        "modules",
        "modules/a",
        "modules/a-b",
        "modules/a-b/main.tf",
        "modules/a/main.tf",
        "modules/current",
        "scripts",
        "scripts/run.sh",
    ]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}
    modes = {m.name: m.mode for m in members}
    assert (modes["main.tf"], modes["modules"], modes["scripts/run.sh"]) == (0o644, 0o755, 0o755)
    link = next(m for m in members if m.name == "modules/current")
    assert link.issym() and link.linkname == "a"


def test_pack_directory_skips_local_state(tmp_path: Path) -> None:
    src = build_tree(tmp_path / "src", reverse=False, mtime=0, private=False)
    for rel in [
        ".git/config",
        ".terraform/modules/modules.json",
        "modules/a/.terraform/x",
        ".terraform.lock.hcl",
        "terraform.tfstate",
        "terraform.tfstate.backup",
        ".DS_Store",
    ]:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(b"local")
    out = io.BytesIO()
    pack_directory(src, out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        names = tar.getnames()
    assert "main.tf" in names
    assert not [n for n in names if ".git" in n or ".terraform" in n or "tfstate" in n or "DS_Store" in n]


def test_pack_directory_round_trips_through_check_archive(tmp_path: Path) -> None:
    src = build_tree(tmp_path / "src", reverse=False, mtime=0, private=False)
    archive = tmp_path / "m.tar.gz"
    pack_to_file(src, archive)
    info = check(archive)
    assert info.root_tf_files == ("main.tf",)
    assert info.readme == "# Network\n"
    assert info.files == 10


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: (p / "escape").symlink_to("../outside"), "target '../outside' points outside the module"),
        (lambda p: (p / "abs").symlink_to("/etc/passwd"), "target '/etc/passwd' is absolute"),
        (lambda p: os.mkfifo(p / "pipe"), "cannot pack 'pipe'"),
    ],
    ids=["escaping symlink", "absolute symlink", "fifo"],
)
def test_pack_directory_refuses_what_cannot_be_published(
    tmp_path: Path, make: Callable[[Path], object], message: str
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "main.tf").write_bytes(MAIN_TF)
    make(src)
    with pytest.raises(InvalidArchive, match=re.escape(message)):
        pack_directory(src, io.BytesIO())


# strip_top_level_directory -----------------------------------------------------------------------


class NonSeekable(io.RawIOBase):
    """A read-only stream over bytes that cannot seek or tell, like an HTTP response body."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:
        return self._data.readinto(buffer)


TOP = "acme-network-0123abc"
SHA = "0123abc" + "0" * 33


def github_tarball(*members: Member) -> bytes:
    """Shaped like GitHub's: a pax global header with the commit sha, and one top-level directory."""
    return gzip.compress(tar_bytes(*members, pax_headers={"comment": SHA}))


def strip(data: bytes, **limits: int) -> tuple[bytes, str, int]:
    out = io.BytesIO()
    sha256, size = strip_top_level_directory(NonSeekable(data), out, ArchiveLimits(**limits))
    return out.getvalue(), sha256, size


def test_strip_top_level_directory_reroots_a_github_tarball(tmp_path: Path) -> None:
    tarball = github_tarball(
        directory(TOP),
        regular(f"{TOP}/main.tf"),
        regular(f"{TOP}/README.md", b"# Network\n"),
        directory(f"{TOP}/modules"),
        directory(f"{TOP}/modules/a"),
        regular(f"{TOP}/modules/a/main.tf"),
        hardlink(f"{TOP}/copy.tf", f"{TOP}/main.tf"),
        symlink(f"{TOP}/modules/current", "a"),
    )
    stripped, sha256, size = strip(tarball)
    assert sha256 == hashlib.sha256(stripped).hexdigest()
    assert size == len(stripped)
    assert strip(tarball)[0] == stripped

    with tarfile.open(fileobj=io.BytesIO(stripped)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert tar.pax_headers == {}
    assert list(members) == [
        "main.tf",
        "README.md",
        "modules",
        "modules/a",
        "modules/a/main.tf",
        "copy.tf",
        "modules/current",
    ]
    assert members["copy.tf"].islnk() and members["copy.tf"].linkname == "main.tf"
    assert members["modules/current"].issym() and members["modules/current"].linkname == "a"

    archive = tmp_path / "stripped.tar.gz"
    archive.write_bytes(stripped)
    info = check(archive)
    assert info.root_tf_files == ("main.tf",)
    assert info.readme == "# Network\n"


STRIP_REFUSALS = {
    "two top-level directories": (
        [directory("one"), regular("one/main.tf"), directory("two"), regular("two/main.tf")],
        "more than one top-level entry ('one' and 'two')",
    ),
    "a top-level file": ([regular("main.tf")], "expected a single top-level directory, not a file"),
    "a symlink escaping once re-rooted": (
        [regular(f"{TOP}/main.tf"), symlink(f"{TOP}/up", "../sibling")],
        "symlink target '../sibling' points outside the module",
    ),
    "a hardlink outside the top-level directory": (
        [regular(f"{TOP}/main.tf"), hardlink(f"{TOP}/copy.tf", "elsewhere/main.tf")],
        "hardlink target 'elsewhere/main.tf' is outside the top-level directory",
    ),
    "no .tf at the new root": ([regular(f"{TOP}/sub/main.tf")], "archive has no .tf file at its root"),
}


@pytest.mark.parametrize("members, message", STRIP_REFUSALS.values(), ids=STRIP_REFUSALS.keys())
def test_strip_top_level_directory_refuses(members: list[Member], message: str) -> None:
    with pytest.raises(InvalidArchive, match=re.escape(message)):
        strip(github_tarball(*members))


def test_strip_top_level_directory_applies_the_limits() -> None:
    tarball = github_tarball(regular(f"{TOP}/main.tf"), regular(f"{TOP}/big.bin", os.urandom(50_000)))
    with pytest.raises(PayloadTooLarge, match="archive is larger than 1000 bytes"):
        strip(tarball, max_archive_bytes=1000)
    with pytest.raises(PayloadTooLarge, match="unpacked size"):
        strip(tarball, max_unpacked_bytes=20_000)
    with pytest.raises(InvalidArchive, match="more than 1 members"):
        strip(tarball, max_files=1)


# One reading: what Python's tarfile and Terraform's Go reader would read differently ------------


def pax_member(name: str, records: dict[str, str], data: bytes = MAIN_TF) -> Member:
    """A regular file whose pax header carries ``records`` as well as what the writer adds."""
    info, data = regular(name, data)
    info.pax_headers = records
    return info, data


def pax_record(key: str, value: str) -> bytes:
    """One "<length> <key>=<value>\\n" pax record, its length counting itself."""
    body = f" {key}={value}\n".encode()
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length += 1
    return str(length).encode() + body


def extended(type_: bytes, body: bytes) -> bytes:
    info = tarfile.TarInfo("././@Extended")
    info.type, info.size = type_, len(body)
    return info.tobuf(tarfile.USTAR_FORMAT) + body + bytes(-len(body) % 512)


def ustar_member(name: str, data: bytes = MAIN_TF, *, type_: bytes = tarfile.REGTYPE, linkname: str = "") -> bytes:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = type_, linkname, 0o644
    if type_ in (tarfile.REGTYPE, tarfile.AREGTYPE):
        info.size = len(data)
    else:
        data = b""
    return info.tobuf(tarfile.USTAR_FORMAT) + data + bytes(-len(data) % 512)


def with_prefix(block: bytes, prefix: bytes, *, magic: bytes | None = None) -> bytes:
    """``block`` (a header and its data) with bytes 345- of the header set, and the magic replaced."""
    block = patched(block, 345, prefix)
    return block if magic is None else patched(block, 257, magic)


def patched(block: bytes, offset: int, value: bytes) -> bytes:
    """``block`` (a header and its data) with ``value`` written at ``offset`` of the header."""
    header = bytearray(block[:512])
    header[offset : offset + len(value)] = value
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header) + block[512:]


def raw_tar_gz(path: Path, *blocks: bytes) -> Path:
    path.write_bytes(gzip.compress(b"".join(blocks) + bytes(1024)))
    return path


def tarfile_names(path: Path) -> list[str]:
    """What Python's tarfile, left to itself, lists."""
    with tarfile.open(path) as tar:
        return tar.getnames()


class StaticFiles:
    """A plain HTTP server for one directory, standing in for an archive's download location."""

    def __init__(self, root: Path) -> None:
        import functools
        import http.server
        import threading

        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
        handler.log_message = lambda *args: None  # type: ignore[method-assign]
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> StaticFiles:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def terraform_installs(archive: Path, tmp_path: Path) -> list[str]:
    """The files ``terraform get`` (Go's archive/tar, through go-getter) installs from ``archive``."""
    from tests.terraform import TERRAFORM_1_15, base_env

    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "terraformrc").write_text("")
    with StaticFiles(archive.parent) as files:
        (root / "main.tf").write_text(f'module "m" {{\n  source = "{files.url}/{archive.name}"\n}}\n')
        result = TERRAFORM_1_15.run(root, "get", "-no-color", env=base_env(tmp_path / "terraformrc", tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    installed = root / ".terraform" / "modules" / "m"
    return sorted(str(p.relative_to(installed)) for p in installed.rglob("*") if p.is_file())


@pytest.mark.terraform
def test_gnu_sparse_name_on_a_regular_file_is_refused_as_terraform_reads_another_name(tmp_path: Path) -> None:
    output_tf = b'output "id" {\n  value = "m"\n}\n'
    (tmp_path / "web").mkdir()
    archive = write_tar_gz(
        tmp_path / "web" / "m.tar.gz", pax_member("main.tf", {"GNU.sparse.name": "shown.tf"}, output_tf)
    )
    # the two readings differ: tarfile honours GNU.sparse.name on any member, Go only on sparse ones
    assert tarfile_names(archive) == ["shown.tf"]
    assert terraform_installs(archive, tmp_path) == ["main.tf"]
    refusal = "archive member 'main.tf': has pax key 'GNU.sparse.name', which tar readers disagree on"
    with pytest.raises(InvalidArchive, match=re.escape(refusal)):
        check(archive)


TWO_READINGS = {
    "GNU.sparse.name": (
        [pax_member("main.tf", {"GNU.sparse.name": "other.tf"})],
        "archive member 'main.tf': has pax key 'GNU.sparse.name', which tar readers disagree on",
    ),
    "GNU.sparse.realsize": ([pax_member("main.tf", {"GNU.sparse.realsize": "9"})], "pax key 'GNU.sparse.realsize'"),
    "GNU.sparse.size": ([pax_member("main.tf", {"GNU.sparse.size": "9"})], "pax key 'GNU.sparse.size'"),
    "GNU.sparse.major and minor": (
        [pax_member("main.tf", {"GNU.sparse.major": "1", "GNU.sparse.minor": "0"})],
        "pax key 'GNU.sparse.m",
    ),
    "GNU.sparse.map": ([pax_member("main.tf", {"GNU.sparse.map": "0,5"})], "pax key 'GNU.sparse.map'"),
    "an unknown pax key": (
        [pax_member("main.tf", {"SUN.holesdata": " 0 5"})],
        "pax key 'SUN.holesdata', which is not accepted",
    ),
    "an empty pax path": (
        [pax_member("main.tf", {"path": ""})],
        "pax key 'path' with a value tar readers would read differently",
    ),
    "a size tarfile reads and Go does not": (
        [pax_member("main.tf", {"size": "3_6"})],
        "pax key 'size' with a value tar readers would read differently",
    ),
}


@pytest.mark.parametrize("members, message", TWO_READINGS.values(), ids=TWO_READINGS.keys())
def test_pax_keys_that_tar_readers_disagree_on_are_refused(
    tmp_path: Path, members: list[Member], message: str
) -> None:
    archive = write_tar_gz(tmp_path / "m.tar.gz", regular("variables.tf"), *members)
    with pytest.raises(InvalidArchive, match=re.escape(message)):
        check(archive)
    rerooted = [(rename(info, f"{TOP}/{info.name}"), data) for info, data in members]
    with pytest.raises(InvalidArchive, match=re.escape(message.replace("'main.tf'", f"'{TOP}/main.tf'"))):
        strip(github_tarball(directory(TOP), *rerooted))


def rename(info: tarfile.TarInfo, name: str) -> tarfile.TarInfo:
    info.name = name
    return info


def with_mode(member: Member, mode: int) -> Member:
    member[0].mode = mode
    return member


def test_a_pax_record_tarfile_skips_and_go_reads_is_refused(tmp_path: Path) -> None:
    # tarfile stops parsing at a length it cannot match ("+23"), so it keeps the ustar name;
    # Go's strconv.ParseInt reads "+23" and renames the member to "evil.tf".
    body = b"+17 path=evil.tf\n"
    assert len(body) == 17
    archive = raw_tar_gz(tmp_path / "m.tar.gz", extended(tarfile.XHDTYPE, body), ustar_member("main.tf"))
    assert tarfile_names(archive) == ["main.tf"]
    with pytest.raises(InvalidArchive, match="archive member 'main.tf': has a malformed pax record at byte 0"):
        check(archive)


STACKED_HEADERS = {
    # tarfile: the first pax header wins; Go: only the last one counts
    "two pax headers": (
        [
            extended(tarfile.XHDTYPE, pax_record("path", "first.tf")),
            extended(tarfile.XHDTYPE, pax_record("path", "second.tf")),
            ustar_member("main.tf"),
        ],
        ["first.tf"],
        "archive member 'main.tf': has more than one pax extended header",
    ),
    # tarfile: the pax path wins over a GNU long name that follows it; Go: the long name wins
    "a pax path and a GNU long name": (
        [
            extended(tarfile.XHDTYPE, pax_record("path", "pax.tf")),
            extended(tarfile.GNUTYPE_LONGNAME, b"gnu.tf\0"),
            ustar_member("main.tf"),
        ],
        ["pax.tf"],
        "archive member 'main.tf': has both a pax 'path' and a GNU long name",
    ),
    # tarfile: the outer long name wins; Go: the last one
    "two GNU long names": (
        [
            extended(tarfile.GNUTYPE_LONGNAME, b"first.tf\0"),
            extended(tarfile.GNUTYPE_LONGNAME, b"second.tf\0"),
            ustar_member("main.tf"),
        ],
        ["first.tf"],
        "has more than one GNU long-name header",
    ),
    # tarfile names the member ""; Go ignores an empty long name
    "an empty GNU long name": (
        [extended(tarfile.GNUTYPE_LONGNAME, b"\0"), ustar_member("main.tf")],
        [""],
        "archive member 'main.tf': has an empty or non-UTF-8 GNU long-name header",
    ),
    # tarfile applies a global header's linkpath to later members; Go applies it to none
    "a global header with a link target": (
        [
            extended(tarfile.XGLTYPE, pax_record("linkpath", "main.tf")),
            ustar_member("main.tf"),
            extended(tarfile.XHDTYPE, pax_record("mtime", "0")),
            ustar_member("up", type_=tarfile.SYMTYPE, linkname="../../../etc/passwd"),
        ],
        ["main.tf", "up"],
        "has a pax global header with key 'linkpath'",
    ),
    # Go returns a global header as an entry of its own: the pax header before it is lost
    "a global header after a pax header": (
        [
            extended(tarfile.XHDTYPE, pax_record("path", "pax.tf")),
            extended(tarfile.XGLTYPE, pax_record("comment", "x")),
            ustar_member("main.tf"),
        ],
        ["pax.tf"],
        "has a pax global header after another extended header",
    ),
    # Go knows no type 'X' and would install the header as a file
    "a Solaris extended header": (
        [extended(tarfile.SOLARIS_XHDTYPE, pax_record("path", "solaris.tf")), ustar_member("main.tf")],
        ["solaris.tf"],
        "has a Solaris extended header (type 'X')",
    ),
    # tarfile joins bytes 345- of any header to the name; Go only in a POSIX ustar header
    "a name prefix in a GNU header": (
        [with_prefix(ustar_member("main.tf"), b"hidden", magic=b"ustar  \0")],
        ["hidden/main.tf"],
        "archive member 'hidden/main.tf': its header has a name prefix outside a POSIX ustar header",
    ),
}


@pytest.mark.parametrize("blocks, tarfile_reads, message", STACKED_HEADERS.values(), ids=STACKED_HEADERS.keys())
def test_extended_headers_that_tar_readers_apply_differently_are_refused(
    tmp_path: Path, blocks: list[bytes], tarfile_reads: list[str], message: str
) -> None:
    archive = raw_tar_gz(tmp_path / "m.tar.gz", ustar_member("variables.tf"), *blocks)
    with tarfile.open(archive) as tar:
        names = tar.getnames()[1:]
        if "up" in names:
            assert tar.getmember("up").linkname == "main.tf"  # not what Go reads
    assert names == tarfile_reads
    with pytest.raises(InvalidArchive, match=re.escape(message)):
        check(archive)


def test_headers_both_readers_read_alike_are_accepted(tmp_path: Path) -> None:
    long_name = "modules/" + "d" * 120 + "/main.tf"
    archive = raw_tar_gz(
        tmp_path / "m.tar.gz",
        extended(tarfile.XGLTYPE, pax_record("comment", SHA)),  # GitHub's tarballs
        extended(
            tarfile.XHDTYPE,
            pax_record("path", "main.tf")
            + pax_record("mtime", "1700000000.123456789")
            + pax_record("SCHILY.xattr.user.note", "\x01binary")
            + pax_record("LIBARCHIVE.xattr.com.apple.quarantine", "MDA4MQ")
            + pax_record("uname", "ünïcode"),
        ),
        ustar_member("ignored-ustar-name.tf"),
        extended(tarfile.GNUTYPE_LONGNAME, long_name.encode() + b"\0"),
        ustar_member("modules/short"),
        with_prefix(ustar_member("x.tf"), b"modules"),  # a POSIX ustar prefix: both readers join it
    )
    info = check(archive)
    assert info.root_tf_files == ("main.tf",)
    assert tarfile_names(archive) == ["main.tf", long_name, "modules/x.tf"]


CASE_VARIANTS = {
    "a symlink reached through another spelling": (
        [directory("x"), symlink("x/L", ".."), symlink("y", "X/l/../..")],
        "archive member 'y': symlink target 'X/l/../..' points outside the module",
    ),
    "a hardlink to another spelling": (
        [hardlink("copy.tf", "MAIN.TF")],
        "archive member 'copy.tf': hardlink target 'MAIN.TF' differs only in letter case from an earlier regular file",
    ),
    "a file written through a link of another spelling": (
        [directory("sub"), symlink("sub/Link", ".."), regular("sub/link/main.tf")],
        "archive member 'sub/link/main.tf': path differs only in letter case from 'sub/Link'",
    ),
    "two spellings of one file": ([regular("Main.tf")], "path differs only in letter case from 'main.tf'"),
    "two spellings of one directory": (
        [regular("modules/a/main.tf"), regular("Modules/b/main.tf")],
        "archive member 'Modules/b/main.tf': path differs only in letter case from 'modules'",
    ),
    "two Unicode compositions of one name": (
        [regular("caf\u00e9.tf"), regular("cafe\u0301.tf")],
        "differs only in letter case from 'caf\u00e9.tf'",
    ),
}


@pytest.mark.parametrize("members, message", CASE_VARIANTS.values(), ids=CASE_VARIANTS.keys())
def test_case_variant_names_and_link_targets_are_refused(
    tmp_path: Path, members: list[Member], message: str
) -> None:
    archive = write_tar_gz(tmp_path / "m.tar.gz", regular("main.tf"), *members)
    with pytest.raises(InvalidArchive, match=re.escape(message)):
        check(archive)


MODES = {
    "setuid": (regular("tool.sh", b"#!/bin/sh\n", mode=0o4755), "archive member 'tool.sh': mode 4755 has setuid"),
    "setgid directory": (with_mode(directory("shared"), 0o2755), "mode 2755 has setuid, setgid or sticky bits"),
    "sticky": (regular("tmp.txt", b"x", mode=0o1644), "mode 1644 has setuid, setgid or sticky bits"),
}


@pytest.mark.parametrize("member, message", MODES.values(), ids=MODES.keys())
def test_an_uploaded_archive_with_special_mode_bits_is_refused(tmp_path: Path, member: Member, message: str) -> None:
    archive = write_tar_gz(tmp_path / "m.tar.gz", regular("main.tf"), member)
    with pytest.raises(InvalidArchive, match=re.escape(message)):
        check(archive)


def test_a_regular_file_whose_mode_says_directory_is_refused(tmp_path: Path) -> None:
    # Go's FileInfo().IsDir() reads the mode's type bits too, so go-getter makes a directory of it
    directory_mode = patched(ustar_member("vars.tf"), 100, b"0040644\0")
    archive = raw_tar_gz(tmp_path / "m.tar.gz", ustar_member("main.tf"), directory_mode)
    with tarfile.open(archive) as tar:
        assert tar.getmember("vars.tf").isreg()
    with pytest.raises(InvalidArchive, match=re.escape("archive member 'vars.tf': mode 40644 names another file type")):
        check(archive)


def test_type_bits_matching_the_tar_type_are_accepted(tmp_path: Path) -> None:
    archive = raw_tar_gz(tmp_path / "m.tar.gz", patched(ustar_member("main.tf"), 100, b"0100644\0"))
    assert check(archive).root_tf_files == ("main.tf",)


def test_strip_top_level_directory_drops_setuid_setgid_and_sticky_bits(tmp_path: Path) -> None:
    setgid_dir = with_mode(directory(f"{TOP}/modules"), 0o2775)
    stripped, _, _ = strip(
        github_tarball(
            directory(TOP),
            regular(f"{TOP}/main.tf", mode=0o4755),
            setgid_dir,
            regular(f"{TOP}/modules/x.tf", mode=0o1644 | stat.S_IFREG),
        )
    )
    with tarfile.open(fileobj=io.BytesIO(stripped)) as tar:
        modes = {m.name: m.mode for m in tar.getmembers()}
    assert modes == {"main.tf": 0o755, "modules": 0o755, "modules/x.tf": 0o644}
    archive = tmp_path / "stripped.tar.gz"
    archive.write_bytes(stripped)
    check(archive)  # what is stored passes the checks an upload gets


def test_unpacking_a_downloaded_archive_refuses_what_check_archive_refuses(tmp_path: Path) -> None:
    from mirror.formats.unpack import pack, unpack

    sparse = write_tar_gz(tmp_path / "sparse.tar.gz", pax_member("main.tf", {"GNU.sparse.name": "other.tf"}))
    with pytest.raises(InvalidArchive, match="pax key 'GNU.sparse.name'"):
        unpack(sparse, "tar.gz", tmp_path / "a", ArchiveLimits())

    setuid = write_tar_gz(tmp_path / "setuid.tar.gz", regular("main.tf", mode=0o4755))
    unpack(setuid, "tar.gz", tmp_path / "b", ArchiveLimits())
    pack(tmp_path / "b", tmp_path / "b.tar.gz")
    with tarfile.open(tmp_path / "b.tar.gz") as tar:
        assert tar.getmember("main.tf").mode == 0o755  # repacked canonically
