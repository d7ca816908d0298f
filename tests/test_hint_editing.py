"""The app's colour points as a person edits them (colorize.hint_editing): place, select, move,
recolour, remove, clear, undo, the points file, and the preview they are drawn on."""

import json

import numpy as np
import pytest
from PIL import Image

from colorize.hint_editing import (
    HISTORY_LIMIT, HintEditor, draw_markers, marker_radius, marker_reach, preview_size, to_photo,
)
from colorize.hints import Hint, HintError, hints_from_json


def test_a_click_places_a_point_then_selects_it_and_a_click_elsewhere_places_another():
    editor = HintEditor((300, 200)).click(40.7, 50.2, "#C0392B", reach=6)
    assert editor.hints == (Hint(40, 50, "#c0392b"),) and editor.selected == 0
    editor = editor.click(200, 100, "#2060c0", reach=6)
    assert [h.color for h in editor.hints] == ["#c0392b", "#2060c0"] and editor.selected == 1
    # a click on a point's marker selects it instead of placing one on top of it
    selected = editor.click(43, 47, "#00ff00", reach=6)
    assert selected.hints == editor.hints and selected.selected == 0
    assert selected.undo().hints == (Hint(40, 50, "#c0392b"),)  # selecting was no change


def test_move_recolour_and_remove_act_on_the_chosen_point_and_each_can_be_undone():
    editor = HintEditor((300, 200)).add(10, 10, "#ff0000").add(20, 20, "#00ff00").add(30, 30, "#0000ff")
    moved = editor.select(0).start_moving()
    assert moved.moving and moved.instruction() == "Click the photo where point 1 should go."
    moved = moved.click(100, 150, "#ffffff", reach=6)
    assert moved.hints[0] == Hint(100, 150, "#ff0000") and not moved.moving and len(moved.hints) == 3

    recoloured = moved.recolour(2, "#123456")
    assert recoloured.hints[2].color == "#123456" and recoloured.selected == 2
    assert recoloured.recolour(2, "#123456").history == recoloured.history  # the same colour is no change

    removed = recoloured.select(2).remove(1)
    assert [h.color for h in removed.hints] == ["#ff0000", "#123456"] and removed.selected == 1  # still the same point
    assert removed.remove(1).selected is None

    assert removed.undo() == recoloured.select(2)
    assert removed.undo().undo().undo() == editor.select(0)  # back before the move, with the point it moved selected
    assert removed.undo().undo().undo().undo().undo().undo().hints == ()
    assert HintEditor((5, 5)).undo() == HintEditor((5, 5))


def test_clear_takes_every_point_and_undo_brings_them_back():
    editor = HintEditor((64, 48)).add(1, 2, "#ff0000").add(3, 4, "#00ff00")
    cleared = editor.clear()
    assert cleared.hints == () and cleared.selected is None and cleared.hints_json() == ""
    assert cleared.undo().hints == editor.hints
    assert cleared.clear() is cleared  # nothing to clear: nothing to undo


def test_history_is_bounded():
    editor = HintEditor((64, 48))
    for i in range(HISTORY_LIMIT + 20):
        editor = editor.add(i % 64, 0, "#ff0000")
    assert len(editor.history) == HISTORY_LIMIT and len(editor.hints) == HISTORY_LIMIT + 20


@pytest.mark.parametrize(
    "act, words",
    [
        (lambda e: e.add(300, 10, "#ff0000"), "outside the photo, which is 300x200 pixels"),
        (lambda e: e.add(10, -1, "#ff0000"), "outside the photo"),
        (lambda e: e.add(10, 10, "red"), "'red' is not a colour"),
        (lambda e: e.recolour(0, "#12345"), "is not a colour"),
        (lambda e: e.remove(3), "There is no point 4; the photo has 1."),
        (lambda e: e.select(None).start_moving(), "Select a point first"),
        (lambda e: e.move(0, 10, 999), "outside the photo"),
    ],
)
def test_mistakes_get_one_sentence_and_change_nothing(act, words):
    editor = HintEditor((300, 200)).add(5, 5, "#ff0000")
    with pytest.raises(HintError, match=words.replace("(", r"\(").replace(")", r"\)")):
        act(editor)
    assert editor.hints == (Hint(5, 5, "#ff0000"),)


