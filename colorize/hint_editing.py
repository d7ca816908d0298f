"""Placing and editing a photo's colour hints the way a person does it in the app, without any UI toolkit.

`HintEditor` is the state of one photo's points: add (a click), select, move, recolour, remove,
clear, undo, and to and from the hints JSON (`colorize.hints`). Each change returns a new editor
(it is immutable, so a web session can hold it and a failed step leaves it as it was) and keeps
the points before it for `undo`. Every mistake raises `HintError` with one sentence.

The photo is shown as a preview at most `PREVIEW_SIDE` pixels long (a 12 MP photo is not re-encoded
on every click); `preview_size`, `to_photo` and `draw_markers` go between the preview's pixels and
the photo's own, in which the hints are kept.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from .hints import Hint, HintError, check_inside, hex_to_rgb, hints_from_json, hints_to_json, parse_hints

DEFAULT_COLOUR = "#c0392b"  # what the colour picker holds before a person picks one: a brick red
HISTORY_LIMIT = 100  # changes that undo can take back
PREVIEW_SIDE = 2048  # the preview's longest side in pixels
MARKER_SHARE = 0.018  # a marker's radius, as a share of the preview's longest side
MIN_MARKER = 7  # ... but at least this many pixels
MAX_JSON_BYTES = 1_000_000  # a hints file is a few kB; anything far larger is not one

Points = tuple[Hint, ...]


@dataclass(frozen=True)
class HintEditor:
    """The colour points of one photo of `image_size` (w, h) pixels.

    `selected`: the index of the point the colour controls act on (None: none). `moving`: the next
    click moves the selected point instead of placing one. `history`: (points, selected) before
    each change, newest last.
    """

    image_size: tuple[int, int]
    hints: Points = ()
    selected: int | None = None
    moving: bool = False
    history: tuple[tuple[Points, int | None], ...] = ()

    # -- changes (undo takes them back) ----------------------------------------------------------

    def _change(self, hints: Points, selected: int | None) -> "HintEditor":
        history = (*self.history, (self.hints, self.selected))[-HISTORY_LIMIT:]
        return replace(self, hints=hints, selected=selected, moving=False, history=history)

    def add(self, x: float, y: float, colour: str, *, radius: float | None = None) -> "HintEditor":
        """A new point at (x, y) of the photo, selected."""
        (hint,) = self._checked([Hint(int(x), int(y), colour, radius)])
        return self._change((*self.hints, hint), len(self.hints))

    def move(self, index: int, x: float, y: float) -> "HintEditor":
        hint = self.point(index)
        (moved,) = self._checked([replace(hint, x=int(x), y=int(y))])
        return self._change(self._with(index, moved), index)

    def recolour(self, index: int, colour: str) -> "HintEditor":
        hint = self.point(index)
        (recoloured,) = self._checked([replace(hint, color=colour)])
        if recoloured == hint:
            return replace(self, selected=index)  # nothing changed: nothing to undo
        return self._change(self._with(index, recoloured), index)

    def remove(self, index: int) -> "HintEditor":
        self.point(index)
        hints = self.hints[:index] + self.hints[index + 1 :]
        # the selection stays on the same point, or goes when it was the one removed
        selected = None if self.selected is None or self.selected == index else self.selected - (self.selected > index)
        return self._change(hints, selected)

    def clear(self) -> "HintEditor":
        return self if not self.hints else self._change((), None)

    def load_json(self, text: str | bytes) -> "HintEditor":
        """The points of a hints file (`colorize.hints` JSON, as `to_json` writes it) in place of these."""
        if len(text) > MAX_JSON_BYTES:
            raise HintError("This is not a hints file: it is far larger than one.")
        hints = hints_from_json(text, source="The points file")
        recorded = _recorded_size(text)
        if recorded is not None and tuple(recorded) != tuple(self.image_size):
            raise HintError(
                f"These points were placed on a {recorded[0]}x{recorded[1]} photo, but this one is "
                f"{self.image_size[0]}x{self.image_size[1]} pixels."
            )
        return self._change(tuple(self._checked(hints)), None)

    # -- what is not a change ---------------------------------------------------------------------

    def undo(self) -> "HintEditor":
        if not self.history:
            return replace(self, moving=False)
        hints, selected = self.history[-1]
        return replace(self, hints=hints, selected=selected, moving=False, history=self.history[:-1])

    def select(self, index: int | None) -> "HintEditor":
        if index is not None:
            self.point(index)
        return replace(self, selected=index, moving=False)

    def start_moving(self) -> "HintEditor":
        """The next `click` moves the selected point."""
        if self.selected is None:
            raise HintError("Select a point first: click it on the photo or in the list.")
        return replace(self, moving=True)

    def click(self, x: float, y: float, colour: str, *, reach: float = 0.0) -> "HintEditor":
        """What a click at (x, y) of the photo does: moves the selected point when moving, selects
        the point within `reach` pixels (its marker), or else places a new point of `colour`."""
        if self.moving and self.selected is not None:
            return self.move(self.selected, x, y)
        near = self.nearest(x, y, reach=reach)
        return self.select(near) if near is not None else self.add(x, y, colour)

    # -- reading ----------------------------------------------------------------------------------

    def point(self, index: int) -> Hint:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(self.hints):
            raise HintError(f"There is no point {index + 1 if isinstance(index, int) else index!r}; the photo has {len(self.hints)}.")
        return self.hints[index]

    def nearest(self, x: float, y: float, *, reach: float) -> int | None:
        """The point nearest to (x, y) within `reach` pixels (the newest of equals), or None."""
        best, best_distance = None, reach
        for index, hint in enumerate(self.hints):
            distance = math.hypot(hint.x - x, hint.y - y)
            if distance <= best_distance:
                best, best_distance = index, distance
        return best

    def others(self, index: int) -> list[Hint]:
        """Every point but `index`: what the model is asked to colour around, when suggesting colours for it."""
        return [hint for position, hint in enumerate(self.hints) if position != index]

    def hints_json(self) -> str:
        """The points as the colorizer takes them (a JSON list), or "" when there are none."""
        return hints_to_json(self.hints) if self.hints else ""

    def to_json(self) -> str:
        """The points file a person downloads: the points and the photo's size, read back by `load_json`."""
        return hints_to_json(self.hints, image_size=self.image_size)

    def rows(self) -> list[dict[str, Any]]:
        """The points as a list shows them: number (from 1), index, x, y, colour, and whether selected."""
        return [
            {"index": i, "number": i + 1, "x": int(h.x), "y": int(h.y), "color": h.color, "selected": i == self.selected}
            for i, h in enumerate(self.hints)
        ]

    def instruction(self) -> str:
        """One line on what a click on the photo does now."""
        if self.moving and self.selected is not None:
            return f"Click the photo where point {self.selected + 1} should go."
        if not self.hints:
            return "Click the photo to place a colour point, then pick its colour below."
        return "Click the photo to add a point, or a point's marker to select it; the result follows every change."

    # -- helpers ----------------------------------------------------------------------------------

    def _checked(self, hints: list[Hint]) -> list[Hint]:
        parsed = parse_hints(hints)
        check_inside(parsed, self.image_size)
        return parsed

    def _with(self, index: int, hint: Hint) -> Points:
        return self.hints[:index] + (hint,) + self.hints[index + 1 :]


