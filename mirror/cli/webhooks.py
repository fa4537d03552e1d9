"""``mirror webhooks ...``: manage outbound webhook subscriptions on the metadata store directly.

A running ``mirror serve`` on the same store picks up added or removed subscriptions at its next
poll. ``redeliver`` makes the HTTP delivery itself, with a short-lived session.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from mirror.cli.common import config_of, print_table, with_store
from mirror.domain.timeutil import now_rfc3339
from mirror.domain.urls import redact_url, redact_urls_in
from mirror.domain.errors import NotFound
from mirror.integrations.netguard import outbound_session
from mirror.integrations.webhook_transport import HttpWebhookTransport, WebhookDestinations
from mirror.services.webhooks import (
    consumer_name,
    create_subscription,
    new_subscription,
    redeliver_failure,
    remove_subscription,
)



def add_commands(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    webhooks = sub.add_parser("webhooks", help="manage outbound webhook subscriptions").add_subparsers(
        dest="webhooks_command", required=True, metavar="ACTION"
    )
    listing = webhooks.add_parser("list", parents=[common], help="list subscriptions with their cursor and lag")
    listing.set_defaults(handler=_cmd_list)

    add = webhooks.add_parser(
        "add", parents=[common], help="subscribe a URL to the events written from now on (prints its id)"
    )
    add.add_argument("url", metavar="URL")
    add.add_argument("--secret", required=True, help="HMAC secret, at least 16 characters ('-': read from stdin)")
    add.add_argument("--event", dest="events", action="append", default=[], metavar="TYPE", help="only this event type (repeatable)")
    add.add_argument(
        "--namespace", dest="namespaces", action="append", default=[], metavar="NS", help="only this namespace (repeatable)"
    )
    add.set_defaults(handler=_cmd_add)

    remove = webhooks.add_parser("remove", parents=[common], help="delete a subscription made through the API or CLI")
    remove.add_argument("subscription_id", metavar="ID")
    remove.set_defaults(handler=_cmd_remove)

    failures = webhooks.add_parser("failures", parents=[common], help="list a subscription's parked events")
    failures.add_argument("subscription_id", metavar="ID")
    failures.add_argument("--all", action="store_true", help="include events already redelivered")
    failures.set_defaults(handler=_cmd_failures)

    redeliver = webhooks.add_parser("redeliver", parents=[common], help="deliver a parked event again, now")
    redeliver.add_argument("subscription_id", metavar="ID")
    redeliver.add_argument("failure_id", metavar="FAILURE_ID", type=_failure_id)
    redeliver.set_defaults(handler=_cmd_redeliver)


def _failure_id(text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 19) or not 0 < int(text) < 2**63:
        raise argparse.ArgumentTypeError(f"invalid failure id {text!r}")
    return int(text)


def _cmd_list(args: argparse.Namespace) -> int:
    async def collect(store: Any) -> list[tuple[str, ...]]:
        latest = await store.latest_serial()
        consumers = {c.name: c for c in await store.list_consumers()}
        rows = [("ID", "SOURCE", "SERIAL", "LAG", "PENDING", "EVENTS", "NAMESPACES", "URL")]
        for s in await store.list_subscriptions():
            consumer = consumers.get(consumer_name(s.id))
            serial = consumer.serial if consumer else latest
            pending = len(await store.list_delivery_failures(s.id))
            rows.append(
                (s.id, s.source, str(serial), str(latest - serial), str(pending),
                 ",".join(s.events) or "*", ",".join(s.namespaces) or "*", redact_url(s.url))
            )
        return rows

    print_table(asyncio.run(with_store(config_of(args), collect)))
    return 0


def _cmd_add(args: argparse.Namespace) -> int:
    secret = sys.stdin.readline().strip() if args.secret == "-" else args.secret
    config = config_of(args)
    subscription = new_subscription(args.url, secret, args.events, args.namespaces, now_rfc3339())
    asyncio.run(
        with_store(config, lambda store: create_subscription(store, subscription, WebhookDestinations(allow_private=config.webhooks.allow_private)))
    )
    print(f"created webhook subscription {subscription.id}; it receives the events written from now on")
    print(subscription.id)
    return 0


def _cmd_remove(args: argparse.Namespace) -> int:
    asyncio.run(with_store(config_of(args), lambda store: remove_subscription(store, args.subscription_id)))
    print(f"removed webhook subscription {args.subscription_id}")
    return 0


def _cmd_failures(args: argparse.Namespace) -> int:
    async def collect(store: Any) -> list[Any]:
        if await store.get_subscription(args.subscription_id) is None:
            raise NotFound(f"no webhook subscription with id {args.subscription_id!r}")
        return await store.list_delivery_failures(args.subscription_id, pending_only=not args.all)

    rows = [("ID", "SERIAL", "ATTEMPTS", "FAILED", "REDELIVERED", "LAST ERROR")]
    rows += [
        (str(f.id), str(f.serial), str(f.attempts), f.failed_at, f.redelivered_at or "-", " ".join(redact_urls_in(f.last_error).split()))
        for f in asyncio.run(with_store(config_of(args), collect))
    ]
    print_table(rows)
    return 0


def _cmd_redeliver(args: argparse.Namespace) -> int:
    config = config_of(args)

    async def attempt(store: Any) -> None:
        async with outbound_session(allow_private=config.webhooks.allow_private) as session:
            await redeliver_failure(
                store,
                HttpWebhookTransport(session, allow_private=config.webhooks.allow_private),
                args.subscription_id,
                args.failure_id,
                timeout=config.webhooks.timeout_seconds,
            )

    asyncio.run(with_store(config, attempt))
    print(f"redelivered failure {args.failure_id} of webhook subscription {args.subscription_id}")
    return 0
