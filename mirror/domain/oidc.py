"""What a person's OpenID Connect claims give them: ``[[oidc.grants]]`` rules, and who they are.

A rule names a group (``group = "platform"``: a value of the ``groups_claim``) or any claim and a
value (``claim = "email", value = "ana@example.com"``; a dotted claim name reads nested objects,
such as Keycloak's ``realm_access.roles``), and the namespace (or ``*``) and scope it grants. A
claim matches when it is that string, or a list holding it. Every matching rule's grant is kept,
the highest scope per namespace; a person no rule matches has no grant at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mirror.domain.addresses import valid_namespace
from mirror.domain.models import SCOPES, Scope
from mirror.domain.sessions import Grant
from mirror.domain.tokens import scope_allows

#: a claim value longer than this, or a list longer than ``MAX_CLAIM_VALUES``, is not read
MAX_CLAIM_CHARS = 1024
MAX_CLAIM_VALUES = 1000
#: the longest ``person``/``name`` kept from a provider's claims
MAX_PERSON_CHARS = 200
_RULE_KEYS = {"group", "claim", "value", "namespace", "scope"}


@dataclass(frozen=True, slots=True)
class GrantRule:
    claim: str
    value: str
    namespace: str
    scope: Scope


def parse_rules(tables: Sequence[Mapping[str, Any]], groups_claim: str) -> tuple[tuple[GrantRule, ...], list[str]]:
    """``[[oidc.grants]]`` tables as rules, and a line per problem."""
    rules: list[GrantRule] = []
    problems: list[str] = []
    for number, table in enumerate(tables, 1):
        where = f"[[oidc.grants]] #{number}"
        unknown = sorted(set(table) - _RULE_KEYS)
        if unknown:
            problems.append(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(_RULE_KEYS))})")
            continue
        values = {key: table.get(key) for key in _RULE_KEYS}
        if any(value is not None and not isinstance(value, str) for value in values.values()):
            problems.append(f"{where}: every key's value must be a string")
            continue
        group, claim, value = values["group"], values["claim"], values["value"]
        if group is not None and (claim is not None or value is not None):
            problems.append(f"{where}: give either group, or claim and value, not both")
            continue
        if group is None and (not claim or value is None):
            problems.append(f"{where}: give group = \"...\", or claim = \"...\" with value = \"...\"")
            continue
        namespace = values["namespace"] or ""
        if namespace != "*" and not valid_namespace(namespace):
            problems.append(f"{where}: namespace must be a namespace or \"*\", not {namespace[:100]!r}")
            continue
        scope = values["scope"] or "read"
        if scope not in SCOPES:
            problems.append(f"{where}: scope must be one of {', '.join(SCOPES)}, not {scope[:50]!r}")
            continue
        if group is not None:
            rules.append(GrantRule(groups_claim, group, namespace, scope))  # type: ignore[arg-type]
        else:
            rules.append(GrantRule(claim, value, namespace, scope))  # type: ignore[arg-type]
    return tuple(rules), problems


def claim_values(claims: Mapping[str, Any], name: str) -> frozenset[str]:
    """The strings a claim holds (a dotted name reads nested objects); none for anything else."""
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return frozenset()
        value = value[part]
    items = value if isinstance(value, list) else [value]
    if len(items) > MAX_CLAIM_VALUES:
        return frozenset()
    found = set()
    for item in items:
        if isinstance(item, bool):
            found.add("true" if item else "false")
        elif isinstance(item, (str, int)) and len(str(item)) <= MAX_CLAIM_CHARS:
            found.add(str(item))
    return frozenset(found)


def grants_for(claims: Mapping[str, Any], rules: Sequence[GrantRule]) -> tuple[Grant, ...]:
    """The grants the matching rules give: one per namespace, its highest scope, in rule order."""
    best: dict[str, Grant] = {}
    for rule in rules:
        if rule.value not in claim_values(claims, rule.claim):
            continue
        key = rule.namespace.lower()
        held = best.get(key)
        if held is None or not scope_allows(held.scope, rule.scope):
            best[key] = Grant(rule.namespace, rule.scope)
    return tuple(best.values())


def _text(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str):
        return ""
    cleaned = "".join(char for char in value if char.isprintable()).strip()
    return cleaned[:MAX_PERSON_CHARS]


def person_of(claims: Mapping[str, Any]) -> str:
    """Who the person is to people: their e-mail, else user name, else subject."""
    return _text(claims, "email") or _text(claims, "preferred_username") or _text(claims, "sub")


def name_of(claims: Mapping[str, Any]) -> str:
    return _text(claims, "name")
