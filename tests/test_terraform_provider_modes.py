"""Provider zips from S3 in every download mode, installed by real Terraform: ``presigned`` and
``s3`` hand out presigned S3 URLs (Terraform's provider installer cannot follow go-getter's
``s3::`` sources; 1.11 and 1.12 send HEAD before GET), ``proxy`` streams the zip from S3."""

from __future__ import annotations

import pytest

from tests.moto_server import TEST_ENVIRONMENT
from tests.live import run_cli
from tests.providers import build_release, generate_key, public_key
from tests.terraform import Terraform, base_env, provider_locks
from tests.test_terraform import live, s3_sections  # noqa: F401  (the fixture, registered here)
from tests.test_terraform_providers import HOST, VERSIONS, h1, root_module, unpacked

pytestmark = pytest.mark.terraform


@pytest.mark.parametrize("mode", ["presigned", "s3", "proxy"])
def test_a_provider_installs_from_s3_in_every_download_mode(live, moto, bucket, mode: str) -> None:  # noqa: F811
    registry = live(s3_sections(moto, bucket, mode), env=TEST_ENVIRONMENT)
    workdir, env = registry.workdir, {"MIRROR_TOKEN": registry.token}
    key = generate_key("rsa")
    (workdir / "key.asc").write_text(public_key(key))
    added = run_cli("provider", "keys", "add", "acme", str(workdir / "key.asc"), "--registry", registry.server.url,
                    cwd=workdir, env=env)
    assert added.returncode == 0, added.stderr
    build_release(workdir / "dist", key, type_="widget", platforms=("linux_amd64",))
    published = run_cli("provider", "publish", "acme/widget", "1.0.0", str(workdir / "dist"), "--registry",
                        registry.server.url, cwd=workdir, env=env)
    assert published.returncode == 0, published.stderr
    rc = workdir / "terraform.rc"
    rc.write_text(
        f'host "{HOST}" {{\n  services = {{\n    "providers.v1" = "{registry.server.url}/v1/providers/"\n  }}\n}}\n'
        f'credentials "{HOST}" {{\n  token = "{registry.token}"\n}}\n'
    )
    for tf in VERSIONS:
        tf: Terraform
        root = root_module(workdir / f"root-{mode}-{tf.version}", {"widget": (f"{HOST}/acme/widget", "1.0.0")})
        init = tf.run(root, "init", "-no-color", env=base_env(rc, workdir, **TEST_ENVIRONMENT), timeout=120)
        assert init.returncode == 0, (tf.version, init.stdout + init.stderr)
        locked = provider_locks(root)[f"{HOST}/acme/widget"]
        assert h1(unpacked(root, "widget")) in locked["hashes"]
