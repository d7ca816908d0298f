"""Spreading sparse colour hints over an image along its lightness: two ways.

`spread_hints` is what the hint-taking generator gets beside the points themselves: an
edge-aware normalised convolution (the recursive filter of Gastal and Oliveira's domain
transform, 2011) of the hinted ab and of the hint mask, both in torch and batched. It gives
every pixel the colour of the hints it is connected to by a path that crosses few lightness
edges (`colour`), and how strongly it is connected to any (`reach`, decaying with that
path's length). Why give the network this: a U-Net trained on a CPU for hours learns to obey
a hint where it is placed, but spreads it as a small halo; this tells it at once which pixels
share a hint's region, and the network learns when to believe it (Levin's optimisation below
fills regions, but needs a sparse solve per image, too slow to run on every training crop).
Its cost grows with the pixel count: a few tens of milliseconds for a batch of 128 px crops.

`levin_colorize` is the classic training-free baseline, Levin, Lischinski and Weiss 2004,
"Colorization using Optimization": every unhinted pixel's ab is the affinity-weighted mean of
its 3x3 neighbours' (affinity falling with the lightness difference, scaled by the local
lightness variance, as in the authors' own code), hinted pixels keep their hint; one sparse
linear system per image (scipy). With no hint the image stays gray.
"""

from __future__ import annotations

import logging
import math
import threading

import numpy as np
import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

SPATIAL_SIGMA = 48.0  # pixels: how far a hint reaches along a flat region (at the network's render size)
RANGE_SIGMA = 0.3  # in L/100 units: a lightness step this big costs as much as SPATIAL_SIGMA pixels of distance
GUIDE_BLUR = 1.0  # pixels: the guide is smoothed first, so fine texture (cloth, grass) is not taken for edges
ITERATIONS = 3
REACH_FLOOR = 1e-8  # reach below this is "no hint nearby": the transformed reach channel is 0 there


def _domain_steps(guide: torch.Tensor, dim: int, spatial_sigma: float, range_sigma: float) -> torch.Tensor:
    """Distance in the domain transform between neighbours along `dim` (one less entry there)."""
    difference = guide.diff(dim=dim).abs().sum(dim=1, keepdim=True)
    return 1.0 + (spatial_sigma / range_sigma) * difference


def _recursive_pass(values: torch.Tensor, feedback: torch.Tensor, dim: int) -> torch.Tensor:
    """Causal then anti-causal first-order recursive filter along `dim` (3 or 2), in place on a copy.

    `feedback[..., i]` is the weight of sample i on sample i + 1 (one less entry along `dim`).
    """
    values = values.movedim(dim, 0).clone()
    feedback = feedback.movedim(dim, 0)
    for index in range(1, values.shape[0]):
        values[index] += feedback[index - 1] * (values[index - 1] - values[index])
    for index in range(values.shape[0] - 2, -1, -1):
        values[index] += feedback[index] * (values[index + 1] - values[index])
    return values.movedim(0, dim)


def _rows_kernel(values, feedback):  # pragma: no cover - compiled by numba
    """`_recursive_pass` along the last axis of values (B, C, H, W), in place; feedback (B, H, W - 1)."""
    batch, channels, height, width = values.shape
    for b in range(batch):
        for c in range(channels):
            for y in range(height):
                row, weights = values[b, c, y], feedback[b, y]
                for x in range(1, width):
                    row[x] += weights[x - 1] * (row[x - 1] - row[x])
                for x in range(width - 2, -1, -1):
                    row[x] += weights[x] * (row[x + 1] - row[x])


def _columns_kernel(values, feedback):  # pragma: no cover - compiled by numba
    """`_recursive_pass` along axis 2 of values (B, C, H, W), in place; feedback (B, H - 1, W).
    Row by row, so that the inner loop runs along memory."""
    batch, channels, height, width = values.shape
    for b in range(batch):
        for c in range(channels):
            plane = values[b, c]
            for y in range(1, height):
                for x in range(width):
                    plane[y, x] += feedback[b, y - 1, x] * (plane[y - 1, x] - plane[y, x])
            for y in range(height - 2, -1, -1):
                for x in range(width):
                    plane[y, x] += feedback[b, y, x] * (plane[y + 1, x] - plane[y, x])


_KERNELS: dict = {}
_KERNEL_LOCK = threading.Lock()


def _compiled_kernels():
    """The two kernels compiled by numba (once, then from numba's disk cache), or None without numba."""
    with _KERNEL_LOCK:
        if "rows" not in _KERNELS:
            try:
                import numba

                jit = numba.njit(nogil=True, cache=True, error_model="numpy", boundscheck=False)
                _KERNELS["rows"], _KERNELS["columns"] = jit(_rows_kernel), jit(_columns_kernel)
            except Exception as error:  # not installed, or a broken install: the torch loop answers
                logger.debug("numba unavailable for the domain transform (%s); using torch.", error)
                _KERNELS["rows"] = _KERNELS["columns"] = None
        return (_KERNELS["rows"], _KERNELS["columns"]) if _KERNELS["rows"] is not None else None


