"""Injected noise: the cGAN's z made to matter (models), the diversity term (train), sampling and
the hue-agreement fade (Colorizer), and the diversity measure (evaluate)."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from PIL import Image
from skimage import data

from colorize import Colorizer, fastpath
from colorize.checkpoint import load_model
from colorize.config import ConfigError, TrainConfig
from colorize.infer import hue_agreement
from colorize.models import ModelConfig, build_generator, init_weights
from colorize.train import main

NOISY = ModelConfig(base_channels=4, depth=4, max_channels=16, dropout=0.0, noise_channels=4, noise_levels=2)

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _noisy_colorizer(samples: int = 1) -> Colorizer:
    torch.manual_seed(0)
    generator = build_generator(NOISY)
    init_weights(generator, std=0.2)
    for injection in generator.noise:  # strong noise, as training with the diversity term makes it
        torch.nn.init.normal_(injection.project.weight, 0.0, 2.0)
        injection.pixel_strength.data.fill_(1.0)
    config = {"format_version": 1, "model": NOISY.to_dict(), "training": {"image_size": 64},
              "inference": {"samples": samples, "agreement_power": 1.0}}
    return Colorizer(generator, config, name="noisy", device="cpu")


def test_deterministic_pass_ignores_noise_and_draws_are_reproducible():
    generator = _noisy_colorizer().generator
    x = torch.randn(2, 1, 40, 56)
    plain = generator(x)
    assert torch.equal(plain, generator(x))
    first = generator(x, noise=torch.Generator().manual_seed(1))
    again = generator(x, noise=torch.Generator().manual_seed(1))
    other = generator(x, noise=torch.Generator().manual_seed(2))
    assert torch.equal(first, again)
    assert (first - other).abs().mean() > 1e-3 and (first - plain).abs().mean() > 1e-3
    # the folded fast path is the zero-noise pass
    folded = fastpath.prepare_generator(generator, "folded")
    assert torch.allclose(folded(x), plain, atol=1e-5)


def test_injected_noise_is_only_for_the_unet_family():
    with pytest.raises(ValueError, match="unet, resunet and encdec"):
        ModelConfig(generator="resnet18-unet", noise_channels=8)
    with pytest.raises(ConfigError, match="noise-channels"):
        TrainConfig(data=("x",), val="y", lambda_diversity=5.0)


def test_hue_agreement_is_one_for_agreeing_and_near_zero_for_opposite_draws():
    blue = torch.tensor([0.0, -30.0]).view(1, 1, 2, 1, 1)
    orange = torch.tensor([20.0, 30.0]).view(1, 1, 2, 1, 1)
    agreeing = torch.cat([blue, blue * 0.5, blue * 2])
    opposite = torch.cat([blue, -blue])
    mixed = torch.cat([blue, orange])
    assert hue_agreement(agreeing).item() == pytest.approx(1.0, abs=1e-6)
    assert hue_agreement(opposite).item() == pytest.approx(0.0, abs=1e-6)
    assert 0.0 < hue_agreement(mixed).item() < 0.6


def test_agreement_fade_keeps_hue_and_only_removes_chroma():
    photo = Image.fromarray(data.astronaut()).resize((96, 80))
    single, faded = _noisy_colorizer(samples=1), _noisy_colorizer(samples=4)
    _, lightness = single._prepare(photo, None, True)
    plain, fade = single.predict_ab(lightness), faded.predict_ab(lightness)
    ratio = torch.linalg.vector_norm(fade, dim=1) / torch.linalg.vector_norm(plain, dim=1).clamp_min(1e-6)
    assert ratio.max() <= 1 + 1e-5 and ratio.mean() < 0.95  # faded somewhere, never strengthened
    cosine = (fade * plain).sum(dim=1) / (torch.linalg.vector_norm(fade, dim=1) * torch.linalg.vector_norm(plain, dim=1) + 1e-8)
    strong = torch.linalg.vector_norm(fade, dim=1) > 1e-3
    assert cosine[strong].min() > 0.999  # same hue
    assert torch.equal(fade, faded.predict_ab(lightness))  # deterministic
    # a seed is one sample, unfaded, the same in both
    assert torch.equal(single.predict_ab(lightness, seed=5), faded.predict_ab(lightness, seed=5))


def test_variations_of_a_noisy_model_differ_and_noise_diversity_measures_it():
    colorizer = _noisy_colorizer()
    photo = Image.fromarray(data.coffee()).resize((90, 60))
    a, b = colorizer.colorize_variations(photo, count=2, seed=3)
    assert a.size == b.size == photo.size
    assert a.tobytes() != b.tobytes()
    assert colorizer.noise_diversity(photo, count=3) > 1.0
    # an old-style model whose noise is dropout, switched off: diversity 0
    torch.manual_seed(0)
    plain = build_generator(ModelConfig(base_channels=4, depth=4, max_channels=16, dropout=0.0))
    quiet = Colorizer(plain, {"format_version": 1, "model": plain_config().to_dict()}, name="quiet", device="cpu")
    assert quiet.noise_diversity(photo, count=3) == pytest.approx(0.0, abs=1e-6)


def plain_config() -> ModelConfig:
    return ModelConfig(base_channels=4, depth=4, max_channels=16, dropout=0.0)


def test_training_with_the_diversity_term_records_it_and_spreads_the_samples(tmp_path):
    root = tmp_path / "images"
    for split in ("train", "val"):
        (root / split).mkdir(parents=True)
        for name in ("astronaut", "chelsea", "coffee", "rocket"):
            Image.fromarray(getattr(data, name)()).resize((40, 40)).save(root / split / f"{name}.png")
    common = [
        "--data", str(root / "train"), "--val", str(root / "val"), "--image-size", "32",
        "--base-channels", "4", "--depth", "3", "--discriminator-channels", "4", "--batch-size", "2",
        "--epochs-l1", "1", "--epochs-gan", "2", "--num-workers", "0", "--seed", "1", "--dropout", "0",
        "--noise-channels", "4", "--lr", "1e-3",
    ]
    diverse, plain = tmp_path / "diverse", tmp_path / "plain"
    assert main([*common, "--out", str(diverse), "--lambda-diversity", "50", "--diversity-cap", "0.5"]) == 0
    assert main([*common, "--out", str(plain)]) == 0
    rows = list(csv.DictReader(open(diverse / "metrics.csv", newline="")))
    assert all(float(row["diversity"]) > 0 for row in rows)
    assert all(float(row["val_diversity"]) >= 0 for row in rows)
    config = json.loads((diverse / "config.json").read_text())
    assert config["model"]["noise_channels"] == 4 and config["train_config"]["lambda_diversity"] == 50
    # the same run without the term: the noise matters less
    last = lambda folder: float(list(csv.DictReader(open(folder / "metrics.csv", newline="")))[-1]["val_diversity"])
    assert last(diverse) > last(plain)
    generator, _ = load_model(diverse)
    assert generator.has_injected_noise


def test_without_noise_maps_only_z_enters_and_samples_still_differ():
    config = ModelConfig(base_channels=4, depth=4, max_channels=16, dropout=0.0, noise_channels=4, noise_levels=2, noise_maps=False)
    torch.manual_seed(0)
    generator = build_generator(config).eval()
    assert not any("pixel_strength" in name for name, _ in generator.named_parameters())
    for injection in generator.noise:
        torch.nn.init.normal_(injection.project.weight, 0.0, 2.0)
    x = torch.randn(1, 1, 32, 48)
    a, b = (generator(x, noise=torch.Generator().manual_seed(seed)) for seed in (1, 2))
    assert (a - b).abs().mean() > 1e-3


def test_init_from_refuses_a_model_with_other_noise_settings(tmp_path):
    from colorize.checkpoint import save_model

    source = save_model(tmp_path / "maps", build_generator(NOISY), NOISY)
    root = tmp_path / "images"
    (root / "t").mkdir(parents=True)
    for name in ("astronaut", "coffee"):
        Image.fromarray(getattr(data, name)()).resize((40, 40)).save(root / "t" / f"{name}.png")
    code = main([
        "--data", str(root / "t"), "--val", str(root / "t"), "--out", str(tmp_path / "run"), "--image-size", "32",
        "--base-channels", "4", "--depth", "4", "--max-channels", "16", "--dropout", "0", "--noise-channels", "4",
        "--noise-levels", "2", "--no-noise-maps", "--init-from", str(source), "--num-workers", "0",
    ])
    assert code == 2


def test_diversity_every_n_steps_records_the_term_on_those_steps_only(tmp_path):
    root = tmp_path / "images"
    (root / "t").mkdir(parents=True)
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        Image.fromarray(getattr(data, name)()).resize((40, 40)).save(root / "t" / f"{name}.png")
    out = tmp_path / "run"
    assert main([
        "--data", str(root / "t"), "--val", str(root / "t"), "--out", str(out), "--image-size", "32",
        "--base-channels", "4", "--depth", "3", "--discriminator-channels", "4", "--batch-size", "1",
        "--epochs-l1", "1", "--epochs-gan", "0", "--num-workers", "0", "--dropout", "0", "--noise-channels", "4",
        "--lambda-diversity", "10", "--diversity-every", "2",
    ]) == 0
    (row,) = list(csv.DictReader(open(out / "metrics.csv", newline="")))
    assert float(row["diversity"]) > 0  # steps 0 and 2 of the 4 had it (the mean is over those)
    with pytest.raises(ConfigError, match="diversity_every"):
        TrainConfig(data=("x",), val="y", diversity_every=0)
