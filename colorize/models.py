"""Generators and discriminators, built by name from a `ModelConfig`.

Generators map normalised L (B, 1, H, W) in [-1, 1] to normalised ab (B, 2, H, W) in [-1, 1].
A generator built with `hints` also takes the hint channels of `colorize.hints` (B, C, H, W)
beside L; without them (None) it sees zeros there, which is the automatic colorizer.
Any H x W works, odd and tiny sizes included. The U-Nets pad level by level: where a side is odd
before a stride-2 layer, one replicated row or column makes it even, and the way up crops back
to the skip's size. A 1024x768 photo rendered at 128x160 therefore costs the network 128x160,
not the 128x256 that padding the input to a multiple of 2^depth would cost (60% more work, and
96 columns of smeared edge the deep layers would take as part of the photo). On sides that are
multiples of 2^depth (every training crop) the two are the same computation. The ResNet-18
encoder pads its input to a multiple of 32 as a whole.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .cli import option
from .color import AB_SCALE

GENERATOR_NAMES = ("unet", "resunet", "resnet18-unet", "encdec")
NORM_NAMES = ("batch", "instance", "none")
COLOUR_HEADS = ("regression", "bins")
COLOUR_BIN_STEP = 10.0  # ab units between neighbouring bin centres (Zhang et al. 2016)
HINT_POINT_CHANNELS = 3  # hinted ab, mask (colorize.hints)
HINT_PROPAGATION_CHANNELS = 3  # spread ab, reach


def pad_to_even(x: torch.Tensor) -> torch.Tensor:
    """x with one replicated row / column at the bottom / right where a side is odd."""
    pad_h, pad_w = x.shape[-2] % 2, x.shape[-1] % 2
    # while traced (an ONNX export) always pad: the pad's size then stays a function of the shape
    if torch.jit.is_tracing() or pad_h or pad_w:
        return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return x


def crop_like(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """x cut to the height and width of `reference` (top-left, where `pad_to_even` left them)."""
    return x[..., : reference.shape[-2], : reference.shape[-1]]


# Leaves for torch.fx: their shape tests stay inside the call, so `fastpath.fold_batchnorm` can
# trace a generator that pads level by level.
torch.fx.wrap("pad_to_even")
torch.fx.wrap("crop_like")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a colorizer; saved in every checkpoint's config.json."""

    generator: str = option("unet", "generator architecture", choices=GENERATOR_NAMES)
    base_channels: int = option(32, "width of the generator's first level (doubles per level up to max-channels)")
    depth: int = option(7, "generator down-samplings (unet/resunet/encdec); 8 gives pix2pix's 1x1 bottleneck at 256 px")
    max_channels: int = option(256, "widest generator level")
    norm: str = option("batch", "generator normalisation", choices=NORM_NAMES)
    dropout: float = option(0.5, "dropout rate in the innermost decoder blocks (the pix2pix noise)")
    dropout_layers: int = option(3, "decoder blocks with dropout")
    discriminator_layers: int = option(3, "PatchGAN layers (3 = 70x70 receptive field)")
    discriminator_channels: int = option(64, "PatchGAN width of the first layer")
    discriminator_norm: str = option("batch", "discriminator normalisation (wgan-gp switches 'batch' to 'instance')", choices=NORM_NAMES)
    conditional: bool = option(True, "the discriminator sees L with ab (conditional GAN) or ab alone")
    noise_channels: int = option(0, "size of the per-image noise vector z injected into the coarsest decoder blocks; 0 = none, dropout is the noise")
    noise_levels: int = option(4, "decoder blocks, from the bottleneck out, that receive the injected noise")
    noise_maps: bool = option(True, "also add per-pixel noise maps (StyleGAN-style) where z enters; off = z alone, so a sample can only recolour whole regions the network itself delimits")
    colour_head: str = option(
        "regression",
        "what the generator's last layer predicts: ab itself (regression, pix2pix), or how likely each of ~380 ab colour "
        "bins is, decoded by an annealed mean (bins, Zhang et al. 2016: where a regression averages red and green "
        "to a yellow-brown, the bins keep the likelier colour); unet, resunet and encdec",
        choices=COLOUR_HEADS,
    )
    colour_temperature: float = option(
        0.38, "bins head: temperature of the annealed mean (1 = the distribution's mean colour, towards 0 = its most likely bin)"
    )
    hints: bool = option(
        False,
        "the generator also takes colour hints (Zhang et al. 2017: the hinted pixels' ab and a mask, as input channels beside L); "
        "trained with hints simulated from the real photos, and with none it is the automatic colorizer (unet, resunet, encdec)",
    )
    hint_propagation: bool = option(
        True, "with hints: also give the generator the hints spread along the photo's edges (colorize.propagation)"
    )

    def __post_init__(self) -> None:
        if self.generator not in GENERATOR_NAMES:
            raise ValueError(f"Unknown generator '{self.generator}'; choose one of {', '.join(GENERATOR_NAMES)}.")
        for name in ("norm", "discriminator_norm"):
            if getattr(self, name) not in NORM_NAMES:
                raise ValueError(f"Unknown {name} '{getattr(self, name)}'; choose one of {', '.join(NORM_NAMES)}.")
        if not 1 <= self.depth <= 9:
            raise ValueError(f"depth must be between 1 and 9, not {self.depth}.")
        if self.base_channels < 1 or self.max_channels < self.base_channels:
            raise ValueError("base_channels must be at least 1 and no larger than max_channels.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), not {self.dropout}.")
        if self.discriminator_layers < 1:
            raise ValueError("discriminator_layers must be at least 1.")
        if self.noise_channels < 0 or self.noise_levels < 1:
            raise ValueError("noise_channels must be 0 or more and noise_levels at least 1.")
        if self.noise_channels and self.generator == "resnet18-unet":
            raise ValueError("Injected noise (noise_channels > 0) is built for the unet, resunet and encdec generators only.")
        if self.colour_head not in COLOUR_HEADS:
            raise ValueError(f"Unknown colour_head '{self.colour_head}'; choose one of {', '.join(COLOUR_HEADS)}.")
        if self.colour_head == "bins" and self.generator == "resnet18-unet":
            raise ValueError("The bins colour head is built for the unet, resunet and encdec generators only.")
        if not 0.0 < self.colour_temperature <= 1.0:
            raise ValueError(f"colour_temperature must be in (0, 1], not {self.colour_temperature}.")
        if self.hints and self.generator == "resnet18-unet":
            raise ValueError("Colour hints are built for the unet, resunet and encdec generators only.")

    @property
    def hint_channels(self) -> int:
        """Input channels beside L: 0 for an automatic model (see `colorize.hints`)."""
        if not self.hints:
            return 0
        return HINT_POINT_CHANNELS + (HINT_PROPAGATION_CHANNELS if self.hint_propagation else 0)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown model settings: {', '.join(unknown)}.")
        return cls(**values)


