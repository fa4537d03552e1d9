"""go-getter ``s3::`` sources for objects in S3 or an S3-compatible store.

The forms follow ``parseUrl`` in hashicorp/go-getter's ``get_s3.go`` (v1, which Terraform uses):

* a host ending in ``.amazonaws.com`` is split on dots. Older releases accept only three
  labels (``s3.amazonaws.com``, ``s3-<region>.amazonaws.com``: region from the first label,
  empty meaning us-east-1; bucket and key from the path). Newer ones also take virtual-hosted
  ``<bucket>.s3.<region>.amazonaws.com``, but there the bucket is the first host label, so a
  dotted bucket name shifts the count and misparses; and ``s3.<region>.amazonaws.com/bucket``
  has four labels and is misread as virtual hosted. Path style with the dash region is the one
  form every release parses for every bucket name, so it is the only AWS form used here. (Since
  go-getter 1.4.2 the host is only parsed, not contacted, unless credentials are in the URL;
  before that it was the endpoint, and dash hosts exist only for the older AWS regions.)
* any other host is an S3-compatible endpoint: ``/<bucket>/<key>`` in the path and the region
  in a ``region`` query parameter (defaulting to us-east-1). Caveat (go-getter issues #298,
  #329): since 1.4.2 go-getter uses that host only when the URL carries credentials
  (``aws_access_key_id``...) or ``AWS_METADATA_URL`` is set; otherwise it asks AWS itself.

go-getter reads the *decoded* URL path, so keys are percent-escaped here. A ``//`` anywhere
after the scheme is go-getter's subdirectory separator, so keys with empty segments are refused.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlencode, urlsplit

_REGION_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
DEFAULT_REGION = "us-east-1"
AWS_HOST_SUFFIX = ".amazonaws.com"


def s3_getter_source(bucket: str, object_key: str, region: str, endpoint_url: str | None = None) -> str:
    """The ``s3::`` source go-getter parses back to ``bucket``, ``object_key`` and ``region``.

    ``endpoint_url`` is for S3-compatible stores; an ``*.amazonaws.com`` endpoint is treated as
    AWS itself and given the region form.
    """
    _check_region(region)
    _check_key(object_key)
    path = f"{quote(bucket, safe='')}/{quote(object_key, safe='/')}"
    if endpoint_url is None or _is_aws_endpoint(endpoint_url):
        return f"s3::https://{_aws_path_style_host(region)}/{path}"
    return f"s3::{_endpoint_base(endpoint_url)}/{path}?{urlencode({'region': region})}"


def _check_region(region: str) -> None:
    if not _REGION_RE.match(region):
        raise ValueError(f"not an AWS region name: {region!r}")


def _check_key(object_key: str) -> None:
    if not object_key or object_key.startswith("/") or "//" in object_key:
        raise ValueError(f"object key {object_key!r} has an empty path segment; go-getter cannot address it")


def _is_aws_endpoint(endpoint_url: str) -> bool:
    host = urlsplit(endpoint_url).hostname or ""
    return host.endswith(AWS_HOST_SUFFIX)


def _aws_path_style_host(region: str) -> str:
    """``s3.amazonaws.com`` for us-east-1, ``s3-<region>.amazonaws.com`` elsewhere (three labels)."""
    if region == DEFAULT_REGION:
        return "s3.amazonaws.com"
    return f"s3-{region}.amazonaws.com"


def _endpoint_base(endpoint_url: str) -> str:
    """``scheme://host[:port]`` of a custom endpoint; a path would be read as the bucket."""
    parts = urlsplit(endpoint_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"endpoint URL {endpoint_url!r} is not an http(s) URL")
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise ValueError(f"endpoint URL {endpoint_url!r} must not have a path or query: go-getter reads the bucket from the path")
    return f"{parts.scheme}://{parts.netloc}"
