"""colorize.catalog: the shipped model or its untrained stand-in, and the checkpoint folders of a models folder."""

from __future__ import annotations

import shutil
import threading

import pytest

from browser import save_tiny_checkpoint
from colorize.catalog import SHIPPED, ModelCatalog, checkpoint_folders, shipped_or_untrained
from colorize.checkpoint import CheckpointError


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    save_tiny_checkpoint(folder / "tiny")
    save_tiny_checkpoint(folder / "b-second")
    (folder / "half").mkdir()
    (folder / "half" / "config.json").write_text("{}")  # no weights: not a checkpoint
    (folder / "notes.txt").write_text("not a folder")
    return folder


def test_checkpoint_folders_are_the_complete_ones_sorted(models, tmp_path):
    assert checkpoint_folders(models) == ["b-second", "tiny"]
    assert checkpoint_folders(tmp_path / "missing") == []


def test_a_missing_shipped_model_gives_the_untrained_generator_and_the_reason(tmp_path):
    colorizer, problem = shipped_or_untrained(tmp_path)  # an empty folder
    assert colorizer.name == "untrained"
    assert problem == f"{tmp_path} has no config.json; it is not a colorizer checkpoint."


def test_a_shipped_model_loads_without_a_reason(models):
    colorizer, problem = shipped_or_untrained(models / "tiny")
    assert problem is None and colorizer.name == "tiny"


def test_catalog_lists_loads_once_and_refuses_unknown_names(models, tmp_path):
    models = shutil.copytree(models, tmp_path / "models")
    catalog = ModelCatalog(models, shipped=tmp_path / "empty")
    assert catalog.untrained is not None and catalog.get().name == "untrained"
    assert catalog.names() == [SHIPPED, "b-second", "tiny"]
    tiny = catalog.get("tiny")
    assert tiny is catalog.get("tiny") and tiny.name == "tiny"
    for name in ("nope", "../tiny", "half"):
        with pytest.raises(CheckpointError, match=f"^There is no model called '{name}'; pick one from the list.$"):
            catalog.get(name)
    save_tiny_checkpoint(models / "later")  # a folder added while the app runs appears in the menu
    assert "later" in catalog.names() and catalog.get("later").name == "later"


def test_warm_up_prepares_the_shipped_models_network_path_in_the_background(models, monkeypatch):
    from colorize import fastpath

    monkeypatch.setattr(fastpath, "choose_path", lambda precision, device="cpu", info=None: "onnx")
    if not fastpath.onnx_runtime_available():
        pytest.skip("onnxruntime is not installed (the fast extra)")
    catalog = ModelCatalog(models, shipped=models / "tiny", warm_up=True)
    onnx = catalog.get()._fast
    assert isinstance(onnx, fastpath.OnnxGenerator)
    for thread in [t for t in threading.enumerate() if t.name == "colorize-warm-up"]:  # none if it is done already
        thread.join(timeout=60)
    assert onnx._session is not None  # exported before any photo asked for it
    cold = ModelCatalog(models, shipped=models / "tiny")
    assert cold.get()._fast._session is None
