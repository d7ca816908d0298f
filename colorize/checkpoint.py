"""Checkpoint folders: `model.safetensors` + `config.json` for the weights users download,
`training_state.pt` (optimisers, step, RNG) beside them for `--resume`.

Every file is written to a temporary name in the same folder and renamed into place, so a
kill at any moment leaves either the previous complete file or the new complete file.
Loading never unpickles arbitrary objects: safetensors for weights, JSON for the config,
`torch.load(weights_only=True)` for the resume state.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .devices import unwrap
from .models import ModelConfig, SizeAgnosticGenerator, build_generator

FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
HINT_MODEL_KEY = "hint_model"  # config.json: a sub-folder holding the hint model this automatic model pairs with
TRAINING_STATE_FILE = "training_state.pt"
SHIPPED_MODEL_DIR = Path(__file__).resolve().parent / "weights"


class CheckpointError(RuntimeError):
    """A checkpoint folder that is missing, incomplete or malformed; the message says which."""


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        write(temporary)
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    _atomic_write(Path(path), lambda temporary: Path(temporary).write_text(text, encoding="utf-8"))


def save_model(
    folder: str | Path,
    generator: nn.Module,
    model_config: ModelConfig,
    *,
    metadata: dict[str, Any] | None = None,
    half_precision: bool = False,
) -> Path:
    """Write the generator's weights and its config; returns the folder."""
    folder = Path(folder)
    module = unwrap(generator)
    dtype = torch.float16 if half_precision else torch.float32
    tensors = {
        name: (value.detach().to("cpu", dtype) if value.is_floating_point() else value.detach().cpu()).contiguous()
        for name, value in module.state_dict().items()
    }
    config = {"format_version": FORMAT_VERSION, "model": model_config.to_dict(), **(metadata or {})}
    _atomic_write(folder / WEIGHTS_FILE, lambda temporary: save_file(tensors, temporary))
    atomic_write_text(folder / CONFIG_FILE, json.dumps(config, indent=2, sort_keys=True, default=str) + "\n")
    return folder


def read_config(folder: str | Path) -> dict[str, Any]:
    folder = Path(folder)
    config_path = folder / CONFIG_FILE
    if not folder.is_dir():
        raise CheckpointError(f"There is no model folder at {folder}.")
    if not config_path.is_file():
        raise CheckpointError(f"{folder} has no {CONFIG_FILE}; it is not a colorizer checkpoint.")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{config_path} is not valid JSON ({error}).") from None
    if not isinstance(config, dict) or "model" not in config:
        raise CheckpointError(f"{config_path} has no 'model' section.")
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{config_path} has format version {version}; this program reads version {FORMAT_VERSION}."
        )
    return config


def load_model(folder: str | Path | None = None, *, device: str | torch.device = "cpu") -> tuple[SizeAgnosticGenerator, dict]:
    """Build the generator a checkpoint folder describes and load its weights (float32, eval mode)."""
    folder = Path(folder) if folder is not None else SHIPPED_MODEL_DIR
    config = read_config(folder)
    try:
        model_config = ModelConfig.from_dict(config["model"])
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{folder / CONFIG_FILE} describes no model this program can build: {error}") from None
    weights_path = folder / WEIGHTS_FILE
    if not weights_path.is_file():
        raise CheckpointError(f"{folder} has no {WEIGHTS_FILE}.")
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{weights_path} is damaged and cannot be read ({error}).") from None
    generator = build_generator(model_config)
    try:
        generator.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in tensors.items()})
    except RuntimeError:
        raise CheckpointError(f"The weights in {weights_path} do not match the architecture in its config.json.") from None
    return generator.to(device).eval(), config


def save_training_state(folder: str | Path, state: dict[str, Any]) -> None:
    _atomic_write(Path(folder) / TRAINING_STATE_FILE, lambda temporary: torch.save(state, temporary))


def load_training_state(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / TRAINING_STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"{path.parent} has no {TRAINING_STATE_FILE} to resume from.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several unrelated types for a damaged file
        raise CheckpointError(f"{path} is damaged and cannot be resumed from ({error}).") from None
