"""Reading a small urlencoded form, bounded: the web UI's forms and the OAuth endpoints."""

from __future__ import annotations

from urllib.parse import parse_qs

from aiohttp import web

from mirror.domain.errors import BadRequest, PayloadTooLarge

#: the largest form read by default: a few fields, a token, a description
MAX_FORM_BYTES = 16 * 1024


async def read_form(request: web.Request, *, max_bytes: int = MAX_FORM_BYTES, max_fields: int = 64) -> dict[str, str]:
    """The ``application/x-www-form-urlencoded`` body, each field given once (a repeated one is
    left out, so a check reports it missing). BadRequest for another type, a body that is not
    UTF-8 or holds more than ``max_fields`` fields; PayloadTooLarge beyond ``max_bytes``, read no
    further than that."""
    if request.content_type != "application/x-www-form-urlencoded":
        raise BadRequest("send the form as application/x-www-form-urlencoded")
    too_large = f"the form is too large (at most {max_bytes} bytes)"
    if request.content_length is not None and request.content_length > max_bytes:
        raise PayloadTooLarge(too_large)
    body = b""
    while len(body) <= max_bytes:
        chunk = await request.content.read(max_bytes + 1 - len(body))
        if not chunk:
            break
        body += chunk
    if len(body) > max_bytes:
        raise PayloadTooLarge(too_large)
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=max_fields)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("the form could not be read (not UTF-8, or too many fields)") from None
    return {name: values[0] for name, values in parsed.items() if len(values) == 1}
