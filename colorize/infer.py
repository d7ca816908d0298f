"""Colorizer: any-size image in, same-size colour image out; and `python -m colorize.infer`.

How one image is colourised:

1. `imageio.load_image` opens it as upright 8-bit RGB (EXIF, alpha, CMYK, 16-bit, palette).
   A colour photo is only used through its lightness L, so colour and gray inputs behave alike.
2. The image is resized to the *render shape* and the network predicts ab there. We keep the
   aspect ratio: the short side becomes `render_size` (default: the image size the model was
   trained at, from its config.json, else 256) and the long side follows, rounded to a
   multiple of 32 (at most `MAX_RENDER_ASPECT` times the short side, so a panorama cannot cost
   a hundred network passes). Why not pix2pix's square resize: the training crops are cut from
   undistorted photos, so objects at render size keep the shapes and the scale the generator
   learned; a square squeeze of a 3:2 photo makes faces and horizons it never saw. The rest of
   the render shape up to the generator's own size multiple is replicate-padded by the model.
   `keep_aspect=False` gives the square pix2pix behaviour for comparison.
3. The predicted ab is upsampled (bilinear, PyTorch's `align_corners=False` convention) to full
   resolution and joined to the image's *own* full-resolution L, so the output keeps every
   detail and the exact luminance of the input (up to 8-bit rounding). A predicted colour that
   sRGB cannot show (a saturated colour at near-black L, say) keeps its L and hue and loses
   chroma until it fits (`gamut="chroma"`). Per-channel clipping (`gamut="clip"`, what
   `skimage.color.lab2rgb` does) changes L there instead: on skimage's astronaut with strong
   predictions (mean chroma 20) L moved by up to 23 units with clipping, 0.24 without.
4. Step 3 runs in tiles of about `chunk_pixels` pixels (rows, and columns too for very wide
   images), so memory grows only with the input and output images themselves (8 bits per
   channel), not with float copies of them: a 50-megapixel photo needs about 0.5 GB.

Speed: the network runs under `torch.inference_mode()` in channels_last layout; full-resolution
L needs only the Y of XYZ and comes from three 256-entry lookup tables; everything is float32.
`precision="auto"` (the default) calls, for `seed=None`, a copy of the generator with its batch
norms folded into the convolutions (`colorize.fastpath`: fp32-exact, network 5-10% faster on CPU); a
`seed` always runs the eager generator, whose dropout is the noise. `precision="fp32"` is the
eager generator only; `precision="bf16"` runs it under CPU/GPU autocast (fast only on CPUs with
native bf16). `python -m colorize.bench --compare-paths` measures the choices.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from PIL import Image

from . import color, fastpath
from .checkpoint import CONFIG_FILE, SHIPPED_MODEL_DIR, CheckpointError, load_model
from .imageio import ImageLoadError, ImageSource, find_images, is_image_file, load_image
from .models import ModelConfig, build_generator, set_dropout_sampling

logger = logging.getLogger(__name__)

DEFAULT_RENDER_SIZE = 256
RENDER_MULTIPLE = 32
MAX_RENDER_ASPECT = 4
DEFAULT_CHUNK_PIXELS = 1 << 20  # about 1 MP per tile: ~60 MB of float temporaries
PRECISIONS = ("auto", "fp32", "bf16")

# --------------------------------------------------------------------------------------------
# Full-resolution helpers (numpy/torch float32, tile by tile)
# --------------------------------------------------------------------------------------------

_LEVELS = np.arange(256, dtype=np.float64) / 255.0
_LINEAR = np.where(_LEVELS > 0.04045, ((_LEVELS + 0.055) / 1.055) ** 2.4, _LEVELS / 12.92)
# Y of XYZ (D65 white has Y = 1) is a weighted sum of the linearised channels: one table each.
_Y_TABLES = tuple((_LINEAR * weight).astype(np.float32) for weight in color._XYZ_FROM_RGB[1])
# Linear [0, 1] -> 8-bit sRGB, rounded as round(255 * srgb): 2^20 steps make the table exact
# except within 0.003 of a level's rounding boundary (the sRGB slope is at most 12.92).
_ENCODE_STEPS = (1 << 20) - 1
_ENCODE_TABLE = (
    (color.linear_to_srgb(torch.linspace(0.0, 1.0, _ENCODE_STEPS + 1, dtype=torch.float64)) * 255.0)
    .round()
    .to(torch.uint8)
)
# XYZ -> linear sRGB with the D65 white folded in: linear = M @ (fx^3, Y, fz^3) (above the knee).
_RGB_FROM_FXYZ = (
    torch.linalg.inv(torch.tensor(color._XYZ_FROM_RGB, dtype=torch.float64)) * torch.tensor(color._D65_WHITE, dtype=torch.float64)
).float()


def _relative_luminance(rgb8: np.ndarray) -> torch.Tensor:
    """Y of XYZ (float32, (H, W)) of an 8-bit sRGB array (H, W, 3): three table look-ups."""
    rgb8 = np.asarray(rgb8)
    if rgb8.dtype != np.uint8 or rgb8.ndim != 3 or rgb8.shape[-1] != 3:
        raise ValueError("Expected an 8-bit RGB array shaped (H, W, 3).")
    y = _Y_TABLES[0][rgb8[..., 0]]
    y += _Y_TABLES[1][rgb8[..., 1]]
    y += _Y_TABLES[2][rgb8[..., 2]]
    return torch.from_numpy(y)


def _lab_f(t: torch.Tensor) -> torch.Tensor:
    """The Lab companding function f(t) of CIE 1976 (as in `color.rgb_to_lab`)."""
    return torch.where(t > color._LAB_EPSILON, t.clamp(min=color._LAB_EPSILON).pow(1.0 / 3.0), t * color._LAB_KAPPA + color._LAB_OFFSET)


def _lab_f_inverse(f: torch.Tensor) -> torch.Tensor:
    return torch.where(f > color._LAB_INVERSE_KNEE, f * f * f, (f - color._LAB_OFFSET) / color._LAB_KAPPA)


def luminance(rgb8: np.ndarray) -> torch.Tensor:
    """Lab L in [0, 100] (float32, shape (H, W)) of an 8-bit sRGB array shaped (H, W, 3).

    Agrees with `color.rgb_to_luminance` to float32 precision at a fraction of the cost:
    L needs only the Y of XYZ.
    """
    return _lab_f(_relative_luminance(rgb8)).mul_(116.0).sub_(16.0)


def render_shape(height: int, width: int, render_size: int, *, keep_aspect: bool = True) -> tuple[int, int]:
    """(height, width) at which the network sees an image of the given size (see module docstring)."""
    if render_size < 1:
        raise ValueError(f"render_size must be positive, not {render_size}.")
    if not keep_aspect:
        return render_size, render_size
    short, long = min(height, width), max(height, width)
    scale = render_size / short
    scale = min(scale, MAX_RENDER_ASPECT * render_size / long)

    def fit(side: int) -> int:
        return max(RENDER_MULTIPLE, int(round(side * scale / RENDER_MULTIPLE)) * RENDER_MULTIPLE)

    return fit(height), fit(width)


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


GAMUT_MODES = ("chroma", "clip")
"""How a predicted colour outside sRGB is shown. "chroma" (default) lowers that pixel's chroma,
keeping its hue and its lightness exactly, until it fits; "clip" clips each RGB channel (as
`skimage.color.lab2rgb` does), which shifts hue and lightness where the prediction is impossible,
e.g. a saturated colour at near-black or near-white L."""

_GAMUT_STEPS = 8  # bisection steps: chroma within 1/256 of the largest that fits (< 0.5 Lab units)
_GAMUT_TOLERANCE = 1e-5


def _linear_rgb(y: torch.Tensor, fy: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Linear sRGB (3, N), unclipped, of Lab given as luminance Y, f(Y) and a, b (all (N,)).

    The same arithmetic as `color.lab_to_rgb` before its clipping and gamma, except that Y is
    used as it is rather than recomputed from L.
    """
    xyz = torch.empty((3, y.shape[0]), dtype=torch.float32)
    xyz[0] = _lab_f_inverse(a / 500.0 + fy)
    xyz[1] = y
    xyz[2] = _lab_f_inverse((fy - b / 200.0).clamp_(min=0.0))
    return torch.mm(_RGB_FROM_FXYZ, xyz)


