"""The full-resolution composition as one compiled pass per pixel (numba), used by `colorize.compose`.

`compose_tile` does, for each pixel of a tile of 8-bit RGB, what `colorize.compose`'s torch path
does with a few dozen whole-tile tensor operations: Y of XYZ from three 256-entry tables, the
Lab f(Y) (a cube root), the bilinear row step of the ab upsampling, Lab -> scaled linear sRGB,
gamut fitting of the pixels sRGB cannot show, and the 8-bit encoding table. Intermediate values
live in registers and in a few row-sized scratch arrays, so a tile is read once and written once.

Why numba and why loops shaped like this: a pass over a megapixel of float32 costs about a
millisecond in torch, and the torch path needs dozens of them; the fused loop is memory-bound.
LLVM vectorises a loop only when it has no table look-ups (it does not emit gathers for the
CPUs we have) and no branches, so each row runs as three loops: table look-ups (scalar), the
arithmetic (vectorised for whatever the CPU has: AVX-512 here, AVX2 elsewhere, NEON on ARM,
because numba compiles for the host), then encoding, which is also where the rare out-of-gamut
pixels branch off to the same chroma fitting as the torch path (`compose._fit_gamut`). The cube
root starts from the exponent-thirding bit trick and takes three Newton steps (float32 precision).

numba is optional and imported only when `compile_kernel()` first runs (importing it takes a
second): `available()` says whether it is installed; `colorize.compose` falls back to its torch
path without it, and the tests check that both agree within one 8-bit level. Compiling takes
several seconds once per machine; numba caches the result next to this file (or in the user's
cache folder) and later processes load it (about a second: the app does it in the background).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import threading

import numpy as np

logger = logging.getLogger(__name__)

# Not "reassoc" (it would let LLVM reorder the sums and drift from the torch path), not "afn"
# (approximate atan2/hypot), and no "nnan"/"ninf": a NaN that reached a table index would read
# out of bounds. "arcp" only lets the Newton step divide by a reciprocal.
_FASTMATH = {"nsz", "contract", "arcp"}
_CUBE_ROOT_MAGIC = 0x2A5137A0  # float32 bits of y^(1/3) ~ this + bits(y) / 3 (within 4%)
CONSTANT_NAMES = ("epsilon", "kappa", "offset", "knee", "encode_steps", "gamut_tolerance", "gamut_steps")


def available() -> bool:
    """Whether numba is installed here (`pip install numba`); without it compose uses its torch path."""
    return importlib.util.find_spec("numba") is not None


def _scaled_rgb(y, fy, a, b, matrix, knee, inv_kappa):
    """Scaled linear sRGB of Lab given as Y, f(Y), a, b: `compose._scaled_linear_rgb` for one pixel."""
    zero = np.float32(0.0)
    fx = fy + a * np.float32(1.0 / 500.0)
    fz = max(fy - b * np.float32(1.0 / 200.0), zero)
    c = max(fx, knee)
    x = c * c * c + min(fx - knee, zero) * inv_kappa
    c = max(fz, knee)
    z = c * c * c + min(fz - knee, zero) * inv_kappa
    red = matrix[0, 0] * x + matrix[0, 1] * y + matrix[0, 2] * z
    green = matrix[1, 0] * x + matrix[1, 1] * y + matrix[1, 2] * z
    blue = matrix[2, 0] * x + matrix[2, 1] * y + matrix[2, 2] * z
    return red, green, blue


def _outside(red, green, blue, top, tolerance):
    low = min(min(red, green), blue)
    high = max(max(red, green), blue)
    return low < -tolerance or high > top + tolerance


def _lerp(start, end, weight):
    # torch.lerp's two-sided formula, so table reads agree with the torch path to the last bit
    if weight < 0.5:
        return start + weight * (end - start)
    return end - (end - start) * (np.float32(1.0) - weight)


def _atan2(y, x):
    """atan2 in float32 within 1e-7 rad, without libm's call (Abramowitz & Stegun 4.4.49 on [0, 1])."""
    ax, ay = abs(x), abs(y)
    high, low = max(ax, ay), min(ax, ay)
    t = low / high if high > 0 else np.float32(0.0)
    s = t * t
    r = np.float32(-0.0040540580)
    r = r * s + np.float32(0.0218612288)
    r = r * s + np.float32(-0.0559098861)
    r = r * s + np.float32(0.0964200441)
    r = r * s + np.float32(-0.1390853351)
    r = r * s + np.float32(0.1994653599)
    r = r * s + np.float32(-0.3332985605)
    r = (r * s + np.float32(0.9999993329)) * t
    if ay > ax:
        r = np.float32(np.pi / 2) - r
    if x < 0:
        r = np.float32(np.pi) - r
    return -r if y < 0 else r


