"""Training configuration: one frozen dataclass, its command line and its TOML file.

The argparse parser is generated from the fields of `TrainConfig` and `ModelConfig` by
`colorize.cli` (type, default and help text come from the field), so a flag and its default
live in one place.
Values are layered: dataclass defaults < `--config file.toml` < flags given on the command line.

A TOML file uses the field names (snake_case) at the top level; the architecture goes either
at the top level too or in a `[model]` table:

    data = ["/data/imagenette/train", "/data/bsds500/train"]
    val = "/data/imagenette/val"
    out = "runs/unet256"
    exclude = ["/data/imagenette/near_gray.txt"]
    epochs_l1 = 5
    epochs_gan = 20
    time_limit = "10h"

    [model]
    generator = "unet"
    base_channels = 32
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cli import Option, add_arguments, given, option, options
from .models import ModelConfig

GAN_MODES = ("vanilla", "lsgan", "wgan-gp", "none")
RECONSTRUCTION_LOSS_NAMES = ("l1", "l2")
DEVICES = ("auto", "cpu", "cuda", "mps")


class ConfigError(ValueError):
    """A configuration a user wrote that cannot be used; the message is one sentence."""


def parse_shares(value: Any) -> tuple[float, ...]:
    """Positive numbers from "0.4,0.4,0.1,0.1" or a TOML list; "" or [] means none."""
    if isinstance(value, str):
        parts = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        raise ConfigError(f"'{value}' is not a list of shares; write e.g. 0.4,0.4,0.1,0.1.")
    shares = []
    for part in parts:
        try:
            share = float(part) if not isinstance(part, bool) else math.nan
        except (TypeError, ValueError):
            share = math.nan
        if not (math.isfinite(share) and share > 0):
            raise ConfigError(f"Every folder share must be a positive number, not {part!r}.")
        shares.append(share)
    return tuple(shares)


def parse_duration(value: Any) -> float:
    """Seconds from 3600, 3600.5, "3600", "90s", "30m", "2h", "1h30m" or "1d"; 0 means no limit."""
    if isinstance(value, bool):
        raise ConfigError(f"'{value}' is not a duration; write seconds or e.g. '30m', '2h', '1h30m'.")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip().lower().replace(" ", "")
        if not text:
            return 0.0
        try:
            seconds = float(text)
        except ValueError:
            parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)d)?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", text)
            if not parts or not any(parts.groups()):
                raise ConfigError(
                    f"'{value}' is not a duration; write seconds or e.g. '30m', '2h', '1h30m'."
                ) from None
            days, hours, minutes, secs = (float(g) if g else 0.0 for g in parts.groups())
            seconds = days * 86400 + hours * 3600 + minutes * 60 + secs
    if seconds < 0 or not math.isfinite(seconds):
        raise ConfigError(f"A duration must be a finite number of seconds, 0 or more, not {value}.")
    return seconds


@dataclass(frozen=True)
class TrainConfig:
    """Everything `python -m colorize.train` needs; saved with every checkpoint."""

    # data
    data: tuple[str, ...] = option((), "training image folder (any tree of jpg/png/webp/bmp/tiff); repeat for several")
    val: str = option("", "validation image folder: fixed sample grid and metrics each epoch")
    out: str = option("runs/colorize", "output folder: model.safetensors, config.json, training_state.pt, samples/, metrics.csv")
    folder_shares: tuple[float, ...] = option(
        (),
        "comma-separated share of each epoch's crops drawn from each --data folder, in their order (e.g. 0.4,0.4,0.1,0.1: "
        "a small folder's photos come up several times, with other crops; a large one's fewer); empty = every photo once",
        parse=parse_shares,
    )
    exclude: tuple[str, ...] = option((), "text file of images to leave out (one path per line, relative to a data folder or its parent, or a bare file name); repeat for several")
    image_size: int = option(256, "training crop size in pixels")
    max_images: int = option(0, "use at most this many training images (a seeded random choice; 0 = all)")
    preload: bool = option(False, "decode every training image once into RAM at 1.15 x image-size short side (uint8)")
    gray_threshold: float = option(3.0, "skip images whose mean Lab chroma sqrt(a^2+b^2) on a small copy is below this (0 = keep all)")
    num_workers: int = option(2, "data loading worker processes (0 = load in the main process)")
    val_images: int = option(100, "validation images used for the metrics (0 = all)")
    sample_images: int = option(8, "validation images shown in each sample grid")
    # optimisation
    batch_size: int = option(16, "images per step (per process under torchrun)")
    epochs_l1: int = option(5, "pre-training epochs with the L1 loss only")
    epochs_gan: int = option(20, "adversarial epochs after the L1 pre-training")
    lr: float = option(2e-4, "Adam learning rate (generator and discriminator)")
    beta1: float = option(0.5, "Adam beta1")
    beta2: float = option(0.999, "Adam beta2")
    gan_mode: str = option("vanilla", "adversarial objective", choices=GAN_MODES)
    lambda_l1: float = option(100.0, "weight of the reconstruction loss on ab (0 = adversarial loss only)")
    reconstruction_loss: str = option("l1", "reconstruction loss on normalised ab: l1 (pix2pix) or l2 (mean squared error, same weight)", choices=RECONSTRUCTION_LOSS_NAMES)
    lambda_gan: float = option(1.0, "weight of the generator's adversarial loss (0 = L1 only, no discriminator)")
    gp_weight: float = option(10.0, "gradient penalty weight (wgan-gp)")
    n_critic: int = option(5, "critic updates per generator update (wgan-gp; vanilla and lsgan alternate 1:1)")
    resnet18_weights: str = option("", "torchvision-format resnet18 state dict for the resnet18-unet encoder")
    lambda_diversity: float = option(0.0, "weight of the diversity-sensitive term (needs --noise-channels): every image is generated with two noise draws and the mean |ab difference| of their region means (8x8 grid) is rewarded, up to diversity_cap, so samples differ where the colour is ambiguous while L1 keeps them together where it is not (0 = off)")
    diversity_every: int = option(1, "apply the diversity term on one step in this many (the others draw the noise once: about half the work per step)")
    diversity_cap: float = option(0.15, "largest rewarded mean |ab difference| between two noise draws of one image (normalised ab units, 1 = 110)")
    ema_decay: float = option(0.0, "keep an exponential moving average of the generator's weights with this decay per step (e.g. 0.995) and save, validate and export the average instead of the last step's weights (0 = off)")
    init_from: str = option("", "model folder (model.safetensors + config.json) whose generator weights start this run: fine-tuning, or continuing a shipped model whose training state is gone; the architecture flags must match it")
    # run control
    seed: int = option(0, "random seed: initialisation, data order, augmentation, dropout")
    device: str = option("auto", "auto = CUDA > MPS > CPU", choices=DEVICES)
    amp: bool = option(True, "bfloat16 autocast on CUDA, and on CPUs with native bf16 arithmetic (avx512_bf16 / amx_bf16)")
    max_steps: int = option(0, "stop after this many steps in total, writing a checkpoint (0 = no limit)")
    time_limit: float = option(0.0, "stop after this long, writing a checkpoint: seconds or '30m', '2h' (0 = no limit)", parse=parse_duration)
    save_every_steps: int = option(1000, "also write a checkpoint every this many steps (0 = at epoch ends only)")
    sample_every_steps: int = option(0, "also write a sample grid and a metrics.csv row every this many steps (0 = at epoch ends only)")
    log_every: int = option(10, "refresh the progress bar's losses every this many steps")
    resume: bool = option(False, "continue the run in --out from its training_state.pt")
    model: ModelConfig = field(default_factory=ModelConfig)

    def __post_init__(self) -> None:
        positive = ("image_size", "batch_size", "log_every", "sample_images", "diversity_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, not {getattr(self, name)}.")
        not_negative = (
            "max_images", "num_workers", "val_images", "epochs_l1", "epochs_gan", "lambda_l1",
            "lambda_gan", "gp_weight", "lambda_diversity", "diversity_cap", "max_steps", "save_every_steps", "sample_every_steps", "gray_threshold",
        )
        for name in not_negative:
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be 0 or more, not {getattr(self, name)}.")
        if self.folder_shares and len(self.folder_shares) != len(self.data):
            raise ConfigError(
                f"folder_shares needs one share per --data folder: {len(self.data)} folder(s), {len(self.folder_shares)} share(s)."
            )
        if self.n_critic < 1:
            raise ConfigError(f"n_critic must be at least 1, not {self.n_critic}.")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"ema_decay must be in [0, 1), not {self.ema_decay}.")
        if self.lr <= 0 or not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ConfigError("lr must be positive and beta1, beta2 in [0, 1).")
        if self.gan_mode not in GAN_MODES:
            raise ConfigError(f"Unknown gan_mode '{self.gan_mode}'; choose one of {', '.join(GAN_MODES)}.")
        if self.reconstruction_loss not in RECONSTRUCTION_LOSS_NAMES:
            raise ConfigError(f"Unknown reconstruction_loss '{self.reconstruction_loss}'; choose l1 or l2.")
        if self.device not in DEVICES:
            raise ConfigError(f"Unknown device '{self.device}'; choose one of {', '.join(DEVICES)}.")
        if self.lambda_l1 == 0 and not self.uses_gan:
            raise ConfigError("With lambda_l1 = 0 the adversarial loss is the only loss, so gan_mode cannot be 'none' nor lambda_gan 0.")
        if self.lambda_diversity > 0 and self.model.noise_channels == 0:
            raise ConfigError("lambda_diversity needs injected noise: pass --noise-channels (e.g. 8).")
        if self.epochs_l1 + self.epochs_gan < 1:
            raise ConfigError("epochs_l1 + epochs_gan must be at least 1.")
        if self.resnet18_weights and self.model.generator != "resnet18-unet":
            raise ConfigError("resnet18_weights only applies to --generator resnet18-unet.")
        if self.resnet18_weights and self.init_from:
            raise ConfigError("Give either resnet18_weights or init_from, not both: init_from already holds the encoder.")

    @property
    def uses_gan(self) -> bool:
        """False in L1-only mode: no discriminator is built at all."""
        return self.gan_mode != "none" and self.lambda_gan > 0

    @property
    def epochs(self) -> int:
        return self.epochs_l1 + self.epochs_gan

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        for name, value in values.items():
            if isinstance(value, tuple):
                values[name] = list(value)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """Build from a (possibly partial) dict with type checking; raises ConfigError."""
        return _build(_check_values(values, source="the configuration"))


TRAIN_OPTIONS = options(TrainConfig, skip=("model",))
MODEL_OPTIONS = options(ModelConfig)
OPTIONS = {option.name: option for option in (*TRAIN_OPTIONS, *MODEL_OPTIONS)}
_MODEL_FIELDS = frozenset(option.name for option in MODEL_OPTIONS)


def _convert(option: Option, value: Any, source: str) -> Any:
    """Type-check one value from TOML (or a saved config); raises ConfigError."""
    where = f"'{option.name}' in {source}"
    if option.parse is not None:
        return option.parse(value)
    kind = option.kind
    if kind is tuple:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where} must be a string or a list of strings.")
        return tuple(value)
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, not {value!r}.")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be a whole number, not {value!r}.")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, not {value!r}.")
        return float(value)
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a string, not {value!r}.")
    if option.choices and value not in option.choices:
        raise ConfigError(f"{where} must be one of {', '.join(option.choices)}, not '{value}'.")
    return value


def _check_values(values: dict[str, Any], *, source: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if key == "model" and isinstance(value, dict):
            for model_key, model_value in value.items():
                option = OPTIONS.get(model_key)
                if option is None or model_key not in _MODEL_FIELDS:
                    raise ConfigError(f"Unknown model setting '{model_key}' in {source}.")
                flat[model_key] = _convert(option, model_value, source)
            continue
        option = OPTIONS.get(key)
        if option is None:
            raise ConfigError(f"Unknown setting '{key}' in {source}.")
        flat[key] = _convert(option, value, source)
    return flat


def _build(flat: dict[str, Any]) -> TrainConfig:
    train_values = {k: v for k, v in flat.items() if k not in _MODEL_FIELDS}
    model_values = {k: v for k, v in flat.items() if k in _MODEL_FIELDS}
    try:
        model = ModelConfig(**model_values)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    return TrainConfig(**train_values, model=model)


def load_toml(path: str | Path) -> dict[str, Any]:
    """The checked, flat settings of a TOML file; raises ConfigError with one sentence."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"There is no configuration file at {path}.")
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML ({error}).") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a UTF-8 text file.") from None
    return _check_values(values, source=str(path))