def _outside(linear: torch.Tensor) -> torch.Tensor:
    # minimum/maximum of the three rows: ~4x faster than aminmax(dim=0) across them, same result
    red, green, blue = linear.unbind(0)
    low = torch.minimum(torch.minimum(red, green), blue)
    high = torch.maximum(torch.maximum(red, green), blue)
    return (low < -_GAMUT_TOLERANCE) | (high > 1.0 + _GAMUT_TOLERANCE)


def _fit_gamut(linear: torch.Tensor, y: torch.Tensor, fy: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
    """Move out-of-gamut pixels of `linear` (in place) towards gray at constant L and hue."""
    index = _outside(linear).nonzero().squeeze(1)
    if index.numel() == 0:
        return
    y, fy, a, b = (t.index_select(0, index) for t in (y, fy, a, b))
    low = torch.zeros_like(y)  # chroma factor known to fit (gray always does)
    high = torch.ones_like(y)  # known not to fit
    for _ in range(_GAMUT_STEPS):
        middle = (low + high) * 0.5
        fits = ~_outside(_linear_rgb(y, fy, a * middle, b * middle))
        low = torch.where(fits, middle, low)
        high = torch.where(fits, high, middle)
    linear.index_copy_(1, index, _linear_rgb(y, fy, a * low, b * low))


def _encode(linear: torch.Tensor) -> torch.Tensor:
    """Linear sRGB -> 8-bit sRGB (clipped to [0, 1] first) through the encoding table."""
    index = linear.clamp_(0.0, 1.0).mul_(float(_ENCODE_STEPS)).add_(0.5).to(torch.int32)
    return _ENCODE_TABLE.index_select(0, index.view(-1)).view(index.shape)


def compose(
    image: Image.Image,
    ab: torch.Tensor,
    *,
    saturation: float = 1.0,
    chunk_pixels: int = DEFAULT_CHUNK_PIXELS,
    gamut: str = "chroma",
) -> Image.Image:
    """Join the full-resolution L of `image` (RGB) with `ab` (Lab units, shape (2, h, w), any h, w).

    `ab` is bilinearly resized to the image's size and scaled by `saturation`; the work is
    done in tiles of about `chunk_pixels`, and the result does not depend on the tile size.
    `gamut` says what happens to a colour sRGB cannot show (see `GAMUT_MODES`).
    """
    if gamut not in GAMUT_MODES:
        raise ValueError(f"Unknown gamut mode '{gamut}'; choose one of {', '.join(GAMUT_MODES)}.")
    if image.mode != "RGB":
        raise ValueError("compose() expects an RGB image; open inputs with colorize.imageio.load_image.")
    width, height = image.size
    ab = ab.detach().to("cpu", torch.float32)
    if ab.ndim == 4:
        ab = ab[0]
    if saturation != 1.0:
        ab = ab * float(saturation)
    rows = _bilinear_taps(ab.shape[-2], height)
    low, high, weight = _bilinear_taps(ab.shape[-1], width)
    # columns once for the whole width (2 x h x width floats: a few MB), rows tile by tile, where
    # a gather copies whole rows: ~20% faster than gathering columns in every tile.
    ab_columns = torch.lerp(ab.index_select(2, low), ab.index_select(2, high), weight)
    output = Image.new("RGB", (width, height))
    for top, bottom, left, right in _tiles(height, width, chunk_pixels):
        y = _relative_luminance(np.asarray(image.crop((left, top, right, bottom)))).reshape(-1)
        fy = _lab_f(y)
        low, high, weight = (t[top:bottom] for t in rows)
        source = ab_columns[:, :, left:right]
        ab_tile = torch.lerp(source.index_select(1, low), source.index_select(1, high), weight[:, None]).reshape(2, -1)
        linear = _linear_rgb(y, fy, ab_tile[0], ab_tile[1])
        if gamut == "chroma":
            _fit_gamut(linear, y, fy, ab_tile[0], ab_tile[1])
        size = (right - left, bottom - top)
        planes = [Image.frombuffer("L", size, plane.numpy(), "raw", "L", 0, 1) for plane in _encode(linear)]
        output.paste(Image.merge("RGB", planes), (left, top))  # PIL interleaves the planes quickly
    return output


def network_input(image: Image.Image, shape: tuple[int, int]) -> torch.Tensor:
    """Normalised L (1, 1, h, w) of `image` resized to `shape` = (h, w)."""
    height, width = shape
    small = image if image.size == (width, height) else image.resize((width, height), Image.BICUBIC)
    return color.normalize_l(luminance(np.asarray(small)))[None, None]


def resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    return torch.device(device)


# --------------------------------------------------------------------------------------------
# The public API
# --------------------------------------------------------------------------------------------


class Colorizer:
    """A loaded colorization generator: `Colorizer.from_pretrained().colorize("photo.jpg")`.

    The generator is put in eval mode once; dropout is only switched on, under a lock, for a
    call with a `seed`, so one Colorizer can serve several threads (the Gradio app).

    Knobs for the benchmark: `precision` ("auto" = the fast path of `colorize.fastpath`, "fp32"
    = the eager generator, or "bf16" = the network under autocast),
    `channels_last` (the network's memory layout), `chunk_pixels` (tile size of the
    full-resolution work) and `gamut` ("chroma" or "clip", see `GAMUT_MODES`).
    """

    def __init__(
        self,
        generator: torch.nn.Module,
        config: dict,
        *,
        name: str,
        device: str | torch.device | None = None,
        precision: str = "auto",
        chunk_pixels: int = DEFAULT_CHUNK_PIXELS,
        gamut: str = "chroma",
        channels_last: bool = True,
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"Unknown precision '{precision}'; choose one of {', '.join(PRECISIONS)}.")
        if gamut not in GAMUT_MODES:
            raise ValueError(f"Unknown gamut mode '{gamut}'; choose one of {', '.join(GAMUT_MODES)}.")
        if device is None:
            parameter = next(generator.parameters(), None)
            device = parameter.device if parameter is not None else "cpu"
        self.device = resolve_device(device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.generator = generator.to(self.device, memory_format=self.memory_format).eval()
        set_dropout_sampling(self.generator, False)
        self.config = dict(config)
        self.name = name
        self.precision = precision
        # made once here: build a new Colorizer after changing the generator's weights
        self._fast = fastpath.prepare_generator(
            self.generator, fastpath.choose_path(precision, self.device), memory_format=self.memory_format
        )
        self.chunk_pixels = chunk_pixels
        self.gamut = gamut
        self.model_config = ModelConfig.from_dict(config["model"]) if "model" in config else None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Colorizer(name={self.name!r}, device={str(self.device)!r}, precision={self.precision!r})"

    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike | None = None, *, device: str | torch.device = "auto", precision: str = "auto"
    ) -> "Colorizer":
        """Load a checkpoint folder (`model.safetensors` + `config.json`); None = the shipped model."""
        if path is None and not (SHIPPED_MODEL_DIR / CONFIG_FILE).is_file():
            raise CheckpointError(
                f"No trained model is installed yet ({SHIPPED_MODEL_DIR} is empty); "
                "train one with `python -m colorize.train` or pass the path of a checkpoint folder."
            )
        folder = Path(path) if path is not None else SHIPPED_MODEL_DIR
        target = resolve_device(device)
        generator, config = load_model(folder, device=target)
        name = str(config.get("name") or (folder.name if path is not None else "shipped"))
        logger.info("Loaded colorizer %s from %s on %s", name, folder, target)
        return cls(generator, config, name=name, device=target, precision=precision)

    @classmethod
    def untrained(
        cls,
        *,
        seed: int = 0,
        model_config: ModelConfig | None = None,
        device: str | torch.device = "cpu",
        precision: str = "auto",
    ) -> "Colorizer":
        """A generator with its random initial weights (seeded): the study's untrained baseline."""
        model_config = model_config or ModelConfig()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            generator = build_generator(model_config)
        config = {"format_version": 1, "model": model_config.to_dict(), "name": "untrained", "untrained_seed": seed}
        return cls(generator, config, name="untrained", device=device, precision=precision)

    # -- the network ---------------------------------------------------------------------------

    @torch.inference_mode()
    def predict_ab(self, lightness: torch.Tensor, *, seed: int | None = None) -> torch.Tensor:
        """Normalised L (B, 1, h, w) -> normalised ab (B, 2, h, w), float32 on the CPU.

        `seed=None`: dropout off, deterministic. An int: dropout on with the RNG seeded, so the
        same seed gives the same sample (the pix2pix noise z).
        """
        x = lightness.to(self.device, torch.float32).contiguous(memory_format=self.memory_format)
        autocast = (
            torch.autocast(self.device.type, dtype=torch.bfloat16)
            if self.precision == "bf16"
            else contextlib.nullcontext()
        )
        with self._lock:
            if seed is None:
                with autocast:
                    ab = (self.generator if self._fast is None else self._fast)(x)
            else:
                devices = [self.device] if self.device.type == "cuda" else []
                set_dropout_sampling(self.generator, True)
                try:
                    with torch.random.fork_rng(devices=devices), autocast:
                        torch.manual_seed(int(seed))
                        ab = self.generator(x)
                finally:
                    set_dropout_sampling(self.generator, False)
        return ab.float().cpu().contiguous()

    # -- images -------------------------------------------------------------------------------

    @property
    def default_render_size(self) -> int:
        """The image size the model was trained at (from its config.json), else DEFAULT_RENDER_SIZE.

        A fully convolutional generator sees objects at the scale it learned when the short side
        it renders matches its training crops; `render_size=None` means this size.
        """
        for section in ("training", "train_config"):
            value = (self.config.get(section) or {}).get("image_size")
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
        return DEFAULT_RENDER_SIZE

    def _prepare(self, image: ImageSource, render_size: int | None, keep_aspect: bool) -> tuple[Image.Image, torch.Tensor]:
        render_size = self.default_render_size if render_size is None else int(render_size)
        if render_size < 1:
            raise ValueError(f"render_size must be a positive number of pixels, not {render_size}.")
        rgb = load_image(image)
        width, height = rgb.size
        return rgb, network_input(rgb, render_shape(height, width, render_size, keep_aspect=keep_aspect))

    def _finish(self, rgb: Image.Image, ab_norm: torch.Tensor, saturation: float) -> Image.Image:
        return compose(
            rgb, color.denormalize_ab(ab_norm), saturation=saturation, chunk_pixels=self.chunk_pixels, gamut=self.gamut
        )

    def colorize(
        self,
        image: ImageSource,
        *,
        render_size: int | None = None,
        saturation: float = 1.0,
        seed: int | None = None,
        keep_aspect: bool = True,
    ) -> Image.Image:
        """Colour version of `image` (path, bytes, file object or PIL image): RGB, same size, same L.

        Raises `colorize.imageio.ImageLoadError` with a plain sentence for an unusable input.
        """
        rgb, lightness = self._prepare(image, render_size, keep_aspect)
        return self._finish(rgb, self.predict_ab(lightness, seed=seed)[0], saturation)

    def colorize_variations(
        self,
        image: ImageSource,
        *,
        count: int,
        seed: int = 0,
        render_size: int | None = None,
        saturation: float = 1.0,
        keep_aspect: bool = True,
    ) -> list[Image.Image]:
        """`count` samples of the dropout noise; the i-th equals `colorize(image, seed=seed + i)`."""
        rgb, lightness = self._prepare(image, render_size, keep_aspect)
        return [self._finish(rgb, self.predict_ab(lightness, seed=seed + i)[0], saturation) for i in range(count)]

    def colorize_batch(
        self,
        images: Sequence[ImageSource],
        *,
        render_size: int | None = None,
        saturation: float = 1.0,
        seed: int | None = None,
        keep_aspect: bool = True,
        batch_size: int = 16,
    ) -> list[Image.Image]:
        """Colourise several images; those with the same render shape share one network call.

        The i-th result equals `colorize(images[i], ...)` (with a seed, every image gets that
        seed, as it would alone, so those run one by one). Any unusable image raises.
        """
        prepared = [self._prepare(image, render_size, keep_aspect) for image in images]
        ab: list[torch.Tensor | None] = [None] * len(prepared)
        if seed is not None:
            for index, (_, lightness) in enumerate(prepared):
                ab[index] = self.predict_ab(lightness, seed=seed)[0]
        else:
            groups: dict[tuple[int, int], list[int]] = {}
            for index, (_, lightness) in enumerate(prepared):
                groups.setdefault(tuple(lightness.shape[-2:]), []).append(index)
            for indices in groups.values():
                for start in range(0, len(indices), batch_size):
                    chunk = indices[start : start + batch_size]
                    batch = torch.cat([prepared[i][1] for i in chunk])
                    for i, prediction in zip(chunk, self.predict_ab(batch)):
                        ab[i] = prediction
        return [self._finish(rgb, prediction, saturation) for (rgb, _), prediction in zip(prepared, ab)]


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _glob_base(pattern: str) -> Path:
    """The leading folders of a glob pattern that hold no wildcard."""
    parts = Path(pattern).parts
    base: list[str] = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            break
        base.append(part)
    return Path(*base) if base else Path(".")


def collect_inputs(
    arguments: Sequence[str], *, exclude: Path | None = None
) -> tuple[list[tuple[Path, Path]], list[tuple[str, str]]]:
    """Expand files, folders (recursive) and globs into (input file, output path relative to --out).

    Folders and globs keep their relative structure. Files under `exclude` (the output folder)
    are not picked up from folders. Returns (jobs, problems) with a sentence per problem.
    """
    jobs: list[tuple[Path, Path]] = []
    problems: list[tuple[str, str]] = []
    seen: set[Path] = set()
    excluded = exclude.resolve() if exclude is not None else None

    def add(path: Path, relative: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            jobs.append((path, relative))

    def add_folder(folder: Path, base: Path) -> None:
        for path in find_images(folder):
            if excluded is None or not path.resolve().is_relative_to(excluded):
                add(path, path.relative_to(base))

    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            before = len(jobs)
            add_folder(path, path)
            if len(jobs) == before and not any(True for _ in find_images(path)):
                problems.append((argument, "this folder holds no image files"))
        elif path.is_file():
            add(path, Path(path.name))
        elif glob.has_magic(argument):
            matches = sorted(glob.glob(argument, recursive=True))
            base = _glob_base(argument)
            found = False
            for match in map(Path, matches):
                if match.is_dir():
                    before = len(jobs)
                    add_folder(match, base)
                    found = found or len(jobs) > before
                elif match.is_file() and is_image_file(match):
                    add(match, match.relative_to(base))
                    found = True
            if not found:
                problems.append((argument, "no image matches this pattern"))
        else:
            problems.append((argument, "there is no such file or folder"))
    return jobs, problems


def _write_new(image: Image.Image, path: Path, image_format: str, forbidden: set[Path]) -> Path:
    """Save to `path`, or to `name-1`, `name-2`, ... if that exists: never replaces any file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stem, suffix = path.stem, path.suffix
    for attempt in range(10_000):
        candidate = path if attempt == 0 else path.with_name(f"{stem}-{attempt}{suffix}")
        if candidate.resolve() in forbidden:
            continue
        try:
            handle = open(candidate, "xb")  # exclusive: fails rather than overwrite
        except FileExistsError:
            continue
        try:
            with handle:
                if image_format == "JPEG":
                    image.save(handle, format="JPEG", quality=95)
                else:
                    image.save(handle, format=image_format)
        except BaseException:
            candidate.unlink(missing_ok=True)
            raise
        return candidate
    raise OSError(f"Could not find a free file name next to {path}.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m colorize.infer",
        description="Colourise images (files, folders, globs); outputs keep each input's size and lightness.",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders (searched recursively) or globs")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created if needed)")
    parser.add_argument("--model", type=Path, default=None, help="checkpoint folder (default: the shipped model)")
    parser.add_argument(
        "--render-size", type=int, default=None, help="short side the network sees (default: the model's training size)"
    )
    parser.add_argument("--saturation", type=float, default=1.0, help="scale of the predicted colour (0 = gray)")
    parser.add_argument("--seed", type=int, default=None, help="sample the dropout noise with this seed")
    parser.add_argument("--suffix", default="_color", help="added to each output file name")
    parser.add_argument("--format", choices=("png", "jpg"), default="png", help="output format")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto", help="auto = fastest fp32-exact path")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from tqdm import tqdm

    args = build_parser().parse_args(argv)
    if args.render_size is not None and args.render_size < 1:
        print("error: --render-size must be a positive number of pixels.", file=sys.stderr)
        return 2
    try:
        colorizer = Colorizer.from_pretrained(args.model, device=args.device, precision=args.precision)
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    jobs, problems = collect_inputs(args.inputs, exclude=args.out)
    for argument, reason in problems:
        print(f"skipped {argument}: {reason}", file=sys.stderr)
    image_format, extension = ("JPEG", ".jpg") if args.format == "jpg" else ("PNG", ".png")
    forbidden = {path.resolve() for path, _ in jobs}
    failures = len(problems)
    written = 0
    for path, relative in tqdm(jobs, desc="colorizing", unit="image", file=sys.stderr):
        target = args.out / relative.parent / f"{relative.stem}{args.suffix}{extension}"
        try:
            result = colorizer.colorize(
                path, render_size=args.render_size, saturation=args.saturation, seed=args.seed
            )
            _write_new(result, target, image_format, forbidden)
            written += 1
        except (ImageLoadError, OSError, MemoryError, ValueError) as error:
            failures += 1
            tqdm.write(f"skipped {path}: {error}", file=sys.stderr)
    print(f"Colorized {written} image(s) into {args.out}; {failures} failed.")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
