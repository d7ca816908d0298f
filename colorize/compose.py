"""Full-resolution composition: the image's own L joined to upsampled ab, tile by tile.

`compose(image, ab)` is the last step of every colourisation (see `colorize.infer`). It keeps
the exact luminance of the input (up to 8-bit rounding): only the Y of XYZ is read from the
pixels (three 256-entry tables), the predicted ab is upsampled bilinearly (PyTorch's
`align_corners=False` convention) and Lab goes back to sRGB through the XYZ matrix and a
2^20-entry encoding table. Everything is float32 and runs in tiles of about `chunk_pixels`
pixels, so memory grows with the 8-bit input and output images, not with float copies of them.

Two kernels do the per-pixel work (`KERNELS`), on the same tables and constants, and give the
same image within one 8-bit level (tested): "torch", whole-tile tensor operations, and "numba"
(`colorize.fused`), the same arithmetic as one compiled pass per pixel, where a tile of 64 K
pixels is read once, written once and stays in the core's cache, and the tiles are spread over
a thread pool of `torch.get_num_threads()` workers (the kernel releases the GIL). `kernel="auto"`
takes numba when it imports and compiles and falls back to torch otherwise. Both read the image
tile by tile (`Image.crop`) and paste each result into an output image that is never zero-filled,
so there is no temporary the size of the image, and no float64.

Why not `color.lab_to_rgb` on whole tensors: at 1024x768 that costs more than the network. In the
torch kernel every pass over the pixels counts: the scale of the encoding table is folded into the
matrix, the Lab companding inverse is a branch-free clamp-cube-add (the linear piece is the
cube's tangent at the knee), and the cube root of Y is taken everywhere and only the few
near-black pixels are patched; Y comes from `np.take` on three 256-entry tables. It is still a
few dozen passes over each tile: `python -m colorize.bench` ("Where the time goes") measures it
at several times the compiled kernel's time.

A predicted colour that sRGB cannot show (a saturated colour at near-black L, say) keeps its L
and hue and loses chroma until it fits (`gamut="chroma"`). The largest chroma sRGB holds at each
(L, hue) is tabulated once (`_GamutBoundary`, 0.39 L units x 1 degree, found by bisection) and
read bilinearly, so fitting costs a few passes over the out-of-gamut pixels instead of a
bisection over each of them. Dark colours (L <= 8, most of the out-of-gamut pixels of a photo's
shadows) skip the table: there X and Z stay on f^-1's linear piece, linear sRGB is affine in the
chroma factor, and the largest factor that fits has a closed form. Where the table overshoots
(sharp corners of the gamut, such as the yellow cusp near L = 96), those pixels are bisected exactly; where it undershoots there, a
colour keeps a little less chroma than sRGB could show. Per-channel clipping (`gamut="clip"`, what
`skimage.color.lab2rgb` does) changes L there instead.
"""

from __future__ import annotations

import functools
import math
from typing import Iterable

import numpy as np
import torch
from PIL import Image

from . import color, fastpath, fused

KERNELS = ("auto", "numba", "torch")
"""Which code does the per-pixel work. "numba": `colorize.fused`, one compiled pass per pixel, tiles
spread over the cores (needs numba); "torch": whole-tile tensor operations (no extra dependency,
several times slower); "auto" (default): numba where it imports and compiles, else torch. Both
give the same image within one 8-bit level (tested)."""
KERNEL_CHUNK_PIXELS = {
    "numba": 1 << 16,  # 64 K pixels: a tile's input, output and scratch stay in a core's L2 cache
    "torch": 1 << 20,  # 1 MP: ~60 MB of float temporaries; smaller tiles pay torch's per-call overhead
}

GAMUT_MODES = ("chroma", "clip")
"""How a predicted colour outside sRGB is shown. "chroma" (default) lowers that pixel's chroma,
keeping its hue and its lightness, until it fits; "clip" clips each RGB channel (as
`skimage.color.lab2rgb` does), which shifts hue and lightness where the prediction is impossible,
e.g. a saturated colour at near-black or near-white L."""