def test_the_points_file_round_trips_with_the_photos_size_and_reads_as_plain_hints():
    editor = HintEditor((300, 200)).add(10, 20, "#ff0000").add(299, 199, "#00ff00").recolour(0, "#0000ff")
    text = editor.to_json()
    assert json.loads(text) == {
        "image_size": [300, 200],
        "hints": [{"x": 10, "y": 20, "color": "#0000ff"}, {"x": 299, "y": 199, "color": "#00ff00"}],
    }
    loaded = HintEditor((300, 200)).load_json(text)
    assert loaded.hints == editor.hints and loaded.undo().hints == ()
    assert hints_from_json(text) == list(editor.hints)  # what the CLI and the library read
    assert hints_from_json(editor.hints_json()) == list(editor.hints)
    # a plain list of hints (the CLI's format) loads too
    assert HintEditor((300, 200)).load_json('[{"x": 1, "y": 2, "color": "#abcdef", "radius": 4}]').hints == (Hint(1, 2, "#abcdef", 4),)


@pytest.mark.parametrize(
    "text, words",
    [
        ("{not json", "The points file is not valid JSON"),
        ('{"image_size": [640, 480], "hints": []}', "These points were placed on a 640x480 photo, but this one is 300x200 pixels."),
        ('[{"x": 400, "y": 2, "color": "#abcdef"}]', "outside the photo"),
        ('{"points": 3}', "must hold a list of hints"),
        (" " * 2_000_000, "far larger"),
    ],
)
def test_a_bad_points_file_is_refused_in_one_sentence(text, words):
    with pytest.raises(HintError, match=words):
        HintEditor((300, 200)).load_json(text)


def test_rows_list_the_points_as_the_page_shows_them():
    editor = HintEditor((300, 200)).add(10.9, 20, "#ff0000").add(30, 40, "#00ff00").select(0)
    assert editor.rows() == [
        {"index": 0, "number": 1, "x": 10, "y": 20, "color": "#ff0000", "selected": True},
        {"index": 1, "number": 2, "x": 30, "y": 40, "color": "#00ff00", "selected": False},
    ]
    assert editor.others(0) == [Hint(30, 40, "#00ff00")]


def test_preview_pixels_map_to_the_photos_own_and_markers_are_hit_where_drawn():
    assert preview_size((300, 200)) == (300, 200)
    assert preview_size((4000, 3000)) == (2048, 1536)
    assert to_photo((0, 0), (2048, 1536), (4000, 3000)) == (0, 0)
    assert to_photo((2047, 1535), (2048, 1536), (4000, 3000)) == (3999, 2999)
    assert to_photo((1024, 768), (2048, 1536), (4000, 3000)) == (2000, 1500)
    assert to_photo((300, 200), (300, 200), (300, 200)) == (299, 199)  # the edge pixel, not outside
    assert marker_radius((300, 200)) == 7 and marker_radius((2048, 1536)) == 37
    assert marker_reach((2048, 1536), (4000, 3000)) == pytest.approx(37 * 4000 / 2048)


def test_markers_are_drawn_in_each_points_colour_where_it_is_and_the_photo_is_untouched_elsewhere():
    photo = Image.new("L", (400, 200), 128)
    editor = HintEditor((800, 400)).add(100, 100, "#ff0000").add(700, 300, "#0000ff").select(1)
    shown = np.asarray(draw_markers(photo, editor)).astype(int)
    assert shown.shape == (200, 400, 3)
    # near each point's centre (beside its number) its own colour; far away the gray photo
    assert np.abs(shown[50, 50 - 4] - [255, 0, 0]).max() < 40
    assert np.abs(shown[150, 350 - 4] - [0, 0, 255]).max() < 40
    assert (shown[100, 200] == 128).all() and (shown[10, 390] == 128).all()
    # the selected point's ring is orange, the other's white
    radius = marker_radius((400, 200))
    assert tuple(shown[150, 350 + radius + 2]) == (255, 140, 0) and tuple(shown[50, 50 + radius + 1]) == (255, 255, 255)
    assert np.asarray(draw_markers(photo, HintEditor((800, 400)))).shape == (200, 400, 3)
