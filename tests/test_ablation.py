"""`python -m colorize.ablation` end to end on 5 tiny images: table, step split, skip-on-rerun, conclusions."""

import csv
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from colorize.ablation import ROWS, TABLE_COLUMNS, AblationConfig, conclusions, main

torch.set_num_threads(1)
NAMES = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry")
LABELS = {key: ROWS[key].label for key in ("default", "l1", "untrained", "gray")}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    for split, size in (("train", (48, 40)), ("val", (40, 48))):
        (root / split).mkdir()
        for name in NAMES:
            Image.fromarray(getattr(data, name)()).convert("RGB").resize(size).save(root / split / f"{name}.png")
    return root


def _argv(folders, tmp, *extra):
    return [
        "--data", str(folders / "train"), "--val", str(folders / "val"),
        "--out", str(tmp / "runs"), "--report", str(tmp / "results" / "ablation.md"),
        "--image-size", "32", "--steps", "2", "--l1-steps", "1", "--batch-size", "2",
        "--base-channels", "4", "--val-images", "4", "--grid-images", "3", "--grid-size", "32",
        "--rows", "gray,l1,untrained,default", *extra,
    ]


def _table(report: str) -> tuple[list[str], dict[str, list[str]]]:
    lines = [line for line in report.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[1:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0]] = cells
    return header, rows


@pytest.mark.slow
def test_study_table_grids_schedule_and_rerun(folders, tmp_path, capsys):
    assert main(_argv(folders, tmp_path)) == 0
    report = (tmp_path / "results" / "ablation.md").read_text(encoding="utf-8")
    assert "python -m colorize.ablation --data" in report and "short, small runs" in report
    assert "## Conclusions" in report

    header, rows = _table(report)
    assert header == list(TABLE_COLUMNS)
    assert list(rows) == [LABELS[k] for k in ("default", "l1", "untrained", "gray")]  # table order, not --rows order
    for label, cells in rows.items():
        metrics = [float(cells[i]) for i in (2, 3, 4, 5)]  # PSNR, SSIM, CIEDE2000, colourfulness ratio
        assert all(math.isfinite(v) for v in metrics), label
    assert float(rows[LABELS["gray"]][5]) == pytest.approx(0.0, abs=1e-3)  # a gray image has no colour
    assert rows[LABELS["default"]][1] == "1 L1 + 1 GAN" and rows[LABELS["l1"]][1] == "2 L1"
    for key in ("default", "l1"):
        assert int(rows[LABELS[key]][6].replace(",", "")) > 0
        assert float(rows[LABELS[key]][7]) > 0  # training images/s, measured in the run

    # one grid per row: gray | output | real, 3 images of 32 px
    grids = tmp_path / "results" / "ablation"
    for key in LABELS:
        assert Image.open(grids / f"{key}.png").size == (3 * 32, 3 * 32)
    with open(grids / "ablation.csv", encoding="utf-8") as handle:
        numbers = list(csv.DictReader(handle))
    assert [r["key"] for r in numbers] == ["default", "l1", "untrained", "gray"]
    assert all(math.isfinite(float(r[k])) for r in numbers for k in ("psnr", "ssim", "ciede2000", "colorfulness_ratio"))
    saved = json.loads((grids / "ablation.json").read_text(encoding="utf-8"))
    assert saved["missing"] == {} and len(saved["val_images"]) == 4

    # exactly 2 optimizer steps per trained row, the first L1 and the second adversarial
    for key, phases in (("default", ["l1", "gan"]), ("l1", ["l1", "l1"])):
        run = tmp_path / "runs" / key
        assert json.loads((run / "config.json").read_text())["training"]["steps"] == 2
        with open(run / "metrics.csv", encoding="utf-8") as handle:
            assert [(r["step"], r["phase"]) for r in csv.DictReader(handle)] == [("1", phases[0]), ("2", phases[1])]

    # rerun: finished rows are scored again, not retrained
    states = {key: (tmp_path / "runs" / key / "training_state.pt").stat().st_mtime_ns for key in ("default", "l1")}
    capsys.readouterr()
    assert main(_argv(folders, tmp_path)) == 0
    assert {key: (tmp_path / "runs" / key / "training_state.pt").stat().st_mtime_ns for key in states} == states
    again = (tmp_path / "results" / "ablation.md").read_text(encoding="utf-8")
    assert "already finished): default, l1" in again
    assert _table(again)[1][LABELS["default"]][2:6] == rows[LABELS["default"]][2:6]

    # a run made with other settings is refused, not silently reused or overwritten
    assert main(_argv(folders, tmp_path, "--batch-size", "1")) == 2
    assert "batch_size" in capsys.readouterr().err


