"""One source of a model's inference settings, and every entry point starting from it."""

from __future__ import annotations

import pytest

from colorize.checkpoint import CheckpointError
from colorize.defaults import DEFAULT_RENDER_SIZE, InferenceSettings


def test_render_size_comes_from_the_training_size_unless_the_config_sets_one():
    assert InferenceSettings.from_config({"model": {}}).render_size == DEFAULT_RENDER_SIZE
    trained = InferenceSettings.from_config({"training": {"image_size": 128}})
    assert trained.render_size == 128 and trained.trained_size == 128
    assert InferenceSettings.from_config({"train_config": {"image_size": 96}}).render_size == 96
    chosen = InferenceSettings.from_config(
        {"training": {"image_size": 128}, "inference": {"render_size": 160, "chroma_scale": 1.4, "samples": 4}}
    )
    assert (chosen.render_size, chosen.trained_size, chosen.chroma_scale, chosen.samples) == (160, 128, 1.4, 4)


@pytest.mark.parametrize(
    "inference, message",
    [
        ({"render_size": 0}, "render_size"),
        ({"render_size": "big"}, "render_size"),
        ({"chroma_scale": -1}, "chroma_scale"),
        ({"chroma_gamma": 9}, "chroma_gamma"),
        ({"samples": 0}, "samples"),
        ({"samples": 2.5}, "samples"),
        ({"agreement_power": True}, "agreement_power"),
    ],
)
def test_bad_settings_are_one_sentence(inference, message):
    with pytest.raises(CheckpointError, match=message):
        InferenceSettings.from_config({"inference": inference})


def test_render_size_note_only_outside_the_trained_range():
    settings = InferenceSettings.from_config({"training": {"image_size": 128}})
    assert settings.trained_range == (96, 160)
    assert settings.render_size_note(128) is None and settings.render_size_note(160) is None
    note = settings.render_size_note(256)
    assert note is not None and "128 px" in note and "256 px" in note and "larger" in note
    assert "smaller" in settings.render_size_note(64)
    # a model that does not record its training size gets no note
    assert InferenceSettings.from_config({}).render_size_note(512) is None
