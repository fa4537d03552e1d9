"""Terraform's module registry protocol: discovery, the versions list, the download answer and
the signed archive link. The handlers of these hot routes validate nothing per request beyond
the path (``mirror.http.common.module_address``); these models document their shapes."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from mirror.http.models.base import Request, Response


class LoginV1(Response):
    """``terraform login``: this registry's OAuth endpoints for the client ``terraform-cli``."""

    client: Annotated[str, Field(examples=["terraform-cli"])]
    grant_types: list[str]
    authz: Annotated[str, Field(examples=["/oauth/authorize"])]
    token: Annotated[str, Field(examples=["/oauth/token"])]
    ports: Annotated[list[int], Field(description="The loopback ports Terraform may listen on: [first, last)")]


class Discovery(Response):
    modules_v1: Annotated[str, Field(alias="modules.v1", examples=["/v1/modules/"])]
    login_v1: Annotated[LoginV1 | None, Field(alias="login.v1")] = None


class OAuthToken(Response):
    """The token endpoint's answer: a new registry token (``terraform login`` saves it)."""

    access_token: Annotated[str, Field(description="The registry token's secret")]
    token_type: Annotated[str, Field(examples=["bearer"])]
    expires_in: Annotated[int | None, Field(description="Seconds until the token expires (absent: never)")] = None


class VersionNumber(Response):
    version: str


class VersionsOfModule(Response):
    source: str
    versions: list[VersionNumber]


class VersionsList(Response):
    modules: list[VersionsOfModule]


class DownloadLocation(Response):
    location: str


class ArchiveQuery(Request):
    """The signed link's parameters (checked by ``DownloadLocator.verify``)."""

    expires: Annotated[str, Field(description="Unix time the link expires at")]
    signature: Annotated[str, Field(description="HMAC of the path and expiry")]