def test_no_train_lists_missing_rows_and_grids_from_skimage(folders, tmp_path):
    assert main(_argv(folders, tmp_path, "--no-train", "--grid-data", "skimage")) == 0
    report = (tmp_path / "results" / "ablation.md").read_text(encoding="utf-8")
    _, rows = _table(report)
    assert rows[LABELS["default"]][1].startswith("missing")
    assert math.isfinite(float(rows[LABELS["gray"]][4]))
    assert "**Missing rows:**" in report
    # committed grids from scikit-image's public-domain photos; the validation-image grids stay in --out
    assert "scikit-image's sample photos (astronaut, chelsea, coffee;" in report
    committed = Image.open(tmp_path / "results" / "ablation" / "untrained.png")
    assert committed.size == (3 * 32, 3 * 32)
    assert Image.open(tmp_path / "runs" / "val-grids" / "untrained.png").size == (3 * 32, 3 * 32)
    assert not (tmp_path / "results" / "ablation" / "default.png").exists()


def _fake(key, kind, ciede, psnr, colorfulness):
    n = 40
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 0.05, n)
    per_image = {
        "psnr": list(psnr + noise), "ssim": list(0.9 + noise / 10), "ciede2000": list(ciede + noise),
        "colorfulness": list(colorfulness + noise), "real_colorfulness": [40.0] * n,
    }
    return {
        "key": key, "label": ROWS[key].label, "kind": kind, "psnr": psnr, "ssim": 0.9, "ciede2000": ciede,
        "colorfulness_ratio": colorfulness / 40, "images_per_s": 10.0, "per_image": per_image,
    }


@pytest.mark.parametrize("sign", [1, -1])
def test_conclusions_follow_the_numbers(sign):
    config = AblationConfig(data=("x",), val="v", steps=10, l1_steps=2)
    results = {
        "default": _fake("default", "train", 10.0, 22.0, 20.0),
        "encdec": _fake("encdec", "train", 10.0 + sign * 2, 22.0 - sign, 20.0 - sign * 8),
    }
    text = "\n".join(conclusions(results, config))
    line = next(line for line in text.splitlines() if ROWS["encdec"].label in line and "CIEDE2000" in line)
    if sign > 0:
        assert "worse" in line and "less colourful" in line and "better" not in line
    else:
        assert "better" in line and "more colourful, closer" in line and "worse" not in line
    assert f"lowest CIEDE2000: {results['default' if sign > 0 else 'encdec']['label']}" in text
    assert "one seed" in text


@pytest.mark.parametrize("colourful_is_closer", [True, False])
def test_colour_versus_fidelity_line_follows_the_ranks(colourful_is_closer):
    config = AblationConfig(data=("x",), val="v", steps=10, l1_steps=2)
    colourfulness = {"default": 28.0, "encdec": 9.0, "l1": 8.0}
    ciede = {"default": 13.0, "encdec": 11.5, "l1": 11.2} if not colourful_is_closer else {"default": 10.0, "encdec": 12.5, "l1": 13.2}
    results = {key: _fake(key, "train", ciede[key], 21.0, colourfulness[key]) for key in colourfulness}
    line = next(line for line in conclusions(results, config) if line.startswith("- Colour versus fidelity"))
    if colourful_is_closer:
        assert "-1.00" in line and "more colourful rows are also the closer ones" in line
    else:
        assert "+1.00" in line and "duller" in line and "2 of the 2 rows" in line