def domain_transform_filter(
    values: torch.Tensor,
    guide: torch.Tensor,
    *,
    spatial_sigma: float = SPATIAL_SIGMA,
    range_sigma: float = RANGE_SIGMA,
    iterations: int = ITERATIONS,
    kernel: str = "auto",
) -> torch.Tensor:
    """`values` (B, C, H, W) smoothed along the edges of `guide` (B, G, H, W, in [0, 1] units):
    Gastal and Oliveira's recursive filter, `iterations` horizontal + vertical rounds.

    `kernel`: "numba" runs the recursions compiled (about a millisecond for a render-size image),
    "torch" as a loop of tensor operations over rows and columns (tens of milliseconds of Python
    steps), "auto" numba where it is installed. Both do the same float32 sums in the same order.
    """
    # float32, or float64 for sums whose ratio matters far from the hints (`region_reach`)
    values = values if values.dtype == torch.float64 else values.float()
    steps_x = _domain_steps(guide.to(values.dtype), 3, spatial_sigma, range_sigma)
    steps_y = _domain_steps(guide.to(values.dtype), 2, spatial_sigma, range_sigma)
    kernels = _compiled_kernels() if kernel in ("auto", "numba") and values.device.type == "cpu" else None
    if kernel == "numba" and kernels is None:
        raise RuntimeError("The numba kernel of the domain transform needs numba (pip install numba) and a CPU tensor.")
    if kernels is not None:
        array = values.detach().contiguous().numpy().copy()
    for round_index in range(iterations):
        sigma = spatial_sigma * math.sqrt(3.0) * 2 ** (iterations - round_index - 1) / math.sqrt(4**iterations - 1)
        decay = math.exp(-math.sqrt(2.0) / sigma)
        feedback_x, feedback_y = decay**steps_x, decay**steps_y
        if kernels is None:
            values = _recursive_pass(values, feedback_x, 3)
            values = _recursive_pass(values, feedback_y, 2)
        else:
            kernels[0](array, feedback_x[:, 0].contiguous().numpy())
            kernels[1](array, feedback_y[:, 0].contiguous().numpy())
    return values if kernels is None else torch.from_numpy(array).to(values.device)


def _gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    kernel = torch.exp(-taps.square() / (2 * sigma**2))
    kernel = (kernel / kernel.sum()).repeat(image.shape[1], 1, 1, 1)
    padded = F.pad(image, (radius, radius, 0, 0), mode="replicate")
    image = F.conv2d(padded, kernel.view(-1, 1, 1, 2 * radius + 1), groups=image.shape[1])
    padded = F.pad(image, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(padded, kernel.view(-1, 1, 2 * radius + 1, 1), groups=image.shape[1])


def spread_hints(
    lightness: torch.Tensor,
    hint_ab: torch.Tensor,
    hint_mask: torch.Tensor,
    *,
    spatial_sigma: float = SPATIAL_SIGMA,
    range_sigma: float = RANGE_SIGMA,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(colour (B, 2, H, W), reach (B, 1, H, W)) of hints spread along the edges of `lightness`.

    `lightness`: normalised L (B, 1, H, W); `hint_ab`: normalised ab, read where `hint_mask`
    (B, 1, H, W, 0 or 1) is set. `colour` is the reach-weighted mean of the hints (0 where no
    hint reaches); `reach` in [0, 1] the filtered mask: near the hints' own density at a hint,
    decaying with the edge-aware distance from it.
    """
    guide = _gaussian_blur((lightness.float() + 1.0) * 0.5, GUIDE_BLUR)  # L / 100
    mask = hint_mask.float()
    filtered = domain_transform_filter(
        torch.cat((hint_ab.float() * mask, mask), dim=1), guide, spatial_sigma=spatial_sigma, range_sigma=range_sigma
    )
    reach = filtered[:, 2:].clamp_min(0.0)
    reached = reach > REACH_FLOOR
    colour = torch.where(reached, filtered[:, :2] / reach.clamp_min(1e-12), torch.zeros_like(filtered[:, :2]))
    return colour, reach


REGION_SPATIAL_SIGMA = 96.0  # pixels: the filter pair of `region_reach` covers a whole render-size photo
REGION_RANGE_SIGMA = 0.15  # L/100 units: a step of 25 L* between flat regions keeps all but ~8% out (at 0.2 one click on the astronaut's suit changed 15% of the rest of the photo)
REGION_GUIDE_BLUR = 2.0  # pixels: cloth folds and grass are one region, not many


def region_reach(lightness: torch.Tensor, hint_mask: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W): how much of the hints' spread along the photo's edges reaches each pixel, over
    what the same spread would reach there with no edges at all.

    `spread_hints`' reach falls with distance and with the area a hint has to cover as well as at
    edges; dividing by the edge-blind spread leaves the edges' share: about 1 throughout a hint's
    own region however large (more where edges hem the hint in), falling at each edge crossed.
    Why a ratio and not a threshold on the reach: a click must fill a whole wall, and a wall is
    large. Measured on two flat halves: about 1 in the hinted half; in the other half (median)
    0.04 across a step of 30 L*, 0.08 across 25, 0.13 across 20, 0.22 across 15, 0.37 across 10.
    """
    guide = _gaussian_blur((lightness.double() + 1.0) * 0.5, REGION_GUIDE_BLUR)
    mask = hint_mask.double()
    options = dict(spatial_sigma=REGION_SPATIAL_SIGMA, range_sigma=REGION_RANGE_SIGMA)
    along_edges = domain_transform_filter(mask, guide, **options)
    blind = domain_transform_filter(mask, torch.zeros_like(guide), **options)
    return (along_edges / blind.clamp_min(1e-300)).float()


def reach_channel(reach: torch.Tensor) -> torch.Tensor:
    """`reach` on a log scale in [0, 1] (0 at REACH_FLOOR or below, 1 where every pixel is hinted):
    the network's input, which must tell a far hint from none and a near one from a far one."""
    return (1.0 + torch.log10(reach.clamp_min(REACH_FLOOR)) / -math.log10(REACH_FLOOR)).clamp(0.0, 1.0)


# --------------------------------------------------------------------------------------------
# Levin, Lischinski and Weiss 2004
# --------------------------------------------------------------------------------------------

_NEIGHBOURS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0))


