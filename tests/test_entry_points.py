"""Every entry point starts from the model's own inference settings and gives the same colours:
the library, `colorize.infer`, `colorize.evaluate`, the survey's stimuli, `colorize.bench` (and,
in test_app and test_app_browser, the app's output and its render-size slider)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from colorize import Colorizer, evaluate, infer
from colorize.checkpoint import save_model
from colorize.models import ModelConfig, build_generator, init_weights
from survey.build import MethodSpec, load_method

NOISY = ModelConfig(base_channels=4, depth=3, max_channels=8, dropout=0.0, noise_channels=4, noise_levels=2)
OWN_RENDER_SIZE = 40  # not the training size (48) and not any library default: it must come from the config

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.manual_seed(0)
    generator = build_generator(NOISY)
    init_weights(generator, std=0.2)
    for injection in generator.noise:
        torch.nn.init.normal_(injection.project.weight, 0.0, 2.0)
    metadata = {
        "training": {"image_size": 48},
        "inference": {"render_size": OWN_RENDER_SIZE, "samples": 3, "agreement_power": 1.0, "chroma_scale": 1.3},
    }
    return save_model(tmp_path_factory.mktemp("model") / "noisy", generator.eval(), NOISY, metadata=metadata)


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("photo") / "coffee.png"
    Image.fromarray(data.coffee()).resize((90, 60)).convert("L").convert("RGB").save(path)
    return path


def _pixels(image) -> np.ndarray:
    return np.asarray(Image.open(image) if not isinstance(image, Image.Image) else image).astype(int)


def test_library_cli_evaluate_and_survey_agree_on_the_models_defaults(model, photo, tmp_path, capsys):
    colorizer = Colorizer.from_pretrained(model)
    assert colorizer.settings.render_size == OWN_RENDER_SIZE and colorizer.settings.samples == 3
    default = colorizer.colorize(photo)
    assert np.array_equal(_pixels(default), _pixels(colorizer.colorize(photo, render_size=OWN_RENDER_SIZE)))
    assert not np.array_equal(_pixels(default), _pixels(colorizer.colorize(photo, render_size=64)))

    # the command line, with and without a seed
    assert infer.main([str(photo), "--out", str(tmp_path / "cli"), "--model", str(model)]) == 0
    assert np.array_equal(_pixels(tmp_path / "cli" / "coffee_color.png"), _pixels(default))
    assert infer.main([str(photo), "--out", str(tmp_path / "seeded"), "--model", str(model), "--seed", "7"]) == 0
    seeded = colorizer.colorize(photo, seed=7)
    assert np.array_equal(_pixels(tmp_path / "seeded" / "coffee_color.png"), _pixels(seeded))
    assert not np.array_equal(_pixels(seeded), _pixels(default))

    # the survey's fakes are the default colouring of the gray photo
    method = load_method(MethodSpec("noisy", "model", model))
    gray = Image.open(photo).convert("RGB")
    assert np.array_equal(_pixels(method.fake(gray, gray, key="coffee")[0]), _pixels(colorizer.colorize(gray)))

    # evaluation runs at the same settings and says which
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(data.coffee()).resize((64, 64)).save(folder / "c.png")
    capsys.readouterr()
    assert evaluate.main(["--data", str(folder), "--model", str(model), "--size", "64", "--json", "--out", str(tmp_path / "e")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["render_size"] == OWN_RENDER_SIZE
    assert summary["inference_settings"] == colorizer.settings.to_dict()

    # the benchmark's "own size" rows run each model at its own render size
    from colorize import bench

    assert OWN_RENDER_SIZE in bench.effective_render_sizes({"shipped": colorizer}, bench.QUICK_PLAN)
