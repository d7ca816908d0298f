"""`python -m colorize.evaluate` on a tiny folder, checked against numbers computed independently."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from skimage.color import deltaE_ciede2000, lab2rgb, rgb2lab
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from colorize import evaluate
from colorize.checkpoint import save_model
from colorize.models import ModelConfig, build_generator, init_weights

SIZE = 64
TINY = ModelConfig(base_channels=4, depth=4, max_channels=16)


pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture()
def photos(tmp_path) -> Path:
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    # 80x64 with --size 64: no resampling, only the center crop, so the test can redo it exactly
    Image.fromarray(data.astronaut()[::4, ::4][:64, :80]).save(folder / "astronaut.png")
    Image.fromarray(data.coffee()[::4, ::4][:80, :64]).save(folder / "sub" / "coffee.png")
    return folder


@pytest.fixture()
def checkpoint(tmp_path) -> Path:
    torch.manual_seed(0)
    generator = build_generator(TINY)
    init_weights(generator, std=0.2)
    return save_model(tmp_path / "tiny-model", generator, TINY)


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = evaluate.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _rows(out: Path) -> dict[str, dict[str, float]]:
    with open(out / "per_image.csv", newline="") as handle:
        return {Path(row.pop("image")).name: {k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)}


def test_json_summary_and_gray_baseline_match_skimage(photos, checkpoint, tmp_path, capsys):
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 broken")
    out = tmp_path / "eval"
    code, stdout, stderr = _run(
        capsys, "--data", str(photos), "--model", str(checkpoint), "--size", str(SIZE), "--out", str(out), "--json"
    )
    assert code == 0
    lines = stdout.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert summary["images"] == 2 and summary["unreadable"] == 1 and summary["method"] == "tiny-model"
    assert "broken.jpg" in stderr
    assert json.loads((out / "summary.json").read_text()) == summary

    rows = _rows(out)
    crops = {
        "astronaut.png": np.asarray(Image.open(photos / "astronaut.png"))[:, 8:72],
        "coffee.png": np.asarray(Image.open(photos / "sub" / "coffee.png"))[8:72, :],
    }
    for name, real8 in crops.items():
        real = real8 / 255.0
        lab = rgb2lab(real)
        lab[..., 1:] = 0.0
        gray = lab2rgb(lab)
        row = rows[name]
        assert row["gray_psnr"] == pytest.approx(peak_signal_noise_ratio(real, gray, data_range=1.0), abs=1e-3)
        ssim = structural_similarity(gray, real, channel_axis=-1, data_range=1.0)
        assert row["gray_ssim"] == pytest.approx(ssim, abs=1e-4)
        assert row["gray_ciede2000"] == pytest.approx(deltaE_ciede2000(rgb2lab(gray), rgb2lab(real)).mean(), abs=1e-3)
        assert row["gray_colorfulness"] == pytest.approx(0.0, abs=1e-6)
        assert row["real_colorfulness"] > 10
        assert row["colorfulness"] > 1  # the (vivid) tiny model did add colour
    assert summary["gray_psnr"] == pytest.approx(np.mean([r["gray_psnr"] for r in rows.values()]))
    assert summary["colorfulness_ratio"] == pytest.approx(summary["colorfulness"] / summary["real_colorfulness"])

    # false colour per image, recomputed from the output the CLI's colorizer gives, and its summary
    from colorize import Colorizer
    from colorize.pixels import gray_image

    colorizer = Colorizer.from_pretrained(checkpoint)
    for name, real8 in crops.items():
        real = real8 / 255.0
        gray8 = gray_image(real)
        output_lab = rgb2lab(np.asarray(colorizer.colorize(gray8)) / 255.0)
        real_lab = rgb2lab(real)
        vivid = np.hypot(output_lab[..., 1], output_lab[..., 2]) > 25
        wrong = np.hypot(output_lab[..., 1] - real_lab[..., 1], output_lab[..., 2] - real_lab[..., 2]) > 30
        assert rows[name]["false_colour"] == pytest.approx(np.mean(vivid & wrong), abs=1e-3)
    spoiled = sum(row["false_colour"] > 0.10 for row in rows.values())
    assert summary["false_colour_images"] == spoiled
    assert summary["false_colour"] == pytest.approx(np.mean([r["false_colour"] for r in rows.values()]))
    # an old-style model's dropout is off without a seed but on for samples: the diversity is measured
    assert summary["diversity_samples"] == 4 and summary["diversity"] >= 0
    assert summary["inference_settings"]["render_size"] == colorizer.settings.render_size


def test_baselines_exclusions_and_default_folder(photos, checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exclude = tmp_path / "near_gray.txt"
    exclude.write_text("# near-gray images\nsub/coffee.png\n")
    code, stdout, _ = _run(capsys, "--data", str(photos), "--baseline", "gray", "--size", str(SIZE), "--exclude", str(exclude))
    assert code == 0 and "PSNR" in stdout
    summary = json.loads((tmp_path / "runs" / "eval-gray-photos" / "summary.json").read_text())
    assert summary["images"] == 1 and summary["excluded"] == 1
    assert summary["psnr"] == summary["gray_psnr"] and summary["colorfulness"] == 0.0

    code, stdout, _ = _run(
        capsys, "--data", str(photos), "--untrained", "--model", str(checkpoint), "--size", str(SIZE), "--max-images", "1", "--json"
    )
    summary = json.loads(stdout)
    assert code == 0 and summary["method"] == "untrained" and summary["images"] == 1
    assert (tmp_path / "runs" / "eval-untrained-photos" / "per_image.csv").is_file()


def test_missing_model_is_a_sentence_and_exit_2(photos, tmp_path, capsys):
    code, stdout, stderr = _run(capsys, "--data", str(photos), "--model", str(tmp_path / "nope"), "--json")
    assert code == 2 and stdout == "" and "nope" in stderr and "Traceback" not in stderr


def test_whole_scores_the_whole_photo_not_its_centre_square(checkpoint, tmp_path, capsys):
    # colourful in the middle, gray at both ends: the centre square sees only colour, the whole photo both
    photo = np.full((64, 192, 3), 128, np.uint8)
    photo[:, 64:128] = data.astronaut()[::8, ::8][:64, :64]
    folder = tmp_path / "wide"
    folder.mkdir()
    Image.fromarray(photo).save(folder / "wide.png")
    results = {}
    for flags in ((), ("--whole",)):
        out = tmp_path / f"out{len(flags)}"
        code, _, _ = _run(capsys, "--data", str(folder), "--model", str(checkpoint), "--size", "64", "--out", str(out), "--diversity-samples", "0", *flags)
        assert code == 0
        results[flags] = (_rows(out)["wide.png"], json.loads((out / "summary.json").read_text()))
    square, whole = results[()], results[("--whole",)]
    assert whole[1]["whole_photos"] is True and square[1]["whole_photos"] is False
    assert whole[0]["real_colorfulness"] < 0.8 * square[0]["real_colorfulness"]  # the gray ends count
