"""Provider release files for tests: zip members as GoReleaser writes them."""

from __future__ import annotations

import hashlib
import json
import stat
import zipfile
from pathlib import Path

import pysequoia


def zip_file_entry(name: str, mode: int = 0o755) -> zipfile.ZipInfo:
    """A regular-file member with unix mode ``mode``, deflated, at a fixed date."""
    info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
    info.create_system = 3
    info.external_attr = (stat.S_IFREG | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


# A GoReleaser-like provider release --------------------------------------------------------------

BINARY = b"\x7fELF provider binary " * 64


def generate_key(suite: str = "rsa") -> pysequoia.Tsk:
    """A signing key: "rsa" (RSA-2048), "ecdsa" (P-256) or "ed25519"."""
    suites = {"rsa": pysequoia.CipherSuite.RSA2k, "ecdsa": pysequoia.CipherSuite.P256,
              "ed25519": pysequoia.CipherSuite.Cv25519}
    return pysequoia.Tsk.generate("Provider Signing <sign@example.com>", cipher_suite=suites[suite])


def public_key(tsk: pysequoia.Tsk) -> str:
    return str(tsk.extract_certificate())


def sign(tsk: pysequoia.Tsk, data: bytes, *, armor: bool = False) -> bytes:
    return pysequoia.sign(tsk.signer(), data, mode=pysequoia.SignatureMode.DETACHED, armor=armor)


def write_provider_zip(path: Path, type_: str, version: str, *, binary: bytes = BINARY, directory: bool = False) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        if directory:
            archive.writestr(zipfile.ZipInfo("docs/", date_time=(2024, 1, 1, 0, 0, 0)), b"")
        archive.writestr(zip_file_entry(f"terraform-provider-{type_}_v{version}"), binary)
        archive.writestr(zip_file_entry("LICENSE", 0o644), b"MPL-2.0\n")
    return path


def build_release(
    directory: Path,
    tsk: pysequoia.Tsk,
    *,
    type_: str = "example",
    version: str = "1.0.0",
    platforms: tuple[str, ...] = ("linux_amd64", "darwin_arm64"),
    protocols: tuple[str, ...] | None = ("6.0",),
    binary: bytes = BINARY,
    extra_sums: tuple[str, ...] = (),
) -> dict[str, Path]:
    """A signed release in ``directory`` as GoReleaser lays it out: ``{file name: path}``.
    ``extra_sums``: platforms listed in SHA256SUMS whose zips are not written."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"terraform-provider-{type_}_{version}"
    listed = [
        write_provider_zip(directory / f"{stem}_{platform}.zip", type_, version, binary=binary + platform.encode())
        for platform in platforms
    ]
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n" for p in listed]
    lines += [f"{hashlib.sha256(p.encode()).hexdigest()}  {stem}_{p}.zip\n" for p in extra_sums]
    if protocols is not None:
        manifest = directory / f"{stem}_manifest.json"
        manifest.write_text(json.dumps({"version": 1, "metadata": {"protocol_versions": list(protocols)}}))
        lines.append(f"{hashlib.sha256(manifest.read_bytes()).hexdigest()}  {manifest.name}\n")
    shasums = directory / f"{stem}_SHA256SUMS"
    shasums.write_text("".join(sorted(lines, key=lambda line: line.split("  ")[1])))
    (directory / f"{stem}_SHA256SUMS.sig").write_bytes(sign(tsk, shasums.read_bytes()))
    return {path.name: path for path in directory.iterdir() if path.name.startswith(stem)}