def _norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.Identity()


class NoiseDraw:
    """Where the injected noise of one forward pass comes from.

    `generator=None` draws from torch's global RNG (training: saved and restored with the run,
    so a resume stays exact); a `torch.Generator` gives a reproducible sample (inference with a
    seed). Draws happen on the CPU when a generator is given, so a seed means the same sample on
    every device.
    """

    def __init__(self, generator: torch.Generator | None = None) -> None:
        self.generator = generator
        self._z: torch.Tensor | None = None

    def normal(self, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        if self.generator is None:
            return torch.randn(shape, device=like.device, dtype=like.dtype)
        return torch.randn(shape, generator=self.generator).to(like.device, like.dtype)

    def z(self, batch: int, channels: int, like: torch.Tensor) -> torch.Tensor:
        """The image-level noise vector, drawn once per forward pass and shared by every level."""
        if self._z is None:
            self._z = self.normal((batch, channels), like)
        return self._z.to(like.dtype)


class NoiseInjection(nn.Module):
    """Adds a per-image vector z (through a learned projection) and, with `pixel_maps`, a per-pixel
    noise map (with learned per-channel strengths, as in StyleGAN) to a decoder feature map.

    Without a draw it is the identity: the deterministic pass is the network with zero noise.
    The weights start small but not at zero: a diversity loss |G(x, z1) - G(x, z2)| has no
    gradient where the two samples are exactly equal. Per-pixel maps give the diversity term an
    image-independent way to be met (a blotchy pattern at the map's resolution); with z alone a
    sample can only change colours through the features the network computes from the photo.
    """

    def __init__(self, channels: int, noise_channels: int, *, pixel_maps: bool = True) -> None:
        super().__init__()
        self.noise_channels = noise_channels
        self.project = nn.Linear(noise_channels, channels, bias=False)
        self.pixel_strength = nn.Parameter(torch.empty(1, channels, 1, 1)) if pixel_maps else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.project.weight, 0.0, 0.1)
        if self.pixel_strength is not None:
            nn.init.constant_(self.pixel_strength, 0.05)

    def forward(self, x: torch.Tensor, draw: NoiseDraw | None = None) -> torch.Tensor:
        if draw is None:
            return x
        batch, _, height, width = x.shape
        x = x + self.project(draw.z(batch, self.noise_channels, x))[:, :, None, None]
        if self.pixel_strength is not None:
            x = x + self.pixel_strength * draw.normal((batch, 1, height, width), x)
        return x


