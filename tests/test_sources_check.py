"""``mirror sources check`` against the stand-in GitHub: ok / warn / fail / import lines and exit codes."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.fake_github import FakeGitHub
from tests.live import run_cli, write_config
from tests.test_github import module_files


def _config(tmp_path: Path, fake: FakeGitHub, api_url: str, **github: object) -> Path:
    key = tmp_path / "app.pem"
    key.write_text(fake.private_key_pem)
    sections = {
        "metadata": {"path": str(tmp_path / "data" / "mirror.db")},
        "blobs": {"path": str(tmp_path / "data" / "blobs")},
        "github": {"app_id": fake.app_id, "private_key_file": str(key), "api_url": api_url, "webhook_secret": "s" * 20}
        | github,
    }
    return write_config(tmp_path / "mirror.toml", sections)


def _lines(stdout: str) -> list[tuple[str, str]]:
    return [tuple(line.split("  ", 1)) for line in stdout.splitlines()]  # type: ignore[misc]


async def test_an_app_is_checked_and_its_imports_listed(aiohttp_server, tmp_path):
    fake = FakeGitHub()
    fake.add_repository("acme-corp", "terraform-aws-network", installation_id=7)
    fake.add_tag("acme-corp", "terraform-aws-network", "v1.0.0", module_files("a"))
    fake.add_tag("acme-corp", "terraform-aws-network", "nightly", module_files("b"))
    fake.add_repository("acme-corp", "terraform-aws", installation_id=7)
    fake.add_repository("acme-corp", "website", installation_id=7)
    server = await aiohttp_server(fake.app)
    config = _config(tmp_path, fake, str(server.make_url("")).rstrip("/"), mode="both", accounts=["acme-corp"])
    result = await asyncio.to_thread(run_cli, "sources", "check", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = _lines(result.stdout)
    texts = [f"{status}  {text}" for status, text in lines]
    assert all(status in ("ok", "warn", "fail", "import") and text.startswith("github: ") for status, text in lines), texts
    assert "ok  github: permission contents: read" in texts and "ok  github: permission metadata: read" in texts
    assert any(t.startswith("warn  github: [server] public_url is not set") for t in texts)
    assert any(t.startswith("ok  github: installation 7 (acme-corp") for t in texts)
    assert any("acme-corp/terraform-aws-network -> acme-corp/network/aws: 1 version tags, 1 new" in t for t in texts)
    assert "import  github: acme-corp/network/aws 1.0.0 (tag v1.0.0 of acme-corp/terraform-aws-network)" in texts
    assert any(t.startswith("warn  github: acme-corp/terraform-aws: skipped, no module name") for t in texts)
    assert any(t.startswith("ok  github: acme-corp/website: skipped, its name does not start") for t in texts)
    assert texts[-1] == "ok  github: summary: 3 repositories seen, 1 modules, 1 versions would be imported now"
    assert fake.calls["tarball"] == 0  # a dry run: nothing fetched, nothing stored
    assert not (tmp_path / "data" / "mirror.db").exists()


async def test_failures_exit_1_and_a_private_public_url_warns(aiohttp_server, tmp_path):
    fake = FakeGitHub()
    fake.app_permissions = {"metadata": "read"}
    fake.add_repository("acme-corp", "terraform-aws-network", installation_id=7)
    server = await aiohttp_server(fake.app)
    config = _config(tmp_path, fake, str(server.make_url("")).rstrip("/"))
    text = config.read_text() + '\n[server]\npublic_url = "http://10.0.0.5:8080"\n'
    config.write_text(text)
    result = await asyncio.to_thread(run_cli, "sources", "check", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert "fail  github: permission contents: none; the App needs contents: read" in result.stdout
    assert "warn  github: GitHub must reach http://10.0.0.5:8080/github/webhook, but it is a loopback or private" in result.stdout

    fake.plain_tokens.add("ghp_x")
    bad_token = write_config(
        tmp_path / "token.toml",
        {"github": {"token": "wrong", "mode": "poll", "accounts": ["acme-corp"], "api_url": str(server.make_url("")).rstrip("/")}},
    )
    result = await asyncio.to_thread(run_cli, "sources", "check", "--config", str(bad_token), cwd=tmp_path)
    assert result.returncode == 1 and "fail  github: account acme-corp:" in result.stdout and "401" in result.stdout


def test_a_bad_config_is_one_line(tmp_path):
    config = write_config(tmp_path / "bad.toml", {"github": {"token": "t", "mode": "poll"}})
    result = run_cli("sources", "check", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "[github] accounts is required with a token" in result.stderr


def test_no_source_configured(tmp_path):
    config = write_config(tmp_path / "none.toml", {"server": {"port": 8080}})
    result = run_cli("sources", "check", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("warn  sources: no source is configured")
