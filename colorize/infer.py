"""Colorizer: any-size image in, same-size colour image out; and `python -m colorize.infer`.

How one image is colourised:

1. `imageio.load_image` opens it as upright 8-bit RGB (EXIF, alpha, CMYK, 16-bit, palette).
   A colour photo is only used through its lightness L, so colour and gray inputs behave alike.
2. The image is resized to the *render shape* and the network predicts ab there. We keep the
   aspect ratio: the short side becomes `render_size` (default: the model's own, see
   `colorize.defaults`: the image size it was trained at unless its config.json says otherwise) and the long side follows, rounded to a
   multiple of 32 (at most `MAX_RENDER_ASPECT` times the short side, so a panorama cannot cost
   a hundred network passes). Why not pix2pix's square resize: the training crops are cut from
   undistorted photos, so objects at render size keep the shapes and the scale the generator
   learned; a square squeeze of a 3:2 photo makes faces and horizons it never saw. The U-Nets
   take that shape as it is, padding odd sides level by level (`colorize.models`); the ResNet-18
   encoder pads it to a multiple of 32.
   `keep_aspect=False` gives the square pix2pix behaviour for comparison.
3. For a model with injected noise whose settings ask for several samples, the chroma fades
   where the noise draws disagree in hue (`hue_agreement`). The predicted ab then gets the
   model's calibrated colour strength (config.json "inference":
   the chroma curve `apply_chroma_gamma` and the chroma scale, see `colorize.calibrate`;
   the user's `saturation` multiplies the scale).
4. The ab is upsampled to full resolution and joined to the image's *own*
   full-resolution L (`colorize.compose`), so the output keeps every detail and the exact
   luminance of the input (up to 8-bit rounding). A predicted colour that sRGB cannot show
   keeps its L and hue and loses chroma until it fits (`gamut="chroma"`); per-channel clipping
   (`gamut="clip"`, what `skimage.color.lab2rgb` does) changes L there instead: on skimage's
   astronaut with strong predictions (mean chroma 20) L moved by up to 23 units with clipping,
   0.24 without. This step runs in tiles of about `chunk_pixels` pixels, compiled with numba
   where it is installed (`colorize.compose.KERNELS`), so a 50-megapixel photo needs about
   0.25 GB beyond its input and output (`python -m colorize.bench --huge`).

Speed: the network runs under `torch.inference_mode()` in channels_last layout; the
full-resolution step is described in `colorize.compose`; everything is float32.
`precision="auto"` (the default) calls, for `seed=None`, a copy of the generator with its batch
norms folded into the convolutions (`colorize.fastpath`: fp32-exact), run by ONNX Runtime on
CPUs with AVX-512 where it is installed (about twice as fast there) and by torch elsewhere
(`precision="folded"` asks for that one, `precision="onnx"` for the other); a `seed` (and the
noise draws of a model whose settings combine several) runs the eager generator, whose injected
noise (or, in older models, dropout) is the noise. `precision="fp32"` is the eager generator
only; `precision="bf16"` runs it under CPU/GPU autocast (fast only on CPUs with native bf16).
`python -m colorize.bench --compare-paths` measures the choices.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import glob
import logging
import math
import os
import sys
import threading
import warnings
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import color, fastpath
from .compose import GAMUT_MODES, KERNELS, compose, luminance
from .checkpoint import CONFIG_FILE, HINT_MODEL_KEY, SHIPPED_MODEL_DIR, CheckpointError, load_model, read_config
from .devices import DeviceError, resolve_device
from .imageio import ImageLoadError, ImageSource, find_images, is_image_file, load_image
from .defaults import InferenceSettings
from . import suggest
from .hints import (
    Hint, HintError, check_inside, encode_hints, hint_image_maps, hint_maps, hint_nearness, lab_to_hex, parse_hints,
    keep_local, read_hints_json, snap_to_hints,
)
from .models import ModelConfig, build_generator, set_dropout_sampling

logger = logging.getLogger(__name__)

RENDER_MULTIPLE = 32
MAX_RENDER_ASPECT = 4
PRECISIONS = ("auto", "fp32", "folded", "bf16", "onnx")


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


def resize_rgb8(image: Image.Image, shape: tuple[int, int]) -> np.ndarray:
    """`image` (RGB) resized to `shape` = (h, w) as an 8-bit array (h, w, 3): antialiased bicubic.

    PyTorch's uint8 kernel gives PIL's `resize(BICUBIC)` within one level (mean 0.002) on both
    cores, 4x faster at 1024x768 (`colorize.bench` measures the whole path). It resizes the
    rows first, into 8-bit, then the columns; we do the same in two calls, the first over bands
    of `RESIZE_BAND_PIXELS`, so a large photo is never copied whole into an array (the same
    result to the bit, tested; a 12 MP copy costs more than the resize).
    """
    height, width = shape
    if image.size == (width, height):
        return np.asarray(image)
    if width >= image.width or image.width * image.height <= RESIZE_BAND_PIXELS:
        return _resize_uint8(np.asarray(image), shape)
    band = max(1, RESIZE_BAND_PIXELS // image.width)
    rows = [
        _resize_uint8(np.asarray(image.crop((0, top, image.width, min(image.height, top + band)))), (None, width))
        for top in range(0, image.height, band)
    ]
    return _resize_uint8(np.concatenate(rows), shape)


RESIZE_BAND_PIXELS = 1 << 18


def _resize_uint8(pixels: np.ndarray, shape: tuple[int | None, int]) -> np.ndarray:
    """(H, W, 3) uint8 -> (h, w, 3) uint8 by torch's antialiased bicubic; h None keeps H (a row-only pass)."""
    height = pixels.shape[0] if shape[0] is None else shape[0]
    with warnings.catch_warnings():  # the array PIL gives is read-only; it is only read here
        warnings.simplefilter("ignore", UserWarning)
        tensor = torch.from_numpy(pixels).permute(2, 0, 1)[None]  # channels_last view
    resized = torch.nn.functional.interpolate(tensor, size=(height, shape[1]), mode="bicubic", antialias=True)
    return resized[0].permute(1, 2, 0).contiguous().numpy()


