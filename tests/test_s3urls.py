"""s3_getter_source, checked by parsing its output the way go-getter does.

``go_getter_parse`` is a transcription of ``S3Getter.parseUrl`` in hashicorp/go-getter's
``get_s3.go`` (v1): ``legacy=True`` is the older rule (an amazonaws.com host must have exactly
three labels), ``legacy=False`` the current one (three labels path style, four or five virtual
hosted). Go's ``url.URL.Path`` is the percent-decoded path, hence ``unquote``.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from mirror.domain.s3urls import s3_getter_source

KEY = "modules/ab/ab12cd.tar.gz"


class Parsed(NamedTuple):
    region: str
    bucket: str
    key: str


class InvalidS3Url(ValueError):
    pass


def go_getter_parse(source: str, *, legacy: bool = False) -> Parsed:
    forced, _, raw = source.partition("::")
    assert forced == "s3"
    assert "//" not in raw.split("://", 1)[1].split("?", 1)[0], "go-getter would split off a subdirectory"
    url = urlsplit(raw)
    host, path = url.netloc, unquote(url.path)
    query = parse_qs(url.query)
    is_aws = "amazonaws.com" in host if legacy else host.endswith(".amazonaws.com")
    if not is_aws:
        bucket, key = _split_path(path, 3)
        return Parsed(query.get("region", ["us-east-1"])[0], bucket, key)
    labels = host.split(".")
    if len(labels) == 3:
        region = _trim_region(labels[0]) or "us-east-1"
        bucket, key = _split_path(path, 3)
        return Parsed(region, bucket, key)
    if legacy or len(labels) not in (4, 5):
        raise InvalidS3Url(source)
    region = labels[2] if len(labels) == 5 else _trim_region(labels[1])
    if not region:
        raise InvalidS3Url(source)
    return Parsed(region, labels[0], path.split("/", 1)[1])


def _trim_region(label: str) -> str:
    return label.removeprefix("s3-").removeprefix("s3")


def _split_path(path: str, parts: int) -> tuple[str, str]:
    pieces = path.split("/", parts - 1)
    if len(pieces) != parts:
        raise InvalidS3Url(path)
    return pieces[1], pieces[2]


@pytest.mark.parametrize("legacy", [False, True], ids=["current", "legacy"])
@pytest.mark.parametrize(
    ("bucket", "key", "region", "endpoint_url", "expected"),
    [
        ("mirror", KEY, "us-east-1", None, f"s3::https://s3.amazonaws.com/mirror/{KEY}"),
        ("mirror", KEY, "eu-west-1", None, f"s3::https://s3-eu-west-1.amazonaws.com/mirror/{KEY}"),
        ("my.dotted.bucket", KEY, "eu-central-1", None, f"s3::https://s3-eu-central-1.amazonaws.com/my.dotted.bucket/{KEY}"),
        ("my.dotted.bucket", KEY, "us-east-1", None, f"s3::https://s3.amazonaws.com/my.dotted.bucket/{KEY}"),
        ("mirror", f"team/a/{KEY}", "us-west-2", None, f"s3::https://s3-us-west-2.amazonaws.com/mirror/team/a/{KEY}"),
        (
            "mirror",
            KEY,
            "us-east-1",
            "http://127.0.0.1:9000",
            f"s3::http://127.0.0.1:9000/mirror/{KEY}?region=us-east-1",
        ),
        (
            "my.bucket",
            f"pre/{KEY}",
            "garage",
            "https://minio.example.com/",
            f"s3::https://minio.example.com/my.bucket/pre/{KEY}?region=garage",
        ),
        (
            "mirror",
            KEY,
            "eu-west-3",
            "https://s3.eu-west-3.amazonaws.com",
            f"s3::https://s3-eu-west-3.amazonaws.com/mirror/{KEY}",
        ),
    ],
    ids=["aws-us-east-1", "aws-region", "dotted-bucket", "dotted-us-east-1", "prefix", "endpoint", "endpoint-prefix", "aws-endpoint"],
)
def test_source_forms_round_trip(bucket: str, key: str, region: str, endpoint_url: str | None, expected: str, legacy: bool) -> None:
    source = s3_getter_source(bucket, key, region, endpoint_url)

    assert source == expected
    assert go_getter_parse(source, legacy=legacy) == Parsed(region, bucket, key)


@pytest.mark.parametrize("endpoint_url", [None, "http://localhost:9000"])
def test_keys_are_escaped(endpoint_url: str | None) -> None:
    key = "odd key/with?query#frag&100%+plus~.tar.gz"

    source = s3_getter_source("mirror", key, "eu-west-1", endpoint_url)

    assert "odd%20key/with%3Fquery%23frag%26100%25%2Bplus~.tar.gz" in source
    assert go_getter_parse(source) == Parsed("eu-west-1", "mirror", key)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("s3::https://s3-eu-west-1.amazonaws.com/bucket/foo/bar.baz?version=1234", Parsed("eu-west-1", "bucket", "foo/bar.baz")),
        ("s3::http://127.0.0.1:9000/test-bucket/hello.txt?region=us-east-2", Parsed("us-east-2", "test-bucket", "hello.txt")),
        ("s3::https://bucket.s3.eu-west-1.amazonaws.com/foo.tgz", Parsed("eu-west-1", "bucket", "foo.tgz")),
        ("s3::https://bucket.s3-eu-west-1.amazonaws.com/foo.tgz", Parsed("eu-west-1", "bucket", "foo.tgz")),
    ],
)
def test_parser_transcription_agrees_with_go_getter_examples(source: str, expected: Parsed) -> None:
    assert go_getter_parse(source) == expected


def test_why_path_style_with_a_dash_region() -> None:
    """Virtual-hosted style takes the first host label as the bucket, so dotted buckets break;
    and a dotted regional path-style host has four labels, so it is read as virtual hosted."""
    with pytest.raises(InvalidS3Url):
        go_getter_parse(f"s3::https://my.dotted.bucket.s3.eu-west-1.amazonaws.com/{KEY}")
    assert go_getter_parse(f"s3::https://s3.eu-west-1.amazonaws.com/mirror/{KEY}") == Parsed("eu-west-1", "s3", f"mirror/{KEY}")


@pytest.mark.parametrize("key", ["", "/leading", "a//b.tar.gz"])
def test_rejects_keys_go_getter_cannot_address(key: str) -> None:
    with pytest.raises(ValueError, match="empty path segment"):
        s3_getter_source("mirror", key, "us-east-1")


@pytest.mark.parametrize("endpoint_url", ["ftp://host", "http://host:9000/s3", "http://host?x=1", "host:9000"])
def test_rejects_endpoints_with_a_path_or_odd_scheme(endpoint_url: str) -> None:
    with pytest.raises(ValueError, match="endpoint URL"):
        s3_getter_source("mirror", KEY, "us-east-1", endpoint_url)


@pytest.mark.parametrize("region", ["", "eu.west", "EU-WEST-1", "eu-west-1/x"])
def test_rejects_malformed_regions(region: str) -> None:
    with pytest.raises(ValueError, match="region"):
        s3_getter_source("mirror", KEY, region)