def _recorded_size(text: str | bytes) -> tuple[int, int] | None:
    """The photo size a points file records (`to_json`), if any."""
    values = json.loads(text)
    size = values.get("image_size") if isinstance(values, dict) else None
    if isinstance(size, list) and len(size) == 2 and all(isinstance(side, int) for side in size):
        return size[0], size[1]
    return None


# -- the preview: the photo as shown, with the points drawn on it ---------------------------------


def preview_size(image_size: tuple[int, int], *, longest: int = PREVIEW_SIDE) -> tuple[int, int]:
    """The preview's size: the photo's, scaled down (never up) to at most `longest` pixels on its longest side."""
    width, height = image_size
    scale = min(1.0, longest / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def to_photo(point: tuple[float, float], preview: tuple[int, int], image_size: tuple[int, int]) -> tuple[int, int]:
    """The photo pixel under pixel `point` (x, y) of a preview of size `preview`."""
    (px, py), (pw, ph), (width, height) = point, preview, image_size
    x = int((px + 0.5) * width / pw)
    y = int((py + 0.5) * height / ph)
    return min(width - 1, max(0, x)), min(height - 1, max(0, y))


def marker_radius(preview: tuple[int, int]) -> int:
    """A marker's radius in preview pixels: large enough to see, and to hit with a finger, on a phone."""
    return max(MIN_MARKER, round(MARKER_SHARE * max(preview)))


def marker_reach(preview: tuple[int, int], image_size: tuple[int, int]) -> float:
    """A marker's radius in the photo's pixels: a click this near a point selects it."""
    return marker_radius(preview) * image_size[0] / preview[0]


def draw_markers(preview: Image.Image, editor: HintEditor) -> Image.Image:
    """A copy of `preview` (the photo as shown) with each point drawn as a numbered disc of its
    colour, ringed in white and black so that it shows on any photo; the selected one gets a wider ring."""
    shown = preview.convert("RGB")
    if not editor.hints:
        return shown
    draw = ImageDraw.Draw(shown)
    radius = marker_radius(shown.size)
    font = ImageFont.load_default(size=max(8, round(radius * 1.1)))
    scale_x, scale_y = shown.width / editor.image_size[0], shown.height / editor.image_size[1]
    for index, hint in enumerate(editor.hints):
        x, y = (hint.x + 0.5) * scale_x, (hint.y + 0.5) * scale_y
        selected = index == editor.selected
        ring = max(2, radius // 4) * (2 if selected else 1)
        outer = radius + ring
        draw.ellipse((x - outer - 1, y - outer - 1, x + outer + 1, y + outer + 1), fill="black")
        draw.ellipse((x - outer, y - outer, x + outer, y + outer), fill="#ff8c00" if selected else "white")
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=hint.color)
        red, green, blue = hex_to_rgb(hint.color)
        ink = "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 140 else "white"
        draw.text((x, y), str(index + 1), fill=ink, font=font, anchor="mm")
    return shown