class SizeAgnosticGenerator(nn.Module):
    """Pads to a multiple of `padding_multiple` (replicate: safe even for 1-pixel inputs) and crops back.

    `size_multiple`: the sides the down-samplings halve exactly (training crops are multiples of
    it). A generator that `pads_per_level` evens its sides inside `predict` instead, so its
    input is not padded as a whole.

    `noise`: None for the deterministic pass; True to draw the injected noise from the global RNG
    (training); a `torch.Generator` for a reproducible sample. Generators without injected noise
    ignore it (their noise is dropout, switched by `set_dropout_sampling`).
    """

    size_multiple: int = 1
    pads_per_level: bool = False
    hint_channels: int = 0

    @property
    def padding_multiple(self) -> int:
        return 1 if self.pads_per_level else self.size_multiple

    def padded_input_shape(self, height: int, width: int) -> tuple[int, int]:
        """The height and width `predict` is given for an input of height x width."""
        multiple = self.padding_multiple
        return max(multiple, -(-height // multiple) * multiple), max(multiple, -(-width // multiple) * multiple)

    def network_input(self, lightness: torch.Tensor, hints: torch.Tensor | None = None) -> torch.Tensor:
        """What `predict` takes: L, and for a hint-taking generator its hint channels (zeros for none)."""
        if not self.hint_channels:
            if hints is not None:
                raise ValueError("This model takes no colour hints; train one with --hints.")
            return lightness
        if hints is None:
            hints = lightness.new_zeros((lightness.shape[0], self.hint_channels, *lightness.shape[2:]))
        elif hints.shape[1] != self.hint_channels or hints.shape[2:] != lightness.shape[2:]:
            raise ValueError(
                f"Hint channels of shape {tuple(hints.shape)} do not fit this model ({self.hint_channels} channels of L's size)."
            )
        return torch.cat((lightness, hints.to(lightness.dtype)), dim=1)

    def forward(
        self,
        lightness: torch.Tensor,
        *,
        hints: torch.Tensor | None = None,
        noise: bool | torch.Generator | None = None,
        with_logits: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """ab; with `with_logits` (a bins head, an input of a whole multiple of `size_multiple`:
        training crops), the pair (ab, the head's logits at half resolution). `hints`: the hint
        channels (`colorize.hints.encode_hints`) of a generator built with hints."""
        lightness = self.network_input(lightness, hints)
        draw = None
        if noise is not None and noise is not False:
            draw = NoiseDraw(None if noise is True else noise)
        height, width = lightness.shape[-2:]
        if with_logits:
            if not self.predicts_bins:
                raise ValueError("Only a generator with the bins colour head has logits.")
            multiple = self.size_multiple
            if height % multiple or width % multiple:
                raise ValueError(f"Logits need an input whose sides are multiples of {multiple}, not {height}x{width}.")
            return self.predict_with_logits(lightness, draw)
        target_h, target_w = self.padded_input_shape(height, width)
        pad_h, pad_w = target_h - height, target_w - width
        if pad_h or pad_w:
            top, left = pad_h // 2, pad_w // 2
            lightness = F.pad(lightness, (left, pad_w - left, top, pad_h - top), mode="replicate")
            ab = self._predict(lightness, draw)
            return ab[..., top : top + height, left : left + width]
        return self._predict(lightness, draw)

    def _predict(self, lightness: torch.Tensor, draw: NoiseDraw | None) -> torch.Tensor:
        # generators without injected noise may define predict(lightness) alone
        return self.predict(lightness) if draw is None else self.predict(lightness, draw)

    @property
    def has_injected_noise(self) -> bool:
        return False

    @property
    def predicts_bins(self) -> bool:
        return False

    def predict(self, lightness: torch.Tensor, draw: NoiseDraw | None = None) -> torch.Tensor:
        raise NotImplementedError


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, norm: str) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=norm == "none"),
            _norm_layer(norm, channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=norm == "none"),
            _norm_layer(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


def colour_bin_centres(step: float = COLOUR_BIN_STEP) -> torch.Tensor:
    """(Q, 2) ab centres, in ab units, of the bins head: a square grid of `step` within the disc of
    radius AB_SCALE, which holds all sRGB colours but the most saturated blues and purples (chroma
    up to 134, trained on the disc's edge). Closed form on purpose: a set measured from the gamut
    could differ by a bin between machines, and the head's weights would no longer fit."""
    radius = int(AB_SCALE // step)
    axis = torch.arange(-radius, radius + 1, dtype=torch.float64) * step
    a, b = torch.meshgrid(axis, axis, indexing="ij")
    centres = torch.stack((a.flatten(), b.flatten()), dim=1)
    return centres[centres.square().sum(dim=1) <= AB_SCALE**2].float()


class ColourBinsHead(nn.Module):
    """One logit per ab bin at the last decoder level (half the input's resolution), decoded by
    the annealed mean: softmax(logits / T) times the bin centres, then upsampled x2 (bilinear).

    Colour is smooth where the photo is, so predicting it at half resolution costs no sharpness
    once L is added back at full resolution, and a quarter of the head's work.

    A noise draw samples the distribution region by region: Gumbel noise, one value per bin and
    per cell of a SAMPLING_CELL grid (smoothly interpolated between cells), is added to the logits
    before the annealed mean (the Gumbel-max trick: log p + Gumbel picks a bin with probability p).
    Where the network is sure (one bin far likelier) every draw keeps its colour; where it is
    torn (a shirt: red or blue) draws pick differently, a whole region at a time.

    Trained with class rebalancing (each bin's loss weighted by w(q), rare saturated colours up),
    the head learns a distribution tilted by w towards those colours. It keeps log w from its
    training data (`rebalancing_log_weights`, saved with the weights) so that decoding can divide
    part of the tilt out again: logits - prior_correction * log w (0: as trained, 1: none of it).
    """

    SAMPLING_CELL = 8  # logit pixels per side of a region that takes one colour per draw
    REBALANCING_KEY = "rebalancing_log_weights"

    def __init__(self, in_channels: int, temperature: float) -> None:
        super().__init__()
        centres = colour_bin_centres() / AB_SCALE
        self.classify = nn.Conv2d(in_channels, len(centres), 1)
        self.register_buffer("centres", centres, persistent=False)  # normalised ab, (Q, 2)
        # zeros until training stores its weights: a correction then changes nothing
        self.register_buffer(self.REBALANCING_KEY, torch.zeros(len(centres)))
        self.temperature = float(temperature)
        self.prior_correction = 0.0

    @property
    def knows_rebalancing(self) -> bool:
        return bool(self.rebalancing_log_weights.any())

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # weights saved before the head kept its rebalancing keep the values it has now
        state_dict.setdefault(prefix + self.REBALANCING_KEY, self.rebalancing_log_weights.detach().clone())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.classify(F.relu(features))

    def decode(self, logits: torch.Tensor, draw: NoiseDraw | None = None) -> torch.Tensor:
        if self.prior_correction:
            tilt = self.rebalancing_log_weights.to(logits.dtype)[None, :, None, None]
            logits = logits - self.prior_correction * tilt
        if draw is not None:
            logits = logits.float() + self._regional_gumbel(logits, draw)
        # softmax(logits / T) . centres as sum(w c) / sum(w), both sums in one 1x1 convolution:
        # the same expected ab without normalising all Q probabilities, and without a softmax or
        # a sum over the channel axis, which ONNX Runtime runs several times slower
        scaled = logits.float() * (1.0 / self.temperature)
        weights = torch.exp(scaled - scaled.amax(dim=1, keepdim=True))
        sums = F.conv2d(weights, torch.cat([self.centres.T, torch.ones_like(self.centres[:, :1]).T])[:, :, None, None])
        ab = sums[:, :2] / sums[:, 2:]
        return F.interpolate(ab, scale_factor=2.0, mode="bilinear", align_corners=False)

    def forward(self, features: torch.Tensor, draw: NoiseDraw | None = None) -> torch.Tensor:
        return self.decode(self.logits(features), draw)

    def _regional_gumbel(self, logits: torch.Tensor, draw: NoiseDraw) -> torch.Tensor:
        batch, bins, height, width = logits.shape
        cells = (max(1, -(-height // self.SAMPLING_CELL)), max(1, -(-width // self.SAMPLING_CELL)))
        uniform = torch.special.ndtr(draw.normal((batch, bins, *cells), logits.float()))  # U(0, 1) from the draw's normals
        gumbel = -torch.log(-torch.log(uniform.clamp(1e-6, 1 - 1e-6)))
        return F.interpolate(gumbel, size=(height, width), mode="bilinear", align_corners=False)


class UNetGenerator(SizeAgnosticGenerator):
    """pix2pix U-Net: 4x4 stride-2 convolutions down, transposed convolutions up.

    `skip=False` removes the skip connections (the encoder-decoder of the ablation);
    `residual=True` adds a residual block after every resampling (the residual U-Net).
    """

    def __init__(self, config: ModelConfig, *, skip: bool = True, residual: bool = False) -> None:
        super().__init__()
        depth, norm, use_bias = config.depth, config.norm, config.norm == "none"
        self.skip = skip
        self.size_multiple = 2**depth
        self.pads_per_level = True
        self.hint_channels = config.hint_channels
        widths = [min(config.base_channels * 2**level, config.max_channels) for level in range(depth)]

        def extra(channels: int, level_has_norm: bool = True) -> list[nn.Module]:
            return [ResidualBlock(channels, norm if level_has_norm else "none")] if residual else []

        self.down = nn.ModuleList()
        for level in range(depth):
            if level == 0:
                layers = [nn.Conv2d(1 + self.hint_channels, widths[0], 4, 2, 1)]
            else:
                innermost = level == depth - 1
                layers = [
                    # not in place after a residual block: its ReLU output is saved for the backward pass
                    nn.LeakyReLU(0.2, inplace=not residual),
                    nn.Conv2d(widths[level - 1], widths[level], 4, 2, 1, bias=use_bias or innermost),
                    nn.Identity() if innermost else _norm_layer(norm, widths[level]),
                ]
                # the bottleneck can be 1x1: a normalised residual block there would see one value.
                layers += extra(widths[level], level_has_norm=not innermost)
            self.down.append(nn.Sequential(*layers))

        self.up = nn.ModuleList()
        # as in pix2pix: the blocks just outside the bottleneck carry the dropout noise.
        first_dropout_level = max(1, depth - 1 - config.dropout_layers)
        for level in range(depth - 1, 0, -1):
            in_channels = widths[level] * (2 if skip and level < depth - 1 else 1)
            layers = [
                nn.ReLU(inplace=False),
                nn.ConvTranspose2d(in_channels, widths[level - 1], 4, 2, 1, bias=use_bias),
                _norm_layer(norm, widths[level - 1]),
            ]
            layers += extra(widths[level - 1])
            if config.dropout > 0 and first_dropout_level <= level < depth - 1:
                layers.append(nn.Dropout(config.dropout))
            self.up.append(nn.Sequential(*layers))
        # z and the noise maps enter the coarsest decoder levels: a choice of colour there spreads
        # over whole regions as the decoder upsamples, instead of speckling single pixels.
        noisy_levels = range(depth - 1, 0, -1)[: config.noise_levels] if config.noise_channels else ()
        self.noise = nn.ModuleList(
            NoiseInjection(widths[level - 1], config.noise_channels, pixel_maps=config.noise_maps) for level in noisy_levels
        )
        head_channels = widths[0] * (2 if skip and depth > 1 else 1)
        if config.colour_head == "bins":
            self.head = ColourBinsHead(head_channels, config.colour_temperature)
        else:
            self.head = nn.Sequential(nn.ReLU(inplace=False), nn.ConvTranspose2d(head_channels, 2, 4, 2, 1), nn.Tanh())

    @property
    def predicts_bins(self) -> bool:
        return isinstance(self.head, ColourBinsHead)

    @property
    def has_injected_noise(self) -> bool:
        # a bins head samples its own distribution (ColourBinsHead), with or without z
        return len(self.noise) > 0 or self.predicts_bins

    def predict(self, lightness: torch.Tensor, draw: NoiseDraw | None = None) -> torch.Tensor:
        features = self._decoder_features(lightness, draw)
        ab = self.head(features, draw) if self.predicts_bins else self.head(features)
        return crop_like(ab, lightness)

    def predict_with_logits(self, lightness: torch.Tensor, draw: NoiseDraw | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.head.logits(self._decoder_features(lightness, draw))
        return self.head.decode(logits), logits

    def _decoder_features(self, lightness: torch.Tensor, draw: NoiseDraw | None) -> torch.Tensor:
        features = []
        x = lightness
        for block in self.down:
            x = block(pad_to_even(x))
            features.append(x)
        features.pop()
        for index, block in enumerate(self.up):
            skip_features = features.pop()
            x = crop_like(block(x), skip_features)
            if draw is not None and index < len(self.noise):
                x = self.noise[index](x, draw)
            if self.skip:
                x = torch.cat((x, skip_features), dim=1)
        return x


class BasicBlock(nn.Module):
    """ResNet-18 basic block with torchvision's parameter names, so its weights load as they are."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class ResNet18Encoder(nn.Module):
    """ResNet-18 without its classifier, taking one (L) channel."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(64, 64), BasicBlock(64, 64))
        self.layer2 = nn.Sequential(BasicBlock(64, 128, 2), BasicBlock(128, 128))
        self.layer3 = nn.Sequential(BasicBlock(128, 256, 2), BasicBlock(256, 256))
        self.layer4 = nn.Sequential(BasicBlock(256, 512, 2), BasicBlock(512, 512))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        stem = self.relu(self.bn1(self.conv1(x)))
        s4 = self.layer1(self.maxpool(stem))
        s8 = self.layer2(s4)
        s16 = self.layer3(s8)
        return [stem, s4, s8, s16, self.layer4(s16)]


class UpsampleBlock(nn.Module):
    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, norm: str, dropout: float) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels + skip_channels, out_channels, 3, padding=1, bias=norm == "none"),
            _norm_layer(norm, out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=norm == "none"),
            _norm_layer(norm, out_channels),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.body(torch.cat((x, skip), dim=1))


class ResNet18UNetGenerator(SizeAgnosticGenerator):
    """ResNet-18 encoder with a U-Net decoder (the DynamicUnet recipe of the COCO colorization report)."""

    size_multiple = 32

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.encoder = ResNet18Encoder()
        base, norm = config.base_channels, config.norm
        dropout = config.dropout
        self.decoder = nn.ModuleList(
            [
                UpsampleBlock(512, 256, 8 * base, norm, dropout),
                UpsampleBlock(8 * base, 128, 4 * base, norm, dropout),
                UpsampleBlock(4 * base, 64, 2 * base, norm, 0.0),
                UpsampleBlock(2 * base, 64, base, norm, 0.0),
                UpsampleBlock(base, 1, base, norm, 0.0),
            ]
        )
        self.head = nn.Sequential(nn.Conv2d(base, 2, 1), nn.Tanh())

    def predict(self, lightness: torch.Tensor, draw: NoiseDraw | None = None) -> torch.Tensor:
        stem, s4, s8, s16, x = self.encoder(lightness)
        for block, skip in zip(self.decoder, (s16, s8, s4, stem, lightness)):
            x = block(x, skip)
        return self.head(x)


def load_resnet18_encoder_weights(generator: ResNet18UNetGenerator, path: str | Path) -> None:
    """Load a torchvision-format `resnet18` state dict (a file the user has) into the encoder.

    The first convolution's RGB filters are summed into one L filter, which keeps the
    response to a gray image the same as the RGB network's.
    """
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"There is no ResNet-18 weights file at {path}.") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    state = {key.removeprefix("module."): value for key, value in state.items() if not key.startswith("fc.")}
    if "conv1.weight" not in state:
        raise ValueError(f"{path} does not look like a ResNet-18 state dict (no conv1.weight).")
    state["conv1.weight"] = state["conv1.weight"].sum(dim=1, keepdim=True)
    missing, unexpected = generator.encoder.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{path} does not match ResNet-18: missing {len(missing)} and unexpected {len(unexpected)} tensors."
        )


class PatchDiscriminator(nn.Module):
    """pix2pix PatchGAN: one real/fake score per overlapping patch (70x70 with 3 layers).

    Conditional, it sees what the generator saw (L, and the hint channels of a hint-taking
    generator: `condition`) beside ab."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.conditional = config.conditional
        in_channels = 3 + config.hint_channels if config.conditional else 2
        width, norm = config.discriminator_channels, config.discriminator_norm
        use_bias = norm == "none"
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        channels = width
        for layer in range(1, config.discriminator_layers + 1):
            stride = 2 if layer < config.discriminator_layers else 1
            out_channels = width * min(2**layer, 8)
            layers += [
                nn.Conv2d(channels, out_channels, 4, stride, 1, bias=use_bias),
                _norm_layer(norm, out_channels),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            channels = out_channels
        layers.append(nn.Conv2d(channels, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        # each stride-2 layer halves the size, the two last 4x4 stride-1 layers take 1 pixel each
        self.min_size = 3 * 2**config.discriminator_layers

    def forward(self, condition: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        x = torch.cat((condition, ab), dim=1) if self.conditional else ab
        pad_h, pad_w = max(0, self.min_size - x.shape[-2]), max(0, self.min_size - x.shape[-1])
        if pad_h or pad_w:  # inputs smaller than the receptive field: replicate the border
            x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), mode="replicate")
        return self.net(x)


_GENERATORS: dict[str, Callable[[ModelConfig], SizeAgnosticGenerator]] = {
    "unet": lambda config: UNetGenerator(config),
    "resunet": lambda config: UNetGenerator(config, residual=True),
    "encdec": lambda config: UNetGenerator(config, skip=False),
    "resnet18-unet": lambda config: ResNet18UNetGenerator(config),
}


def init_weights(module: nn.Module, *, std: float = 0.02) -> None:
    """pix2pix initialisation: N(0, 0.02) convolutions, N(1, 0.02) norm scales."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(layer.weight, 0.0, std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, (nn.BatchNorm2d, nn.InstanceNorm2d)) and layer.weight is not None:
            nn.init.normal_(layer.weight, 1.0, std)
            nn.init.zeros_(layer.bias)


def build_generator(config: ModelConfig) -> SizeAgnosticGenerator:
    generator = _GENERATORS[config.generator](config)
    if config.generator == "resnet18-unet":
        init_weights(generator.decoder)
        init_weights(generator.head)
    else:
        init_weights(generator)
    return generator


def build_discriminator(config: ModelConfig) -> PatchDiscriminator:
    discriminator = PatchDiscriminator(config)
    init_weights(discriminator)
    return discriminator


def load_generator_weights(generator: SizeAgnosticGenerator, weights: dict[str, torch.Tensor], *, strict: bool = True):
    """`generator.load_state_dict(weights)`, where weights of a model without hints (or with fewer
    hint channels) start a hint-taking generator: the first layer's extra input weights are
    zero, so it computes exactly what the source did until training changes them."""
    own = generator.state_dict()
    weights = dict(weights)
    for name, value in weights.items():
        target = own.get(name)
        if (
            target is not None and value.dim() == 4 and target.dim() == 4 and name.startswith("down.0.")
            and value.shape[1] < target.shape[1] and value.shape[0] == target.shape[0] and value.shape[2:] == target.shape[2:]
        ):
            widened = torch.zeros_like(target)
            widened[:, : value.shape[1]] = value
            weights[name] = widened
    return generator.load_state_dict(weights, strict=strict)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def set_dropout_sampling(module: nn.Module, enabled: bool) -> None:
    """Turn dropout on (to sample the pix2pix noise) or off, leaving normalisation in eval mode."""
    for layer in module.modules():
        if isinstance(layer, nn.Dropout):
            layer.train(enabled)


REFERENCE_PIX2PIX = ModelConfig(generator="unet", base_channels=64, depth=8, max_channels=512, norm="batch")
"""The pix2pix `unet_256` generator (8 down-samplings, 64 base filters): the speed reference."""
