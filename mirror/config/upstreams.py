"""``[[upstreams]]``: the registries ``mirror sync`` copies modules from and that
``proxy_namespaces`` pull through from while the server runs.

Each table is checked strictly, as written (no ``MIRROR_*`` variables reach it); a ``token_env``
is read from the environment once, when the config is loaded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, ValidationError
from pydantic.dataclasses import dataclass

from mirror.config.fields import SECTION, Kind, message
from mirror.domain.addresses import valid_namespace
from mirror.domain.errors import BadRequest
from mirror.domain.providers import Platform
from mirror.domain.specs import ModuleSpec, ProviderSpec, check_provider_pattern, registry_base_url
from mirror.domain.urls import http_url

#: bounds of ``proxy_ttl_seconds``: a second to a day
PROXY_TTL_RANGE = (1, 86400)


def _string(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError("must be a string")
    return value or None  # empty is unset


def _string_list(text: str) -> Callable[[Any], tuple[str, ...]]:
    def read(value: Any) -> tuple[str, ...]:
        if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
            raise ValueError(f"must be {text}")
        return tuple(value)

    return read


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _seconds(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be a whole number of seconds, not {value!r}")
    return value


def _host(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError('is required (e.g. "registry.terraform.io")')
    return value


_Name = Annotated[str | None, BeforeValidator(_string), Kind("string")]
_Strings = Annotated[tuple[str, ...], BeforeValidator(_string_list("a list of strings")), Kind("array of strings")]
_Urls = Annotated[
    tuple[str, ...], BeforeValidator(_string_list("a list of http(s)://HOST[:PORT] URLs")), Kind("array of strings")
]
_Flag = Annotated[bool, BeforeValidator(_flag), Kind("boolean")]


@dataclass(frozen=True, config=SECTION)
class UpstreamConfig:
    """One ``[[upstreams]]`` table: a registry ``mirror sync`` copies modules from, and that
    ``proxy_namespaces`` pull through from while the server runs."""

    host: Annotated[str, BeforeValidator(_host), Kind("string")] = Field(
        description='`"registry.terraform.io"` (https) or a full `http(s)://HOST[:PORT]` URL. Required.'
    )
    token: _Name = Field(
        None, repr=False, description="Bearer token sent to that registry only (never to download locations) ..."
    )
    token_env: _Name = Field(
        None, description="... or the environment variable holding it (read once, when the config is loaded)."
    )
    modules: _Strings = Field(
        (), description='`"NAMESPACE/NAME/PROVIDER [CONSTRAINT]"`, e.g. `"hashicorp/consul/aws >= 0.1"`: what `mirror sync` copies.'
    )
    namespace: _Name = Field(
        None, description="Copy into this namespace instead of the upstream's (`hashicorp/consul/aws` -> `NS/consul/aws`)."
    )
    proxy_namespaces: _Strings = Field(
        (),
        description="Local namespaces that proxy this upstream (pull-through cache): a module unknown here is looked "
        "up at the upstream under the same namespace, and a version is fetched on its first download. A namespace "
        "proxies one upstream.",
    )
    proxy_ttl_seconds: Annotated[int, BeforeValidator(_seconds), Kind("integer")] = Field(
        300, description="How long the server reuses an upstream's versions list of a proxied module (1 to 86400)."
    )
    allow_private: _Flag = Field(
        False, description="Download locations this upstream hands out may be at non-public addresses (http(s), git)."
    )
    allow_file_sources: _Flag = Field(
        False, description="... may be local git repositories (`git::file://`, a path)."
    )
    url: _Name = Field(
        None,
        description="Where to reach this host, when it is not at `https://HOST` (`http(s)://HOST[:PORT]`): provider "
        "addresses keep naming `host`.",
    )
    providers: _Strings = Field(
        (), description='`"NAMESPACE/TYPE [CONSTRAINT]"`, e.g. `"hashicorp/aws ~> 5.0"`: the providers `mirror sync` copies.'
    )
    platforms: _Strings = Field(
        ("linux_amd64",),
        description="The `OS_ARCH` platforms of providers this registry copies and serves from this upstream.",
    )
    proxy_providers: _Strings = Field(
        (),
        description='Providers the network mirror pulls through from this upstream: `"NAMESPACE/TYPE"` patterns, '
        '`*` for any run of characters (`"hashicorp/*"`). Their versions are listed from the upstream (reused for '
        "`proxy_ttl_seconds`), and a zip is fetched on its first download.",
    )
    s3_endpoints: _Urls = Field(
        (),
        description="... may be `s3::` objects on these S3-compatible endpoints (`http(s)://HOST[:PORT]`) besides "
        "AWS S3; this host's AWS credentials go to AWS and to these only.",
    )


_UPSTREAM_KEYS = frozenset(UpstreamConfig.__pydantic_fields__)


def provider_hostname(upstream: UpstreamConfig) -> str:
    """The hostname an upstream's providers are named under (``registry.terraform.io``): its
    host's name and port, lowercase."""
    return urlsplit(registry_base_url(upstream.host)).netloc.lower()


def reach_url(upstream: UpstreamConfig) -> str:
    """Where the upstream is reached: ``url`` when set, else its host's base URL."""
    return registry_base_url(upstream.url or upstream.host)