def network_input(image: Image.Image, shape: tuple[int, int]) -> torch.Tensor:
    """Normalised L (1, 1, h, w) of `image` resized to `shape` = (h, w)."""
    return color.normalize_l(luminance(resize_rgb8(image, shape)))[None, None]


def colour_at_shape(
    image: Image.Image,
    shape: tuple[int, int],
    *,
    lightness: Image.Image | None = None,
    blur: float = 0.0,
    gamut: str = "chroma",
    kernel: str = "auto",
) -> Image.Image:
    """`image`'s own colour with the chroma resolution of a colourisation rendered at `shape` (h, w).

    Its ab is taken down to `shape` as the network's input is (`resize_rgb8`), softened there by a
    Gaussian of `blur` render pixels (0: not at all; for a model whose colour holds less detail
    than its render shape), and brought back up onto the full-resolution L of `lightness`
    (default: `image` itself; same size) by `compose`, exactly as `Colorizer.colorize` brings up
    its prediction. The survey shows real photos this way beside a model's fakes: how finely the
    colour was resolved then no longer tells them apart.
    """
    rgb = image.convert("RGB")
    lightness = rgb if lightness is None else lightness.convert("RGB")
    if lightness.size != rgb.size:
        raise ValueError(f"The lightness image is {lightness.size}, the colour image {rgb.size}; they must be the same size.")
    small = torch.from_numpy(resize_rgb8(rgb, shape)).permute(2, 0, 1).float() / 255.0
    ab = color.rgb_to_lab(small)[1:]
    return compose(lightness, _gaussian_blur(ab, blur) if blur > 0 else ab, gamut=gamut, kernel=kernel)


def _gaussian_blur(planes: torch.Tensor, sigma: float) -> torch.Tensor:
    """(C, h, w) blurred by a Gaussian of `sigma` pixels (separable; edges reflected)."""
    radius = max(1, math.ceil(3 * sigma))
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float32) / sigma) ** 2)
    taps = taps / taps.sum()
    out = planes[:, None]
    for horizontal in (True, False):
        side = out.shape[-1] if horizontal else out.shape[-2]
        padding = (radius, radius, 0, 0) if horizontal else (0, 0, radius, radius)
        padded = F.pad(out, padding, mode="reflect" if side > radius else "replicate")
        out = F.conv2d(padded, taps.view(1, 1, 1, -1) if horizontal else taps.view(1, 1, -1, 1))
    return out[:, 0]


CHROMA_PIVOT = 20.0  # ab units: the chroma the curve leaves alone (a clearly coloured, not a vivid, surface)