def levin_weights(lightness: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Levin et al.'s affinities of every pixel to its 8 neighbours (`_NEIGHBOURS` order):
    (weights (8, H, W) summing to 1 per pixel, valid (8, H, W): the neighbour is inside), from L
    (H, W, in [0, 100]).

    As in the authors' getColorExact.m: w_rs ~ exp(-(Y_r - Y_s)^2 / sigma_r^2) over the 3x3
    window, sigma_r^2 = 0.6 x the window's variance, raised so that the most similar neighbour
    keeps at least 1/100. Scaled by the local variance, so a textured region (cloth, grass) is
    one region to them, while a step between two flat regions is a wall.
    """
    luma = np.asarray(lightness, np.float64) / 100.0
    height, width = luma.shape
    padded = np.pad(luma, 1, mode="edge")
    inside = np.pad(np.ones((height, width), bool), 1)

    def shifted(array: np.ndarray, dy: int, dx: int) -> np.ndarray:
        return array[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]

    window = np.stack([shifted(padded, dy, dx) for dy, dx in _NEIGHBOURS] + [luma])
    valid = np.stack([shifted(inside, dy, dx) for dy, dx in _NEIGHBOURS])
    squared = np.stack([(shifted(padded, dy, dx) - luma) ** 2 for dy, dx in _NEIGHBOURS])
    window_variance = np.where(np.concatenate([valid, np.ones((1, height, width), bool)]), window, np.nan)
    sigma = 0.6 * np.nanvar(window_variance, axis=0)
    closest = np.where(valid, squared, np.inf).min(axis=0)
    sigma = np.maximum(np.maximum(sigma, closest / math.log(100.0)), 2e-6)
    weights = np.exp(-squared / sigma) * valid
    weights /= weights.sum(axis=0)
    return weights, valid


def levin_colorize(lightness: np.ndarray, hint_ab: np.ndarray, hint_mask: np.ndarray) -> np.ndarray:
    """ab (2, H, W) from L (H, W, in [0, 100]) and hints (ab (2, H, W), mask (H, W) bool): every
    unhinted pixel's ab is the `levin_weights` mean of its neighbours', hinted pixels keep theirs."""
    import scipy.sparse
    import scipy.sparse.linalg

    hinted = np.asarray(hint_mask, bool)
    height, width = hinted.shape
    if not hinted.any():
        return np.zeros((2, height, width), np.float64)
    weights, valid = levin_weights(lightness)
    index = np.arange(height * width).reshape(height, width)
    rows, cols, values = [], [], []
    for k, (dy, dx) in enumerate(_NEIGHBOURS):
        ys, xs = np.nonzero(valid[k] & ~hinted)
        rows.append(index[ys, xs])
        cols.append(index[ys + dy, xs + dx])
        values.append(-weights[k][ys, xs])
    size = height * width
    matrix = scipy.sparse.coo_matrix(
        (np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=(size, size)
    ).tocsc() + scipy.sparse.identity(size, format="csc")
    right = np.zeros((size, 2))
    right[hinted.ravel()] = np.asarray(hint_ab, np.float64).reshape(2, -1).T[hinted.ravel()]
    solution = scipy.sparse.linalg.splu(matrix).solve(right)
    return solution.T.reshape(2, height, width)
