"""`python -m colorize.protocol`: the fixed sets, bars checked from the summaries, contact sheets."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from skimage import data

from colorize import protocol
from colorize.checkpoint import save_model
from colorize.models import ModelConfig, build_generator, init_weights

TINY = ModelConfig(base_channels=4, depth=3, max_channels=8)
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for evaluation_set in protocol.SETS:
        folder = root / evaluation_set.name
        folder.mkdir(parents=True)
        for name in PHOTOS:
            Image.fromarray(getattr(data, name)()).resize((48, 40)).save(folder / f"{name}.png")
    # imagenette's near-gray list leaves one photo out there
    (root / "imagenette" / "near_gray.txt").write_text("val/rocket.png\n")
    return root


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.manual_seed(0)
    generator = build_generator(TINY)
    init_weights(generator, std=0.2)
    return save_model(tmp_path_factory.mktemp("model") / "tiny", generator.eval(), TINY, metadata={"training": {"image_size": 32}})


def test_every_set_scored_bars_checked_and_sheets_written(data_root, model, tmp_path):
    out, sheets = tmp_path / "protocol", tmp_path / "sheets"
    code = protocol.main([
        "--model", f"tiny={model}", "--model", f"tiny gray={model}@chroma_scale=0.0001",
        "--data-root", str(data_root), "--out", str(out), "--size", "32", "--diversity-samples", "2",
        "--sheets", str(sheets), "--sheet-photos", "3", "--skimage-sheet", str(tmp_path / "skimage.png"),
    ])
    assert code == 0
    results = json.loads((out / "protocol.json").read_text())
    tiny = results["models"]["tiny"]
    assert tiny["imagenette/val"]["images"] == 3 and tiny["imagenet_sample"]["images"] == 4
    assert tiny["unseen (both)"]["images"] == 8
    assert (out / "tiny" / "bsds500-val" / "per_image.csv").is_file()
    assert results["settings"]["tiny"]["render_size"] == 32  # the model's own
    assert results["settings"]["tiny gray"]["chroma_scale"] == 0.0001
    # the bars are recomputed from the written summaries
    for label, bars in results["bars"].items():
        for set_name, checks in bars.items():
            summary = results["models"][label][set_name]
            assert [check["met"] for check in checks] == [bool(test(summary)) for _, _, test in protocol.BARS]
    # an almost gray output has no false colour and PSNR near the gray input's
    nearly_gray = results["bars"]["tiny gray"]["unseen (both)"]
    assert nearly_gray[1]["met"] and nearly_gray[2]["met"] and nearly_gray[4]["met"] and not nearly_gray[0]["met"]
    report = (out / "protocol.md").read_text()
    assert "## imagenet_sample" in report and "not met" in report and "python -m colorize.protocol" in report
    assert sorted(p.name for p in sheets.iterdir()) == [
        "tiny-bsds500-val.png", "tiny-gray-bsds500-val.png", "tiny-gray-imagenet_sample.png", "tiny-imagenet_sample.png"
    ]
    sheet = Image.open(sheets / "tiny-bsds500-val.png")
    assert sheet.width > 2 * 160 and sheet.height >= 160
    assert Image.open(tmp_path / "skimage-tiny.png").height >= 192


def test_model_labels_settings_and_missing_sets_are_one_sentence(data_root, model, tmp_path, capsys):
    parsed = protocol.ModelUnderTest.parse(f"v4 single={model}@samples=1,chroma_scale=1.5")
    assert parsed.label == "v4 single" and parsed.overrides == {"samples": 1, "chroma_scale": 1.5}
    for bad in ("nolabel", f"x={model}@colour=3", f"x={model}@samples=many"):
        with pytest.raises(Exception):
            protocol.ModelUnderTest.parse(bad)
    code = protocol.main(["--model", f"m={model}", "--data-root", str(tmp_path), "--out", str(tmp_path / "o")])
    assert code == 2 and "is not under" in capsys.readouterr().err


def test_whole_photos_are_scored_when_asked(data_root, model, tmp_path):
    crops, whole = tmp_path / "crops", tmp_path / "whole"
    for out, flags in ((crops, []), (whole, ["--whole"])):
        code = protocol.main(["--model", f"tiny={model}", "--data-root", str(data_root), "--out", str(out), "--size", "32",
                              "--diversity-samples", "0", *flags])  # fmt: skip
        assert code == 0
    whole_results = json.loads((whole / "protocol.json").read_text())
    assert whole_results["whole_photos"] is True and json.loads((crops / "protocol.json").read_text())["whole_photos"] is False
    assert "Whole photos, short side 32, aspect kept" in (whole / "protocol.md").read_text()
    # 48x40 photos: the whole photo (38x32) holds the 32x32 centre and more, so the real colourfulness differs
    crop_summary = json.loads((crops / "protocol.json").read_text())["models"]["tiny"]["bsds500/val"]
    whole_summary = whole_results["models"]["tiny"]["bsds500/val"]
    assert whole_summary["images"] == crop_summary["images"] == 4
    assert whole_summary["real_colorfulness"] != pytest.approx(crop_summary["real_colorfulness"], rel=1e-6)
