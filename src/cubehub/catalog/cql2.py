"""Evaluate CQL2-JSON filters on STAC items, for APIs without the filter extension; pure.

Supports the Basic CQL2 operators a composite job needs: ``and``, ``or``, ``not``,
comparisons (``=``, ``<>``, ``<``, ``<=``, ``>``, ``>=``), ``between``, ``in``, ``like``
(``%`` and ``_``) and ``isNull``, on ``{"property": name}`` references (item properties,
plus ``id`` and ``collection``) and literals (numbers, strings, booleans,
``{"timestamp": ...}``, ``{"date": ...}``). Anything else is refused up front with the list
of supported operators, so a filter never silently matches everything.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from cubehub.errors import InputError

_COMPARISONS = {"=", "<>", "<", "<=", ">", ">="}
_LOGICAL = {"and", "or", "not"}
_OTHER = {"between", "in", "like", "isNull"}
SUPPORTED = tuple(sorted(_COMPARISONS | _LOGICAL | _OTHER))


def validate(expr: Any) -> None:
    """Raise :class:`InputError` unless ``expr`` is a CQL2-JSON expression this module evaluates."""
    if not isinstance(expr, dict) or "op" not in expr or not isinstance(expr.get("args"), list):
        raise InputError(f"a CQL2-JSON filter is an object with 'op' and 'args', got {expr!r}")
    op = expr["op"]
    if op not in SUPPORTED:
        raise InputError(
            f"CQL2 operator {op!r} is not supported on the client; use one of {', '.join(SUPPORTED)}"
        )
    if op in _LOGICAL:
        for arg in expr["args"]:
            validate(arg)


def matches(expr: dict[str, Any], item: dict[str, Any]) -> bool:
    """True when ``item`` (a STAC item dict) satisfies the CQL2-JSON ``expr``."""
    op, args = expr["op"], expr["args"]
    if op == "and":
        return all(matches(a, item) for a in args)
    if op == "or":
        return any(matches(a, item) for a in args)
    if op == "not":
        return not matches(args[0], item)
    values = [_value(a, item) for a in args]
    if op == "isNull":
        return values[0] is None
    if any(v is None for v in values[:1]):
        return False  # a missing property satisfies no comparison (CQL2 null semantics)
    if op == "between":
        return bool(values[1] <= values[0] <= values[2])
    if op == "in":
        return values[0] in values[1]
    if op == "like":
        return re.fullmatch(_like_regex(str(values[1])), str(values[0])) is not None
    left, right = values
    try:
        return bool(
            {"=": left == right, "<>": left != right}.get(op)
            if op in ("=", "<>")
            else {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[
                op
            ]
        )
    except TypeError:
        raise InputError(
            f"CQL2 filter compares {left!r} with {right!r}, values of different types"
        ) from None


def _value(arg: Any, item: dict[str, Any]) -> Any:
    if isinstance(arg, dict):
        if "property" in arg:
            name = arg["property"]
            if name in ("id", "collection"):
                return item.get(name)
            value = item.get("properties", {}).get(name)
            return (
                _parse_time(value)
                if name.endswith("datetime") and isinstance(value, str)
                else value
            )
        if "timestamp" in arg:
            return _parse_time(arg["timestamp"])
        if "date" in arg:
            return datetime.combine(date.fromisoformat(arg["date"]), datetime.min.time(), UTC)
        raise InputError(f"unsupported CQL2 value {arg!r}")
    if isinstance(arg, list):
        return [_value(a, item) for a in arg]
    return arg


def _parse_time(text: str) -> datetime:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _like_regex(pattern: str) -> str:
    return "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