_LEVELS = np.arange(256, dtype=np.float64) / 255.0
_LINEAR = np.where(_LEVELS > 0.04045, ((_LEVELS + 0.055) / 1.055) ** 2.4, _LEVELS / 12.92)
# Y of XYZ (D65 white has Y = 1) is a weighted sum of the linearised channels: one table each.
_Y_TABLES = tuple((_LINEAR * weight).astype(np.float32) for weight in color.XYZ_FROM_RGB[1])

# Linear light is carried scaled by _ENCODE_STEPS, so that truncation gives the table index;
# entry i holds round(255 * srgb) of the middle of its step. 2^20 steps make the table exact
# except within 0.003 of a level's rounding boundary (the sRGB slope is at most 12.92).
_ENCODE_STEPS = (1 << 20) - 1
_ENCODE_TABLE = (
    (
        color.linear_to_srgb(((torch.arange(_ENCODE_STEPS + 1, dtype=torch.float64) + 0.5) / _ENCODE_STEPS).clamp(max=1.0))
        * 255.0
    )
    .round()
    .to(torch.uint8)
)
# (fx^3, Y, fz^3) -> scaled linear sRGB, with the D65 white folded in.
_SCALED_RGB_FROM_FXYZ = (
    torch.linalg.inv(torch.tensor(color.XYZ_FROM_RGB, dtype=torch.float64))
    * torch.tensor(color.D65_WHITE, dtype=torch.float64)
    * _ENCODE_STEPS
).float()
_GAMUT_TOLERANCE = 1e-5 * _ENCODE_STEPS
_LARGEST_AB = 1e6
_GAMUT_STEPS = 8  # bisection steps where the table overshoots: chroma within 1/256 of the largest that fits

# The same tables and constants as numpy arrays, for `colorize.fused` (in the order of fused.CONSTANT_NAMES).
_Y_TABLE_ARRAY = np.stack(_Y_TABLES)
_SCALED_RGB_FROM_FXYZ_ARRAY = np.ascontiguousarray(_SCALED_RGB_FROM_FXYZ.numpy())  # C order: one numba signature
_ENCODE_TABLE_ARRAY = _ENCODE_TABLE.numpy()
_FUSED_CONSTANTS = np.array(
    [color.LAB_EPSILON, color.LAB_KAPPA, color.LAB_OFFSET, color.LAB_INVERSE_KNEE, _ENCODE_STEPS, _GAMUT_TOLERANCE, _GAMUT_STEPS],
    dtype=np.float32,
)


def _relative_luminance(rgb8: np.ndarray) -> torch.Tensor:
    """Y of XYZ (float32, (H, W)) of an 8-bit sRGB array (H, W, 3): three table look-ups."""
    rgb8 = np.asarray(rgb8)
    if rgb8.dtype != np.uint8 or rgb8.ndim != 3 or rgb8.shape[-1] != 3:
        raise ValueError("Expected an 8-bit RGB array shaped (H, W, 3).")
    y = np.take(_Y_TABLES[0], rgb8[..., 0])  # take: same result as fancy indexing, 40% faster
    y += np.take(_Y_TABLES[1], rgb8[..., 1])
    y += np.take(_Y_TABLES[2], rgb8[..., 2])
    return torch.from_numpy(y)


def _lab_f(y: torch.Tensor) -> torch.Tensor:
    """The Lab companding function f of CIE 1976 for Y >= 0 (as in `color.rgb_to_lab`), new tensor."""
    f = y.pow(1.0 / 3.0)
    flat_y = y.reshape(-1)
    dark = (flat_y <= color.LAB_EPSILON).nonzero().squeeze(1)  # few pixels: fix them rather than branch everywhere
    if dark.numel():
        f.view(-1).index_copy_(0, dark, flat_y.index_select(0, dark).mul_(color.LAB_KAPPA).add_(color.LAB_OFFSET))
    return f