def apply_chroma_gamma(ab: torch.Tensor, gamma: float) -> torch.Tensor:
    """ab (..., 2, h, w) in ab units with each pixel's chroma C mapped to C * (C / CHROMA_PIVOT)^(gamma - 1).

    Hue is kept. Why: a GAN colorizer's hue is right more often where it predicts strong colour
    (sky, foliage, a red bus) than where it predicts a weak one (skin, wood, clothing), so with
    gamma > 1 the uncertain weak colours fade towards gray while the confident ones keep or gain
    chroma; `colorize.calibrate` measures the trade against accuracy (CIEDE2000) on held-out
    photos and picks gamma with the chroma scale.
    """
    if gamma == 1.0:
        return ab
    chroma = color.chroma_of(ab)
    return ab * (chroma / CHROMA_PIVOT).pow(gamma - 1.0)


def apply_chroma_knee(ab: torch.Tensor, knee: float) -> torch.Tensor:
    """ab (..., 2, h, w) with each pixel's chroma C mapped to knee * tanh(C / knee), hue kept.

    A soft ceiling: weak and moderate colours pass almost unchanged (C = knee/2 loses 8%), strong
    ones approach `knee`. Why: a wrong colour costs the viewer most where it is strongest (a
    saturated blue blob on a white wall); past the knee, more chroma buys little vividness and
    much risk. `colorize.calibrate` measures it against accuracy and false colour.
    """
    chroma = color.chroma_of(ab)
    return ab * (knee * torch.tanh(chroma / knee) / chroma.clamp_min(1e-6))


AGREEMENT_SEED = 20_261_128  # the noise draws behind the default colouring: fixed, so it is deterministic


def hue_agreement(samples: torch.Tensor, *, eps: float = 1e-6) -> torch.Tensor:
    """How much `samples` (K, B, 2, h, w) of ab agree in hue, per pixel: (B, 1, h, w) in [0, 1].

    The length of the sum of the K ab vectors over the sum of their lengths: 1 where every draw
    points the same way, near 0 where they point in different directions (blue in one draw,
    orange in another). Weak colours count little, so a pixel gray in most draws is not "disagreeing".
    """
    resultant = color.chroma_of(samples.sum(dim=0))
    total = color.chroma_of(samples).sum(dim=0)
    return resultant / (total + eps)


# --------------------------------------------------------------------------------------------
# The public API
# --------------------------------------------------------------------------------------------