def serves_providers(upstream: UpstreamConfig) -> bool:
    return bool(upstream.providers or upstream.proxy_providers)


def build_upstreams(raw: Any, environ: Mapping[str, str], problems: list[str]) -> tuple[UpstreamConfig, ...]:
    """``[[upstreams]]`` tables as UpstreamConfig; a ``token_env`` is read from ``environ`` here."""
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        problems.append("upstreams must be an array of tables ([[upstreams]])")
        return ()
    built = []
    for number, table in enumerate(raw, start=1):
        where = f"[[upstreams]] #{number}"
        unknown = set(table) - _UPSTREAM_KEYS
        if unknown:
            problems.append(f"{where}: unknown keys {', '.join(sorted(unknown))}")
        host = table.get("host")
        if not isinstance(host, str) or not host:
            problems.append(f"{where}: host is required (e.g. \"registry.terraform.io\")")
            continue
        values = {key: value for key, value in table.items() if key in _UPSTREAM_KEYS}
        try:
            upstream = UpstreamConfig(**values)
        except ValidationError as exc:
            for error in exc.errors():
                key = str(error["loc"][0])
                problems.append(f"{where} ({host}): {key} {message(error)}")
                values.pop(key, None)
            upstream = UpstreamConfig(**values)  # every key left has been read once already
        for endpoint in upstream.s3_endpoints:
            parts = http_url(endpoint)
            if parts is None or parts.path.strip("/") or parts.query or parts.fragment or parts.username:
                problems.append(f"{where} ({host}): s3_endpoints: {endpoint!r} is not an http(s)://HOST[:PORT] URL")
        if upstream.token is not None and upstream.token_env is not None:
            problems.append(f"{where} ({host}): set token or token_env, not both")
        elif upstream.token_env is not None:
            upstream = dataclasses.replace(upstream, token=environ.get(upstream.token_env) or None)
        built.append(upstream)
    return tuple(built)


def check_upstreams(upstreams: tuple[UpstreamConfig, ...]) -> list[str]:
    """Problems of the upstreams as a whole: hosts, specs, namespaces proxied twice, bounds."""
    problems = []
    proxied_by: dict[str, int] = {}  # lowercased namespace -> the upstream's number
    provider_hosts: dict[str, int] = {}  # provider hostname -> the upstream's number
    for number, upstream in enumerate(upstreams, start=1):
        where = f"[[upstreams]] #{number} ({upstream.host})"
        try:
            registry_base_url(upstream.host)
        except ValueError as exc:
            problems.append(f"{where}: host {exc}")
        if upstream.namespace is not None and not valid_namespace(upstream.namespace):
            problems.append(f"{where}: namespace {upstream.namespace!r} is not a valid namespace")
        for spec in upstream.modules:
            try:
                ModuleSpec.parse(spec)
            except BadRequest as exc:
                problems.append(f"{where}: modules: {exc}")
        listed: set[str] = set()
        for namespace in upstream.proxy_namespaces:
            key = namespace.lower()
            if not valid_namespace(namespace):
                problems.append(f"{where}: proxy_namespaces: {namespace!r} is not a valid namespace")
            elif key in listed:
                problems.append(f"{where}: proxy_namespaces: {namespace!r} is listed twice")
            elif key in proxied_by:
                problems.append(
                    f"{where}: proxy_namespaces: {namespace!r} is already proxied by [[upstreams]] "
                    f"#{proxied_by[key]}; a namespace proxies one upstream"
                )
            else:
                proxied_by[key] = number
            listed.add(key)
        problems.extend(_provider_problems(where, upstream))
        if serves_providers(upstream):
            try:
                hostname = provider_hostname(upstream)
            except ValueError:
                pass
            else:
                if hostname in provider_hosts:
                    problems.append(
                        f"{where}: the providers of {hostname} already come from [[upstreams]] "
                        f"#{provider_hosts[hostname]}; list them in one table"
                    )
                provider_hosts.setdefault(hostname, number)
        low, high = PROXY_TTL_RANGE
        if not low <= upstream.proxy_ttl_seconds <= high:
            problems.append(
                f"{where}: proxy_ttl_seconds must be between {low} and {high}, not {upstream.proxy_ttl_seconds}"
            )
    return problems


def _provider_problems(where: str, upstream: UpstreamConfig) -> list[str]:
    problems = []
    if upstream.url is not None:
        try:
            registry_base_url(upstream.url)
        except ValueError as exc:
            problems.append(f"{where}: url {exc}")
    for spec in upstream.providers:
        try:
            ProviderSpec.parse(spec)
        except BadRequest as exc:
            problems.append(f"{where}: providers: {exc}")
    for pattern in upstream.proxy_providers:
        try:
            check_provider_pattern(pattern)
        except BadRequest as exc:
            problems.append(f"{where}: proxy_providers: {exc}")
    if not upstream.platforms:
        problems.append(f"{where}: platforms must name at least one OS_ARCH, e.g. [\"linux_amd64\"]")
    for platform in upstream.platforms:
        try:
            Platform.parse(platform)
        except BadRequest as exc:
            problems.append(f"{where}: platforms: {exc}")
    return problems
