from __future__ import annotations

from pathlib import Path

import pytest

from mirror.config import Config, load_config
from mirror.domain.errors import ConfigError


def problems(text: str, tmp_path: Path, environ: dict[str, str] | None = None) -> list[str]:
    path = tmp_path / "mirror.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ or {}, blob_backends=frozenset({"local", "s3"}))
    return info.value.problems


def test_defaults_need_nothing():
    config = load_config(None, {})
    assert config == Config()
    assert config.metadata.backend == "sqlite" and config.blobs.backend == "local"
    assert config.downloads.mode == "proxy" and config.downloads.ttl_seconds == 900
    assert config.auth.anonymous_read is False
    assert str(config.metadata.path) == "mirror-data/mirror.db"


def test_environment_overrides_the_file(tmp_path: Path):
    path = tmp_path / "mirror.toml"
    path.write_text('[server]\nport = 9000\n[auth]\nanonymous_read = false\n[downloads]\nttl_seconds = 600\n')
    config = load_config(
        path,
        {
            "MIRROR_SERVER_PORT": "9100",
            "MIRROR_AUTH_ANONYMOUS_READ": "yes",
            "MIRROR_SERVER_PUBLIC_URL": "https://registry.example.com",
            "MIRROR_LIMITS_MAX_FILES": "50",
            "MIRROR_TOKEN": "read by the command line, not a config key",
        },
    )
    assert config.server.port == 9100
    assert config.auth.anonymous_read is True
    assert config.server.public_url == "https://registry.example.com"
    assert config.downloads.ttl_seconds == 600
    assert config.limits.max_files == 50


def test_every_problem_is_reported_at_once(tmp_path: Path):
    found = problems(
        "[server]\nport = 70000\ntls_cert = 'cert.pem'\n"
        "[downloads]\nmode = 'presigned'\nttl_seconds = 5\nsigning_key = 'short'\n"
        "[blobs]\nbackend = 'local'\n"
        "[limits]\nmax_files = 0\n",
        tmp_path,
    )
    text = "\n".join(found)
    assert len(found) == 7, found
    for fragment in ("port", "tls_cert and tls_key", "does not exist", "needs [blobs] backend", "ttl_seconds", "signing_key", "max_files"):
        assert fragment in text, fragment


def test_type_errors_name_their_source(tmp_path: Path):
    found = problems("[server]\nport = 'x'\n", tmp_path, {"MIRROR_AUTH_ANONYMOUS_READ": "maybe"})
    assert any(p.startswith("[server] port:") for p in found)
    assert any(p.startswith("MIRROR_AUTH_ANONYMOUS_READ:") for p in found)


def test_unknown_keys_sections_and_backends(tmp_path: Path):
    found = problems("[serverr]\n[metadata]\nbackend = 'postgres'\n[blobs]\nbackend = 's3'\n", tmp_path)
    text = "\n".join(found)
    assert "unknown section [serverr]" in text
    assert "[metadata] backend must be one of sqlite" in text
    assert "[s3] bucket is required" in text


def test_bad_toml_and_missing_file(tmp_path: Path):
    assert "not valid TOML" in problems("[server\n", tmp_path)[0]
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.toml", {})


def test_the_example_config_loads_and_shows_the_defaults():
    example = Path(__file__).parent.parent / "config" / "mirror.example.toml"
    assert load_config(example, {}) == Config()


def test_malformed_urls_and_lists_are_problems_not_crashes(tmp_path: Path):
    found = problems(
        "[server]\npublic_url = 'http://[registry'\n"
        "[s3]\nendpoint_url = 'http://minio:99999'\n"
        "[browse]\nverified_namespaces = ['acme', 'not a namespace']\n"
        "[[webhooks.subscriptions]]\nurl = 'https://[x'\nsecret = 'ssssssssssssssssssss'\n",
        tmp_path,
        {"MIRROR_BROWSE_VERIFIED_NAMESPACES": ""},  # the environment wins: an empty list is fine
    )
    text = "\n".join(found)
    assert len(found) == 3, found
    for fragment in ("[server] public_url", "[s3] endpoint_url", "url must be an http(s) URL"):
        assert fragment in text, fragment
    assert problems("[browse]\nverified_namespaces = [1]\n", tmp_path) == [
        "[browse] verified_namespaces: must be an array of strings, not [1]"
    ]


def test_verified_namespaces_from_the_environment(tmp_path: Path):
    config = load_config(None, {"MIRROR_BROWSE_VERIFIED_NAMESPACES": "acme, infra"})
    assert config.browse.verified_namespaces == ("acme", "infra")


def test_the_reference_documents_every_key():
    from mirror.config.reference import markdown
    from mirror.config.sections import SECTIONS
    from mirror.config.upstreams import UpstreamConfig

    page = markdown()
    assert page.startswith("# Configuration reference")
    for section, model in SECTIONS.items():
        assert f"## `[{section}]`" in page
        for key, info in model.__pydantic_fields__.items():
            assert info.description, (section, key)
            assert f"| `{key}` |" in page, (section, key)
            if (section, key) not in {("webhooks", "subscriptions"), ("oidc", "grants"), ("github", "monorepos")}:  # arrays of tables: in the file
                assert f"`MIRROR_{section.upper()}_{key.upper()}`" in page, (section, key)
    for key, info in UpstreamConfig.__pydantic_fields__.items():
        assert info.description and f"| `{key}` |" in page, key
    assert "## `[[upstreams]]`" in page and "## `[plugins.NAME]`" in page


def test_oidc_sign_in_is_checked_as_a_whole(tmp_path: Path):
    good = (
        "[server]\npublic_url = 'https://registry.example.com'\n"
        "[oidc]\nissuer = 'https://idp.example.com/realms/x'\nclient_id = 'mirror'\n"
        "[[oidc.grants]]\ngroup = 'platform'\nnamespace = 'platform'\nscope = 'publish'\n"
        "[[oidc.grants]]\nclaim = 'realm_access.roles'\nvalue = 'admin'\nnamespace = '*'\nscope = 'admin'\n"
    )
    (tmp_path / "good.toml").write_text(good)
    config = load_config(tmp_path / "good.toml", {"MIRROR_OIDC_CLIENT_SECRET": "from-the-env"})
    assert config.oidc.enabled and config.oidc.client_secret == "from-the-env"
    assert config.oidc.scopes == ("openid", "profile", "email") and len(config.oidc.grants) == 2
    found = problems(
        "[oidc]\nissuer = 'http://idp.example.com'\nscopes = ['email']\nsession_seconds = 10\n"
        "[[oidc.grants]]\ngroup = 'x'\nnamespace = 'not valid!'\n",
        tmp_path,
    )
    text = "\n".join(found)
    for fragment in (
        "[oidc] issuer must be an https URL",
        "[oidc] client_id is required",
        'scopes must include "openid"',
        "session_seconds must be between 300",
        "needs [server] public_url",
        "[[oidc.grants]] #1: namespace must be",
    ):
        assert fragment in text, (fragment, found)
    assert problems("[oidc]\nclient_id = 'x'\n", tmp_path) == [
        "[oidc] issuer is required when client_id or [[oidc.grants]] is set"
    ]
    loopback = "[server]\npublic_url = 'http://127.0.0.1:8080'\n[oidc]\nissuer = 'http://127.0.0.1:9000'\nclient_id = 'm'\n"
    (tmp_path / "loopback.toml").write_text(loopback)
    assert load_config(tmp_path / "loopback.toml", {}).oidc.issuer == "http://127.0.0.1:9000"  # http on loopback only
