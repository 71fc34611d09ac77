"""How a variable is drawn: colour map, value range, units and legend, from its metadata; pure.

A store written by cubehub names both in each variable's attributes (``cubehub_colormap``,
``cubehub_display_range``; see :data:`cubehub.output.encoding.DISPLAY`). Stores without them
(older ones, other writers) get the same defaults by the kind of variable: counts
(``valid_count``), temperature (``units`` K), reflectance (a ``long_name`` that says so)
or an index.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from rio_tiler.colormap import cmap

from cubehub.errors import InputError
from cubehub.output.encoding import DISPLAY

__all__ = ["Style", "style_of"]

#: Colours sampled from a colour map for the web page's legend gradient.
LEGEND_STOPS = 11


@dataclass(frozen=True)
class Style:
    """How to draw one variable."""

    colormap: str
    """A matplotlib colour map name, e.g. ``"RdYlGn"``."""
    low: float
    """Value drawn with the colour map's first colour (decoded units)."""
    high: float
    """Value drawn with its last colour."""
    units: str
    long_name: str

    def table(self) -> dict[int, tuple[int, int, int, int]]:
        """The colour map as 256 RGBA entries, for rio-tiler's renderer."""
        try:
            table = cast(dict[int, tuple[int, int, int, int]], cmap.get(self.colormap.lower()))
        except Exception:
            raise InputError(
                f"unknown colour map {self.colormap!r}; use a matplotlib name such as viridis"
            ) from None
        return table

    def legend(self) -> list[str]:
        """CSS colours from low to high, for a legend gradient."""
        table = self.table()
        picks = np.linspace(0, 255, LEGEND_STOPS).round().astype(int)
        return ["#{:02x}{:02x}{:02x}".format(*table[int(k)][:3]) for k in picks]

    def to_json(self) -> dict[str, Any]:
        return {
            "colormap": self.colormap,
            "range": [self.low, self.high],
            "units": self.units,
            "long_name": self.long_name,
            "legend": self.legend(),
        }


def _kind(name: str, attrs: Mapping[str, Any]) -> str:
    if name == "valid_count":
        return "count"
    if attrs.get("units") == "K":
        return "temperature"
    return "reflectance" if "reflectance" in str(attrs.get("long_name", "")) else "index"


def style_of(name: str, attrs: Mapping[str, Any]) -> Style:
    """The style of variable ``name`` from its attributes (see the module docstring)."""
    colormap, (low, high) = DISPLAY[_kind(name, attrs)]
    colormap = str(attrs.get("cubehub_colormap", colormap))
    shown = attrs.get("cubehub_display_range", (low, high))
    try:
        low, high = (float(v) for v in shown)
    except (TypeError, ValueError):
        raise InputError(
            f"{name}'s cubehub_display_range must be [low, high], got {shown!r}"
        ) from None
    return Style(
        colormap=colormap,
        low=low,
        high=high,
        units=str(attrs.get("units", "")),
        long_name=str(attrs.get("long_name", name)),
    )
