"""``mirror export`` and ``mirror import``: verified bundles for air-gapped registries.

Both work on the stores named by ``--config`` directly, without a server; a running ``mirror
serve`` on the importing side sees the imported versions like another replica's writes. The
format and the logic are in ``mirror.services.bundles``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

import structlog

from mirror.services.bundles import (
    ExportResult,
    ImportResult,
    describe_size,
    export_bundle,
    import_bundle,
    plural,
    summarize_versions,
)
from mirror.cli.common import UsageError, config_of
from mirror.domain.addresses import valid_namespace

KEY_ENV = "MIRROR_BUNDLE_KEY"
MIN_KEY_CHARS = 16


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``export`` and ``import`` to the top-level subparsers ``sub``; ``common`` carries ``--config``."""
    key_help = f"HMAC-SHA256 key for manifest.sig, at least {MIN_KEY_CHARS} characters (default: ${KEY_ENV})"

    export = sub.add_parser(
        "export",
        parents=[common],
        help="write live module versions and a manifest to a bundle for an air-gapped registry",
        description="Write the registry's live module versions (archives plus a versioned manifest with "
        "sha256, sizes, READMEs and analysis) to OUT.tar, for `mirror import` on another registry.",
    )
    export.add_argument("out", metavar="OUT.tar", type=Path)
    export.add_argument("--namespace", default=None, metavar="NS", help="only this namespace's modules")
    export.add_argument(
        "--since", type=_serial, default=None, metavar="SERIAL",
        help="only versions released after this event serial (the last bundle's events 'to', printed by export)",
    )
    export.add_argument("--signing-key-file", type=Path, default=None, metavar="FILE", help=key_help + "; signs the manifest")
    export.set_defaults(handler=_cmd_export)

    imports = sub.add_parser(
        "import",
        parents=[common],
        help="verify a bundle from `mirror export` completely, then import its versions",
        description="Verify every checksum, the archives and the signature of a bundle before anything is "
        "stored, then import its versions with the usual events. Importing a bundle again changes nothing.",
    )
    imports.add_argument("bundle", metavar="BUNDLE.tar", type=Path)
    imports.add_argument("--dry-run", action="store_true", help="verify only; write nothing")
    imports.add_argument(
        "--signing-key-file", type=Path, default=None, metavar="FILE", help=key_help + "; a valid signature is then required"
    )
    imports.set_defaults(handler=_cmd_import)


def _serial(text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) >= 2**63:
        raise argparse.ArgumentTypeError(f"invalid serial {text!r} (a whole number >= 0)")
    return int(text)


def signing_key(path: Path | None) -> bytes | None:
    """The key from ``path``, else from $MIRROR_BUNDLE_KEY, else None; surrounding whitespace is dropped."""
    if path is not None:
        try:
            raw, origin = path.read_bytes(), str(path)
        except OSError as exc:
            raise UsageError(f"cannot read the signing key file {path}: {exc.strerror or exc}") from None
    elif os.environ.get(KEY_ENV):
        raw, origin = os.environ[KEY_ENV].encode(), f"${KEY_ENV}"
    else:
        return None
    key = raw.strip()
    if len(key) < MIN_KEY_CHARS:
        raise UsageError(f"the signing key from {origin} is too short: use at least {MIN_KEY_CHARS} characters")
    return key


def _quiet_logs() -> None:
    """The output says what happened to each version, so the ingest's info lines (which would
    land on stdout between them) are dropped; warnings and errors still go to stderr."""
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


def _cmd_export(args: argparse.Namespace) -> int:
    if args.namespace is not None and not valid_namespace(args.namespace):
        raise UsageError(f"invalid namespace {args.namespace!r}")
    if not args.out.name:
        raise UsageError(f"invalid bundle file name {str(args.out)!r}")
    key = signing_key(args.signing_key_file)
    config = config_of(args)
    _quiet_logs()

    async def run() -> ExportResult:
        from mirror.app.services import offline_registry  # the stores' modules, when used

        async with offline_registry(config) as registry:
            return await export_bundle(
                registry.store,
                registry.blobs,
                args.out,
                namespace=args.namespace,
                since=args.since,
                source=config.server.public_url,
                key=key,
            )

    result = asyncio.run(run())
    print(
        f"exported {plural(result.versions, 'version')} of {plural(result.modules, 'module')} "
        f"({plural(result.archives, 'archive')}, "
        f"{describe_size(result.archive_bytes)}) to {result.path}" + (", signed" if result.signed else ", unsigned")
    )
    if result.provider_versions:
        print(
            f"with {plural(result.provider_versions, 'provider version')} "
            f"({plural(result.zips, 'zip')}, {describe_size(result.zip_bytes)})"
        )
    print(f"events {result.events_from}..{result.events_to}; next increment: mirror export --since {result.events_to}")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    key = signing_key(args.signing_key_file)
    config = config_of(args)
    _quiet_logs()

    async def run() -> ImportResult:
        from mirror.app.services import offline_registry  # the stores' modules, when used

        async with offline_registry(config, create=True) as registry:
            return await import_bundle(
                registry.store,
                registry.ingestor,
                args.bundle,
                spool_dir=config.server.spool_dir,
                limits=config.limits.archive_limits(),
                key=key,
                dry_run=args.dry_run,
                report=lambda line: print(line, flush=True),
                blobs=registry.blobs,
                zip_limits=config.limits.provider_zip_limits(),
            )

    result = asyncio.run(run())
    manifest = result.manifest
    modules, versions = summarize_versions(manifest.versions)
    origin = f" from {manifest.source}" if manifest.source else ""
    covered = f"events {manifest.events_from}..{manifest.events_to}{origin}, created {manifest.created_at}"
    if args.dry_run:
        print(
            f"verified {plural(versions, 'version')} of {plural(modules, 'module')} ({covered}); dry run: "
            f"{versions - result.unchanged} would be imported, {result.unchanged} unchanged, nothing written"
        )
    else:
        print(
            f"imported {result.imported}, unchanged {result.unchanged} "
            f"({plural(versions, 'version')} of {plural(modules, 'module')}; {covered})"
        )
    if manifest.providers and not args.dry_run:
        print(
            f"providers: imported {result.providers_imported}, unchanged {result.providers_unchanged} "
            f"({plural(len(manifest.providers), 'provider version')})"
        )
    return 0
