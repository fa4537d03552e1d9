"""Outbound webhook subscriptions, and the ports the dispatcher (``mirror.services.webhooks``) delivers through.

A subscription made through the API or the CLI gets a random id; one from ``[[webhooks.subscriptions]]``
an id derived from its url. Creating one checks its destination through a ``DestinationChecker``,
and stores its cursor at the latest serial: it receives the events written from then on, not the
history. ``WebhookTransport`` is what a delivery goes through; ``mirror.integrations.webhook_transport``
implements both ports and the composition root wires it in, so this layer never imports it.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import structlog

from mirror.domain.errors import BadRequest, Conflict, MirrorError, NotFound
from mirror.domain.models import DeliveryFailure, Event, WebhookSubscription
from mirror.domain.urls import http_url, redact_url, redact_urls_in
from mirror.storage.protocols import ConsumerStore, EventReader, WebhookStore

log = structlog.get_logger("mirror.webhooks")

MIN_SECRET_CHARS = 16


class WebhookDispatchStore(EventReader, ConsumerStore, WebhookStore, Protocol):
    """What the dispatcher needs from the metadata store."""


class DeliveryError(MirrorError):
    """A subscriber did not accept a delivery (non-2xx answer, timeout, connection error)."""

    status = 502


def consumer_name(subscription_id: str) -> str:
    return f"webhook:{subscription_id}"


class DestinationChecker(Protocol):
    """Judges where deliveries may go (``mirror.integrations.webhook_transport.WebhookDestinations``)."""

    @property
    def allow_private(self) -> bool: ...

    async def check_destination(self, url: str, *, resolve: bool = True) -> None:
        """BadRequest unless ``url`` is http(s) and (unless ``allow_private``) its host is a public
        address, or a name every address of which is public. With ``resolve=False`` (before each
        delivery) only a literal address is checked: the transport checks a name's addresses on
        the very answer it connects to."""
        ...


class WebhookTransport(DestinationChecker, Protocol):
    """Makes deliveries (``mirror.integrations.webhook_transport.HttpWebhookTransport``)."""

    async def deliver(self, subscription: WebhookSubscription, event: Event, *, timeout: float) -> None:
        """Hand ``event`` to the subscriber; DeliveryError unless it accepts it within ``timeout``."""
        ...


# -- subscriptions -------------------------------------------------------------------------------


def subscription_from_config(entry: Mapping[str, Any], now: str) -> WebhookSubscription:
    """A ``[[webhooks.subscriptions]]`` entry (already validated); its id is derived from the url,
    so it stays the same from one start to the next."""
    url = entry["url"]
    return WebhookSubscription(
        id="cfg-" + hashlib.sha256(url.encode()).hexdigest()[:12],
        url=url,
        secret=entry["secret"],
        events=tuple(entry.get("events") or ()),
        namespaces=tuple(entry.get("namespaces") or ()),
        source="config",
        created_at=now,
    )


def new_subscription(
    url: str, secret: str, events: Iterable[str], namespaces: Iterable[str], now: str
) -> WebhookSubscription:
    """A subscription made through the API or the CLI, with a random id."""
    validate_subscription_fields(url, secret)
    return WebhookSubscription(
        id="wh-" + secrets.token_hex(8),
        url=url,
        secret=secret,
        events=tuple(events),
        namespaces=tuple(namespaces),
        source="api",
        created_at=now,
    )


def validate_subscription_fields(url: str, secret: str) -> None:
    if http_url(url) is None:
        raise BadRequest(f"url must be an http(s) URL, not {redact_url(url)!r}")
    if len(secret) < MIN_SECRET_CHARS:
        raise BadRequest(f"secret must have at least {MIN_SECRET_CHARS} characters")


async def create_subscription(
    store: WebhookDispatchStore, subscription: WebhookSubscription, destinations: DestinationChecker
) -> WebhookSubscription:
    """Check the destination, store the subscription and its cursor at the latest serial (it gets
    the events written from now on)."""
    await destinations.check_destination(subscription.url)
    await store.put_subscription(subscription)
    await store.consumer(consumer_name(subscription.id), start_serial=await store.latest_serial())
    return subscription


async def remove_subscription(store: WebhookDispatchStore, subscription_id: str) -> WebhookSubscription:
    """Delete an API subscription (and its cursor); config ones are removed from the config."""
    subscription = await store.get_subscription(subscription_id)
    if subscription is None:
        raise NotFound(f"no webhook subscription with id {subscription_id!r}")
    if subscription.source == "config":
        raise Conflict(f"webhook subscription {subscription_id} comes from the config file; remove it there")
    await store.delete_subscription(subscription_id)
    return subscription


def subscription_to_json(subscription: WebhookSubscription) -> dict[str, Any]:
    """A subscription as the API and the CLI show it: no secret, its URL redacted (no userinfo,
    no query values: a subscriber URL often carries a token)."""
    return {**subscription.to_json(), "url": redact_url(subscription.url)}


def failure_to_json(failure: DeliveryFailure) -> dict[str, Any]:
    return {
        "id": failure.id,
        "subscription_id": failure.subscription_id,
        "serial": failure.serial,
        "attempts": failure.attempts,
        "last_error": redact_urls_in(failure.last_error),
        "failed_at": failure.failed_at,
        "redelivered_at": failure.redelivered_at,
    }


# -- redelivery ----------------------------------------------------------------------------------


async def redeliver_failure(
    store: WebhookDispatchStore,
    transport: WebhookTransport,
    subscription_id: str,
    failure_id: int,
    *,
    timeout: float,
) -> DeliveryFailure:
    """One immediate attempt at a parked event; marks it redelivered on success.
    NotFound (no such subscription or pending failure, or the event is gone) or DeliveryError."""
    subscription = await store.get_subscription(subscription_id)
    if subscription is None:
        raise NotFound(f"no webhook subscription with id {subscription_id!r}")
    failure = next((f for f in await store.list_delivery_failures(subscription_id) if f.id == failure_id), None)
    if failure is None:
        raise NotFound(f"webhook subscription {subscription_id} has no pending failure {failure_id}")
    events = await store.events_after(failure.serial - 1, 1)
    if not events or events[0].serial != failure.serial:
        raise NotFound(f"event {failure.serial} is no longer in the event log")
    bound = log.bind(subscription_id=subscription_id, serial=failure.serial, failure_id=failure_id)
    try:
        await transport.check_destination(subscription.url, resolve=False)
    except BadRequest as exc:
        raise DeliveryError(str(exc)) from exc
    try:
        await transport.deliver(subscription, events[0], timeout=timeout)
    except DeliveryError as exc:
        bound.warning("webhook redelivery failed", error=str(exc))
        raise
    await store.mark_redelivered(failure_id)
    bound.info("webhook redelivered")
    return failure

