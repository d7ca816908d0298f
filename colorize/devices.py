"""Which device a model runs on, and the model inside a multi-device wrapper.

Training, inference, evaluation and the benchmark resolve devices here, so "auto" picks the
same device everywhere: CUDA, else Apple's MPS, else the CPU.
"""

from __future__ import annotations

import platform

import torch
from torch import nn


class DeviceError(ValueError):
    """A device this machine does not have; the message is one sentence."""


def mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def resolve_device(device: str | torch.device = "auto", *, local_rank: int = 0) -> torch.device:
    """'auto' = CUDA > MPS > CPU; a bare 'cuda' is this process's GPU under torchrun (`local_rank`).

    Raises DeviceError for a device this machine lacks.
    """
    name = str(device)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if mps_available() else "cpu"
    kind = name.split(":", 1)[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"The device '{device}' was asked for, but this machine has no usable CUDA GPU.")
    if kind == "mps" and not mps_available():
        raise DeviceError(f"The device '{device}' was asked for, but MPS is not available here.")
    if name == "cuda":
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    try:
        return torch.device(name)
    except RuntimeError:
        raise DeviceError(f"'{device}' is not a device name; use auto, cpu, cuda, cuda:1 or mps.") from None


def describe_device(device: torch.device) -> str:
    """A line for logs and reports: the GPU's name, or the CPU's and its thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return f"Apple MPS ({platform.machine()})"
    return f"CPU {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def unwrap(module: nn.Module) -> nn.Module:
    """The model itself, whether or not DistributedDataParallel wraps it."""
    return module.module if isinstance(module, (nn.parallel.DistributedDataParallel, nn.DataParallel)) else module
