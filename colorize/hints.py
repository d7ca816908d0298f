"""Colour hints: a person's "this is red here" as input channels of the generator.

A hint is a point of the photo (x to the right, y down, in the photo's own pixels), a radius in
those pixels and an sRGB colour. Given as `Hint` objects, as plain dicts
`{"x": 120, "y": 80, "color": "#c0392b", "radius": 6}` (what a hints JSON file holds), or as a
hint image (an RGBA PNG of the photo's size: every pixel with alpha > 0 is a hint of its colour,
strokes painted in any editor).

The generator sees them as in Zhang et al. 2017 ("Real-Time User-Guided Image Colorization with
Learned Deep Priors"): the hinted pixels' ab (0 elsewhere) and a mask (1 where hinted), at its
render size; and, with `hint_propagation`, the hints spread along the photo's edges
(`colorize.propagation.spread_hints`: their colour and their reach). With no hint every channel is
0, and the same model is the automatic colorizer.

Training simulates hints from the real photo (`simulate_training_hints`): per image a
geometric number of points (a 1/8 chance to stop before each, so 1 image in 8 gets none),
each a square patch of 1-9 pixels around a position drawn near the centre, holding the real
photo's mean ab over the patch. `simulate_user_hints` makes the hints a person would give
(N points, the real photo's mean colour over the default radius) for the protocol and the study.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import color
from .propagation import reach_channel, region_reach, spread_hints

POINT_CHANNELS = 3  # ab of the hinted pixels, mask
PROPAGATION_CHANNELS = 3  # spread ab, reach
STOP_PROBABILITY = 1 / 8  # Zhang et al. 2017: geometric number of points per training image
MAX_TRAINING_POINTS = 64  # the geometric tail past this is (7/8)^64 = 0.02% of images
PATCH_SIZES = (1, 9)  # smallest and largest square hint patch in training, in pixels of the crop
DEFAULT_RADIUS_SHARE = 0.01  # a hint's default radius: 1% of the photo's short side
MAX_HINTS = 1000
_HEX_COLOUR = re.compile(r"#?([0-9a-fA-F]{6})")


class HintError(ValueError):
    """Hints that cannot be used; the message is one sentence a person understands."""


@dataclass(frozen=True)
class Hint:
    """One colour hint: the point (x, y) in the photo's pixels, an sRGB colour "#rrggbb" and a
    radius in pixels (None: `DEFAULT_RADIUS_SHARE` of the photo's short side)."""

    x: float
    y: float
    color: str
    radius: float | None = None

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        for key in ("x", "y", "radius"):
            if isinstance(values[key], float) and values[key].is_integer():
                values[key] = int(values[key])
        if values["radius"] is None:
            del values["radius"]
        return values


def hex_to_rgb(value: Any) -> tuple[int, int, int]:
    """(r, g, b) 0-255 of "#rrggbb" (or "rrggbb"); raises HintError."""
    match = _HEX_COLOUR.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise HintError(f"{value!r} is not a colour; write it as \"#rrggbb\", e.g. \"#c0392b\".")
    digits = match.group(1)
    return tuple(int(digits[i : i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]


def rgb_to_hex(rgb: Sequence[float]) -> str:
    return "#" + "".join(f"{int(round(min(255, max(0, v)))):02x}" for v in rgb)


def colour_ab(value: str) -> tuple[float, float]:
    """The Lab a, b (in ab units) of an sRGB colour "#rrggbb"."""
    rgb = torch.tensor(hex_to_rgb(value), dtype=torch.float64).view(3, 1, 1) / 255.0
    lab = color.rgb_to_lab(rgb)
    return float(lab[1, 0, 0]), float(lab[2, 0, 0])


def lab_to_hex(lightness: float, a: float, b: float) -> str:
    """The sRGB colour "#rrggbb" of one Lab colour (clipped into sRGB)."""
    rgb = color.lab_to_rgb(torch.tensor([lightness, a, b], dtype=torch.float64).view(3, 1, 1))
    return rgb_to_hex((rgb.view(3) * 255).tolist())


def _number(value: Any, name: str, position: int) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise HintError(f"Hint {position}: '{name}' must be a number of pixels, not {value!r}.")
    return float(value)


def parse_hints(hints: Iterable[Any] | None) -> list[Hint]:
    """A list of `Hint` from Hint objects and dicts; raises HintError naming the bad one."""
    if hints is None:
        return []
    if isinstance(hints, (str, bytes, dict)) or not isinstance(hints, Iterable):
        raise HintError("Hints must be a list of points, each {\"x\": ..., \"y\": ..., \"color\": \"#rrggbb\", \"radius\": ...}.")
    parsed: list[Hint] = []
    for position, hint in enumerate(hints, start=1):
        if len(parsed) >= MAX_HINTS:
            raise HintError(f"At most {MAX_HINTS} hints can be given at once.")
        if isinstance(hint, Hint):
            values = hint.to_dict()
        elif isinstance(hint, dict):
            values = hint
        else:
            raise HintError(f"Hint {position} is not a point: give {{\"x\": ..., \"y\": ..., \"color\": \"#rrggbb\"}}.")
        unknown = sorted(set(values) - {"x", "y", "color", "radius"})
        if unknown:
            raise HintError(f"Hint {position} has an unknown field {unknown[0]!r}; a hint has x, y, color and radius.")
        for key in ("x", "y", "color"):
            if key not in values:
                raise HintError(f"Hint {position} has no {key!r}.")
        x, y = _number(values["x"], "x", position), _number(values["y"], "y", position)
        radius = values.get("radius")
        if radius is not None:
            radius = _number(radius, "radius", position)
            if radius < 0:
                raise HintError(f"Hint {position}: the radius must be 0 or more pixels, not {radius:g}.")
        try:
            hex_to_rgb(values["color"])
        except HintError as error:
            raise HintError(f"Hint {position}: {error}") from None
        parsed.append(Hint(x, y, "#" + values["color"].strip().lstrip("#").lower(), radius))
    return parsed


def read_hints_json(path: str | Path) -> list[Hint]:
    """Hints from a JSON file holding a list of hint dicts; raises HintError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HintError(f"There is no hints file at {path}.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise HintError(f"{path} cannot be read as a text file ({error}).") from None
    return hints_from_json(text, source=str(path))


def hints_from_json(text: str | bytes, *, source: str = "The hints file") -> list[Hint]:
    try:
        values = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise HintError(f"{source} is not valid JSON ({error}).") from None
    if isinstance(values, dict) and isinstance(values.get("hints"), list):
        values = values["hints"]  # the app's download also records the photo's size
    if not isinstance(values, list):
        raise HintError(f"{source} must hold a list of hints, each {{\"x\": ..., \"y\": ..., \"color\": \"#rrggbb\"}}.")
    return parse_hints(values)


def hints_to_json(hints: Iterable[Hint | dict], *, image_size: tuple[int, int] | None = None) -> str:
    """The JSON a hints file holds (a list of dicts), or with `image_size` (w, h) an object
    {"image_size": [w, h], "hints": [...]}, which `hints_from_json` reads as well."""
    listed = [hint.to_dict() for hint in parse_hints(hints)]
    if image_size is None:
        return json.dumps(listed, indent=1)
    return json.dumps({"image_size": list(image_size), "hints": listed}, indent=1)


def default_radius(image_size: tuple[int, int]) -> float:
    return DEFAULT_RADIUS_SHARE * min(image_size)


def check_inside(hints: Sequence[Hint], image_size: tuple[int, int]) -> None:
    width, height = image_size
    for position, hint in enumerate(hints, start=1):
        if not (0 <= hint.x < width and 0 <= hint.y < height):
            raise HintError(
                f"Hint {position} at ({hint.x:g}, {hint.y:g}) is outside the photo, which is {width}x{height} pixels."
            )


def hint_maps(
    hints: Sequence[Hint], image_size: tuple[int, int], shape: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(normalised ab (1, 2, h, w), mask (1, 1, h, w)) of `hints` on a photo of `image_size`
    (w, h) seen by the network at `shape` (h, w).

    Each hint covers the render pixels whose centres lie within its radius (scaled to the render
    size) of its point, and at least the pixel under the point; a later hint wins where two overlap.
    """
    check_inside(hints, image_size)
    height, width = shape
    ab = torch.zeros(1, 2, height, width)
    mask = torch.zeros(1, 1, height, width)
    scale_x, scale_y = width / image_size[0], height / image_size[1]
    ys = torch.arange(height, dtype=torch.float32)[:, None] + 0.5
    xs = torch.arange(width, dtype=torch.float32)[None, :] + 0.5
    for hint in hints:
        radius = default_radius(image_size) if hint.radius is None else hint.radius
        # the point's pixel centre, in render pixels
        x, y = (math.floor(hint.x) + 0.5) * scale_x, (math.floor(hint.y) + 0.5) * scale_y
        covered = (xs - x).square() / max(scale_x * radius, 1e-6) ** 2 + (ys - y).square() / max(scale_y * radius, 1e-6) ** 2 <= 1
        covered[min(height - 1, int(y)), min(width - 1, int(x))] = True
        a, b = colour_ab(hint.color)
        ab[0, 0][covered], ab[0, 1][covered] = a / color.AB_SCALE, b / color.AB_SCALE
        mask[0, 0][covered] = 1.0
    return ab, mask


def hint_image_maps(
    image: Image.Image | str | Path | bytes, image_size: tuple[int, int], shape: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(normalised ab, mask) at `shape` from a hint image: an RGBA picture of the photo's size whose
    pixels with alpha > 0 are hints of their colour. A render pixel is hinted where any of the
    photo's pixels it covers is; its ab is their alpha-weighted mean."""
    from .imageio import ImageLoadError, load_image

    try:
        picture = load_image(image, keep_alpha=True)
    except ImageLoadError as error:
        raise HintError(f"The hint image cannot be used: {error}") from None
    if picture.size != tuple(image_size):
        raise HintError(
            f"The hint image is {picture.width}x{picture.height} pixels but the photo is "
            f"{image_size[0]}x{image_size[1]}; paint the hints on a copy of the photo's size."
        )
    rgba = np.asarray(picture)
    alpha = torch.from_numpy(rgba[..., 3].astype(np.float32) / 255.0)[None, None]
    if not bool((alpha > 0).any()):
        return torch.zeros(1, 2, *shape), torch.zeros(1, 1, *shape)
    rgb = torch.from_numpy(rgba[..., :3].astype(np.float32) / 255.0).permute(2, 0, 1)
    ab = color.normalize_ab(color.rgb_to_lab(rgb)[1:])[None]
    sums = F.adaptive_avg_pool2d(torch.cat((ab * alpha, alpha), dim=1), shape)
    covered = F.adaptive_max_pool2d(alpha, shape) > 0
    mean_ab = sums[:, :2] / sums[:, 2:].clamp_min(1e-12)
    return torch.where(covered, mean_ab, torch.zeros_like(mean_ab)), covered.float()


def encode_hints(
    lightness: torch.Tensor, hint_ab: torch.Tensor, hint_mask: torch.Tensor, *, propagation: bool
) -> torch.Tensor:
    """The generator's hint channels (B, 3 or 6, h, w): hinted ab, mask[, spread ab, reach]."""
    mask = hint_mask.to(lightness.dtype)
    points = torch.cat((hint_ab.to(lightness.dtype) * mask, mask), dim=1)
    if not propagation:
        return points
    if not bool(mask.any()):
        return torch.cat((points, torch.zeros_like(points)), dim=1)
    spread, reach = spread_hints(lightness, hint_ab, mask)
    return torch.cat((points, spread.to(lightness.dtype), reach_channel(reach).to(lightness.dtype)), dim=1)


NEARNESS_RANGE = (0.05, 0.3)  # `region_reach` from "no hint's region" (0) to "a hint's region" (1)


def hint_nearness(lightness: torch.Tensor, channels: torch.Tensor) -> torch.Tensor:
    """(B, 1, h, w) in [0, 1]: how surely each pixel lies in a hint's region (`region_reach`), for
    normalised L (B, 1, h, w) and the hint channels of `encode_hints`: 1 through the regions the
    hints are in, 0 beyond the edges that bound them."""
    low, high = NEARNESS_RANGE
    mask = channels[:, POINT_CHANNELS - 1 : POINT_CHANNELS]
    return ((region_reach(lightness, mask) - low) / (high - low)).clamp(0.0, 1.0)


def snap_to_hints(
    lightness: torch.Tensor, ab: torch.Tensor, channels: torch.Tensor, strength: float, nearness: torch.Tensor
) -> torch.Tensor:
    """`ab` (B, 2, h, w) pulled by `strength` towards the hints' own colours over the hints'
    regions (`nearness`): each pixel there towards the colour of the hints it is connected to
    along the photo's edges (`spread_hints`: the nearest along the edges weigh most). At 1 a click
    fills its region with its colour, as Levin et al.'s optimisation would, and every hinted pixel
    has exactly its hint; beyond the hints' regions the network's colours stay."""
    mask = channels[:, POINT_CHANNELS - 1 : POINT_CHANNELS].to(ab.dtype)
    if channels.shape[1] > POINT_CHANNELS:  # `encode_hints` spread them already, the same way
        colour = channels[:, POINT_CHANNELS : POINT_CHANNELS + 2].to(ab.dtype)
    else:
        colour, _ = spread_hints(lightness, channels[:, :2].to(ab.dtype), mask)
    pull = strength * torch.maximum(nearness.to(ab.dtype), mask)
    return ab + pull * (colour - ab)


def keep_local(automatic: torch.Tensor, hinted: torch.Tensor, nearness: torch.Tensor, locality: float) -> torch.Tensor:
    """The hinted ab in the hints' regions (`nearness`) and, with `locality` 1, the automatic ab
    beyond them (0: the hinted network's output everywhere). A hint then recolours its own
    region, not the whole photo: the network alone also tints far, unrelated regions a little,
    which on average is closer to real photos (whose colours go together) but is not what a
    person who clicks on a door asks for."""
    weight = 1.0 - locality * (1.0 - nearness.to(hinted.dtype))
    return automatic + weight * (hinted - automatic)


# --------------------------------------------------------------------------------------------
# Simulated hints
# --------------------------------------------------------------------------------------------


def _centred_positions(count: int, size: int, generator: torch.Generator | None) -> torch.Tensor:
    """`count` integer positions in [0, size): normal around the centre, sd size/4 (Zhang et al.)."""
    positions = torch.randn(count, generator=generator) * (size / 4) + (size - 1) / 2
    return positions.round().clamp(0, size - 1).long()


def simulate_training_hints(
    ab: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    count: int | None = None,
    stop_probability: float = STOP_PROBABILITY,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(hint ab, mask) for a batch of real normalised ab (B, 2, H, W): see the module docstring.

    `count` points per image, or (None) a geometric number. Drawn from `generator` (None:
    torch's global RNG, which a training run saves for an exact resume).
    """
    batch, _, height, width = ab.shape
    total = MAX_TRAINING_POINTS if count is None else max(1, count)
    if count is None:
        # the number of points before the first stop: geometric on 0, 1, 2, ...
        uniform = torch.rand(batch, generator=generator)
        counts = (torch.log1p(-uniform) / math.log1p(-stop_probability)).floor().clamp(max=total).long()
    else:
        counts = torch.full((batch,), count, dtype=torch.long)
    sizes = torch.randint(PATCH_SIZES[0], PATCH_SIZES[1] + 1, (batch, total), generator=generator)
    ys = _centred_positions(batch * total, height, generator).view(batch, total)
    xs = _centred_positions(batch * total, width, generator).view(batch, total)
    active = torch.arange(total)[None] < counts[:, None]
    return _paint_square_patches(ab, ys, xs, sizes, active)


def _paint_square_patches(
    ab: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, sizes: torch.Tensor, active: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Square patches (B, K) of side `sizes` starting about `sizes // 2` before (y, x), each holding
    the mean of `ab` over it; overlapping patches average."""
    batch, _, height, width = ab.shape
    top = (ys - sizes // 2).clamp(0, height - 1)
    left = (xs - sizes // 2).clamp(0, width - 1)
    bottom = (top + sizes).clamp(max=height)
    right = (left + sizes).clamp(max=width)
    # patch means from a summed-area table
    table = F.pad(ab.float().cumsum(2).cumsum(3), (1, 0, 1, 0))
    flat = table.flatten(2)  # (B, 2, (H+1)(W+1))

    def at(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        index = (y * (width + 1) + x)[:, None].expand(-1, 2, -1)
        return flat.gather(2, index)

    area = ((bottom - top) * (right - left)).float()[:, None]
    means = (at(bottom, right) - at(top, right) - at(bottom, left) + at(top, left)) / area  # (B, 2, K)
    rows = torch.arange(height)[None, None, :, None]
    cols = torch.arange(width)[None, None, None, :]
    inside = (
        (rows >= top[..., None, None]) & (rows < bottom[..., None, None])
        & (cols >= left[..., None, None]) & (cols < right[..., None, None])
        & active[..., None, None]
    ).to(ab.dtype)  # (B, K, H, W)
    coverage = inside.sum(dim=1, keepdim=True)
    painted = torch.einsum("bck,bkhw->bchw", means.to(ab.dtype), inside)
    mask = (coverage > 0).to(ab.dtype)
    return painted / coverage.clamp_min(1), mask


def disc_colour(rgb: Image.Image, x: int, y: int, radius: float) -> str:
    """The mean Lab colour of the photo `rgb` over the disc of `radius` around (x, y), as "#rrggbb":
    the colour a person who knows the photo would give a hint there."""
    width, height = rgb.size
    reach = int(math.ceil(radius))
    box = (max(0, x - reach), max(0, y - reach), min(width, x + reach + 1), min(height, y + reach + 1))
    patch = torch.from_numpy(np.asarray(rgb.crop(box), np.float32) / 255.0).permute(2, 0, 1)
    py = torch.arange(box[1], box[3], dtype=torch.float32)[:, None] - y
    px = torch.arange(box[0], box[2], dtype=torch.float32)[None, :] - x
    inside = (px.square() + py.square() <= max(radius, 0.5) ** 2).float()
    lab = color.rgb_to_lab(patch)
    mean = (lab * inside).flatten(1).sum(1) / inside.sum()
    return lab_to_hex(*mean.tolist())


def simulate_user_hints(rgb: Image.Image, count: int, *, seed: int, radius: float | None = None) -> list[Hint]:
    """`count` hints a person could have given on the real photo `rgb`: points drawn (from `seed`)
    around the centre as in training, each the photo's mean Lab colour over the hint's disc."""
    if count <= 0:
        return []
    width, height = rgb.size
    radius = default_radius((width, height)) if radius is None else radius
    generator = torch.Generator().manual_seed(int(seed))
    hints = []
    for _ in range(count):  # one point at a time: the first n of a longer sequence are the same n
        y = int(_centred_positions(1, height, generator))
        x = int(_centred_positions(1, width, generator))
        hints.append(Hint(x, y, disc_colour(rgb, x, y, radius), radius))
    return hints
