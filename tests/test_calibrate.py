"""`python -m colorize.calibrate` and the chroma scale it stores in a model's config.json."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from colorize import Colorizer, calibrate
from colorize.color import denormalize_ab, normalize_ab
from colorize.checkpoint import CheckpointError, save_model
from colorize.infer import CHROMA_PIVOT, apply_chroma_gamma
from colorize.losses import rebalancing_weights
from colorize.models import ModelConfig, build_generator, init_weights
from colorize.pixels import mean_chroma

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


def test_sweep_trades_colourfulness_for_accuracy_and_choose_follows_the_rule(model, photos):
    colorizer = Colorizer.from_pretrained(model)
    paths = sorted(photos.iterdir())
    results = calibrate.sweep(colorizer, paths, (0.2, 0.5, 1.0), size=32, render_size=32, gammas=(1.0,))
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
        ["--model", str(model), "--data", str(photos), "--scales", "0.4,0.6", "--gammas", "1", "--min-colourfulness-ratio", "0",
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
    assert mean_chroma(scaled) < 0.6 * mean_chroma(full)
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


def test_chroma_curve_keeps_hue_and_the_pivot_and_fades_weak_colours():
    hues = torch.linspace(0, 2 * torch.pi, 7)[:-1]
    chroma = torch.tensor([5.0, 15.0, CHROMA_PIVOT, 45.0, 60.0, 90.0])
    ab = torch.stack([chroma * torch.cos(hues), chroma * torch.sin(hues)])[:, None, :]  # (2, 1, 6)
    assert torch.equal(apply_chroma_gamma(ab, 1.0), ab)
    curved = apply_chroma_gamma(ab, 2.0)
    out_chroma = torch.linalg.vector_norm(curved, dim=0)[0]
    torch.testing.assert_close(out_chroma, chroma * chroma / CHROMA_PIVOT)
    torch.testing.assert_close(torch.atan2(curved[1], curved[0]), torch.atan2(ab[1], ab[0]))
    assert torch.equal(apply_chroma_gamma(torch.zeros(2, 3, 3), 3.0), torch.zeros(2, 3, 3))  # gray stays gray


def test_cli_sweeps_gammas_and_colorizer_applies_the_chosen_curve(model, photos, tmp_path, capsys):
    copy = tmp_path / "model"
    shutil.copytree(model, copy)
    config = json.loads((copy / "config.json").read_text())
    config.pop("inference", None)
    (copy / "config.json").write_text(json.dumps(config))
    photo = Image.open(photos / "astronaut.png")
    plain = Colorizer.from_pretrained(copy)
    assert plain.chroma_gamma == 1.0

    code = calibrate.main(
        ["--model", str(copy), "--data", str(photos), "--scales", "0.5,1", "--gammas", "1,2.5",
         "--min-colourfulness-ratio", "0", "--size", "32", "--render-size", "32", "--out", str(tmp_path / "cal"), "--write"]
    )
    assert code == 0
    results = json.loads((tmp_path / "cal" / "calibration.json").read_text())["results"]
    assert sorted((row["chroma_gamma"], row["chroma_scale"]) for row in results) == [(1, 0.5), (1, 1), (2.5, 0.5), (2.5, 1)]
    best = min(results, key=lambda row: row["ciede2000"])
    written = json.loads((copy / "config.json").read_text())["inference"]
    assert (written["chroma_gamma"], written["chroma_scale"]) == (best["chroma_gamma"], best["chroma_scale"])
    assert f"chroma gamma: {best['chroma_gamma']:.2f}" in capsys.readouterr().out

    curved = Colorizer.from_pretrained(copy)
    assert curved.chroma_gamma == best["chroma_gamma"]
    curved.chroma_gamma, curved.chroma_scale = 2.5, 1.0
    curved_image = curved.colorize(photo, render_size=32)
    # the same as composing, with gamma 1, the network's ab put through the curve by hand
    curved.chroma_gamma = 1.0
    ab_norm = curved.predict_ab(curved._prepare(photo, 32, True)[1])[0]
    curved_by_hand = normalize_ab(apply_chroma_gamma(denormalize_ab(ab_norm), 2.5))
    by_hand = curved._finish(photo.convert("RGB"), (curved_by_hand[None], None), 0, 1.0)
    assert np.abs(np.asarray(curved_image).astype(int) - np.asarray(by_hand).astype(int)).max() <= 1
    assert np.abs(np.asarray(curved_image).astype(int) - np.asarray(curved.colorize(photo, render_size=32)).astype(int)).max() > 5


def test_bad_gamma_in_config_or_cli_is_one_sentence(model, photos, tmp_path, capsys):
    with pytest.raises(SystemExit):
        calibrate.main(["--model", str(model), "--data", str(photos), "--gammas", "0"])
    assert "gammas must be numbers in (0, 4]" in capsys.readouterr().err
    broken = tmp_path / "broken"
    shutil.copytree(model, broken)
    config = json.loads((broken / "config.json").read_text())
    config["inference"] = {"chroma_gamma": 9}
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="chroma_gamma must be a number in"):
        Colorizer.from_pretrained(broken)


def test_sample_spreads_over_the_folder_and_bad_values_are_refused(model, photos, capsys):
    paths = [f"class{c}/{i}.png" for c in range(3) for i in range(4)]
    assert calibrate.evenly_spaced(paths, 3) == ["class0/0.png", "class1/0.png", "class2/0.png"]
    assert calibrate.evenly_spaced(paths, 0) == paths and calibrate.evenly_spaced(paths, 50) == paths
    assert calibrate.main(["--model", str(model), "--data", str(photos), "--sample", "-1"]) == 2
    assert "--sample must be" in capsys.readouterr().err


def test_choose_drops_settings_with_false_colour_before_weighing_accuracy():
    def row(scale, ciede, ratio, false, spoiled):
        return {"chroma_scale": scale, "ciede2000": ciede, "colorfulness_ratio": ratio, "false_colour": false,
                "false_colour_images_share": spoiled}

    rows = [row(1.0, 9.0, 0.9, 0.05, 0.0), row(0.8, 9.5, 0.86, 0.02, 0.01), row(0.6, 9.2, 0.7, 0.01, 0.0)]
    chosen, reached = calibrate.choose(rows, 0.85, max_false_colour=0.025, max_spoiled=0.025)
    assert reached and chosen["chroma_scale"] == 0.8  # the most accurate one has 5% false colour
    chosen, reached = calibrate.choose(rows, 0.95, max_false_colour=0.025, max_spoiled=0.025)
    assert not reached and chosen["chroma_scale"] == 0.8  # none vivid enough: the most colourful clean one
    chosen, reached = calibrate.choose(rows, 0.5, max_false_colour=0.025, max_spoiled=0.005)
    assert chosen["chroma_scale"] == 0.6  # 0.8 spoils 1% of the images
    chosen, reached = calibrate.choose(rows, 0.5, max_false_colour=0.001)
    assert not reached and chosen["chroma_scale"] == 0.6  # nothing clean: the least false colour
    # a clean setting further from the truth than gray is passed over while a closer one is clean
    for item, gray in zip(rows, (10.0, 9.3, 9.3)):
        item["gray_ciede2000"] = gray
    chosen, reached = calibrate.choose(rows, 0.95, max_false_colour=0.025, max_spoiled=0.025)
    assert not reached and chosen["chroma_scale"] == 0.6  # 0.8 is more colourful, but 9.5 > gray's 9.3
    chosen, reached = calibrate.choose(rows, 0.65, max_false_colour=0.025, max_spoiled=0.025)
    assert reached and chosen["chroma_scale"] == 0.6
    for item in rows:
        item["gray_ciede2000"] = 5.0
    chosen, reached = calibrate.choose(rows, 0.95, max_false_colour=0.025, max_spoiled=0.025)
    assert chosen["chroma_scale"] == 0.8  # none closer than gray: the rule as before


def test_sweep_over_noise_samples_needs_injected_noise(model, photos, capsys):
    assert calibrate.main(["--model", str(model), "--data", str(photos), "--samples", "1,4"]) == 2
    assert "injected noise" in capsys.readouterr().err


def test_sweep_over_noise_samples_writes_them(photos, tmp_path, capsys):
    noisy = ModelConfig(base_channels=4, depth=3, max_channels=8, dropout=0.0, noise_channels=4, noise_levels=2)
    torch.manual_seed(0)
    generator = build_generator(noisy)
    init_weights(generator, std=0.2)
    for injection in generator.noise:
        torch.nn.init.normal_(injection.project.weight, 0.0, 2.0)
    folder = save_model(tmp_path / "noisy", generator.eval(), noisy)
    code = calibrate.main(
        ["--model", str(folder), "--data", str(photos), "--scales", "0.5,1", "--gammas", "1", "--samples", "1,3",
         "--agreement-powers", "1,2", "--min-colourfulness-ratio", "0", "--max-false-colour", "1", "--max-spoiled-images", "1",
         "--size", "32", "--render-size", "32", "--out", str(tmp_path / "cal"), "--write"]
    )
    assert code == 0
    results = json.loads((tmp_path / "cal" / "calibration.json").read_text())["results"]
    assert sorted((r["samples"], r["agreement_power"], r["chroma_scale"]) for r in results) == [
        (1, 1.0, 0.5), (1, 1.0, 1.0), (3, 1.0, 0.5), (3, 1.0, 1.0), (3, 2.0, 0.5), (3, 2.0, 1.0)
    ]
    faded = [r for r in results if r["samples"] == 3 and r["chroma_scale"] == 1.0]
    single = next(r for r in results if r["samples"] == 1 and r["chroma_scale"] == 1.0)
    assert all(r["mean_chroma"] < single["mean_chroma"] for r in faded)  # agreement only takes colour away
    best = min(results, key=lambda r: r["ciede2000"])
    written = json.loads((folder / "config.json").read_text())["inference"]
    assert (written["samples"], written["agreement_power"], written["chroma_scale"]) == (
        best["samples"], best["agreement_power"], best["chroma_scale"]
    )
    assert Colorizer.from_pretrained(folder).settings.samples == best["samples"]


def test_chroma_knee_keeps_hue_and_bounds_chroma_softly():
    from colorize.infer import apply_chroma_knee

    hues = torch.linspace(0, 2 * torch.pi, 5)[:-1]
    chroma = torch.tensor([5.0, 20.0, 60.0, 120.0])
    ab = torch.stack([chroma * torch.cos(hues), chroma * torch.sin(hues)])[:, None, :]
    knee = apply_chroma_knee(ab, 30.0)
    out = torch.linalg.vector_norm(knee, dim=0)[0]
    torch.testing.assert_close(out, 30.0 * torch.tanh(chroma / 30.0))
    assert out.max() < 30.0 and out[0] > 0.98 * 5.0  # weak colours pass, strong ones stay under the knee
    torch.testing.assert_close(torch.atan2(knee[1], knee[0]), torch.atan2(ab[1], ab[0]))
    assert torch.equal(apply_chroma_knee(torch.zeros(2, 2, 2), 30.0), torch.zeros(2, 2, 2))


def _sweep_one_setting(model, photos, out, *grid) -> dict:
    """Calibrate `model` over `grid` alone, every setting allowed, and write the choice; the results by row."""
    code = calibrate.main(
        ["--model", str(model), "--data", str(photos), "--scales", "1", "--gammas", "1", *grid,
         "--min-colourfulness-ratio", "0", "--max-false-colour", "1", "--max-spoiled-images", "1",
         "--size", "32", "--render-size", "32", "--out", str(out), "--write"]
    )
    assert code == 0
    return json.loads((out / "calibration.json").read_text())["results"]


def test_knee_sweep_is_written_and_applied(model, photos, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(model, copy)
    results = {r["chroma_knee"]: r for r in _sweep_one_setting(copy, photos, tmp_path / "cal", "--knees", "0,20")}
    assert results[20.0]["mean_chroma"] < results[0.0]["mean_chroma"]  # the tiny model's colours are strong
    written = json.loads((copy / "config.json").read_text())["inference"]["chroma_knee"]
    assert written == min(results.values(), key=lambda r: r["ciede2000"])["chroma_knee"]
    assert Colorizer.from_pretrained(copy).settings.chroma_knee == written


def test_temperature_sweep_of_a_bins_model_is_written_and_applied(photos, tmp_path, capsys):
    model = _bins_model(tmp_path / "bins", rebalancing=False)
    results = {
        r["colour_temperature"]: r for r in _sweep_one_setting(model, photos, tmp_path / "cal", "--temperatures", "0.1,1")
    }
    assert results[0.1]["mean_chroma"] > results[1.0]["mean_chroma"]  # colder: nearer the likeliest bin
    _check_bins_choice(model, photos, results, "colour_temperature", "temperature", others=(1.0, 0.1))
    # a regression model has no temperature to sweep
    plain = save_model(tmp_path / "plain", build_generator(TINY).eval(), TINY)
    assert calibrate.main(["--model", str(plain), "--data", str(photos), "--temperatures", "0.5"]) == 2
    assert "bins colour head" in capsys.readouterr().err


def _check_bins_choice(model, photos, results, key, head_attribute, *, others):
    """The sweep wrote the most accurate value of `key`; a Colorizer applies it to its head, and its
    output (through the fast path, which has the decoding traced in) follows a change and back."""
    written = json.loads((model / "config.json").read_text())["inference"][key]
    assert written == min(results.values(), key=lambda r: r["ciede2000"])[key]
    colorizer = Colorizer.from_pretrained(model)
    assert getattr(colorizer.settings, key) == written == getattr(colorizer.generator.head, head_attribute)
    photo = Image.open(next(photos.iterdir())).convert("L")
    chosen = np.asarray(colorizer.colorize(photo, render_size=32))
    other = next(value for value in others if value != written)
    colorizer.settings = dataclasses.replace(colorizer.settings, **{key: other})
    assert not np.array_equal(np.asarray(colorizer.colorize(photo, render_size=32)), chosen)
    colorizer.settings = dataclasses.replace(colorizer.settings, **{key: written})
    assert np.array_equal(np.asarray(colorizer.colorize(photo, render_size=32)), chosen)


def _bins_model(folder, *, rebalancing: bool):
    config = ModelConfig(base_channels=4, depth=3, max_channels=8, colour_head="bins")
    torch.manual_seed(0)
    generator = build_generator(config)
    init_weights(generator, std=0.2)
    if rebalancing:
        # a training prior heavy on the bins near gray: their weights are the smallest
        centres = generator.head.centres
        prior = torch.softmax(-centres.norm(dim=1) * 20, dim=0)
        generator.head.rebalancing_log_weights.copy_(rebalancing_weights(prior).log())
    return save_model(folder, generator.eval(), config)


def test_prior_correction_sweep_of_a_bins_model_is_written_and_applied(photos, tmp_path, capsys):
    model = _bins_model(tmp_path / "bins", rebalancing=True)
    results = {
        r["prior_correction"]: r for r in _sweep_one_setting(model, photos, tmp_path / "cal", "--prior-corrections", "0,1")
    }
    # dividing the tilt towards rare colours out moves the colour towards the common, grayer bins
    assert results[1.0]["mean_chroma"] < results[0.0]["mean_chroma"]
    _check_bins_choice(model, photos, results, "prior_correction", "prior_correction", others=(0.5,))

    # a model saved without its rebalancing weights cannot apply a correction: one sentence, not a silent no-op
    unknowing = _bins_model(tmp_path / "unknowing", rebalancing=False)
    assert calibrate.main(["--model", str(unknowing), "--data", str(photos), "--prior-corrections", "0.5"]) == 2
    assert "without its training's rebalancing weights" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match="rebalancing weights"):
        colorizer = Colorizer.from_pretrained(unknowing)
        colorizer.settings = dataclasses.replace(colorizer.settings, prior_correction=1.0)
    config = json.loads((unknowing / "config.json").read_text())
    for bad in (1.5, -0.1, "half"):
        config["inference"] = {"prior_correction": bad}
        (unknowing / "config.json").write_text(json.dumps(config))
        with pytest.raises(CheckpointError, match="prior_correction must be a number from 0 to 1"):
            Colorizer.from_pretrained(unknowing)
    plain = save_model(tmp_path / "plain", build_generator(TINY).eval(), TINY)
    assert calibrate.main(["--model", str(plain), "--data", str(photos), "--prior-corrections", "1"]) == 2
    assert "bins colour head" in capsys.readouterr().err


def test_hint_snap_of_a_hint_model_is_chosen_written_and_applied(photos, tmp_path, capsys):
    config = ModelConfig(hints=True, base_channels=4, depth=3, max_channels=8)
    torch.manual_seed(0)
    folder = save_model(tmp_path / "hinted", build_generator(config).eval(), config)
    assert calibrate.main([
        "--model", str(folder), "--data", str(photos), "--scales", "1", "--gammas", "1", "--size", "32",
        "--hint-snaps", "0,1", "--hint-localities", "0,1", "--hint-counts", "2,5", "--out", str(tmp_path / "table"), "--write",
    ]) == 0
    written = json.loads((folder / "config.json").read_text())["inference"]
    table = json.loads((tmp_path / "table" / "calibration.json").read_text())["hint_snaps"]
    best = calibrate.choose_hint_snap(table)
    settings = Colorizer.from_pretrained(folder).settings
    assert (written["hint_snap"], written["hint_locality"]) == (best["hint_snap"], best["hint_locality"])
    assert (settings.hint_snap, settings.hint_locality) == (best["hint_snap"], best["hint_locality"]) and len(table) == 4
    # an untrained network ignores its hints; the snap puts them back, which is closer to the real photos
    assert best["hint_snap"] == 1.0 and table[2]["hint_error"] < table[0]["hint_error"]
    assert "Hint snap" in (tmp_path / "table" / "calibration.md").read_text()


def test_the_hint_snap_rule_prefers_accuracy_among_the_snaps_that_keep_hints():
    rows = [
        {"hint_snap": 0.0, "ciede2000": 5.0, "worst_hint_error": 9.0},
        {"hint_snap": 0.5, "ciede2000": 5.5, "worst_hint_error": 4.0},
        {"hint_snap": 1.0, "ciede2000": 6.0, "worst_hint_error": 0.5},
    ]
    assert calibrate.choose_hint_snap(rows)["hint_snap"] == 0.5
    assert calibrate.choose_hint_snap([dict(row, worst_hint_error=9.0 - row["hint_snap"]) for row in rows])["hint_snap"] == 1.0


def test_the_hint_snap_rule_wants_a_single_click_to_fill_its_object():
    def click(passed: bool, filled: float, leaked: float) -> dict:
        return {"passed": passed, "worst_filled": filled, "worst_leaked": leaked}

    rows = [
        {"hint_snap": 0.5, "hint_locality": 0.0, "ciede2000": 5.0, "worst_hint_error": 2.0, "one_click": click(False, 0.7, 1.0)},
        {"hint_snap": 1.0, "hint_locality": 0.0, "ciede2000": 5.2, "worst_hint_error": 1.0, "one_click": click(False, 0.95, 0.3)},
        {"hint_snap": 1.0, "hint_locality": 1.0, "ciede2000": 5.4, "worst_hint_error": 1.0, "one_click": click(True, 0.93, 0.08)},
    ]
    assert calibrate.choose_hint_snap(rows) is rows[2]  # the washing settings score better on random points
    assert calibrate.choose_hint_snap(rows[:2]) is rows[1]  # none fills: the one that comes closest


def test_hint_snaps_need_a_hint_model(model, photos, capsys):
    assert calibrate.main(["--model", str(model), "--data", str(photos), "--hint-snaps", "0,1"]) == 2
    assert "needs a model that takes colour hints" in capsys.readouterr().err
