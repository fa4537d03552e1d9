"""Terraform's module registry protocol: discovery, the versions list, the download answer and
the signed archive link. The handlers of these hot routes validate nothing per request beyond
the path (``mirror.http.common.module_address``); these models document their shapes."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from mirror.http.models.base import Request, Response


class Discovery(Response):
    modules_v1: Annotated[str, Field(alias="modules.v1", examples=["/v1/modules/"])]


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
