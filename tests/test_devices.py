"""colorize.devices: one meaning of "auto" for training and inference, plain sentences for missing devices."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from colorize.devices import DeviceError, resolve_device, unwrap

needs_no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")


def test_auto_and_cpu_resolve_on_this_machine():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert resolve_device("auto").type == expected


@needs_no_gpu
def test_a_missing_gpu_is_one_sentence():
    with pytest.raises(DeviceError, match=r"^The device 'cuda:1' was asked for, but this machine has no usable CUDA GPU\.$"):
        resolve_device("cuda:1")


def test_a_misspelt_device_is_one_sentence():
    with pytest.raises(DeviceError, match="'gpu' is not a device name; use auto, cpu, cuda, cuda:1 or mps."):
        resolve_device("gpu")


def test_unwrap_returns_the_model_inside_a_wrapper_and_the_model_itself():
    model = nn.Linear(2, 2)
    assert unwrap(nn.DataParallel(model)) is model
    assert unwrap(model) is model


@needs_no_gpu
@pytest.mark.parametrize("command", ["infer", "train"])
def test_commands_refuse_a_missing_gpu_with_exit_2(command, tmp_path, capsys):
    if command == "infer":
        from colorize.infer import main

        argv = [str(tmp_path), "--out", str(tmp_path / "out"), "--device", "cuda"]
    else:
        from colorize.train import main

        argv = ["--data", str(tmp_path), "--out", str(tmp_path / "run"), "--device", "cuda"]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip().endswith("this machine has no usable CUDA GPU.")
