"""A provider version deprecated and revoked through the CLI, seen by real Terraform: the
deprecation printed on init as "Additional provider information from registry", the revoked
version no longer installable."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.live import run_cli
from tests.terraform import Terraform
from tests.test_terraform_providers import HOST, VERSIONS, Registry, providers_v1_rc, root_module, start_registry

pytestmark = pytest.mark.terraform


@pytest.fixture(scope="module")
def changed(tmp_path_factory) -> Iterator[Registry]:
    """widget 1.0.0 deprecated, gadget 1.0.0 revoked, both through the CLI."""
    for registry in start_registry(tmp_path_factory.mktemp("lifecycle"), {}):
        config = registry.workdir / "mirror.toml"
        created = run_cli("token", "create", "--namespace", "acme", "--scope", "publish", "--config", str(config),
                          cwd=registry.workdir)
        env = {"MIRROR_TOKEN": created.stdout.strip().splitlines()[-1]}
        url = registry.server.url
        deprecated = run_cli("provider", "deprecate", "acme/widget", "1.0.0", "--reason", "Leaks file handles.",
                             "--replacement", "1.0.1", "--registry", url, cwd=registry.workdir, env=env)
        assert deprecated.returncode == 0, deprecated.stderr
        assert deprecated.stdout.strip() == "deprecated: acme/widget/1.0.0 (use 1.0.1 instead)"
        revoked = run_cli("provider", "revoke", "acme/gadget", "1.0.0", "--registry", url, cwd=registry.workdir, env=env)
        assert revoked.returncode == 0 and revoked.stdout.strip() == "revoked: acme/gadget 1.0.0", revoked.stderr
        again = run_cli("provider", "revoke", "acme/gadget", "1.0.0", "--registry", url, cwd=registry.workdir, env=env)
        assert again.returncode == 1 and len(again.stderr.strip().splitlines()) == 1, again.stderr
        yield registry


@pytest.mark.parametrize("tf", VERSIONS, ids=lambda tf: tf.version)
def test_terraform_prints_the_deprecation_and_cannot_install_a_revoked_version(changed: Registry, tf: Terraform):
    root = root_module(changed.workdir / f"deprecated-{tf.version}", {"widget": (f"{HOST}/acme/widget", "1.0.0")})
    init = changed.terraform(tf, root, providers_v1_rc(changed))
    output = " ".join((init.stdout + init.stderr).split())
    assert init.returncode == 0, output
    assert "Additional provider information from registry" in output, output
    assert "Version 1.0.0 of acme/widget is deprecated: Leaks file handles. Use 1.0.1 instead." in output, output

    root = root_module(changed.workdir / f"revoked-{tf.version}", {"gadget": (f"{HOST}/acme/gadget", "1.0.0")})
    init = changed.terraform(tf, root, providers_v1_rc(changed))
    output = " ".join((init.stdout + init.stderr).split())
    assert init.returncode != 0 and "Traceback" not in output
    # its only version revoked, the provider has no version left: the registry has none by that name
    assert f"does not have a provider named {HOST}/acme/gadget" in output, output