def _lab_f_inverse_(f: torch.Tensor) -> torch.Tensor:
    """f -> f^3 above the knee, (f - 16/116) / kappa below, in place.

    Written as clamp(f, min=knee)^3 + min(f - knee, 0) / kappa: the linear piece is the cube's
    tangent at the knee, so this equals the two-piece definition and needs no mask.
    """
    knee = color.LAB_INVERSE_KNEE
    below = torch.clamp(f, max=knee).sub_(knee)
    return f.clamp_(min=knee).pow_(3).add_(below, alpha=1.0 / color.LAB_KAPPA)


def luminance(rgb8: np.ndarray) -> torch.Tensor:
    """Lab L in [0, 100] (float32, shape (H, W)) of an 8-bit sRGB array shaped (H, W, 3).

    Agrees with `color.rgb_to_luminance` to float32 precision at a fraction of the cost:
    L needs only the Y of XYZ.
    """
    return _lab_f(_relative_luminance(rgb8)).mul_(116.0).sub_(16.0)


def _scaled_linear_rgb(y: torch.Tensor, fy: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Linear sRGB x _ENCODE_STEPS (3, N), unclipped, of Lab given as Y, f(Y) and a, b (all (N,))."""
    xyz = torch.empty((3, y.shape[0]), dtype=torch.float32)
    _lab_f_inverse_(torch.add(fy, a, alpha=1.0 / 500.0, out=xyz[0]))
    xyz[1].copy_(y)
    _lab_f_inverse_(torch.sub(fy, b, alpha=1.0 / 200.0, out=xyz[2]).clamp_(min=0.0))
    return torch.mm(_SCALED_RGB_FROM_FXYZ, xyz)


def _outside(linear: torch.Tensor) -> torch.Tensor:
    # minimum/maximum of the three rows: ~4x faster than aminmax(dim=0) across them, same result
    red, green, blue = linear.unbind(0)
    low = torch.minimum(torch.minimum(red, green), blue)
    high = torch.maximum(torch.maximum(red, green), blue)
    return (low < -_GAMUT_TOLERANCE) | (high > _ENCODE_STEPS + _GAMUT_TOLERANCE)


def _largest_fitting_scale(
    y: torch.Tensor,
    fy: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    upper: torch.Tensor | float,
    steps: int,
    lower: torch.Tensor | float = 0.0,
) -> torch.Tensor:
    """Largest s in [lower, upper] for which (L, s a, s b) is in sRGB, by bisection (`lower` must fit).

    Along a ray from gray at constant L the gamut is one interval (it is convex and holds the
    gray), so bisection finds its end, within (upper - lower) / 2^steps.
    """
    low = torch.zeros_like(y) + lower
    high = torch.zeros_like(y) + upper
    for _ in range(steps):
        middle = (low + high) * 0.5
        fits = ~_outside(_scaled_linear_rgb(y, fy, a * middle, b * middle))
        low = torch.where(fits, middle, low)
        high = torch.where(fits, high, middle)
    return low


class _GamutBoundary:
    """The largest chroma sRGB can show at each (L, hue), on a grid, read bilinearly."""

    LIGHTNESS_STEPS = 257  # L = 0, 0.39, ..., 100
    HUE_STEPS = 360  # one degree
    MAX_CHROMA = 200.0  # more than any sRGB colour has (about 134)
    BISECTION_STEPS = 24

    def __init__(self) -> None:
        lightness = torch.linspace(0.0, 100.0, self.LIGHTNESS_STEPS, dtype=torch.float64)
        hue = torch.arange(self.HUE_STEPS, dtype=torch.float64) * (2 * math.pi / self.HUE_STEPS)
        grid_l, grid_h = (t.reshape(-1) for t in torch.meshgrid(lightness, hue, indexing="ij"))
        fy = (grid_l + 16.0) / 116.0
        y = torch.where(fy > color.LAB_INVERSE_KNEE, fy**3, (fy - color.LAB_OFFSET) / color.LAB_KAPPA)
        y, fy, cos, sin = (t.float() for t in (y, fy, grid_h.cos(), grid_h.sin()))
        low = _largest_fitting_scale(y, fy, cos, sin, self.MAX_CHROMA, self.BISECTION_STEPS)
        table = low.view(self.LIGHTNESS_STEPS, self.HUE_STEPS)
        self.table = torch.cat((table, table[:, :1]), dim=1).contiguous()  # hue wraps around

    def max_chroma(self, lightness: torch.Tensor, hue: torch.Tensor) -> torch.Tensor:
        """Largest chroma in sRGB at `lightness` (0-100) and `hue` (radians, any range), (N,)."""
        row = (lightness * ((self.LIGHTNESS_STEPS - 1) / 100.0)).clamp_(0.0, self.LIGHTNESS_STEPS - 1.0)
        column = torch.remainder(hue * (self.HUE_STEPS / (2 * math.pi)), float(self.HUE_STEPS))
        row0 = row.floor().clamp_(max=self.LIGHTNESS_STEPS - 2)
        column0 = column.floor().clamp_(max=self.HUE_STEPS - 1)
        row_weight, column_weight = row - row0, column - column0
        width = self.HUE_STEPS + 1
        corner = (row0 * width + column0).long()
        flat = self.table.view(-1)
        top = torch.lerp(flat[corner], flat[corner + 1], column_weight)
        bottom = torch.lerp(flat[corner + width], flat[corner + width + 1], column_weight)
        return torch.lerp(top, bottom, row_weight)


@functools.cache
def _gamut_boundary() -> _GamutBoundary:
    return _GamutBoundary()


def _on_linear_segments(fy: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Whether X and Z stay on the linear piece of f^-1 for every chroma factor in [0, 1].

    There (dark colours, L <= 8, the bulk of the out-of-gamut pixels of a photo's shadows)
    linear sRGB is affine in the chroma factor, and the largest one that fits has a closed form.
    """
    knee = color.LAB_INVERSE_KNEE
    fx, fz = fy + a * (1.0 / 500.0), fy - b * (1.0 / 200.0)
    return (fy <= knee) & (fx <= knee) & (fz <= knee) & (fz >= 0.0)


def _affine_fitting_scale(gray: torch.Tensor, full: torch.Tensor) -> torch.Tensor:
    """Largest s in [0, 1] with gray + s (full - gray) inside the gamut in every channel ((3, N) -> (N,))."""
    low, high = -_GAMUT_TOLERANCE, _ENCODE_STEPS + _GAMUT_TOLERANCE
    step = full - gray  # non-zero wherever it is divided by: gray is inside, full is not
    below = torch.where(full < low, (low - gray) / step, 1.0)
    above = torch.where(full > high, (high - gray) / step, 1.0)
    return torch.minimum(below, above).amin(dim=0)


def _fit_gamut(linear: torch.Tensor, y: torch.Tensor, fy: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
    """Move out-of-gamut pixels of `linear` (in place) towards gray at constant L and hue."""
    index = _outside(linear).nonzero().squeeze(1)
    if index.numel() == 0:
        return
    y, fy, a, b = (t.index_select(0, index) for t in (y, fy, a, b))
    affine = _on_linear_segments(fy, a, b)
    chroma = torch.hypot(a, b)
    limit = _gamut_boundary().max_chroma(fy * 116.0 - 16.0, torch.atan2(b, a))
    scale = (limit * 0.998 / chroma.clamp(min=1e-6)).clamp_(max=1.0)  # a hair inside the table
    zero = torch.zeros_like(a)
    exact = _affine_fitting_scale(_scaled_linear_rgb(y, fy, zero, zero), linear.index_select(1, index))
    scale = torch.where(affine, exact, scale)
    fitted = _scaled_linear_rgb(y, fy, a * scale, b * scale)
    # The table is bilinear between exact grid points. Where the gamut has a sharp corner (the
    # yellow cusp near L = 96) it is off by more: those few pixels are bisected exactly, below
    # the table's value where it overshoots, above it where 1% more chroma still fits.
    more = (scale * 1.01).clamp_(max=1.0)
    overshoot = _outside(fitted) & ~affine
    undershoot = (more > scale) & ~affine & ~_outside(_scaled_linear_rgb(y, fy, a * more, b * more))
    for wrong, lower, upper in ((overshoot, torch.zeros_like(scale), scale), (undershoot, more, torch.ones_like(scale))):
        redo = wrong.nonzero().squeeze(1)
        if redo.numel():
            y_, fy_, a_, b_, lower, upper = (t.index_select(0, redo) for t in (y, fy, a, b, lower, upper))
            best = _largest_fitting_scale(y_, fy_, a_, b_, upper, _GAMUT_STEPS, lower=lower)
            fitted.index_copy_(1, redo, _scaled_linear_rgb(y_, fy_, a_ * best, b_ * best))
    linear.index_copy_(1, index, fitted)


def _encode(linear: torch.Tensor) -> torch.Tensor:
    """Scaled linear sRGB -> 8-bit sRGB (clipped first) through the encoding table."""
    index = linear.clamp_(0.0, float(_ENCODE_STEPS)).to(torch.int32)
    return _ENCODE_TABLE.index_select(0, index.view(-1)).view(index.shape)


def _bilinear_taps(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source indices and weights of `F.interpolate(mode="bilinear", align_corners=False)` along one axis."""
    scale = n_in / n_out
    source = ((torch.arange(n_out, dtype=torch.float64) + 0.5) * scale - 0.5).clamp(min=0.0)
    low = source.floor().long().clamp(max=n_in - 1)
    high = (low + 1).clamp(max=n_in - 1)
    weight = (source - low).float()
    return low, high, weight


def _tiles(height: int, width: int, chunk_pixels: int) -> Iterable[tuple[int, int, int, int]]:
    """(top, bottom, left, right) tiles of about `chunk_pixels`: full rows, or row pieces if one row is larger."""
    chunk_pixels = max(1, int(chunk_pixels))
    tile_w = min(width, chunk_pixels)
    tile_h = max(1, chunk_pixels // tile_w)
    for top in range(0, height, tile_h):
        for left in range(0, width, tile_w):
            yield top, min(height, top + tile_h), left, min(width, left + tile_w)


def compose(
    image: Image.Image,
    ab: torch.Tensor,
    *,
    saturation: float = 1.0,
    chunk_pixels: int | None = None,
    gamut: str = "chroma",
    kernel: str = "auto",
) -> Image.Image:
    """Join the full-resolution L of `image` (RGB) with `ab` (Lab units, shape (2, h, w), any h, w).

    `ab` is bilinearly resized to the image's size and scaled by `saturation`; the work is
    done in tiles of about `chunk_pixels` (None: the kernel's own size), and the result does
    not depend on the tile size. `gamut` says what happens to a colour sRGB cannot show (see
    `GAMUT_MODES`); `kernel` which code does the per-pixel work (see `KERNELS`).
    """
    if gamut not in GAMUT_MODES:
        raise ValueError(f"Unknown gamut mode '{gamut}'; choose one of {', '.join(GAMUT_MODES)}.")
    if image.mode != "RGB":
        raise ValueError("compose() expects an RGB image; open inputs with colorize.imageio.load_image.")
    kernel = resolve_kernel(kernel)
    width, height = image.size
    ab = ab.detach().to("cpu", torch.float32)
    if ab.ndim == 4:
        ab = ab[0]
    if saturation != 1.0:
        ab = ab * float(saturation)
    # Far beyond any colour (sRGB chroma ends near 134), and finite: the kernels index tables
    # with values computed from ab, so a NaN or an overflow must not reach them.
    ab = torch.nan_to_num(ab, nan=0.0).clamp_(-_LARGEST_AB, _LARGEST_AB)
    rows = _bilinear_taps(ab.shape[-2], height)
    low, high, weight = _bilinear_taps(ab.shape[-1], width)
    # columns once for the whole width (2 x h x width floats: a few MB), rows tile by tile, where
    # a gather copies whole rows: ~20% faster than gathering columns in every tile.
    # np.take, not index_select: torch's gather along the last dimension took 3-6 ms even at 1 MP
    pixels = ab.contiguous().numpy()
    ab_columns = torch.lerp(*(torch.from_numpy(np.take(pixels, taps.numpy(), axis=2)) for taps in (low, high)), weight)
    if chunk_pixels is None:
        chunk_pixels = KERNEL_CHUNK_PIXELS[kernel]
    if kernel == "numba":
        tile_image = _NumbaTiles(image, ab_columns, rows, gamut)
    else:
        tile_image = functools.partial(_torch_tile, image, ab_columns, rows, gamut)
    # Not initialised: every pixel is written below, and zero-filling a 12 MP image first costs
    # as much as composing it (each fresh page is a fault on first touch).
    output = Image.new("RGB", (width, height), None)

    def paste(tile: tuple[int, int, int, int]) -> None:
        top, _, left, _ = tile
        output.paste(tile_image(tile), (left, top))

    tiles = list(_tiles(height, width, chunk_pixels))
    workers = min(len(tiles), torch.get_num_threads())
    if kernel == "numba" and workers > 1:
        # The compiled kernel releases the GIL: one tile per core at a time. (The torch path
        # is already spread over the cores by torch's own threads.)
        for _ in fastpath.thread_pool(workers).map(paste, tiles):
            pass
    else:
        for tile in tiles:
            paste(tile)
    return output


def _torch_tile(
    image: Image.Image, ab_columns: torch.Tensor, rows: tuple[torch.Tensor, ...], gamut: str, tile: tuple[int, int, int, int]
) -> Image.Image:
    """One tile composed with whole-tile tensor operations: the pure path (no compiled code)."""
    top, bottom, left, right = tile
    y = _relative_luminance(np.asarray(image.crop((left, top, right, bottom)))).reshape(-1)  # no full-size copy
    fy = _lab_f(y)
    low, high, weight = (t[top:bottom] for t in rows)
    source = ab_columns[:, :, left:right]
    ab_tile = torch.lerp(source.index_select(1, low), source.index_select(1, high), weight[:, None]).reshape(2, -1)
    linear = _scaled_linear_rgb(y, fy, ab_tile[0], ab_tile[1])
    if gamut == "chroma":
        _fit_gamut(linear, y, fy, ab_tile[0], ab_tile[1])
    size = (right - left, bottom - top)
    planes = [Image.frombuffer("L", size, plane.numpy(), "raw", "L", 0, 1) for plane in _encode(linear)]
    return Image.merge("RGB", planes)  # PIL interleaves the planes quickly


class _NumbaTiles:
    """One tile composed by `colorize.fused.compose_tile` (one compiled pass): the arrays it reads, made once per image."""

    def __init__(self, image: Image.Image, ab_columns: torch.Tensor, rows: tuple[torch.Tensor, ...], gamut: str) -> None:
        self.image = image
        self.ab_columns = ab_columns.contiguous().numpy()
        self.rows = tuple(t.contiguous().numpy() for t in rows)
        self.fit = gamut == "chroma"
        # read only for out-of-gamut pixels; with gamut="clip" a stand-in of the same type will do
        self.boundary = _gamut_boundary().table.numpy() if self.fit else np.ones((2, 2), np.float32)

    def __call__(self, tile: tuple[int, int, int, int]) -> Image.Image:
        top, bottom, left, right = tile
        rgb8 = np.asarray(self.image.crop((left, top, right, bottom)))
        out = np.empty_like(rgb8)
        fused.compose_tile(
            rgb8, self.ab_columns, *self.rows, top, left, _Y_TABLE_ARRAY, _SCALED_RGB_FROM_FXYZ_ARRAY,
            _ENCODE_TABLE_ARRAY, self.boundary, _FUSED_CONSTANTS, self.fit, out,
        )
        return Image.fromarray(out)


def resolve_kernel(kernel: str) -> str:
    """"auto" -> "numba" where numba imports and the kernel compiles (once per process), else "torch"."""
    if kernel not in KERNELS:
        raise ValueError(f"Unknown compose kernel '{kernel}'; choose one of {', '.join(KERNELS)}.")
    if kernel == "torch":
        return kernel
    if fused.compile_kernel():
        return "numba"
    if kernel == "numba":
        raise RuntimeError("The numba compose kernel is not available here: install numba (pip install numba) or use kernel='torch'.")
    return "torch"
