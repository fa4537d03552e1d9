"""Provider release files for tests: zip members as GoReleaser writes them."""

from __future__ import annotations

import stat
import zipfile


def zip_file_entry(name: str, mode: int = 0o755) -> zipfile.ZipInfo:
    """A regular-file member with unix mode ``mode``, deflated, at a fixed date."""
    info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
    info.create_system = 3
    info.external_attr = (stat.S_IFREG | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info
