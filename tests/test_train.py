"""`python -m colorize.train` end to end on 4 tiny images: files written, exact resume, errors, DDP."""

import csv
import json
import logging
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from skimage import data

from colorize.checkpoint import load_model
from colorize.config import ConfigError, TrainConfig, parse_args, parse_duration
from colorize.models import ResNet18Encoder, build_discriminator
from colorize.train import Trainer, main

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
NAMES = ("astronaut", "chelsea", "coffee", "rocket")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    for split, size in (("train", (56, 40)), ("val", (40, 48))):
        (root / split).mkdir()
        for name in NAMES:
            Image.fromarray(getattr(data, name)()).convert("RGB").resize(size).save(root / split / f"{name}.png")
    return root


def _args(folders, out, *extra):
    return [
        "--data", str(folders / "train"), "--val", str(folders / "val"), "--out", str(out),
        "--image-size", "32", "--base-channels", "4", "--depth", "3", "--discriminator-channels", "4",
        "--batch-size", "2", "--epochs-l1", "1", "--epochs-gan", "1", "--num-workers", "0", *extra,
    ]


def _state(out):
    return torch.load(Path(out) / "training_state.pt", weights_only=True)


def _assert_same(a, b, path="state"):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            _assert_same(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


def test_two_step_run_writes_checkpoint_samples_and_metrics(folders, tmp_path):
    out = tmp_path / "run"
    assert main(_args(folders, out, "--max-steps", "2")) == 0
    assert {p.name for p in out.iterdir()} >= {"model.safetensors", "config.json", "training_state.pt", "metrics.csv", "samples"}

    config = json.loads((out / "config.json").read_text())
    training = config["training"]
    assert config["format_version"] == 1 and config["model"]["base_channels"] == 4
    assert training["steps"] == 2 and training["epochs_completed"] == 1
    assert training["data"]["images"] == 4 and training["data"]["folders"] == [str(folders / "train")]
    assert training["image_size"] == 32 and training["lambda_l1"] == 100.0
    assert training["device"].startswith("CPU") and training["wall_time_s"] >= 0
    assert set(training["val_metrics"]) == {"val_l1", "val_psnr", "val_colorfulness_ratio"}
    assert config["train_config"]["data"] == [str(folders / "train")]

    (sample,) = (out / "samples").iterdir()
    assert sample.name == "epoch_001.png"
    assert Image.open(sample).size == (4 * 32, 3 * 32)  # 4 validation images; rows gray | generated | real

    with open(out / "metrics.csv", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["epoch"] == "1" and row["step"] == "2" and row["phase"] == "l1"
    assert float(row["l1"]) > 0 and 5 < float(row["val_psnr"]) < 100

    state = _state(out)
    assert state["global_step"] == 2 and state["epoch"] == 1 and state["step_in_epoch"] == 0
    assert set(state["rng"]) >= {"python", "numpy", "torch"}
    discriminator = build_discriminator(TrainConfig.from_dict(state["train_config"]).model).state_dict()
    assert {name: value.shape for name, value in state["discriminator"].items()} == {name: value.shape for name, value in discriminator.items()}
    (group,) = state["opt_d"]["param_groups"]
    assert group["lr"] == 2e-4 and group["betas"] == (0.5, 0.999)
    assert state["opt_d"]["state"] == {}  # both steps were L1 pre-training: the discriminator has not stepped yet

    generator, _ = load_model(out)
    weights = load_file(str(out / "model.safetensors"))
    assert all(v.dtype == torch.float32 for v in weights.values() if v.is_floating_point())
    _assert_same(generator.state_dict(), state["generator"])
    assert generator(torch.zeros(1, 1, 7, 9)).shape == (1, 2, 7, 9)


@pytest.mark.parametrize(
    "options, resume_options",
    [
        (["--gan-mode", "vanilla"], ["--num-workers", "1"]),  # data order independent of the worker count
        (["--gan-mode", "wgan-gp", "--n-critic", "2"], []),
        (["--gan-mode", "lsgan", "--lambda-l1", "0"], []),
        (["--gan-mode", "vanilla", "--ema-decay", "0.9"], []),
        # simulated hints come from the run's RNG, and the discriminator sees them
        (["--gan-mode", "vanilla", "--hints", "--noise-channels", "2", "--lambda-diversity", "1"], []),
    ],
)
def test_resume_equals_uninterrupted_run(folders, tmp_path, options, resume_options):
    options = ["--batch-size", "1", "--seed", "3", *options]
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert main(_args(folders, whole, *options)) == 0  # 4 steps of L1, 4 adversarial steps

    # stopped mid-epoch (step 6 of 8), with a checkpoint at step 5 and samples + validation at step 3, then resumed
    extra = ["--max-steps", "6", "--save-every-steps", "5", "--sample-every-steps", "3"]
    assert main(_args(folders, split, *options, *extra)) == 0
    assert (split / "samples" / "epoch_001_step_0000003.png").is_file()
    assert _state(split)["step_in_epoch"] == 2 and _state(split)["global_step"] == 6
    assert main(["--out", str(split), "--resume", *resume_options]) == 0  # the rest of the settings come from the run

    a, b = _state(whole), _state(split)
    assert b["global_step"] == 8 and b["epoch"] == 2
    for key in ("generator", "discriminator", "opt_g", "opt_d", "rng", "ema"):
        _assert_same(a[key], b[key], key)
    weights_a, weights_b = load_file(str(whole / "model.safetensors")), load_file(str(split / "model.safetensors"))
    _assert_same(weights_a, weights_b, "model.safetensors")
    assert a["wall_time_s"] > 0 and b["wall_time_s"] > 0
    phases = [row["phase"] for row in csv.DictReader(open(split / "metrics.csv", newline=""))]
    assert phases == ["l1", "l1", "gan", "gan"]  # step 3, epoch 1, the stop at step 6, epoch 2


def test_folder_shares_set_each_epochs_mix_and_resume_exactly(folders, tmp_path, caplog):
    # the val folder as a second training folder, drawn three times as often as the first
    options = ["--data", str(folders / "val"), "--folder-shares", "1,3", "--batch-size", "1", "--seed", "3",
               "--gan-mode", "none", "--epochs-l1", "2", "--epochs-gan", "0"]
    whole, split = tmp_path / "whole", tmp_path / "split"
    with caplog.at_level(logging.INFO, logger="colorize.train"):
        assert main(_args(folders, whole, *options)) == 0
    count = len(NAMES)
    assert f"val {3 * count // 2} (1.50 per photo)" in caplog.text
    assert json.loads((whole / "config.json").read_text())["train_config"]["folder_shares"] == [1.0, 3.0]
    assert main(_args(folders, split, *options, "--max-steps", str(count + 1))) == 0
    assert main(["--out", str(split), "--resume"]) == 0
    a, b = _state(whole), _state(split)
    assert a["global_step"] == b["global_step"] == 2 * (2 * count)  # two epochs, each as long as both folders
    for key in ("generator", "opt_g", "rng"):
        _assert_same(a[key], b[key], key)


def test_l1_only_mode_has_no_discriminator(folders, tmp_path):
    out = tmp_path / "l1"
    assert main(_args(folders, out, "--gan-mode", "none", "--max-steps", "3")) == 0
    state = _state(out)
    assert state["discriminator"] is None and state["opt_d"] is None and state["global_step"] == 3
    training = json.loads((out / "config.json").read_text())["training"]
    assert training["gan_mode"] == "none" and set(training["last_losses"]) == {"l1"}
    assert (out / "samples" / "epoch_002_step_0000003.png").is_file()  # the stop mid-epoch 2 is recorded
    # lambda_gan 0 is L1-only too
    assert not TrainConfig(data=("x",), lambda_gan=0.0).uses_gan


def test_wgan_gp_switches_batch_norm_critic_to_instance_norm(folders, tmp_path, caplog):
    config = parse_args(_args(folders, tmp_path / "w", "--gan-mode", "wgan-gp"))
    assert config.model.discriminator_norm == "batch"
    with caplog.at_level("INFO"):
        trainer = Trainer(config)
    assert trainer.model_config.discriminator_norm == "instance"
    assert any(isinstance(m, torch.nn.InstanceNorm2d) for m in trainer.discriminator.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in trainer.discriminator.modules())
    assert "instance norm" in caplog.text


def test_corrupt_and_gray_training_files_are_skipped_and_reported(folders, tmp_path):
    train = tmp_path / "train"
    train.mkdir()
    for path in (folders / "train").iterdir():
        (train / path.name).write_bytes(path.read_bytes())
    (train / "garbage.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg" * 20)
    full = (folders / "train" / "astronaut.png").read_bytes()
    (train / "cut.png").write_bytes(full[: len(full) // 2])
    Image.new("RGB", (40, 40), (120, 120, 120)).save(train / "gray.jpg")
    out = tmp_path / "run"
    args = _args(folders, out, "--max-steps", "1")
    args[1] = str(train)
    assert main(args) == 0
    summary = json.loads((out / "config.json").read_text())["training"]["data"]
    assert summary["images"] == 4 and summary["skipped"] == {"unreadable": 2, "gray": 1}


def test_sigterm_finishes_the_step_and_saves(folders, tmp_path, monkeypatch):
    original = Trainer._l1_step
    calls = []

    def step_then_signal(self, lightness, ab):
        losses = original(self, lightness, ab)
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return losses

    monkeypatch.setattr(Trainer, "_l1_step", step_then_signal)
    out = tmp_path / "run"
    assert main(_args(folders, out, "--batch-size", "1")) == 130
    state = _state(out)
    assert state["global_step"] == 3 and state["step_in_epoch"] == 3
    assert load_model(out)[1]["training"]["steps"] == 3
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored
    monkeypatch.setattr(Trainer, "_l1_step", original)
    assert main(["--out", str(out), "--resume", "--max-steps", "5"]) == 0
    assert _state(out)["global_step"] == 5


def test_time_limit_stops_with_a_checkpoint(folders, tmp_path):
    out = tmp_path / "run"
    assert main(_args(folders, out, "--time-limit", "0.001")) == 0
    assert _state(out)["global_step"] == 1
    assert parse_duration("2h") == 7200 and parse_duration("30m") == 1800 and parse_duration("1h30m") == 5400
    assert parse_duration("45") == 45 and parse_duration(90) == 90 and parse_duration("") == 0
    with pytest.raises(ConfigError, match="not a duration"):
        parse_duration("soon")


def test_toml_config_with_cli_override(folders, tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text(
        f'data = ["{folders / "train"}"]\nval = "{folders / "val"}"\nbatch_size = 3\nlr = 1\n'
        'time_limit = "30m"\nexclude = "list.txt"\n[model]\ngenerator = "resunet"\nbase_channels = 8\n'
    )
    config = parse_args(["--config", str(toml), "--batch-size", "5", "--data", "other"])
    assert config.batch_size == 5 and config.lr == 1.0 and config.time_limit == 1800
    assert config.data == ("other",) and config.exclude == ("list.txt",)
    assert config.model.generator == "resunet" and config.model.base_channels == 8
    assert config.val == str(folders / "val") and config.epochs_l1 == TrainConfig.epochs_l1


@pytest.mark.parametrize(
    "case, message",
    [
        ("malformed toml", "is not valid TOML"),
        ("unknown key", "Unknown setting 'batchsize'"),
        ("wrong type", "'batch_size' in .* must be a whole number"),
        ("bad model value", "'generator' in .* must be one of unet, .*, not 'vgg'"),
        ("missing config", "There is no configuration file"),
        ("empty data folder", "contains no image files"),
        ("missing val folder", "validation folder .* does not exist"),
        ("no usable image", "has no usable image"),
        ("existing run", "already holds a training run; pass --resume"),
        ("nothing to resume", "has no training_state.pt"),
        ("resnet weights for unet", "resnet18_weights only applies"),
        ("shares for other folders", "folder_shares needs one share per --data folder: 1 folder"),
        ("bad share", "Every folder share must be a positive number, not -1"),
    ],
)
def test_user_errors_are_one_sentence_and_exit_2(folders, tmp_path, capsys, case, message):
    toml = tmp_path / "run.toml"
    args = _args(folders, tmp_path / "out")
    if case == "malformed toml":
        toml.write_text("batch_size = = 3\n")
        args = ["--config", str(toml)]
    elif case == "unknown key":
        toml.write_text("batchsize = 3\n")
        args = ["--config", str(toml)]
    elif case == "wrong type":
        toml.write_text('batch_size = "16"\n')
        args = ["--config", str(toml)]
    elif case == "bad model value":
        toml.write_text('[model]\ngenerator = "vgg"\n')
        args = ["--config", str(toml)]
    elif case == "missing config":
        args = ["--config", str(tmp_path / "nope.toml")]
    elif case == "empty data folder":
        (tmp_path / "empty").mkdir()
        args[1] = str(tmp_path / "empty")
    elif case == "missing val folder":
        args[3] = str(tmp_path / "no-val")
    elif case == "no usable image":
        (tmp_path / "bad").mkdir()
        (tmp_path / "bad" / "x.jpg").write_bytes(b"nope")
        args[1] = str(tmp_path / "bad")
    elif case == "existing run":
        (tmp_path / "out").mkdir()
        torch.save({}, tmp_path / "out" / "training_state.pt")
    elif case == "nothing to resume":
        args = ["--out", str(tmp_path / "out"), "--resume"]
    elif case == "resnet weights for unet":
        args += ["--resnet18-weights", "w.pt"]
    elif case == "shares for other folders":
        args += ["--folder-shares", "0.5,0.5"]
    elif case == "bad share":
        toml.write_text("folder_shares = [0.5, -1]\n")
        args += ["--config", str(toml)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ")
    assert "Traceback" not in "\n".join(err)
    assert re.search(message, err[-1]), err[-1]


@pytest.mark.slow
def test_cli_process_malformed_toml_exit_code_2_without_traceback(tmp_path):
    toml = tmp_path / "bad.toml"
    toml.write_text("[model\n")
    result = subprocess.run(
        [sys.executable, "-m", "colorize.train", "--config", str(toml)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {toml} is not valid TOML (") and line.endswith(").")


def test_resnet18_weights_in_torchvision_layout_are_loaded(folders, tmp_path):
    torch.manual_seed(11)
    encoder = ResNet18Encoder()
    state = {k: v.clone() for k, v in encoder.state_dict().items()}
    for value in state.values():
        if value.is_floating_point():
            value.normal_()
    conv1_rgb = torch.randn(64, 3, 7, 7)
    state["conv1.weight"] = conv1_rgb
    state["fc.weight"], state["fc.bias"] = torch.randn(1000, 512), torch.randn(1000)
    weights = tmp_path / "resnet18.pth"
    torch.save(state, weights)

    args = _args(folders, tmp_path / "run", "--generator", "resnet18-unet", "--resnet18-weights", str(weights))
    trainer = Trainer(parse_args(args))
    loaded = trainer.generator.encoder.state_dict()
    assert torch.equal(loaded["conv1.weight"], conv1_rgb.sum(dim=1, keepdim=True))
    assert torch.equal(loaded["layer4.1.conv2.weight"], state["layer4.1.conv2.weight"])
    assert torch.equal(loaded["layer2.0.downsample.1.running_var"], state["layer2.0.downsample.1.running_var"])

    torch.save({"something": torch.zeros(1)}, tmp_path / "wrong.pth")
    args[args.index(str(weights))] = str(tmp_path / "wrong.pth")
    assert main(args) == 2


def test_init_from_starts_from_a_model_folder_and_refuses_another_architecture(folders, tmp_path):
    source = tmp_path / "first"
    assert main(_args(folders, source, "--max-steps", "2")) == 0
    saved = load_file(str(source / "model.safetensors"))

    trainer = Trainer(parse_args(_args(folders, tmp_path / "second", "--init-from", str(source))))
    started = trainer.generator.state_dict()
    assert saved.keys() == started.keys()
    for name, tensor in saved.items():
        assert torch.equal(started[name], tensor), name
    assert main(_args(folders, tmp_path / "second", "--init-from", str(source), "--max-steps", "1")) == 0

    assert main(_args(folders, tmp_path / "third", "--init-from", str(source), "--base-channels", "8")) == 2
    assert main(_args(folders, tmp_path / "fourth", "--init-from", str(tmp_path / "missing"))) == 2


def test_a_hint_model_starts_from_an_automatic_one_and_validates_with_hints(folders, tmp_path):
    plain, hinted = tmp_path / "plain", tmp_path / "hinted"
    assert main(_args(folders, plain, "--max-steps", "2", "--gan-mode", "none")) == 0
    source, _ = load_model(plain)
    start = Trainer(parse_args(_args(folders, hinted, "--init-from", str(plain), "--hints"))).generator.down[0][0].weight
    assert start.shape[1] == 7 and not start[:, 1:].any()  # the hint inputs start at zero: step 0 is the source model
    assert torch.equal(start[:, :1], source.down[0][0].weight)

    assert main(_args(folders, hinted, "--init-from", str(plain), "--hints", "--max-steps", "2")) == 0
    generator, config = load_model(hinted)
    assert config["model"]["hints"] and generator.hint_channels == 6
    assert set(config["training"]["val_metrics"]) >= {"val_l1_hints", "val_psnr_hints"}
    assert generator.down[0][0].weight[:, 1:].any()  # and training moved them
    (sample,) = (hinted / "samples").iterdir()
    assert Image.open(sample).size == (4 * 32, 4 * 32)  # rows gray | generated | with hints | real
    with pytest.raises(ConfigError, match="takes more hint channels"):
        Trainer(parse_args(_args(folders, tmp_path / "back", "--init-from", str(hinted))))


def test_export_half(folders, tmp_path):
    out = tmp_path / "run"
    assert main(_args(folders, out, "--max-steps", "1")) == 0
    assert main(["--export-half", str(out), str(tmp_path / "half")]) == 0
    weights = load_file(str(tmp_path / "half" / "model.safetensors"))
    assert {v.dtype for v in weights.values() if v.is_floating_point()} == {torch.float16}
    full, _ = load_model(out)
    half, config = load_model(tmp_path / "half")
    assert config["training"]["steps"] == 1 and config["stored_dtype"] == "float16"
    lightness = torch.rand(1, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        assert (full(lightness) - half(lightness)).abs().max() < 1e-2


@pytest.mark.slow
def test_torchrun_world_size_1_on_cpu_writes_a_checkpoint(folders, tmp_path):
    out = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
        "-m", "colorize.train", *_args(folders, out, "--max-steps", "2", "--gan-mode", "wgan-gp"),
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, env=environment)
    assert result.returncode == 0, result.stderr[-2000:]
    config = json.loads((out / "config.json").read_text())
    assert config["training"]["world_size"] == 1 and config["training"]["steps"] == 2
    assert (out / "training_state.pt").is_file() and (out / "samples" / "epoch_001.png").is_file()


def test_ema_decay_saves_the_weight_average(folders, tmp_path):
    start = tmp_path / "start"
    assert main(_args(folders, start, "--max-steps", "1")) == 0
    initial = load_file(str(start / "model.safetensors"))
    out = tmp_path / "ema"
    assert main(_args(folders, out, "--init-from", str(start), "--gan-mode", "none", "--ema-decay", "0.5", "--max-steps", "1")) == 0
    state, saved = _state(out), load_file(str(out / "model.safetensors"))
    _assert_same(saved, state["ema"], "model.safetensors vs ema")
    decay = 2 / 11  # the ramp (1 + n) / (10 + n) is below 0.5 at the first update
    trained = state["generator"]
    for name, value in saved.items():
        if name.endswith(("running_mean", "running_var", "num_batches_tracked")):
            assert torch.equal(value, trained[name]), name  # batch-norm statistics are copied
        else:
            torch.testing.assert_close(value, decay * initial[name] + (1 - decay) * trained[name], msg=name)
    assert any(not torch.equal(saved[name], trained[name]) for name in saved)
    assert json.loads((out / "config.json").read_text())["training"]["ema_decay"] == 0.5
    with pytest.raises(ConfigError, match="ema_decay must be in"):
        TrainConfig(data=(str(folders / "train"),), out=str(tmp_path / "x"), ema_decay=1.0)


def test_l2_reconstruction_loss_is_logged_under_its_name(folders, tmp_path):
    out = tmp_path / "l2"
    assert main(_args(folders, out, "--reconstruction-loss", "l2", "--max-steps", "3")) == 0
    rows = list(csv.DictReader(open(out / "metrics.csv", newline="")))
    assert float(rows[-1]["l2"]) > 0 and rows[-1]["l1"] == ""
    assert json.loads((out / "config.json").read_text())["train_config"]["reconstruction_loss"] == "l2"


def test_metrics_of_a_run_from_an_older_version_are_rewritten_under_todays_columns(folders, tmp_path):
    out = tmp_path / "old"
    assert main(_args(folders, out, "--max-steps", "2", "--epochs-l1", "2")) == 0
    path = out / "metrics.csv"
    rows = list(csv.DictReader(open(path, newline="")))
    old_columns = [c for c in rows[0] if c not in ("l2", "diversity", "val_diversity")]
    with open(path, "w", newline="") as handle:  # as an older version wrote it
        writer = csv.DictWriter(handle, fieldnames=old_columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    assert main(["--out", str(out), "--resume", "--max-steps", "4"]) == 0
    rewritten = list(csv.DictReader(open(path, newline="")))
    assert len(rewritten) == 2 and rewritten[0]["l1"] == rows[0]["l1"] and rewritten[1]["step"] == "4"
