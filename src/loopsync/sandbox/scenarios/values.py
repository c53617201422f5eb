"""Reading one value of a scenario: checked shapes, times and references, with errors that say where."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from loopsync.sandbox.world import World, gid_number


class ScenarioError(ValueError):
    """A scenario that cannot be loaded; the message says where and why."""


_RELATIVE = re.compile(r"^([+-]?)(\d+(?:\.\d+)?)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_when(value: Any, world: World, where: str) -> datetime:
    """``-2h`` style offsets from the world's now, "now", or an absolute ISO date/time (UTC if no zone)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value).strip()
    if text == "now":
        return world.now()
    match = _RELATIVE.match(text)
    if match:
        sign = -1 if match.group(1) == "-" else 1
        return world.now() + sign * timedelta(**{_UNITS[match.group(3)]: float(match.group(2))})
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ScenarioError(f"{where}: {text!r} is neither a time like -2h / -3d nor an ISO date") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def as_mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ScenarioError(f"{where}: expected a mapping, got {type(value).__name__}")
    return dict(value)


def as_list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ScenarioError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def check_keys(spec: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ScenarioError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def required(spec: dict[str, Any], key: str, where: str) -> Any:
    if spec.get(key) in (None, ""):
        raise ScenarioError(f"{where}: {key} is required")
    return spec[key]


def find_variant(world: World, ref: Any, where: str) -> str:
    """A variant by SKU, global id or numeric id."""
    text = str(ref)
    with world.lock:
        if text in world.variants:
            return text
        for variant in world.variants.values():
            if variant.sku == text or (text.isdigit() and gid_number(variant.id) == int(text)):
                return variant.id
    raise ScenarioError(f"{where}: no variant with SKU or id {text!r}")


def find_plan(world: World, name: Any, variant_id: str, where: str) -> str:
    """A selling plan by name or id, which must be offered for ``variant_id``."""
    with world.lock:
        for group in world.selling_plan_groups.values():
            for plan in group.plans:
                if plan.name == name or plan.id == name:
                    if variant_id not in group.variant_ids:
                        raise ScenarioError(f"{where}: selling plan {name!r} is not offered for this variant")
                    return plan.id
    raise ScenarioError(f"{where}: no selling plan named {name!r}")


def find_app(world: World, title: Any, where: str) -> str | None:
    """An installed app by title or id; None stands for the merchant."""
    if title is None:
        return None
    with world.lock:
        for app in world.apps.values():
            if app.title == title or app.id == title:
                return app.id
    raise ScenarioError(f"{where}: no app titled {title!r}")