class Colorizer:
    """A loaded colorization generator: `Colorizer.from_pretrained().colorize("photo.jpg")`.

    The generator is put in eval mode once; dropout is only switched on, under a lock, for a
    call with a `seed`, so one Colorizer can serve several threads (the Gradio app).

    Knobs for the benchmark: `precision` ("auto" = the fast path of `colorize.fastpath`, "fp32"
    = the eager generator, "folded" = its batch-norm-folded copy in torch, "onnx" = that copy in
    ONNX Runtime, "bf16" = the network under autocast),
    `channels_last` (the network's memory layout), `chunk_pixels` (tile size of the
    full-resolution work, None: the kernel's own), `gamut` ("chroma" or "clip", see `GAMUT_MODES`)
    and `kernel` (the full-resolution work: "auto", "numba" or "torch", see `colorize.compose.KERNELS`).
    """

    def __init__(
        self,
        generator: torch.nn.Module,
        config: dict,
        *,
        name: str,
        device: str | torch.device | None = None,
        precision: str = "auto",
        chunk_pixels: int | None = None,
        gamut: str = "chroma",
        channels_last: bool = True,
        kernel: str = "auto",
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"Unknown precision '{precision}'; choose one of {', '.join(PRECISIONS)}.")
        if gamut not in GAMUT_MODES:
            raise ValueError(f"Unknown gamut mode '{gamut}'; choose one of {', '.join(GAMUT_MODES)}.")
        if kernel not in KERNELS:
            raise ValueError(f"Unknown compose kernel '{kernel}'; choose one of {', '.join(KERNELS)}.")
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
        self.kernel = kernel
        self.model_config = ModelConfig.from_dict(config["model"]) if "model" in config else None
        self._lock = threading.Lock()
        # replaceable (`dataclasses.replace`) by a calibration sweep; read at every call
        self.settings = InferenceSettings.from_config(self.config)
        # a model that takes no hints itself can name one that does (config.json's "hint_model")
        self.hint_partner: Colorizer | None = None

    @property
    def settings(self) -> InferenceSettings:
        return self._settings

    @settings.setter
    def settings(self, value: InferenceSettings) -> None:
        if self.generator.predicts_bins:
            self._set_bins_decoding(value)
        self._settings = value

    def _set_bins_decoding(self, value: InferenceSettings) -> None:
        head = self.generator.head
        temperature = value.colour_temperature
        if temperature is None and self.model_config is not None:
            temperature = self.model_config.colour_temperature
        if value.prior_correction and not head.knows_rebalancing:
            raise CheckpointError(
                "This model was saved without its training's rebalancing weights, so prior_correction cannot be applied; "
                "resume its training for a step (python -m colorize.train --out FOLDER --resume) to store them."
            )
        if (temperature, value.prior_correction) == (head.temperature, head.prior_correction):
            return
        with self._lock:
            head.temperature = float(temperature)
            head.prior_correction = float(value.prior_correction)
            # the fast path traced the old decoding in as constants
            self._fast = fastpath.prepare_generator(
                self.generator, fastpath.choose_path(self.precision, self.device), memory_format=self.memory_format
            )

    @property
    def chroma_scale(self) -> float:
        return self.settings.chroma_scale

    @chroma_scale.setter
    def chroma_scale(self, value: float) -> None:
        self.settings = dataclasses.replace(self.settings, chroma_scale=float(value))

    @property
    def chroma_gamma(self) -> float:
        return self.settings.chroma_gamma

    @chroma_gamma.setter
    def chroma_gamma(self, value: float) -> None:
        self.settings = dataclasses.replace(self.settings, chroma_gamma=float(value))

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
        colorizer = cls(generator, config, name=name, device=target, precision=precision)
        if config.get(HINT_MODEL_KEY) is not None:
            colorizer.hint_partner = cls._load_hint_partner(folder, config[HINT_MODEL_KEY], device=target, precision=precision)
        return colorizer

    @classmethod
    def _load_hint_partner(cls, folder: Path, entry: Any, **options: Any) -> "Colorizer":
        """The hint model a checkpoint's config.json names (a sub-folder of its own folder)."""
        if not isinstance(entry, str) or not entry or Path(entry).is_absolute() or ".." in Path(entry).parts:
            raise CheckpointError(f"{folder / CONFIG_FILE}: {HINT_MODEL_KEY} must name a folder inside {folder}, not {entry!r}.")
        partner_folder = folder / entry
        if (partner_folder / CONFIG_FILE).is_file() and HINT_MODEL_KEY in read_config(partner_folder):
            raise CheckpointError(f"{partner_folder / CONFIG_FILE} names a hint model of its own; a hint model cannot have one.")
        partner = cls.from_pretrained(partner_folder, **options)
        if partner.generator.hint_channels == 0:
            raise CheckpointError(f"{partner_folder}, the hint model named in {folder / CONFIG_FILE}, takes no colour hints.")
        return partner

    @classmethod
    def untrained(
        cls,
        *,
        seed: int = 0,
        model_config: ModelConfig | None = None,
        device: str | torch.device = "cpu",
        pads_per_level: bool = True,
        **options: Any,
    ) -> "Colorizer":
        """A generator with its random initial weights (seeded): the study's untrained baseline.

        `pads_per_level=False` pads the input to a multiple of the U-Net's size as a whole, as
        pix2pix does; it has to be set before the fast path is prepared, which is here.
        `options`: the constructor's (precision, ...)."""
        model_config = model_config or ModelConfig()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            generator = build_generator(model_config)
        if not pads_per_level:
            generator.pads_per_level = False
        config = {"format_version": 1, "model": model_config.to_dict(), "name": "untrained", "untrained_seed": seed}
        return cls(generator, config, name="untrained", device=device, **options)

    # -- the network ---------------------------------------------------------------------------

    def warm_up(self) -> None:
        """Run the network once on a tiny input, so that what its path prepares on the first call
        (the ONNX Runtime session: an export of about half a second) is not paid by a user's photo."""
        self.predict_ab(torch.zeros(1, 1, 32, 32))
        if self.hint_partner is not None:
            self.hint_partner.warm_up()

    @property
    def takes_hints(self) -> bool:
        """Whether the model takes colour hints (`colorize.hints`): trained with them, or pairs with
        a hint model."""
        return self.hint_network.generator.hint_channels > 0

    @property
    def hint_network(self) -> "Colorizer":
        """The colorizer whose network reads the hints: this one, or its hint partner.

        Why a partner: a network trained with hints also colours with none, but on the protocol its
        own automatic colours were 0.9 CIEDE2000 worse than the automatic model it started from
        (colorize/weights/MODEL_CARD.md). Paired, the automatic model paints the photo and every
        place no hint reaches (`hint_locality`), and the hint network the hints' regions."""
        if self.generator.hint_channels > 0 or self.hint_partner is None:
            return self
        return self.hint_partner

    @torch.inference_mode()
    def predict_ab(self, lightness: torch.Tensor, *, hints: torch.Tensor | None = None, seed: int | None = None) -> torch.Tensor:
        """Normalised L (B, 1, h, w) -> normalised ab (B, 2, h, w), float32 on the CPU.

        `hints`: the hint channels (`hint_channels`) of a model that takes hints, None for none.

        `seed=None`: the model's default colouring, deterministic: the pass with zero noise, and for
        a model whose settings ask for `samples` > 1, that pass with its chroma multiplied by the
        hue agreement of that many noise draws (`hue_agreement`) to the `agreement_power`: colour
        stays where the draws agree and fades where they disagree.
        An int: one sample of the generator's noise (its injected noise, or pix2pix's dropout for
        a model without), the same for the same seed.
        """
        return self._predict(lightness, hints, seed)[0]

    def _predict(
        self, lightness: torch.Tensor, hints: torch.Tensor | None, seed: int | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(`predict_ab`, the hints' `hint_nearness` (B, 1, h, w) or None without hints), both on
        the CPU: the nearness is computed once for the prediction and for composing it."""
        network = self if hints is None else self.hint_network
        ab = network._network_ab(lightness, hints, seed)
        if hints is None:
            return ab.float().cpu().contiguous(), None
        x = lightness.to(self.device, torch.float32)
        hints = hints.to(self.device, torch.float32)
        nearness = hint_nearness(x, hints)
        settings = self.settings
        if settings.hint_locality > 0:
            # the same pass without hints (same seed): what the model paints beyond the hints' regions
            automatic = self.predict_ab(lightness, seed=seed).to(ab.device)
            ab = keep_local(automatic, ab.float(), nearness, settings.hint_locality)
        if settings.hint_snap > 0:
            ab = snap_to_hints(x, ab.float(), hints, settings.hint_snap, nearness)
        return ab.float().cpu().contiguous(), nearness.cpu()

    def _network_ab(self, lightness: torch.Tensor, hints: torch.Tensor | None, seed: int | None) -> torch.Tensor:
        """This colorizer's network on normalised L (and hint channels): `predict_ab` before the
        hints' locality and snap."""
        x = lightness.to(self.device, torch.float32).contiguous(memory_format=self.memory_format)
        if hints is not None:
            hints = hints.to(self.device, torch.float32).contiguous(memory_format=self.memory_format)
        with self._lock:
            if seed is None:
                with self._autocast():
                    ab = (self.generator if self._fast is None else self._fast)(x, hints=hints).float()
                settings = self.settings
                if settings.samples > 1 and self.generator.has_injected_noise:
                    draws = self._noise_draws(x, settings.samples, AGREEMENT_SEED, hints=hints)
                    ab = ab * hue_agreement(draws).pow(settings.agreement_power)
            elif self.generator.has_injected_noise:
                with self._autocast():
                    ab = self.generator(x, hints=hints, noise=torch.Generator().manual_seed(int(seed)))
            else:
                devices = [self.device] if self.device.type == "cuda" else []
                set_dropout_sampling(self.generator, True)
                try:
                    with torch.random.fork_rng(devices=devices), self._autocast():
                        torch.manual_seed(int(seed))
                        ab = self.generator(x, hints=hints)
                finally:
                    set_dropout_sampling(self.generator, False)
        return ab

    def _autocast(self):
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _noise_draws(self, x: torch.Tensor, count: int, seed: int, *, hints: torch.Tensor | None = None) -> torch.Tensor:
        """`count` samples of the injected noise for a batch, in one network call: (count, B, 2, h, w)."""
        repeated_hints = None if hints is None else hints.repeat(count, 1, 1, 1)
        with self._autocast():
            ab = self.generator(x.repeat(count, 1, 1, 1), hints=repeated_hints, noise=torch.Generator().manual_seed(seed))
        return ab.float().unflatten(0, (count, len(x)))

    @torch.inference_mode()
    def sample_ab(self, lightness: torch.Tensor, *, count: int, seed: int = 0, hints: torch.Tensor | None = None) -> torch.Tensor:
        """`count` noise samples (count, B, 2, h, w) of normalised ab: the i-th equals `predict_ab(seed=seed + i)`."""
        return torch.stack([self.predict_ab(lightness, hints=hints, seed=seed + i) for i in range(count)])

    @torch.inference_mode()
    def noise_diversity(self, image: ImageSource, *, count: int = 4, render_size: int | None = None, seed: int = 0) -> float:
        """Mean pairwise distance in ab units between `count` noise samples of `image`, over the pixels
        the network renders: about 0 when the noise is ignored (every sample the same colouring)."""
        if count < 2:
            raise ValueError("noise_diversity needs at least 2 samples.")
        _, lightness = self._prepare(image, render_size, True)
        samples = color.denormalize_ab(self.sample_ab(lightness, count=count, seed=seed)[:, 0])
        distances = [
            color.chroma_of(samples[i] - samples[j]).mean()
            for i in range(count)
            for j in range(i + 1, count)
        ]
        return float(torch.stack(distances).mean())

    # -- images -------------------------------------------------------------------------------

    @property
    def default_render_size(self) -> int:
        """The render size the model asks for (`InferenceSettings.render_size`: its training size unless
        its config.json says otherwise); `render_size=None` means this size.

        A fully convolutional generator sees objects at the scale it learned when the short side
        it renders matches its training crops.
        """
        return self.settings.render_size

    def render_shape_of(self, width: int, height: int, *, render_size: int | None = None, keep_aspect: bool = True) -> tuple[int, int]:
        """(h, w) at which this model's network sees an image of width x height (`render_shape`)."""
        return render_shape(height, width, self.default_render_size if render_size is None else int(render_size), keep_aspect=keep_aspect)

    def _prepare(self, image: ImageSource, render_size: int | None, keep_aspect: bool) -> tuple[Image.Image, torch.Tensor]:
        if render_size is not None and int(render_size) < 1:
            raise ValueError(f"render_size must be a positive number of pixels, not {render_size}.")
        rgb = load_image(image)
        return rgb, network_input(rgb, self.render_shape_of(*rgb.size, render_size=render_size, keep_aspect=keep_aspect))

    def hint_channels(
        self,
        image_size: tuple[int, int],
        lightness: torch.Tensor,
        hints: Iterable[Hint | dict] | None = None,
        *,
        hint_image: ImageSource | None = None,
    ) -> torch.Tensor | None:
        """The network's hint channels for `hints` (and a hint image) on a photo of `image_size`
        (w, h) whose render-size L is `lightness` (1, 1, h, w); None when there are none.

        Raises HintError with one sentence for unusable hints, or for hints given to a model
        that takes none. Point hints are drawn over the hint image's strokes."""
        parsed = parse_hints(hints)
        if not parsed and hint_image is None:
            return None
        if not self.takes_hints:
            raise HintError(f"The model '{self.name}' takes no colour hints; choose a model trained with --hints.")
        shape = tuple(lightness.shape[-2:])
        ab, mask = hint_maps(parsed, image_size, shape)
        if hint_image is not None:
            stroke_ab, stroke_mask = hint_image_maps(hint_image, image_size, shape)
            ab = torch.where(mask > 0, ab, stroke_ab)
            mask = torch.maximum(mask, stroke_mask)
        if not bool(mask.any()):
            return None
        return encode_hints(lightness, ab, mask, propagation=self.hint_network.model_config.hint_propagation)

    @torch.inference_mode()
    def suggest_colours(
        self,
        image: ImageSource,
        x: float,
        y: float,
        *,
        hints: Iterable[Hint | dict] | None = None,
        hint_image: ImageSource | None = None,
        count: int = 8,
        render_size: int | None = None,
    ) -> list[str]:
        """`count` colours ("#rrggbb", at the point's own lightness) to suggest for a hint at (x, y)
        of `image`: the model's own colour there with `hints`, its noise samples' colours, then the
        colours photos often show at that lightness (`colorize.suggest`)."""
        rgb, lightness = self._prepare(image, render_size, True)
        hints = parse_hints(hints)
        check_inside([Hint(x, y, "#000000")], rgb.size)
        channels = self.hint_channels(rgb.size, lightness, hints, hint_image=hint_image)
        height, width = lightness.shape[-2:]
        column = min(width - 1, int((math.floor(x) + 0.5) * width / rgb.width))
        row = min(height - 1, int((math.floor(y) + 0.5) * height / rgb.height))
        prediction, nearness = self._predict(lightness, channels, None)
        maps = [prediction]
        network = self if channels is None else self.hint_network
        if network.generator.has_injected_noise:
            with network._lock:
                x_in = lightness.to(network.device, torch.float32).contiguous(memory_format=network.memory_format)
                hint_in = None if channels is None else channels.to(network.device)
                maps.append(network._noise_draws(x_in, suggest.NOISE_DRAWS, AGREEMENT_SEED, hints=hint_in)[:, 0].cpu())
        window = (slice(max(0, row - 1), row + 2), slice(max(0, column - 1), column + 2))
        nearness = None if nearness is None else nearness[0]
        shown = [self.compose_inputs(ab_map, 1.0, nearness)[0] for ab_map in torch.cat(maps)]
        samples = torch.stack([ab[:, window[0], window[1]].mean(dim=(1, 2)) for ab in shown])
        point_l = float(luminance(np.asarray(rgb.crop((int(x), int(y), int(x) + 1, int(y) + 1))))[0, 0])
        return suggest.suggestions(suggest.model_colours(samples), point_l, count)

    def compose_inputs(
        self, ab_norm: torch.Tensor, saturation: float = 1.0, nearness: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, float]:
        """(ab in Lab units, the saturation compose applies to it) for the network's `ab_norm`
        (2, h, w): the model's chroma curve, scale and knee, at the network's resolution (cheap).

        With `nearness` (1, h, w: `hint_nearness` of the hints the network saw), those settings
        apply only beyond the hints' regions: they were calibrated for the colours the model picks
        by itself, and must not mute or inflate a colour a person asked for."""
        raw = color.denormalize_ab(ab_norm)
        ab = apply_chroma_gamma(raw, self.chroma_gamma)
        strength = saturation * self.chroma_scale
        if self.settings.chroma_knee > 0:
            ab, strength = apply_chroma_knee(ab * strength, self.settings.chroma_knee), 1.0
        if nearness is None:
            return ab, strength
        return nearness * raw * saturation + (1.0 - nearness) * ab * strength, 1.0

    def _finish(
        self, rgb: Image.Image, prediction: tuple[torch.Tensor, torch.Tensor | None], index: int, saturation: float
    ) -> Image.Image:
        """The `index`-th image of a `_predict` result composed onto `rgb`."""
        ab_norm, nearness = prediction[0][index], None if prediction[1] is None else prediction[1][index]
        ab, strength = self.compose_inputs(ab_norm, saturation, nearness)
        return compose(rgb, ab, saturation=strength, chunk_pixels=self.chunk_pixels, gamut=self.gamut, kernel=self.kernel)

    def colorize(
        self,
        image: ImageSource,
        *,
        render_size: int | None = None,
        saturation: float = 1.0,
        seed: int | None = None,
        keep_aspect: bool = True,
        hints: Iterable[Hint | dict] | None = None,
        hint_image: ImageSource | None = None,
    ) -> Image.Image:
        """Colour version of `image` (path, bytes, file object or PIL image): RGB, same size, same L.

        `hints`: colour hints (`colorize.Hint(x, y, color, radius)` or dicts of those fields, in
        the image's own upright pixels) for a model trained with hints; `hint_image`: an RGBA
        picture of the image's size whose opaque pixels are hints of their colour.
        Raises `colorize.imageio.ImageLoadError` or `colorize.hints.HintError` with a plain
        sentence for an unusable input.
        """
        rgb, lightness = self._prepare(image, render_size, keep_aspect)
        channels = self.hint_channels(rgb.size, lightness, hints, hint_image=hint_image)
        return self._finish(rgb, self._predict(lightness, channels, seed), 0, saturation)

    def colorize_variations(
        self,
        image: ImageSource,
        *,
        count: int,
        seed: int = 0,
        render_size: int | None = None,
        saturation: float = 1.0,
        keep_aspect: bool = True,
        hints: Iterable[Hint | dict] | None = None,
        hint_image: ImageSource | None = None,
    ) -> list[Image.Image]:
        """`count` samples of the model's noise; the i-th equals `colorize(image, seed=seed + i)` (same hints)."""
        rgb, lightness = self._prepare(image, render_size, keep_aspect)
        channels = self.hint_channels(rgb.size, lightness, hints, hint_image=hint_image)
        return [
            self._finish(rgb, self._predict(lightness, channels, seed + i), 0, saturation)
            for i in range(count)
        ]

    def colorize_batch(
        self,
        images: Sequence[ImageSource],
        *,
        render_size: int | None = None,
        saturation: float = 1.0,
        seed: int | None = None,
        keep_aspect: bool = True,
        batch_size: int = 16,
        hints: Sequence[Iterable[Hint | dict] | None] | None = None,
    ) -> list[Image.Image]:
        """Colourise several images; those with the same render shape share one network call.

        `hints`: one list of hints per image (None or [] for none). The i-th result equals
        `colorize(images[i], hints=hints[i], ...)` (with a seed, every image gets that seed, as
        it would alone, so those run one by one). Any unusable image or hint raises.
        """
        if hints is not None and len(hints) != len(images):
            raise HintError(f"Give one list of hints per image: {len(images)} image(s), {len(hints)} list(s) of hints.")
        prepared = [self._prepare(image, render_size, keep_aspect) for image in images]
        channels = [
            self.hint_channels(rgb.size, lightness, None if hints is None else hints[index])
            for index, (rgb, lightness) in enumerate(prepared)
        ]
        # per image: (the batch's _predict result, the image's index in it)
        predicted: list[tuple[tuple[torch.Tensor, torch.Tensor | None], int] | None] = [None] * len(prepared)
        if seed is not None:
            for index, (_, lightness) in enumerate(prepared):
                predicted[index] = (self._predict(lightness, channels[index], seed), 0)
        else:
            groups: dict[tuple[tuple[int, int], bool], list[int]] = {}
            for index, (_, lightness) in enumerate(prepared):
                groups.setdefault((tuple(lightness.shape[-2:]), channels[index] is not None), []).append(index)
            for (_, hinted), indices in groups.items():
                for start in range(0, len(indices), batch_size):
                    chunk = indices[start : start + batch_size]
                    batch = torch.cat([prepared[i][1] for i in chunk])
                    batch_hints = torch.cat([channels[i] for i in chunk]) if hinted else None
                    result = self._predict(batch, batch_hints, None)
                    for position, i in enumerate(chunk):
                        predicted[i] = (result, position)
        return [self._finish(rgb, *prediction, saturation) for (rgb, _), prediction in zip(prepared, predicted)]


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
        "--render-size", type=int, default=None, help="short side the network sees (default: the model's own, colorize.defaults)"
    )
    parser.add_argument("--saturation", type=float, default=1.0, help="scale of the predicted colour (0 = gray)")
    parser.add_argument("--seed", type=int, default=None, help="draw one sample of the model's noise with this seed (default: its deterministic colouring)")
    parser.add_argument(
        "--hints", type=Path, default=None, metavar="HINTS.json",
        help='colour hints for a model trained with hints: a JSON list of {"x": .., "y": .., "color": "#rrggbb", "radius": ..} '
        "in the photo's pixels (one input photo only)",
    )
    parser.add_argument(
        "--hint-image", type=Path, default=None, metavar="STROKES.png",
        help="colour hints painted on a transparent RGBA image of the photo's size: every opaque pixel is a hint of its colour (one input photo only)",
    )
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
    except (CheckpointError, DeviceError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    jobs, problems = collect_inputs(args.inputs, exclude=args.out)
    hints = None
    if args.hints is not None or args.hint_image is not None:
        if len(jobs) != 1 or problems:
            print("error: --hints and --hint-image belong to one photo; give exactly one input file with them.", file=sys.stderr)
            return 2
        try:
            hints = read_hints_json(args.hints) if args.hints is not None else []
            if not colorizer.takes_hints:
                raise HintError(f"The model '{colorizer.name}' takes no colour hints; choose a model trained with --hints.")
        except HintError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
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
                path, render_size=args.render_size, saturation=args.saturation, seed=args.seed,
                hints=hints, hint_image=args.hint_image,
            )
            _write_new(result, target, image_format, forbidden)
            written += 1
        except HintError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        except (ImageLoadError, OSError, MemoryError, ValueError) as error:
            failures += 1
            tqdm.write(f"skipped {path}: {error}", file=sys.stderr)
    print(f"Colorized {written} image(s) into {args.out}; {failures} failed.")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