def build_parser(**kwargs: Any) -> argparse.ArgumentParser:
    """An argparse parser with one flag per config field; unset flags stay absent from the result."""
    parser = argparse.ArgumentParser(
        prog="python -m colorize.train",
        description="Train a conditional-GAN colorizer (L in, ab out): L1 pre-training, then adversarial epochs.",
        argument_default=argparse.SUPPRESS,
        **kwargs,
    )
    parser.add_argument("--config", metavar="FILE.toml", help="TOML file of settings; flags given here override it")
    add_arguments(parser.add_argument_group("training"), TRAIN_OPTIONS)
    add_arguments(parser.add_argument_group("model architecture"), MODEL_OPTIONS)
    return parser


def explicit_settings(argv: list[str] | None = None, *, parser: argparse.ArgumentParser | None = None) -> dict[str, Any]:
    """The settings the user gave (TOML file, then flags on top), checked; raises ConfigError."""
    parser = parser or build_parser()
    arguments = given(parser.parse_args(argv))
    config_file = arguments.pop("config", None)
    return {**(load_toml(config_file) if config_file else {}), **arguments}


def config_from_settings(settings: dict[str, Any], *, base: dict[str, Any] | None = None) -> TrainConfig:
    """`base` (e.g. a saved run's config, already flat and checked) overridden by `settings`."""
    return _build({**(base or {}), **settings})


def flatten(config: TrainConfig) -> dict[str, Any]:
    values = {k: v for k, v in dataclasses.asdict(config).items() if k != "model"}
    values.update(config.model.to_dict())
    return values


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """TrainConfig from the command line (and its --config file); raises ConfigError."""
    return config_from_settings(explicit_settings(argv))
