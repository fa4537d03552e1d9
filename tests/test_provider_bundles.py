"""Providers in air-gap bundles: ``mirror export`` carries this registry's own providers and the
upstream providers it pulled through beside modules; ``mirror import`` on a registry with no
upstream verifies them (signature, zips, h1) and its network mirror serves them; a tampered
bundle is refused with nothing written."""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import urljoin

import aiohttp

from mirror.config import load_config
from mirror.domain.providers import ProviderAddress
from mirror.http.keys import STORE
from tests.provider_upstream import ProviderUpstream
from tests.providers import build_release, generate_key, public_key
from tests.test_bundles import manifest_of, with_manifest
from tests.test_sync import run_mirror

HOST = "registry.example.com"


def config_text(root: Path, extra: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "mirror.toml"
    path.write_text(
        f'[server]\nspool_dir = "{root}/spool"\nregistry_host = "mirror.example.com"\n'
        f'[metadata]\npath = "{root}/mirror.db"\n[blobs]\npath = "{root}/blobs"\n'
        f'[events]\nlog_path = ""\n[auth]\nanonymous_read = true\n{extra}'
    )
    return path


async def filled_source(start_registry, aiohttp_server, tmp_path: Path):
    """Registry A: its own acme/widget 1.0.0, and hashicorp/aws 5.1.0 pulled through (zip fetched)."""
    rsa = generate_key("rsa")
    upstream = ProviderUpstream()
    upstream.add("hashicorp", "aws", "5.1.0", build_release(tmp_path / "aws", rsa, type_="aws", version="5.1.0",
                                                            platforms=("linux_amd64",), protocols=None), rsa)
    server = await aiohttp_server(upstream.app())
    config = config_text(tmp_path / "a", f'[[upstreams]]\nhost = "{HOST}"\nurl = "{str(server.make_url("")).rstrip("/")}"\n'
                                         'proxy_providers = ["hashicorp/*"]\n')
    registry = await start_registry(load_config(config, environ={}))
    auth = await registry.auth()
    await registry.client.post("/api/v1/providers/acme/keys", json={"ascii_armor": public_key(rsa)}, headers=auth)
    files = build_release(tmp_path / "widget", rsa, type_="widget", platforms=("linux_amd64",))
    form = aiohttp.FormData()
    for name, path in files.items():
        form.add_field("file", path.read_bytes(), filename=name, content_type="application/octet-stream")
    assert (await registry.client.post("/api/v1/providers/acme/widget/1.0.0", data=form, headers=auth)).status == 201
    base = f"/v1/mirror/{HOST}/hashicorp/aws/5.1.0.json"
    url = (await (await registry.client.get(base)).json())["archives"]["linux_amd64"]["url"]
    assert (await registry.client.get(urljoin(base, url))).status == 200
    return config, upstream


async def test_providers_travel_in_a_bundle_to_a_registry_with_no_upstream(
    start_registry, aiohttp_server, tmp_path: Path
) -> None:
    source, upstream = await filled_source(start_registry, aiohttp_server, tmp_path)
    bundle = tmp_path / "out.tar"
    code, out, err = await run_mirror("export", str(bundle), "--config", str(source), cwd=tmp_path)
    assert code == 0, out + err
    assert "with 2 provider versions (2 zips" in out

    target = config_text(tmp_path / "b")
    code, out, err = await run_mirror("import", str(bundle), "--config", str(target), cwd=tmp_path)
    assert code == 0, out + err
    assert f"imported {HOST}/hashicorp/aws 5.1.0" in out and "imported acme/widget 1.0.0" in out
    code, out, err = await run_mirror("import", str(bundle), "--config", str(target), cwd=tmp_path)
    assert code == 0 and "providers: imported 0, unchanged 2" in out, out + err

    registry = await start_registry(load_config(target, environ={}))
    zips = {}
    for path in (f"/v1/mirror/{HOST}/hashicorp/aws/5.1.0.json", "/v1/mirror/mirror.example.com/acme/widget/1.0.0.json"):
        answer = await registry.client.get(path)
        assert answer.status == 200, await answer.text()
        archive = (await answer.json())["archives"]["linux_amd64"]
        assert archive["hashes"][0].startswith("h1:")
        fetched = await registry.client.get(urljoin(path, archive["url"]))
        assert fetched.status == 200
        zips[path] = await fetched.read()
    assert zips[f"/v1/mirror/{HOST}/hashicorp/aws/5.1.0.json"] == upstream.releases[0].files[
        "terraform-provider-aws_5.1.0_linux_amd64.zip"].read_bytes()
    versions = await registry.client.get("/v1/providers/acme/widget/versions")
    assert [v["version"] for v in (await versions.json())["versions"]] == ["1.0.0"]
    record = await registry.app[STORE].get_provider(HOST, ProviderAddress("hashicorp", "aws"))
    assert record is not None and str(record.owner) == "bundle"


async def test_a_tampered_provider_in_a_bundle_is_refused_and_nothing_is_written(
    start_registry, aiohttp_server, tmp_path: Path
) -> None:
    source, _ = await filled_source(start_registry, aiohttp_server, tmp_path)
    bundle = tmp_path / "out.tar"
    assert (await run_mirror("export", str(bundle), "--config", str(source), cwd=tmp_path))[0] == 0

    def other_sums(manifest: dict) -> None:
        version = manifest["providers"][0]["versions"][0]
        sums = base64.b64decode(version["shasums"]) + b"0" * 64 + b"  extra.zip\n"
        version["shasums"] = base64.b64encode(sums).decode()

    def other_h1(manifest: dict) -> None:
        manifest["providers"][0]["versions"][0]["platforms"][0]["h1"] = "h1:" + "A" * 43 + "="

    target = config_text(tmp_path / "b")
    for name, edit, fragment in (("sums", other_sums, "does not verify"), ("h1", other_h1, "has h1")):
        tampered = with_manifest(bundle, tmp_path / f"{name}.tar", edit)
        code, out, err = await run_mirror("import", str(tampered), "--config", str(target), cwd=tmp_path)
        assert code != 0 and fragment in err and "Traceback" not in err, (name, out, err)
        assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b" / "blobs").exists() or not list((tmp_path / "b" / "blobs").rglob("*.zip"))
    assert manifest_of(bundle)["format_version"] == 2