def _largest_fitting_scale(y, fy, a, b, lower, upper, steps, matrix, knee, inv_kappa, top, tolerance):
    """`compose._largest_fitting_scale` for one pixel: bisection on the chroma factor."""
    low, high = lower, upper
    for _ in range(steps):
        middle = (low + high) * np.float32(0.5)
        red, green, blue = _scaled_rgb(y, fy, a * middle, b * middle, matrix, knee, inv_kappa)
        if _outside(red, green, blue, top, tolerance):
            high = middle
        else:
            low = middle
    return low


def _affine_channel_scale(gray, full, top, tolerance):
    """Largest s in [0, 1] keeping gray + s (full - gray) within [-tolerance, top + tolerance]."""
    if full < -tolerance:
        return (-tolerance - gray) / (full - gray)
    if full > top + tolerance:
        return (top + tolerance - gray) / (full - gray)
    return np.float32(1.0)


def _fit_pixel(y, fy, a, b, red, green, blue, boundary, matrix, knee, inv_kappa, top, tolerance, steps):
    """`compose._fit_gamut` for one pixel (red, green, blue: its unfitted scaled linear sRGB)."""
    zero = np.float32(0.0)
    fx, fz = fy + a * np.float32(1.0 / 500.0), fy - b * np.float32(1.0 / 200.0)
    if fy <= knee and fx <= knee and fz <= knee and fz >= zero:  # `compose._on_linear_segments`: closed form
        gray_r, gray_g, gray_b = _scaled_rgb(y, fy, zero, zero, matrix, knee, inv_kappa)
        scale = min(
            min(_affine_channel_scale(gray_r, red, top, tolerance), _affine_channel_scale(gray_g, green, top, tolerance)),
            _affine_channel_scale(gray_b, blue, top, tolerance),
        )
        return _scaled_rgb(y, fy, a * scale, b * scale, matrix, knee, inv_kappa)
    rows = boundary.shape[0]
    columns = boundary.shape[1] - 1  # the last column repeats the first (hue wraps around)
    chroma = np.sqrt(a * a + b * b)  # |ab| <= 1e6 (compose clamps it): no overflow to guard against
    hue = _atan2(b, a)
    row = min(max((fy * np.float32(116.0) - np.float32(16.0)) * np.float32((rows - 1) / 100.0), np.float32(0.0)), np.float32(rows - 1))
    column = hue * np.float32(columns / (2 * np.pi))
    column = column - np.float32(columns) * np.floor(column / np.float32(columns))
    row0 = min(np.floor(row), np.float32(rows - 2))
    column0 = min(np.floor(column), np.float32(columns - 1))
    i, j = int(row0), int(column0)
    row_weight, column_weight = row - row0, column - column0
    upper_edge = _lerp(boundary[i, j], boundary[i, j + 1], column_weight)
    lower_edge = _lerp(boundary[i + 1, j], boundary[i + 1, j + 1], column_weight)
    limit = _lerp(upper_edge, lower_edge, row_weight)
    scale = min(limit * np.float32(0.998) / max(chroma, np.float32(1e-6)), np.float32(1.0))
    red, green, blue = _scaled_rgb(y, fy, a * scale, b * scale, matrix, knee, inv_kappa)
    more = min(scale * np.float32(1.01), np.float32(1.0))
    if _outside(red, green, blue, top, tolerance):  # the table overshoots here: bisect below it
        best = _largest_fitting_scale(y, fy, a, b, np.float32(0.0), scale, steps, matrix, knee, inv_kappa, top, tolerance)
        return _scaled_rgb(y, fy, a * best, b * best, matrix, knee, inv_kappa)
    if more > scale:
        r2, g2, b2 = _scaled_rgb(y, fy, a * more, b * more, matrix, knee, inv_kappa)
        if not _outside(r2, g2, b2, top, tolerance):  # undershoots: 1% more still fits
            best = _largest_fitting_scale(y, fy, a, b, more, np.float32(1.0), steps, matrix, knee, inv_kappa, top, tolerance)
            return _scaled_rgb(y, fy, a * best, b * best, matrix, knee, inv_kappa)
    return red, green, blue


def _encode(target, x, red, green, blue, encode_table, encode_steps):
    """Scaled linear sRGB -> the 8-bit pixel `target[x]` (clipped first), as `compose._encode`."""
    zero = np.float32(0.0)
    target[x, 0] = encode_table[np.uint32(min(max(red, zero), encode_steps))]
    target[x, 1] = encode_table[np.uint32(min(max(green, zero), encode_steps))]
    target[x, 2] = encode_table[np.uint32(min(max(blue, zero), encode_steps))]


