"""The HTTP transport of outbound webhooks: where a delivery may go, and the signed POST itself.

``HttpWebhookTransport`` implements ``mirror.services.webhooks.WebhookTransport`` (and
``WebhookDestinations`` the narrower ``DestinationChecker``); ``mirror.app`` wires it into the
dispatcher. A delivery is a POST of the event's JSON, signed like GitHub's webhooks
(``X-Mirror-Signature-256: sha256=<HMAC-SHA256(secret, body)>``), with ``X-Mirror-Delivery``
stable per (subscription, serial) so that receivers dedupe. Unless ``[webhooks] allow_private``,
destinations must be public addresses: checked (with DNS) when a subscription is created, and by
the guarded session (``mirror.integrations.netguard``) on the very address each delivery connects to.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
import uuid
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver

from mirror.domain.errors import BadRequest
from mirror.domain.models import Event, WebhookSubscription
from mirror.domain.netaddr import guard_error, is_guarded, non_public_reason, parse_address
from mirror.domain.urls import http_url, redact_url, redact_urls_in
from mirror.services.jobs import describe_error
from mirror.services.webhook_subscriptions import DeliveryError

USER_AGENT = "mirror-webhooks"
_DELIVERY_NAMESPACE = uuid.UUID("6f1c2a53-7d0e-4a8e-9d35-0c7b8f0a51e2")


class WebhookDestinations:
    """Checks webhook destinations (``mirror.services.webhooks.DestinationChecker``): ``check_destination``
    with this process's ``allow_private`` and resolver (aiohttp's default when None)."""

    def __init__(self, *, allow_private: bool, resolver: AbstractResolver | None = None) -> None:
        self._allow_private = allow_private
        self._resolver = resolver

    @property
    def allow_private(self) -> bool:
        return self._allow_private

    async def check_destination(self, url: str, *, resolve: bool = True) -> None:
        await check_destination(url, allow_private=self._allow_private, resolver=self._resolver, resolve=resolve)


class HttpWebhookTransport(WebhookDestinations):
    """Delivers over ``session`` (``mirror.services.webhooks.WebhookTransport``).

    Unless ``allow_private``, ``session`` must be a guarded one
    (``mirror.integrations.netguard.outbound_session``): it checks the addresses it connects to.
    ``resolver`` (the one under that guard, aiohttp's default when None) is the one a new
    subscription's host is checked with."""

    def __init__(
        self, session: aiohttp.ClientSession, *, allow_private: bool, resolver: AbstractResolver | None = None
    ) -> None:
        if not allow_private and not is_guarded(session):
            raise ValueError("the webhook dispatcher needs a guarded session unless allow_private")
        super().__init__(allow_private=allow_private, resolver=resolver)
        self._session = session

    async def deliver(self, subscription: WebhookSubscription, event: Event, *, timeout: float) -> None:
        await deliver(self._session, subscription, event, timeout=timeout)


async def check_destination(
    url: str, *, allow_private: bool, resolver: AbstractResolver | None = None, resolve: bool = True
) -> None:
    """BadRequest unless ``url`` is http(s) and (unless ``allow_private``) its host is a public
    address, or a name every address of which is public (see ``mirror.domain.netaddr``).

    Checked when a subscription is created (a name is resolved through ``resolver``, aiohttp's
    default when None) and, with ``resolve=False``, before each delivery: then only a literal
    address is checked here, and a name's addresses are checked by the dispatcher's guarded
    session on the very answer it connects to (checking here would resolve it a second time)."""
    parts = http_url(url)
    if parts is None:
        raise BadRequest(f"webhook url must be an http(s) URL with a valid host and port, not {redact_url(url)!r}")
    host = parts.hostname
    assert host is not None
    if allow_private:
        return
    literal = parse_address(host)
    if literal is not None:
        _refuse(host, literal)
        return
    if not resolve:
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    owned = resolver is None
    resolver = resolver if resolver is not None else DefaultResolver()
    try:
        answers = await resolver.resolve(host, port, socket.AF_UNSPEC)
    except OSError as exc:
        raise BadRequest(f"webhook host {host!r} does not resolve: {exc}") from exc
    finally:
        if owned:
            await resolver.close()
    if not answers:
        raise BadRequest(f"webhook host {host!r} does not resolve")
    for answer in answers:
        address = parse_address(answer["host"])
        if address is None:
            raise BadRequest(f"webhook host {host!r} resolves to {answer['host']!r}, not an IP address")
        _refuse(host, address)


def _refuse(host: str, address: Any) -> None:
    reason = non_public_reason(address)
    if reason is not None:
        shown = f"webhook host {host!r} is" if str(address) == host else f"webhook host {host!r} resolves to {address},"
        raise BadRequest(f"{shown} {reason}: a non-public address (set [webhooks] allow_private = true to allow it)")


def delivery_id(subscription_id: str, serial: int) -> str:
    """The same for every attempt at one event for one subscriber: receivers dedupe on it."""
    return str(uuid.uuid5(_DELIVERY_NAMESPACE, f"{subscription_id}:{serial}"))


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def delivery_request(subscription: WebhookSubscription, event: Event) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one delivery (pure)."""
    body = json.dumps(event.to_json(), separators=(",", ":"), sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Mirror-Event": event.type,
        "X-Mirror-Delivery": delivery_id(subscription.id, event.serial),
        "X-Mirror-Signature-256": sign(subscription.secret, body),
        "X-Mirror-Timestamp": str(int(time.time())),
    }
    return body, headers


async def deliver(
    session: aiohttp.ClientSession, subscription: WebhookSubscription, event: Event, *, timeout: float
) -> None:
    """POST ``event`` to the subscriber; DeliveryError unless it answers 2xx within ``timeout``.
    Redirects are not followed (they could lead to a private address). Errors show the URL
    redacted."""
    body, headers = delivery_request(subscription, event)
    shown = redact_url(subscription.url)
    try:
        async with session.post(
            subscription.url,
            data=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as response:
            if not 200 <= response.status < 300:
                raise DeliveryError(f"{shown} answered HTTP {response.status}")
    except TimeoutError as exc:
        raise DeliveryError(f"{shown} did not answer within {timeout:g} s") from exc
    except aiohttp.ClientError as exc:
        refused = guard_error(exc)
        if refused is not None:
            raise DeliveryError(
                f"{shown}: refused a non-public address: {refused} (set [webhooks] allow_private = true to allow it)"
            ) from exc
        raise DeliveryError(f"{shown}: {redact_urls_in(describe_error(exc))}") from exc
