"""What a model asks to be run with: its render size, colour calibration and noise sampling.

They are read from the model's own config.json, so the library, the command-line tools, the
app, the survey's stimuli, evaluation and the benchmark all start from the same settings (a
model rendered at another size than it was trained at paints other colours: the issue that
made this module). `InferenceSettings.from_config` is the only reader of those fields.

config.json, section "inference" (all optional):

    render_size    short side the network sees; default: the training crop size
    chroma_scale   calibrated chroma multiplier (see `colorize.calibrate`), default 1
    chroma_gamma   calibrated chroma curve exponent, default 1
    samples        noise draws combined per image, default 1 (the deterministic pass)
    agreement_power  with samples > 1: chroma x (hue agreement of the draws) ** power, default 1
    chroma_knee    soft ceiling of the final chroma, C -> knee * tanh(C / knee); 0 (default) = none
    colour_temperature  a bins-head model's annealed-mean temperature in (0, 1]; default: the one
                   it was trained with (model.colour_temperature); ignored by a regression head
    prior_correction  a bins-head model: how much of its training's rebalancing towards rare
                   colours to divide out of its predicted distribution, 0 (default, as trained)
                   to 1 (all of it); ignored by a regression head
    hint_snap      a hint-taking model: how much of the network's remaining error at the hinted
                   pixels is spread along the photo's edges onto its output (`colorize.hints.
                   snap_to_hints`), 0 (default, the network alone) to 1 (every hint exactly kept)
    hint_locality  a hint-taking model: 0 (default) the network's hinted output everywhere, 1 its
                   automatic output wherever no hint reaches (`colorize.hints.keep_local`)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .checkpoint import CheckpointError

DEFAULT_RENDER_SIZE = 256  # for a model whose config does not say what it was trained at
RENDER_SIZE_STEP = 32
MAX_CHROMA_SCALE = 4.0  # an L1-trained model predicts muted colours: it may need 3x to look real
MAX_CHROMA_GAMMA = 4.0
MAX_SAMPLES = 16
MAX_CHROMA_KNEE = 150.0  # above any sRGB colour's chroma: no effect
# Render sizes within this factor of the training size show objects at about the scale the
# model learned (training crops are cut from photos resized to 1.15x the crop size).
TRAINED_RANGE = (0.75, 1.25)


@dataclass(frozen=True)
class InferenceSettings:
    """The defaults a model is run with; every entry point takes them from here."""

    render_size: int = DEFAULT_RENDER_SIZE
    trained_size: int | None = None  # the training crop size, when the config records it
    chroma_scale: float = 1.0
    chroma_gamma: float = 1.0
    samples: int = 1
    agreement_power: float = 1.0
    chroma_knee: float = 0.0
    colour_temperature: float | None = None  # None: the model's own (bins head only)
    prior_correction: float = 0.0  # bins head only
    hint_snap: float = 0.0  # hint-taking models only
    hint_locality: float = 0.0  # hint-taking models only

    @property
    def trained_range(self) -> tuple[int, int] | None:
        """The render sizes (inclusive) at which the model sees objects at the scale it was trained on."""
        if self.trained_size is None:
            return None
        low, high = TRAINED_RANGE
        return int(self.trained_size * low), int(round(self.trained_size * high))

    def render_size_note(self, render_size: int | float | None) -> str | None:
        """One sentence when `render_size` leaves the model's trained range, else None."""
        if render_size is None or self.trained_range is None:
            return None
        low, high = self.trained_range
        size = int(render_size)
        if low <= size <= high:
            return None
        direction = "larger" if size > high else "smaller"
        return (
            f"This model was trained at {self.trained_size} px; at {size} px it sees objects {direction} "
            f"than it learned them and its colours are less reliable ({self.render_size} px is its default)."
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: dict) -> "InferenceSettings":
        """The settings a checkpoint's config.json asks for; raises CheckpointError for a bad value."""
        trained_size = _training_size(config)
        section = config.get("inference") or {}
        if not isinstance(section, dict):
            raise CheckpointError("config.json: 'inference' must be a table of settings.")
        render_size = section.get("render_size", trained_size or DEFAULT_RENDER_SIZE)
        if isinstance(render_size, bool) or not isinstance(render_size, int) or render_size < 1:
            raise CheckpointError(f"config.json: inference.render_size must be a positive whole number, not {render_size!r}.")
        samples = section.get("samples", 1)
        if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= MAX_SAMPLES:
            raise CheckpointError(f"config.json: inference.samples must be a whole number from 1 to {MAX_SAMPLES}, not {samples!r}.")
        return cls(
            render_size=render_size,
            trained_size=trained_size,
            chroma_scale=_number(section, "chroma_scale", 1.0, MAX_CHROMA_SCALE),
            chroma_gamma=_number(section, "chroma_gamma", 1.0, MAX_CHROMA_GAMMA),
            samples=samples,
            agreement_power=_number(section, "agreement_power", 1.0, 8.0),
            chroma_knee=_knee(section.get("chroma_knee", 0.0)),
            colour_temperature=(
                None if section.get("colour_temperature") is None else _number(section, "colour_temperature", 1.0, 1.0)
            ),
            prior_correction=_share(section, "prior_correction"),
            hint_snap=_share(section, "hint_snap"),
            hint_locality=_share(section, "hint_locality"),
        )


def _training_size(config: dict) -> int | None:
    for section in ("training", "train_config"):
        value = (config.get(section) or {}).get("image_size")
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _knee(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_CHROMA_KNEE:
        raise CheckpointError(f"config.json: inference.chroma_knee must be 0 (none) or a chroma up to {MAX_CHROMA_KNEE:g}, not {value!r}.")
    return float(value)


def _number(section: dict, key: str, default: float, upper: float) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= upper:
        raise CheckpointError(f"config.json: inference.{key} must be a number in (0, {upper:g}], not {value!r}.")
    return float(value)


def _share(section: dict, key: str) -> float:
    value = section.get(key, 0.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise CheckpointError(f"config.json: inference.{key} must be a number from 0 to 1, not {value!r}.")
    return float(value)