def compose_tile(
    rgb, ab_columns, row_low, row_high, row_weight, top, left, y_tables, matrix, encode_table, boundary, constants, fit, out
):
    """Write the composed 8-bit RGB of `rgb` ((h, w, 3) uint8, the image's rows top.. and columns left..) into `out`.

    ab_columns: (2, h_small, W) float32, ab already upsampled along the columns of the whole
    image; row_low/row_high/row_weight: the bilinear row taps of every image row. fit: fit
    out-of-gamut colours by chroma (else clip per channel, as `gamut="clip"`).
    """
    height, width = rgb.shape[0], rgb.shape[1]
    epsilon, kappa, offset, knee = constants[0], constants[1], constants[2], constants[3]
    encode_steps, tolerance, gamut_steps = constants[4], constants[5], int(constants[6])
    inv_kappa = np.float32(1.0) / kappa
    third = np.float32(1.0 / 3.0)
    table_r, table_g, table_b = y_tables[0], y_tables[1], y_tables[2]
    scratch = np.empty((8, width), dtype=np.float32)
    luminance, guess, f_y, a_row, b_row, red, green, blue = (
        scratch[0], scratch[1], scratch[2], scratch[3], scratch[4], scratch[5], scratch[6], scratch[7]
    )
    luminance_bits, guess_bits = luminance.view(np.int32), guess.view(np.int32)
    outside = np.empty(width, dtype=np.int32)
    for y in range(height):
        image_row = top + y
        low, high, weight = row_low[image_row], row_high[image_row], row_weight[image_row]
        a_low, a_high = ab_columns[0, low, left : left + width], ab_columns[0, high, left : left + width]
        b_low, b_high = ab_columns[1, low, left : left + width], ab_columns[1, high, left : left + width]
        pixels = rgb[y]
        for x in range(width):
            luminance[x] = table_r[pixels[x, 0]] + table_g[pixels[x, 1]] + table_b[pixels[x, 2]]
        for x in range(width):
            guess_bits[x] = np.int32(_CUBE_ROOT_MAGIC) + luminance_bits[x] // np.int32(3)
        for x in range(width):
            lum = luminance[x]
            f = guess[x]
            f = (f + f + lum / (f * f)) * third
            f = (f + f + lum / (f * f)) * third
            f = (f + f + lum / (f * f)) * third
            fy = f if lum > epsilon else lum * kappa + offset
            a = _lerp(a_low[x], a_high[x], weight)
            b = _lerp(b_low[x], b_high[x], weight)
            red[x], green[x], blue[x] = _scaled_rgb(lum, fy, a, b, matrix, knee, inv_kappa)
            f_y[x], a_row[x], b_row[x] = fy, a, b
        target = out[y]
        count = 0
        for x in range(width):
            r, g, bl = red[x], green[x], blue[x]
            if _outside(r, g, bl, encode_steps, tolerance):  # few: fitted after the row, off the hot loop
                outside[count] = x
                count += 1
            _encode(target, x, r, g, bl, encode_table, encode_steps)
        for k in range(count if fit else 0):
            x = outside[k]
            r, g, bl = _fit_pixel(
                luminance[x], f_y[x], a_row[x], b_row[x], red[x], green[x], blue[x],
                boundary, matrix, knee, inv_kappa, encode_steps, tolerance, gamut_steps,
            )
            _encode(target, x, r, g, bl, encode_table, encode_steps)


_COMPILED = (
    "_scaled_rgb", "_outside", "_lerp", "_atan2", "_encode", "_largest_fitting_scale", "_affine_channel_scale", "_fit_pixel",
    "compose_tile",
)
_COMPILE_LOCK = threading.Lock()  # a background warm-up and the first photo may both ask at once


@functools.cache
def compile_kernel() -> bool:
    """Compile (or load from numba's cache) `compose_tile` once; False, with a warning, if that fails.

    The functions above are plain Python until then; here each becomes its numba version, in
    place, so that `compose_tile` calls the compiled helpers.
    """
    if not available():
        return False
    with _COMPILE_LOCK:
        return _compile()


def _compile() -> bool:
    """Replace each function named in _COMPILED by its numba version (once) and run it on one pixel."""
    rgb = np.zeros((1, 1, 3), dtype=np.uint8)
    rgb.flags.writeable = False  # as the arrays of PIL images are: numba compiles per writability
    constants = np.array([0.008856, 7.787, 16 / 116, 0.2068966, 1.0, 0.0, 1.0], np.float32)  # CONSTANT_NAMES
    try:
        import numba

        jit = numba.njit(nogil=True, cache=True, fastmath=_FASTMATH, error_model="numpy", boundscheck=False)
        module = globals()
        for name in _COMPILED:
            if not hasattr(module[name], "py_func"):  # not compiled yet
                module[name] = jit(module[name])
        compose_tile(
            rgb,
            np.zeros((2, 1, 1), np.float32),
            np.zeros(1, np.int64),
            np.zeros(1, np.int64),
            np.zeros(1, np.float32),
            0,
            0,
            np.zeros((3, 256), np.float32),
            np.zeros((3, 3), np.float32),
            np.zeros(2, np.uint8),
            np.ones((2, 2), np.float32),
            constants,
            True,
            np.zeros((1, 1, 3), dtype=np.uint8),
        )
    except Exception as error:  # a broken numba/llvmlite, an LLVM problem: the torch path still works
        logger.warning("The compiled full-resolution kernel is unavailable (%s); using the torch path.", error)
        return False
    return True
