"""The client-side CQL2-JSON evaluator."""

from __future__ import annotations

from typing import Any

import pytest

from cubehub.catalog import cql2
from cubehub.errors import InputError

ITEM = {
    "id": "S2B_X_1",
    "collection": "sentinel-2-l2a",
    "properties": {
        "eo:cloud_cover": 12.5,
        "platform": "sentinel-2b",
        "datetime": "2022-03-01T10:00:00Z",
        "s2:sequence": "1",
    },
}


def prop(name: str) -> dict[str, Any]:
    return {"property": name}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ({"op": "<", "args": [prop("eo:cloud_cover"), 20]}, True),
        ({"op": ">=", "args": [prop("eo:cloud_cover"), 20]}, False),
        ({"op": "=", "args": [prop("id"), "S2B_X_1"]}, True),
        ({"op": "<>", "args": [prop("collection"), "sentinel-2-l2a"]}, False),
        ({"op": "between", "args": [prop("eo:cloud_cover"), 10, 15]}, True),
        ({"op": "in", "args": [prop("platform"), ["sentinel-2a", "sentinel-2b"]]}, True),
        ({"op": "like", "args": [prop("platform"), "sentinel-_b"]}, True),
        ({"op": "like", "args": [prop("platform"), "landsat%"]}, False),
        ({"op": "isNull", "args": [prop("view:off_nadir")]}, True),
        ({"op": "<", "args": [prop("view:off_nadir"), 5]}, False),
        ({"op": "<", "args": [prop("datetime"), {"date": "2022-03-02"}]}, True),
        ({"op": "not", "args": [{"op": "=", "args": [prop("s2:sequence"), "1"]}]}, False),
        (
            {
                "op": "or",
                "args": [
                    {"op": "=", "args": [prop("platform"), "x"]},
                    {"op": "<", "args": [prop("eo:cloud_cover"), 13]},
                ],
            },
            True,
        ),
    ],
)
def test_operators(expr: dict[str, Any], expected: bool) -> None:
    cql2.validate(expr)
    assert cql2.matches(expr, ITEM) is expected


def test_mixed_types_are_an_error() -> None:
    with pytest.raises(InputError, match="different types"):
        cql2.matches({"op": "<", "args": [prop("platform"), 3]}, ITEM)


def test_malformed_filter() -> None:
    with pytest.raises(InputError, match="'op' and 'args'"):
        cql2.validate({"eo:cloud_cover": {"lt": 10}})
