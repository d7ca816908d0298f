"""`python -m colorize.calibrate` and the chroma scale it stores in a model's config.json."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import color as skcolor
from skimage import data

from colorize import Colorizer, calibrate
from colorize.checkpoint import CheckpointError, save_model
from colorize.models import ModelConfig, build_generator, init_weights

TINY = ModelConfig(base_channels=4, depth=3, max_channels=8)

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.manual_seed(0)
    generator = build_generator(TINY)
    init_weights(generator, std=0.2)  # strong colours: far more than the real photos'
    return save_model(tmp_path_factory.mktemp("model") / "tiny", generator.eval(), TINY)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for name in ("astronaut", "chelsea", "coffee"):
        Image.fromarray(getattr(data, name)()).resize((64, 48)).save(folder / f"{name}.png")
    return folder


def _mean_chroma(image: Image.Image) -> float:
    lab = skcolor.rgb2lab(np.asarray(image))
    return float(np.hypot(lab[..., 1], lab[..., 2]).mean())


def test_sweep_trades_colourfulness_for_accuracy_and_choose_follows_the_rule(model, photos):
    colorizer = Colorizer.from_pretrained(model)
    paths = sorted(photos.iterdir())
    results = calibrate.sweep(colorizer, paths, (0.2, 0.5, 1.0), size=32, render_size=32)
    ratios = [row["colorfulness_ratio"] for row in results]
    assert ratios[0] < ratios[1] < ratios[2]
    chosen, reached = calibrate.choose(results, min_ratio=ratios[1] - 1e-9)
    assert reached and chosen["chroma_scale"] in (0.5, 1.0)
    assert chosen["ciede2000"] == min(row["ciede2000"] for row in results[1:])
    chosen, reached = calibrate.choose(results, min_ratio=ratios[2] + 1.0)
    assert not reached and chosen["chroma_scale"] == 1.0  # nothing is vivid enough: the most colourful


def test_cli_writes_the_scale_that_colorizer_then_applies(model, photos, tmp_path, capsys):
    photo = Image.open(photos / "astronaut.png")
    before = Colorizer.from_pretrained(model)
    assert before.chroma_scale == 1.0
    full = before.colorize(photo, render_size=32)

    code = calibrate.main(
        ["--model", str(model), "--data", str(photos), "--scales", "0.4,0.6", "--min-colourfulness-ratio", "0",
         "--size", "32", "--render-size", "32", "--out", str(tmp_path / "cal"), "--write"]
    )
    assert code == 0
    assert "chosen chroma scale: 0.40" in capsys.readouterr().out  # both vivid enough; 0.4 is closer to the truth
    config = json.loads((model / "config.json").read_text())
    assert config["inference"]["chroma_scale"] == 0.4 and config["inference"]["calibration"]["images"] == 3
    assert "| 0.40 |" in (tmp_path / "cal" / "calibration.md").read_text()

    after = Colorizer.from_pretrained(model)
    assert after.chroma_scale == 0.4
    scaled = after.colorize(photo, render_size=32)
    assert _mean_chroma(scaled) < 0.6 * _mean_chroma(full)
    same = np.asarray(after.colorize(photo, render_size=32, saturation=2.5)).astype(int)  # saturation multiplies it
    assert np.abs(same - np.asarray(before.colorize(photo, render_size=32)).astype(int)).max() <= 2


def test_bad_scales_and_bad_configs_are_one_sentence(model, photos, tmp_path, capsys):
    with pytest.raises(SystemExit):
        calibrate.main(["--model", str(model), "--data", str(photos), "--scales", "0,x"])
    assert "comma-separated list" in capsys.readouterr().err
    assert calibrate.main(["--model", str(tmp_path / "none"), "--data", str(photos)]) == 2
    config = json.loads((model / "config.json").read_text())
    config["inference"] = {"chroma_scale": "lots"}
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps(config))
    (broken / "model.safetensors").write_bytes((model / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="chroma_scale must be a number"):
        Colorizer.from_pretrained(broken)
