"""The real ``terraform login HOST`` (1.15.5 and 1.0.3) against a live ``mirror serve``: no
terminal and no browser, the printed URL followed with an HTTP client, the person signing in on
the form with a registry token; the token Terraform saves works, expires and is within the grant."""

from __future__ import annotations

import json
import queue
import re
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.live import MirrorServer, free_port, run_cli, write_config
from tests.terraform import ALL, Terraform, base_env

pytestmark = pytest.mark.terraform

HOST = "registry.example.test"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


def _no_browser(bin_dir: Path) -> None:
    """Scripts that fail in place of every browser launcher Terraform tries: it prints the URL."""
    bin_dir.mkdir()
    for name in ("xdg-open", "x-www-browser", "www-browser"):
        script = bin_dir / name
        script.write_text("#!/bin/sh\nexit 1\n")
        script.chmod(0o755)


def _cli_config(path: Path, port: int) -> Path:
    base = f"http://127.0.0.1:{port}"
    path.write_text(
        f'host "{HOST}" {{\n  services = {{\n'
        f'    "modules.v1" = "{base}/v1/modules/"\n'
        f'    "login.v1" = {{\n      client = "terraform-cli"\n      grant_types = ["authz_code"]\n'
        f'      authz = "{base}/oauth/authorize"\n      token = "{base}/oauth/token"\n'
        f"      ports = [10000, 10010]\n    }}\n  }}\n}}\n"
    )
    return path


def _lines(stream, into: queue.Queue) -> None:
    for line in iter(stream.readline, ""):
        into.put(line)
    into.put(None)


def _printed_url(lines: queue.Queue, seen: list[str]) -> str:
    while True:
        line = lines.get(timeout=60)
        if line is None:
            raise AssertionError("terraform login ended before printing a URL:\n" + "".join(seen))
        seen.append(line)
        found = re.search(r"(http://\S+/oauth/authorize\?\S+)", line)
        if found:
            return found.group(1)


def _sign_in(url: str, token: str) -> str:
    """What a person does in the browser: open the page, paste the token, Allow. Returns where
    the form's answer redirects (Terraform's listener)."""
    url = url.replace("//localhost:", "//127.0.0.1:")
    with urllib.request.urlopen(url, timeout=10) as page:
        assert page.status == 200 and 'name="token"' in page.read().decode()
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    form = urllib.parse.urlencode(query | {"token": token, "decision": "allow"}).encode()
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url.split("?")[0], data=form, method="POST")
    try:
        opener.open(request, timeout=10)
    except urllib.error.HTTPError as exc:
        assert exc.code == 303, exc.read().decode()
        return exc.headers["Location"]
    raise AssertionError("the form did not redirect")


@pytest.mark.parametrize("tf", ALL, ids=lambda tf: tf.version)
def test_terraform_login_saves_a_token_that_works_expires_and_stays_within_the_grant(tmp_path: Path, tf: Terraform) -> None:
    port = free_port()
    config = write_config(
        tmp_path / "mirror.toml",
        {
            "server": {"port": port},
            "metadata": {"path": str(tmp_path / "data" / "mirror.db")},
            "blobs": {"path": str(tmp_path / "data" / "blobs")},
        },
    )
    server = MirrorServer(config, port, tmp_path).start()
    try:
        created = run_cli(
            "token", "create", "--namespace", "acme", "--scope", "publish", "--config", str(config), cwd=tmp_path
        )
        assert created.returncode == 0, created.stderr
        signing = created.stdout.strip().splitlines()[-1]
        home = tmp_path / "home"
        (home / ".terraform.d").mkdir(parents=True)
        _no_browser(tmp_path / "bin")
        env = base_env(_cli_config(tmp_path / "terraform.rc", port), home)
        env.pop("TF_INPUT")  # login asks for consent on stdin
        env["PATH"] = f"{tmp_path / 'bin'}:{env['PATH']}"
        process = subprocess.Popen(
            [*tf.command, "login", HOST], cwd=tmp_path, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=_lines, args=(process.stdout, lines), daemon=True).start()
        seen: list[str] = []
        try:
            assert process.stdin is not None
            process.stdin.write("yes\n")
            process.stdin.flush()
            url = _printed_url(lines, seen)
            assert urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["code_challenge_method"] == ["S256"]
            callback = _sign_in(url, signing)
            assert callback.startswith("http://localhost:100") and "code=" in callback
            with urllib.request.urlopen(callback.replace("//localhost:", "//127.0.0.1:", 1), timeout=30) as answer:
                assert answer.status == 200
            assert process.wait(timeout=60) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        while (line := lines.get(timeout=10)) is not None:
            seen.append(line)
        output = "".join(seen)
        assert "Success!" in output or "Retrieved token" in output, output

        saved = json.loads((home / ".terraform.d" / "credentials.tfrc.json").read_text())
        token = saved["credentials"][HOST]["token"]
        assert token.startswith("mirror_") and token != signing
        listed = urllib.request.Request(f"{server.url}/api/v1/tokens", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(listed, timeout=10) as response:
            (mine,) = json.loads(response.read())["tokens"]  # a new token sees itself only
        assert mine["namespace"] == "acme" and mine["scope"] == "publish"  # the signing token's grant
        assert mine["expires_at"] and mine["description"].startswith("terraform login ")
        assert mine["state"] == "active"
        elsewhere = urllib.request.Request(
            f"{server.url}/v1/modules/other/x/aws/versions", headers={"Authorization": f"Bearer {token}"}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(elsewhere, timeout=10)
        assert refused.value.code == 403
    finally:
        assert server.stop() == 0, server.logs()[-5_000:]
    assert "mirror_" not in server.logs()
