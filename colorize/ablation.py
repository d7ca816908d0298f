"""`python -m colorize.ablation`: the ablation table, from real training runs on one budget.

    python -m colorize.ablation --data DIR [--data DIR ...] [--exclude FILE ...] \\
        --val DIR [--val-exclude FILE] --out runs/ablation --report results/ablation.md \\
        [--image-size 64] [--steps 150] [--l1-steps 50] [--batch-size 8] [--max-images 1000] \\
        [--val-images 100] [--base-channels 16] [--rows default,encdec,...] [--time-limit 20m] [--no-train]

Rows (`ROWS`, in table order): the default recipe (U-Net + L1 + cGAN), an encoder-decoder
without skips, L1 only, L2 instead of L1, cGAN only (lambda_l1 = 0), an unconditional discriminator, WGAN-GP,
a residual U-Net, a ResNet-18-encoder U-Net, the untrained generator and the gray baseline.

Every trained row is a `python -m colorize.train` run: its argument parser and `train()`,
called in this process with the flags a user would type, into `--out/<row>/`. All rows share
the data subset (`--max-images`, a seeded choice), the seed, the batch size and the step
budget: `--l1-steps` L1 pre-training steps, then adversarial steps up to `--steps` in total.
Rows without a discriminator (L1 only) take L1 steps throughout; the cGAN-only row has no L1
term at all, so it has no L1 pre-training either and all its steps are adversarial.

train.py counts its phases in epochs, so an exact step split is made with two sessions:

1. `--epochs-l1 L --max-steps L`: the L1 phase (at least one step per epoch, so it cannot
   end before step L), stopped at step L with a checkpoint;
2. `--resume --epochs-l1 E --max-steps S`, with E = L // (steps per epoch), the epoch
   that step L falls in: the adversarial phase starts exactly at step L, mid-epoch if need
   be, with the data order continuing where it stopped (train.py's resumes are exact).

"Steps" are train.py's loop steps: one batch each. WGAN-GP updates its generator on one
step in `n_critic` (the critic on all), so its generator gets fewer updates in the
adversarial phase; the table's schedule column says how many.

Each row is then scored with `colorize.evaluate.evaluate` on the same validation images
(`--val-images`, evenly spaced over the sorted folder after `--val-exclude`, so every class
of a class-sorted folder is in) at `--eval-size` (default: the training size), and a sample
grid (rows: gray input | output | real) is drawn on `--grid-images` of them.

Resumable: a row whose folder holds a finished checkpoint (training_state.pt at `--steps`
steps, settings equal) is not retrained, one stopped part-way is resumed, and one holding a
run with other settings is an error. The report (markdown table with the command, the
machine, the data, the budget, per-row sample grids, and conclusions worded from the
numbers), `ablation.csv` and `ablation.json` are rewritten after every row, so a study cut
short still leaves a report that lists the rows still missing.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import logging
import math
import os
import platform
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from .checkpoint import CONFIG_FILE, TRAINING_STATE_FILE, CheckpointError, load_training_state, read_config
from .cli import add_arguments, given, option, options
from .config import ConfigError, parse_duration
from .data import DatasetError, ExclusionMatcher, center_crop, read_exclusion_list
from .evaluate import evaluate, json_safe, summarize
from .imageio import find_images, load_image
from .models import ModelConfig, count_parameters
from .pixels import gray_version, to_8bit

logger = logging.getLogger(__name__)

RESULTS_VERSION = 1
ROW_NOTE_FILE = "ablation_row.json"  # beside a row's checkpoint: the machine load when it trained
BOOTSTRAP_SAMPLES = 2000
CONFIDENCE = 0.95


class AblationError(RuntimeError):
    """A study that cannot run as asked; the message is one sentence."""


# ----------------------------------------------------------------------------- the rows


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    kind: str = "train"  # "train" | "untrained" | "gray"
    flags: tuple[str, ...] = ()  # `python -m colorize.train` flags on top of the shared ones
    l1_pretraining: bool = True  # False: every step of the budget uses the row's own objective


ROWS: dict[str, Row] = {
    row.key: row
    for row in (
        Row("default", "U-Net + L1 + cGAN (default recipe)"),
        Row("encdec", "Encoder-decoder, no skips + L1 + cGAN", flags=("--generator", "encdec")),
        Row("l1", "L1 only (no discriminator)", flags=("--gan-mode", "none")),
        Row("l2", "U-Net + L2 + cGAN (mean squared error instead of L1, same weight)", flags=("--reconstruction-loss", "l2")),
        Row("cgan", "cGAN only (lambda_l1 = 0, no L1 pre-training)", flags=("--lambda-l1", "0"), l1_pretraining=False),
        Row("uncond", "Unconditional discriminator + L1", flags=("--no-conditional",)),
        Row("wgan-gp", "WGAN-GP instead of vanilla GAN + L1", flags=("--gan-mode", "wgan-gp")),
        Row("resunet", "Residual U-Net + L1 + cGAN", flags=("--generator", "resunet")),
        Row("resnet18-unet", "ResNet-18-encoder U-Net + L1 + cGAN (random init)", flags=("--generator", "resnet18-unet")),
        Row("untrained", "Untrained generator (U-Net, seeded init)", kind="untrained"),
        Row("gray", "Gray baseline (the input itself)", kind="gray"),
    )
}


# ----------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class AblationConfig:
    """Everything `python -m colorize.ablation` needs; the CLI is generated from these fields."""

    data: tuple[str, ...] = option((), "training image folder; repeat for several")
    exclude: tuple[str, ...] = option((), "exclusion list for the training folders (e.g. near_gray.txt); repeat for several")
    val: str = option("", "validation image folder: the same images score every row")
    val_exclude: tuple[str, ...] = option((), "exclusion list for the validation folder; repeat for several")
    out: str = option("runs/ablation", "folder of the training runs, one sub-folder per row")
    report: str = option("results/ablation.md", "markdown report; grids, ablation.csv and ablation.json go beside it in a folder of its stem")
    rows: str = option(",".join(ROWS), f"comma-separated rows, in any order (table order is fixed): {', '.join(ROWS)}")
    image_size: int = option(64, "training crop size in pixels")
    steps: int = option(150, "training steps (batches) per row, in total")
    l1_steps: int = option(50, "of which L1 pre-training steps, before the adversarial ones")
    batch_size: int = option(8, "images per step")
    max_images: int = option(1000, "training images (a seeded choice, the same for every row; 0 = all)")
    val_images: int = option(100, "validation images scored (evenly spaced over the sorted folder; 0 = all)")
    base_channels: int = option(16, "generator width of the first level")
    depth: int = option(0, "generator down-samplings (0 = the largest that fits the image size, at most 7)")
    discriminator_channels: int = option(0, "PatchGAN width of the first layer (0 = 2 x base-channels, the default recipe's 64 : 32)")
    seed: int = option(0, "seed of every run (weights, data order, augmentation) and of the untrained row")
    eval_size: int = option(0, "side of the center square scored (0 = --image-size)")
    grid_images: int = option(6, "validation images in each row's sample grid")
    grid_size: int = option(96, "side of each image in the sample grids")
    grid_data: str = option("", "photos of the report's sample grids: '' = the validation images, a folder, or 'skimage' = "
                          "scikit-image's public-domain/CC0 sample photos (for data sets whose photos may not be committed); "
                          "grids on the validation images are written under --out/val-grids/ in any case")
    preload: bool = option(True, "decode the training images once into RAM (train.py --preload)")
    num_workers: int = option(0, "data loading worker processes of the training runs")
    device: str = option("auto", "training and scoring device: auto, cpu, cuda or mps")
    threads: int = option(0, "torch CPU threads (0 = torch's default; 1 avoids oversubscription on a machine other jobs share)")
    time_limit: float = option(0.0, "start no new training row after this long ('20m', '1h'; 0 = no limit); rerun to continue", parse=parse_duration)
    train: bool = option(True, "train the rows whose runs are missing or unfinished (--no-train: report the finished rows, list the rest as missing)")

    def __post_init__(self) -> None:
        for name in ("image_size", "steps", "batch_size", "base_channels", "grid_images", "grid_size"):
            if getattr(self, name) < 1:
                raise AblationError(f"{name} must be at least 1, not {getattr(self, name)}.")
        for name in ("l1_steps", "max_images", "val_images", "depth", "discriminator_channels", "eval_size", "num_workers", "threads"):
            if getattr(self, name) < 0:
                raise AblationError(f"{name} must be 0 or more, not {getattr(self, name)}.")
        if self.l1_steps >= self.steps:
            raise AblationError(f"l1_steps ({self.l1_steps}) must be smaller than steps ({self.steps}) to leave adversarial steps.")
        if not self.val:
            raise AblationError("No validation folder was given; pass --val FOLDER.")
        unknown = [key for key in self.row_keys if key not in ROWS]
        if unknown:
            raise AblationError(f"Unknown row {', '.join(unknown)}; choose from {', '.join(ROWS)}.")
        if not self.row_keys:
            raise AblationError("--rows names no row.")
        if any(ROWS[key].kind == "train" for key in self.row_keys) and not self.data and self.train:
            raise AblationError("No training data was given; pass --data FOLDER (repeat for several).")

    @property
    def row_keys(self) -> list[str]:
        """The chosen rows in table order."""
        chosen = {key.strip() for key in self.rows.split(",") if key.strip()}
        return [key for key in ROWS if key in chosen] + sorted(chosen - set(ROWS))

    @property
    def model_depth(self) -> int:
        if self.depth:
            return self.depth
        depth = ModelConfig().depth
        while depth > 1 and 2**depth > self.image_size:
            depth -= 1
        return depth

    @property
    def discriminator_width(self) -> int:
        return self.discriminator_channels or 2 * self.base_channels

    @property
    def scored_size(self) -> int:
        return self.eval_size or self.image_size

    @property
    def grid_dir(self) -> Path:
        report = Path(self.report)
        return report.with_name(report.stem)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m colorize.ablation",
        description="Train every ablation row on the same data and step budget, score them on the same "
        "validation images, and write a markdown table with sample grids.",
    )
    add_arguments(parser, options(AblationConfig))
    return parser


def parse_args(argv: Sequence[str] | None = None) -> AblationConfig:
    return AblationConfig(**given(build_parser().parse_args(argv)))


# ----------------------------------------------------------------------------- training one row


def _schedule(config: AblationConfig, row: Row) -> tuple[int, int]:
    """(L1 pre-training steps, total steps) of a trained row."""
    return (config.l1_steps if row.l1_pretraining else 0), config.steps


def _row_settings(config: AblationConfig, row: Row) -> list[str]:
    """The `python -m colorize.train` flags shared by both sessions of a row."""
    argv = []
    for folder in config.data:
        argv += ["--data", folder]
    for path in config.exclude:
        argv += ["--exclude", path]
    argv += [
        "--val", config.val, "--out", str(Path(config.out) / row.key),
        "--image-size", str(config.image_size), "--batch-size", str(config.batch_size),
        "--max-images", str(config.max_images), "--seed", str(config.seed),
        "--base-channels", str(config.base_channels), "--depth", str(config.model_depth),
        "--discriminator-channels", str(config.discriminator_width),
        # the runs' own validation only feeds their sample grids; the study scores separately
        "--val-images", str(config.grid_images), "--sample-images", str(config.grid_images),
        "--num-workers", str(config.num_workers), "--device", config.device,
        "--save-every-steps", "50", "--preload" if config.preload else "--no-preload",
    ]
    return argv + list(row.flags)


# Settings of a saved run that must equal the study's for the run to count as one of its rows.
_COMPARED = (
    "data", "exclude", "val", "image_size", "batch_size", "max_images", "seed", "lr", "gan_mode",
    "lambda_l1", "lambda_gan", "generator", "base_channels", "depth", "discriminator_channels", "conditional", "preload",
)


def _expected_settings(config: AblationConfig, row: Row) -> dict[str, Any]:
    """The flat settings (train.py's saved `train_config`) a run of this row must have."""
    from .config import config_from_settings, explicit_settings, flatten

    try:
        return flatten(config_from_settings(explicit_settings(_row_settings(config, row))))
    except ConfigError as error:
        raise AblationError(f"Row '{row.key}' cannot be trained with these settings: {error}") from None


def _saved_progress(folder: Path, expected: dict[str, Any]) -> dict[str, Any] | None:
    """The saved training state's step and epoch geometry, or None when the folder holds no run.

    Raises AblationError when the saved run was made with other settings than `expected`.
    """
    if not (folder / TRAINING_STATE_FILE).is_file():
        return None
    try:
        state = load_training_state(folder)
    except CheckpointError as error:
        raise AblationError(f"{folder} holds an unreadable run ({error}); remove the folder to retrain the row.") from None
    saved = state.get("train_config", {})
    for key in _COMPARED:
        mine, theirs = expected.get(key), saved.get(key)
        if isinstance(theirs, list):
            theirs = tuple(theirs)
        if mine != theirs:
            raise AblationError(
                f"{folder} holds a run with {key} = {theirs!r}, not {mine!r} as this study asks; "
                "remove the folder or choose another --out."
            )
    return {
        "step": int(state["global_step"]),
        "steps_per_epoch": max(int(state["dataset_size"]) // int(state["batch_size"]), 1),
    }


def _train_session(argv: list[str]) -> dict[str, Any]:
    """One `python -m colorize.train` session with these flags (its parser and `train()`)."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    from .train import resolve_config, train

    logger.info("python -m colorize.train %s", shlex.join(argv))
    config, state = resolve_config(argv)
    with logging_redirect_tqdm():
        summary = train(config, resume_state=state)
    if summary.get("stopped") == "interrupted":
        raise KeyboardInterrupt
    return summary


def train_row(config: AblationConfig, row: Row) -> bool:
    """Bring the row's run to `config.steps` steps; False when it was already there (nothing trained)."""
    folder = Path(config.out) / row.key
    shared = _row_settings(config, row)
    expected = _expected_settings(config, row)
    l1_steps, total = _schedule(config, row)
    progress = _saved_progress(folder, expected)
    step = progress["step"] if progress else 0
    if step > total:
        raise AblationError(f"{folder} ran {step} steps, more than this study's {total}; remove it or choose another --out.")
    if step >= total:
        return False
    if step < l1_steps:  # session 1: L1 pre-training up to step l1_steps exactly
        _train_session(
            shared + ["--epochs-l1", str(l1_steps), "--epochs-gan", "1", "--max-steps", str(l1_steps)]
            + (["--resume"] if step else [])
        )
        progress = _saved_progress(folder, expected)
        step = progress["step"]
    # session 2: adversarial from step l1_steps (inside epoch l1_steps // steps_per_epoch) to the total
    per_epoch = progress["steps_per_epoch"] if progress else None
    if per_epoch is None:  # no L1 pre-training and nothing saved yet: epochs_l1 = 0 needs no geometry
        epochs_l1, epochs_gan = 0, total
    else:
        epochs_l1 = l1_steps // per_epoch
        epochs_gan = max(math.ceil(total / per_epoch) - epochs_l1, 1)
    _train_session(
        shared + ["--epochs-l1", str(epochs_l1), "--epochs-gan", str(epochs_gan), "--max-steps", str(total)]
        + (["--resume"] if step else [])
    )
    progress = _saved_progress(folder, expected)
    if progress["step"] != total:
        raise AblationError(f"The run in {folder} stopped at step {progress['step']}, not {total}.")
    return True


def generator_updates(config: AblationConfig, row: Row, train_config: dict[str, Any]) -> int:
    """Generator optimizer steps of a finished row (WGAN-GP skips n_critic - 1 of n_critic)."""
    l1_steps, total = _schedule(config, row)
    if train_config.get("gan_mode") != "wgan-gp" or train_config.get("lambda_gan", 1.0) == 0:
        return total
    n_critic = int(train_config.get("n_critic", 5))
    return l1_steps + sum(1 for step in range(l1_steps, total) if (step + 1) % n_critic == 0)


# ----------------------------------------------------------------------------- scoring


def select_images(folder: str | Path, exclude: Sequence[str | Path], count: int) -> list[Path]:
    """`count` images evenly spaced over the sorted folder after the exclusion lists (0 = all)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AblationError(f"There is no folder at {folder}.")
    try:
        matcher = ExclusionMatcher(entry for path in exclude for entry in read_exclusion_list(path))
    except DatasetError as error:
        raise AblationError(str(error)) from None
    paths = [p for p in find_images(folder) if not (matcher and matcher(p))]
    if not paths:
        raise AblationError(f"The folder {folder} has no images left to score.")
    if count and count < len(paths):
        paths = [paths[(i * len(paths)) // count] for i in range(count)]
    return paths


# scikit-image's bundled colour photos with no copyright restrictions (public domain or CC0, per their docstrings)
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


def grid_sources(config: AblationConfig, val_paths: list[Path]) -> list:
    """The photos (paths or PIL images) of the report's sample grids."""
    if config.grid_data == "skimage":
        from skimage import data

        return [Image.fromarray(getattr(data, name)()) for name in SKIMAGE_PHOTOS[: config.grid_images]]
    paths = select_images(config.grid_data, (), 0) if config.grid_data else val_paths
    count = min(config.grid_images, len(paths))
    return [paths[(i * len(paths)) // count] for i in range(count)]


def sample_grid(colorizer, photos: Sequence, *, size: int, render_size: int | None = None) -> Image.Image:
    """Rows: gray input | output | real; one column per photo (path or PIL image); `colorizer=None` is the gray baseline."""
    reals = [np.asarray(center_crop(load_image(p), size), dtype=np.float32) / 255.0 for p in photos]
    grays = [to_8bit(gray_version(real)) for real in reals]
    if colorizer is None:
        outputs = grays
    else:
        outputs = [np.asarray(o) for o in colorizer.colorize_batch([Image.fromarray(g) for g in grays], render_size=render_size)]
    rows = [np.concatenate(images, axis=1) for images in (grays, outputs, [to_8bit(r) for r in reals])]
    return Image.fromarray(np.concatenate(rows, axis=0))


def _colorizer(config: AblationConfig, row: Row):
    from .infer import Colorizer

    if row.kind == "gray":
        return None
    if row.kind == "untrained":
        model = ModelConfig(base_channels=config.base_channels, depth=config.model_depth)
        return Colorizer.untrained(seed=config.seed, model_config=model, device=config.device)
    return Colorizer.from_pretrained(Path(config.out) / row.key, device=config.device)


def score_row(config: AblationConfig, row: Row, val_paths: list[Path], grid_photos: list) -> dict[str, Any]:
    """Metrics, per-image numbers, parameters, speed and the sample grid of one row."""
    colorizer = _colorizer(config, row)
    started = time.perf_counter()
    with torch.inference_mode():
        per_image = evaluate(colorizer, val_paths, size=config.scored_size, render_size=config.image_size)
        grid = sample_grid(colorizer, grid_photos, size=config.grid_size, render_size=config.image_size)
        val_grid = grid if not config.grid_data else sample_grid(
            colorizer, grid_sources(dataclasses.replace(config, grid_data=""), val_paths),
            size=config.grid_size, render_size=config.image_size,
        )
    if len(per_image) != len(val_paths):
        raise AblationError(f"Only {len(per_image)} of the {len(val_paths)} validation images could be scored.")
    summary = summarize(per_image)
    result: dict[str, Any] = {
        "key": row.key,
        "label": row.label,
        "kind": row.kind,
        **{k: summary[k] for k in ("psnr", "ssim", "ciede2000", "colorfulness", "real_colorfulness", "colorfulness_ratio")},
        "parameters": count_parameters(colorizer.generator) if colorizer is not None else 0,
        "score_seconds": round(time.perf_counter() - started, 1),
        "per_image": {k: [r[k] for r in per_image] for k in ("psnr", "ssim", "ciede2000", "colorfulness", "real_colorfulness")},
    }
    if row.kind == "train":
        saved = read_config(Path(config.out) / row.key)
        training = saved.get("training", {})
        train_config = saved.get("train_config", {})
        steps, batch, seconds = training.get("steps", 0), training.get("batch_size", 0), training.get("wall_time_s") or 0
        result.update(
            steps=steps,
            l1_steps=_schedule(config, row)[0],
            generator_updates=generator_updates(config, row, {**train_config, **train_config.get("model", {})}),
            gan_mode=training.get("gan_mode"),
            train_seconds=seconds,
            images_per_s=steps * batch / seconds if seconds else float("nan"),
            train_images=(training.get("data") or {}).get("images"),
            train_skipped=(training.get("data") or {}).get("skipped"),
            device=training.get("device") + (" with bf16 autocast" if training.get("amp_bf16") else "")
            if training.get("device") else None,
        )
        note_path = Path(config.out) / row.key / ROW_NOTE_FILE
        if note_path.is_file():
            result["load_average_at_start"] = json.loads(note_path.read_text(encoding="utf-8")).get("load_average_at_start")
    grid_path = config.grid_dir / f"{row.key}.png"
    grid_path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(grid_path, optimize=True)
    result["grid"] = str(grid_path)
    val_grid_path = Path(config.out) / "val-grids" / f"{row.key}.png"
    val_grid_path.parent.mkdir(parents=True, exist_ok=True)
    val_grid.save(val_grid_path, optimize=True)
    return result


# ----------------------------------------------------------------------------- numbers to words


def _ratio(colorfulness: np.ndarray, real: np.ndarray) -> float:
    total = real.sum()
    return float(colorfulness.sum() / total) if total > 0 else float("nan")


def paired_differences(row: dict[str, Any], reference: dict[str, Any], *, seed: int = 0) -> dict[str, dict[str, float]]:
    """row - reference on PSNR, SSIM, CIEDE2000 and colourfulness ratio, with a paired bootstrap
    interval over the validation images (it says nothing about other seeds)."""
    a, b = row["per_image"], reference["per_image"]
    n = len(a["psnr"])
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(BOOTSTRAP_SAMPLES, n))
    tail = (1 - CONFIDENCE) / 2 * 100
    out = {}
    for key in ("psnr", "ssim", "ciede2000"):
        diff = np.asarray(a[key], dtype=np.float64) - np.asarray(b[key], dtype=np.float64)
        boots = diff[draws].mean(axis=1)
        out[key] = {"diff": float(diff.mean()), "low": float(np.percentile(boots, tail)), "high": float(np.percentile(boots, 100 - tail))}
    ca, cb = np.asarray(a["colorfulness"]), np.asarray(b["colorfulness"])
    real = np.asarray(a["real_colorfulness"])
    boots = np.array([_ratio(ca[d], real[d]) - _ratio(cb[d], real[d]) for d in draws])
    out["colorfulness_ratio"] = {
        "diff": _ratio(ca, real) - _ratio(cb, real),
        "low": float(np.nanpercentile(boots, tail)),
        "high": float(np.nanpercentile(boots, 100 - tail)),
    }
    return out


def _direction(interval: dict[str, float], *, higher_is_better: bool) -> str:
    if interval["low"] > 0:
        return "better" if higher_is_better else "worse"
    if interval["high"] < 0:
        return "worse" if higher_is_better else "better"
    return "no clear difference"


def _fmt_diff(interval: dict[str, float], digits: int) -> str:
    return f"{interval['diff']:+.{digits}f} [{interval['low']:+.{digits}f}, {interval['high']:+.{digits}f}]"


def conclusions(results: dict[str, dict[str, Any]], config: AblationConfig) -> list[str]:
    """Markdown lines, every statement computed from `results` (no verdict is written by hand)."""
    lines: list[str] = []
    ref = results.get("default")
    trained = [r for r in results.values() if r["kind"] == "train"]
    if ref is None:
        lines.append("- The default row is missing, so no row is compared with it.")
    else:
        pct = int(CONFIDENCE * 100)
        lines.append(
            f"Each row against the default recipe (row minus default; {pct}% paired bootstrap interval over the "
            f"{len(ref['per_image']['psnr'])} validation images in brackets; \"better\"/\"worse\" only where the "
            "interval excludes 0):"
        )
        lines.append("")
        for key, row in results.items():
            if key == "default":
                continue
            d = paired_differences(row, ref, seed=config.seed)
            ciede, psnr, ratio = d["ciede2000"], d["psnr"], d["colorfulness_ratio"]
            ratio_words = (
                "more colourful" if ratio["low"] > 0 else "less colourful" if ratio["high"] < 0 else "no clear difference in colourfulness"
            )
            closer = abs(row["colorfulness_ratio"] - 1) < abs(ref["colorfulness_ratio"] - 1)
            if ratio_words != "no clear difference in colourfulness":
                ratio_words += ", closer to the real photos' 1.0" if closer else ", further from the real photos' 1.0"
            lines.append(
                f"- **{row['label']}**: CIEDE2000 {row['ciede2000']:.2f} vs {ref['ciede2000']:.2f} "
                f"({_fmt_diff(ciede, 2)}: {_direction(ciede, higher_is_better=False)}); "
                f"PSNR {row['psnr']:.2f} vs {ref['psnr']:.2f} dB ({_fmt_diff(psnr, 2)}: {_direction(psnr, higher_is_better=True)}); "
                f"colourfulness ratio {row['colorfulness_ratio']:.3f} vs {ref['colorfulness_ratio']:.3f} "
                f"({_fmt_diff(ratio, 3)}: {ratio_words})."
            )
            row["vs_default"] = d
        lines.append("")
    if trained:
        best = {
            "lowest CIEDE2000": min(trained, key=lambda r: r["ciede2000"]),
            "highest PSNR": max(trained, key=lambda r: r["psnr"]),
            "highest SSIM": max(trained, key=lambda r: r["ssim"]),
            "colourfulness ratio closest to 1": min(trained, key=lambda r: abs(r["colorfulness_ratio"] - 1)),
        }
        lines.append(
            "- Among the trained rows: " + "; ".join(f"{what}: {r['label']}" for what, r in best.items()) + "."
        )
        timed = [r for r in trained if math.isfinite(r.get("images_per_s", math.nan))]
        fastest = max(timed, key=lambda r: r["images_per_s"], default=None)
        slowest = min(timed, key=lambda r: r["images_per_s"], default=None)
        if fastest is not None and fastest is not slowest:
            lines.append(
                f"- Training speed: fastest {fastest['label']} ({fastest['images_per_s']:.1f} images/s), slowest "
                f"{slowest['label']} ({slowest['images_per_s']:.1f} images/s)."
            )
    if len(trained) >= 3:
        ratio = np.array([r["colorfulness_ratio"] for r in trained])
        ciede = np.array([r["ciede2000"] for r in trained])
        rho = float(np.corrcoef(np.argsort(np.argsort(ratio)), np.argsort(np.argsort(ciede)))[0, 1])
        reading = (
            "so a lower CIEDE2000 here mostly comes with duller, closer-to-gray output"
            if rho > 0.5 else "so the more colourful rows are also the closer ones"
            if rho < -0.5 else "with no consistent relation between the two"
        )
        line = (
            f"- Colour versus fidelity: across the {len(trained)} trained rows the rank correlation (Spearman) "
            f"between colourfulness ratio and CIEDE2000 is {rho:+.2f}, {reading}"
        )
        if ref is not None:
            closer = [r for r in trained if r is not ref and r["ciede2000"] < ref["ciede2000"]]
            duller = [r for r in closer if r["colorfulness_ratio"] < ref["colorfulness_ratio"]]
            line += f"; {len(duller)} of the {len(closer)} rows with a lower CIEDE2000 than the default are also less colourful than it"
        lines.append(line + ".")
    gray = results.get("gray")
    if gray is not None and trained:
        beat_ciede = [r["label"] for r in trained if r["ciede2000"] < gray["ciede2000"]]
        beat_psnr = [r["label"] for r in trained if r["psnr"] > gray["psnr"]]
        lines.append(
            f"- Against the gray baseline (CIEDE2000 {gray['ciede2000']:.2f}, PSNR {gray['psnr']:.2f} dB): "
            f"{len(beat_ciede)} of {len(trained)} trained rows have a lower mean CIEDE2000"
            + (f" ({', '.join(beat_ciede)})" if 0 < len(beat_ciede) < len(trained) else "")
            + f", {len(beat_psnr)} of {len(trained)} a higher PSNR"
            + (f" ({', '.join(beat_psnr)})" if 0 < len(beat_psnr) < len(trained) else "")
            + "."
        )
    untrained = results.get("untrained")
    if untrained is not None and gray is not None:
        words = "lower (better)" if untrained["ciede2000"] < gray["ciede2000"] else "higher (worse)"
        lines.append(
            f"- The untrained generator's CIEDE2000 ({untrained['ciede2000']:.2f}) is {words} than the gray "
            f"baseline's ({gray['ciede2000']:.2f}); its colourfulness ratio is {untrained['colorfulness_ratio']:.3f}."
        )
    lines.append("")
    lines.append(
        f"Caveats: one seed ({config.seed}) per row and short runs ({config.steps} steps of {config.batch_size} images); "
        "the intervals cover only the choice of validation images, not training noise, so a different seed or a "
        "longer budget can reorder rows whose differences are small. Rankings after "
        f"{config.steps} steps say which recipe learns fastest here, not which one ends best."
    )
    return lines


# ----------------------------------------------------------------------------- the report


def _machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "logical_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def _num(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return format(value, fmt)


def _schedule_text(row: dict[str, Any]) -> str:
    if row["kind"] == "untrained":
        return "0"
    if row["kind"] == "gray":
        return "—"
    l1, steps = row["l1_steps"], row["steps"]
    adversarial = {"none": None, "wgan-gp": "WGAN-GP", "lsgan": "LSGAN"}.get(row["gan_mode"], "GAN")
    parts = [f"{steps} L1"] if adversarial is None else ([f"{l1} L1"] if l1 else []) + [f"{steps - l1} {adversarial}"]
    text = " + ".join(parts)
    if row["generator_updates"] != steps:
        text += f" ({row['generator_updates']} G updates)"
    return text


TABLE_COLUMNS = (
    "Row", "Steps", "PSNR (dB) ↑", "SSIM ↑", "CIEDE2000 ↓", "Colourfulness ratio (1 = real)",
    "Generator parameters", "Training images/s", "Samples",
)


def render_report(
    config: AblationConfig,
    results: dict[str, dict[str, Any]],
    *,
    command: str,
    missing: dict[str, str],
    machine: dict[str, Any],
    val_paths: list[Path],
    reused: list[str],
) -> str:
    report_dir = Path(config.report).parent
    grid_rel = Path(os.path.relpath(config.grid_dir, report_dir))
    trained = [r for r in results.values() if r["kind"] == "train"]
    lines = [
        "# Ablation study",
        "",
        "Generated by `colorize.ablation`; do not edit by hand. Command:",
        "",
        "```",
        command,
        "```",
        "",
        "## Set-up",
        "",
        "**These are short, small runs** meant to compare recipes on one budget, not to reach the quality of a full training run.",
        "",
    ]
    device = next((r.get("device") for r in trained if r.get("device")), None)
    load = [r["load_average_at_start"] for r in trained if r.get("load_average_at_start") is not None]
    lines.append(
        f"- Machine: {machine['cpu']}, {machine['logical_cores']} logical cores, torch {machine['torch']} "
        f"({machine['torch_threads']} thread{'s' if machine['torch_threads'] != 1 else ''})" + (f", GPU {machine['cuda']}" if machine["cuda"] else "")
        + (f"; training device: {device}" if device else "")
        + (f"; 1-minute load average when the rows started: {min(load):.1f}–{max(load):.1f}" if load else "")
        + "."
    )
    images = next((r.get("train_images") for r in trained if r.get("train_images")), None)
    skipped = next((r.get("train_skipped") for r in trained if r.get("train_skipped") is not None), None)
    lines.append(
        f"- Training data: {', '.join(f'`{d}`' for d in config.data) or '—'}"
        + (f" minus {', '.join(f'`{e}`' for e in config.exclude)}" if config.exclude else "")
        + (f"; {images} images" if images else "")
        + (f" (a seeded choice of at most {config.max_images})" if config.max_images else "")
        + (f", skipped while scanning: {', '.join(f'{n} {k}' for k, n in skipped.items())}" if skipped else "")
        + "; the same images, order and augmentation for every row (seed "
        + f"{config.seed})."
    )
    lines.append(
        f"- Validation: {len(val_paths)} images of `{config.val}`"
        + (f" minus {', '.join(f'`{e}`' for e in config.val_exclude)}" if config.val_exclude else "")
        + ", evenly spaced over the sorted folder, the same for every row; scored with `colorize.evaluate.evaluate` on the "
        f"{config.scored_size} px center square, the network rendering at {config.image_size} px."
    )
    lines.append(
        f"- Resolution and model: {config.image_size} px training crops, batch {config.batch_size}; generators with "
        f"base width {config.base_channels} and depth {config.model_depth} (the ResNet-18 encoder has its own fixed "
        "widths and 5 levels, random init); 3-layer PatchGAN discriminator of width "
        f"{config.discriminator_width}."
    )
    lines.append(
        f"- Step budget: {config.steps} steps per trained row = {config.steps * config.batch_size} training images seen"
        + (f" (~{config.steps * config.batch_size / images:.1f} epochs of the subset)" if images else "")
        + f"; {config.l1_steps} L1 pre-training steps, then adversarial steps (the cGAN-only row has no L1 at all). "
        "WGAN-GP updates its generator on one step in n_critic = 5. Training images/s is the run's own wall clock: "
        "steps x batch / `wall_time_s` of its config.json (validation of the sample grid and checkpoints included; "
        "the machine may have been shared)."
    )
    if reused:
        lines.append(f"- Runs reused from an earlier invocation of this study (same settings, already finished): {', '.join(reused)}.")
    lines += ["", "## Results", "", "| " + " | ".join(TABLE_COLUMNS) + " |", "|" + "|".join(["---"] + ["---:"] * 7 + [":---:"]) + "|"]
    for key in config.row_keys:
        row_def = ROWS.get(key)
        r = results.get(key)
        if r is None:
            reason = missing.get(key, "not run")
            lines.append(f"| {row_def.label if row_def else key} | missing: {reason} |" + " — |" * 7)
            continue
        lines.append(
            f"| {r['label']} | {_schedule_text(r)} | {_num(r['psnr'], '.2f')} | {_num(r['ssim'], '.4f')} | "
            f"{_num(r['ciede2000'], '.2f')} | {_num(r['colorfulness_ratio'], '.3f')} | "
            f"{_num(r['parameters'] or None, ',d')} | {_num(r.get('images_per_s'), '.1f')} | "
            f"[grid]({(grid_rel / (key + '.png')).as_posix()}) |"
        )
    if missing:
        lines += ["", "**Missing rows:** " + "; ".join(f"{ROWS[k].label if k in ROWS else k} ({why})" for k, why in missing.items()) + "."]
    lines += [
        "",
        "PSNR and SSIM on RGB, CIEDE2000 the mean colour difference (lower is closer to the real photo), "
        "colourfulness ratio = mean Hasler–Süsstrunk colourfulness of the outputs over that of the real photos "
        "(0 = gray, 1 = as colourful as the real photos).",
        "",
        "## Conclusions",
        "",
        *conclusions(results, config),
        "",
        f"## Samples (rows: gray input | output | real; {config.grid_size} px center squares)",
        "",
        _grid_source_text(config, len(val_paths)),
        "",
    ]
    for key in config.row_keys:
        if key in results:
            lines += [f"**{results[key]['label']}**", "", f"![{key}]({(grid_rel / (key + '.png')).as_posix()})", ""]
    return "\n".join(lines).rstrip() + "\n"


def _grid_source_text(config: AblationConfig, val_count: int) -> str:
    val_grids = f"`{Path(config.out) / 'val-grids'}/`"
    if config.grid_data == "skimage":
        names = ", ".join(SKIMAGE_PHOTOS[: config.grid_images])
        return (
            f"Photos: scikit-image's sample photos ({names}; public domain or CC0), not the validation images, "
            "because the data sets' terms do not allow committing their photos; they are outside the training "
            f"domain. The same grids on {min(config.grid_images, val_count)} validation images are in {val_grids} "
            "(not committed)."
        )
    if config.grid_data:
        return f"Photos: {config.grid_images} images of `{config.grid_data}`; grids on validation images are in {val_grids}."
    return f"Photos: {min(config.grid_images, val_count)} of the scored validation images, evenly spaced."


CSV_COLUMNS = (
    "key", "label", "kind", "steps", "l1_steps", "generator_updates", "psnr", "ssim", "ciede2000",
    "colorfulness", "real_colorfulness", "colorfulness_ratio", "parameters", "images_per_s", "train_seconds",
)


def write_outputs(config: AblationConfig, results: dict[str, dict[str, Any]], **context: Any) -> Path:
    from .checkpoint import atomic_write_text

    report = Path(config.report)
    text = render_report(config, results, **context)  # fills results[*]["vs_default"]
    atomic_write_text(report, text)
    config.grid_dir.mkdir(parents=True, exist_ok=True)
    with open(config.grid_dir / "ablation.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for key in config.row_keys:
            if key in results:
                writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in results[key].items()})
    payload = {
        "version": RESULTS_VERSION,
        "command": context["command"],
        "config": dataclasses.asdict(config),
        "machine": context["machine"],
        "val_images": [str(p) for p in context["val_paths"]],
        "missing": context["missing"],
        "rows": {k: {kk: vv for kk, vv in r.items() if kk != "per_image"} for k, r in results.items()},
    }
    atomic_write_text(config.grid_dir / "ablation.json", json.dumps(json_safe(payload), indent=2) + "\n")
    return report


# ----------------------------------------------------------------------------- the study


def run_study(config: AblationConfig, *, command: str) -> dict[str, Any]:
    """Train what is missing, score every row, write the report; returns {results, missing, trained, reused}."""
    started = time.monotonic()
    if config.threads:
        torch.set_num_threads(config.threads)
    _check_budget(config)
    val_paths = select_images(config.val, config.val_exclude, config.val_images)
    grid_photos = grid_sources(config, val_paths)
    machine = _machine()
    results: dict[str, dict[str, Any]] = {}
    missing: dict[str, str] = {key: "not run yet" for key in config.row_keys}
    trained: list[str] = []
    reused: list[str] = []
    context = dict(command=command, missing=missing, machine=machine, val_paths=val_paths, reused=reused)

    for key in config.row_keys:
        row = ROWS[key]
        if row.kind == "train":
            folder = Path(config.out) / key
            finished = _is_finished(config, row)
            if not finished:
                if not config.train:
                    missing[key] = "not trained (--no-train)"
                    continue
                if config.time_limit and time.monotonic() - started >= config.time_limit:
                    missing[key] = "not trained: the study's --time-limit was reached; rerun to continue"
                    continue
                logger.info("Row %s: training into %s", key, folder)
                load_average = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
                try:
                    train_row(config, row)
                except (ConfigError, DatasetError, CheckpointError) as error:
                    raise AblationError(f"Training row '{key}' failed: {error}") from None
                from .checkpoint import atomic_write_text

                note = {"load_average_at_start": load_average, "trained_by": command}
                atomic_write_text(folder / ROW_NOTE_FILE, json.dumps(note, indent=2) + "\n")
                trained.append(key)
            else:
                reused.append(key)
                logger.info("Row %s: finished run in %s, not retrained", key, folder)
        logger.info("Row %s: scoring %d validation images", key, len(val_paths))
        results[key] = score_row(config, row, val_paths, grid_photos)
        missing.pop(key, None)
        write_outputs(config, results, **context)
    report = write_outputs(config, results, **context)
    logger.info("Report: %s (%d rows, %d missing) in %.0f s", report, len(results), len(missing), time.monotonic() - started)
    return {"results": results, "missing": dict(missing), "trained": trained, "reused": reused, "report": report}


BUDGET_FILE = "ablation_budget.json"


def _check_budget(config: AblationConfig) -> None:
    """Record the step budget in --out once; a later study with another budget is refused there."""
    from .checkpoint import atomic_write_text

    budget = {"steps": config.steps, "l1_steps": config.l1_steps}
    path = Path(config.out) / BUDGET_FILE
    if path.is_file():
        saved = json.loads(path.read_text(encoding="utf-8"))
        if saved != budget:
            raise AblationError(
                f"{config.out} holds runs with the budget {saved}, not {budget}; choose another --out or remove it."
            )
        return
    if config.train:
        atomic_write_text(path, json.dumps(budget) + "\n")


def _is_finished(config: AblationConfig, row: Row) -> bool:
    folder = Path(config.out) / row.key
    if not (folder / CONFIG_FILE).is_file() or not (folder / TRAINING_STATE_FILE).is_file():
        return False
    try:
        steps = read_config(folder).get("training", {}).get("steps")
    except CheckpointError:
        return False
    if steps != config.steps:
        return False
    progress = _saved_progress(folder, _expected_settings(config, row))  # raises on other settings
    return progress is not None and progress["step"] == config.steps


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("colorize.data").setLevel(logging.WARNING)  # one line per skipped gray photo, per session
    try:
        config = parse_args(argv)
        outcome = run_study(config, command="python -m colorize.ablation " + shlex.join(argv))
    except AblationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("Interrupted; rerun the same command to continue.", file=sys.stderr)
        return 130
    print(Path(outcome["report"]).read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
