"""A stand-in upstream provider registry over HTTP: discovery, ``providers.v1`` versions and
download answers, and the release files they point to, served from a GoReleaser-like directory per
provider version (``tests.providers.build_release``). It counts what it serves and can be told to
tamper with a file."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from tests.providers import public_key


@dataclass
class Release:
    namespace: str
    type: str
    version: str
    files: dict[str, Path]
    key: str  # armored public key
    protocols: tuple[str, ...] = ("5.0",)


@dataclass
class ProviderUpstream:
    releases: list[Release] = field(default_factory=list)
    served: Counter[str] = field(default_factory=Counter)
    #: file name -> bytes served instead of the file's own
    tampered: dict[str, bytes] = field(default_factory=dict)
    #: seconds each zip download waits before its body (to gather concurrent requesters)
    zip_delay: float = 0.0

    def add(self, namespace: str, type_: str, version: str, files: dict[str, Path], tsk, protocols=("5.0",)) -> None:
        self.releases.append(Release(namespace, type_, version, files, public_key(tsk), protocols))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/.well-known/terraform.json", self.discovery)
        app.router.add_get("/v1/providers/{ns}/{type}/versions", self.versions)
        app.router.add_get("/v1/providers/{ns}/{type}/{version}/download/{os}/{arch}", self.download)
        app.router.add_get("/files/{name}", self.file)
        return app

    async def discovery(self, request: web.Request) -> web.Response:
        return web.json_response({"providers.v1": "/v1/providers/"})

    def _of(self, request: web.Request) -> list[Release]:
        info = request.match_info
        return [r for r in self.releases if (r.namespace, r.type) == (info["ns"], info["type"])]

    async def versions(self, request: web.Request) -> web.Response:
        self.served["versions"] += 1
        found = self._of(request)
        if not found:
            raise web.HTTPNotFound()
        return web.json_response({"id": f"{found[0].namespace}/{found[0].type}", "versions": [
            {"version": r.version, "protocols": list(r.protocols), "platforms": []} for r in found]})

    async def download(self, request: web.Request) -> web.Response:
        info = request.match_info
        self.served["download"] += 1
        for release in self._of(request):
            if release.version != info["version"]:
                continue
            stem = f"terraform-provider-{release.type}_{release.version}"
            name = f"{stem}_{info['os']}_{info['arch']}.zip"
            if name not in release.files:
                raise web.HTTPNotFound()
            sums = release.files[f"{stem}_SHA256SUMS"].read_text()
            shasum = next(line.split()[0] for line in sums.splitlines() if line.endswith(name))
            return web.json_response({
                "protocols": list(release.protocols), "os": info["os"], "arch": info["arch"], "filename": name,
                "download_url": f"/files/{name}", "shasums_url": f"/files/{stem}_SHA256SUMS",
                "shasums_signature_url": f"/files/{stem}_SHA256SUMS.sig", "shasum": shasum,
                "signing_keys": {"gpg_public_keys": [{"key_id": "", "ascii_armor": release.key}]},
            })
        raise web.HTTPNotFound()

    async def file(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.served[name] += 1
        if name.endswith(".zip") and self.zip_delay:
            await asyncio.sleep(self.zip_delay)
        if name in self.tampered:
            return web.Response(body=self.tampered[name])
        for release in self.releases:
            if name in release.files:
                return web.Response(body=release.files[name].read_bytes())
        raise web.HTTPNotFound()
