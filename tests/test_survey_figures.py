"""survey.figures: names in any script drawn without empty boxes, captions inside the figure, legends off the data."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text
from PIL import Image

from survey.figures import ESCAPED_NOTE, drawable_text, fooling_rate_figure, gallery_figure, response_time_figure
from survey.report import ReportOptions, analyse
from survey.simulate import SimulationConfig, simulate_frame

CYRILLIC = "модель-β"  # DejaVu Sans, matplotlib's own font, has these glyphs
CJK = "着色模型"  # drawn where a CJK font is installed, escaped where none is
NO_FONT = "x\U000f0001y"  # a private-use character no font maps


def _draw(fig) -> tuple[list[str], object]:
    """Render `fig` for real; returns matplotlib's missing-glyph warnings and the renderer."""
    canvas = FigureCanvasAgg(fig)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        canvas.draw()
    missing = [str(w.message) for w in caught if "missing from font" in str(w.message)]
    return missing, canvas.get_renderer()


def _summary(names: list[str], *, rates=(0.3, 0.2, 0.45)):
    config = SimulationConfig(true_rates=dict(zip(names, rates)), careless_share=0.0, dropout_share=0.0)
    return analyse(simulate_frame(config, participants=24, images=24, seed=1), options=ReportOptions(n_boot=100)).summary


def test_drawable_text_keeps_what_a_font_has_and_escapes_what_none_has():
    assert drawable_text(CYRILLIC) == (CYRILLIC, ["DejaVu Sans"])
    assert drawable_text(NO_FONT) == ("x\\U000f0001y", ["DejaVu Sans"])
    text, families = drawable_text(CJK)
    if text == CJK:  # some installed font has the glyphs: it is in the fallback list
        assert len(families) > 1
    else:
        assert text == CJK.encode("unicode_escape").decode("ascii") and families == ["DejaVu Sans"]


def test_non_latin_method_names_are_drawn_without_missing_glyphs():
    table = _summary([CYRILLIC, CJK, NO_FONT])
    fig = fooling_rate_figure(table, title=f"{CJK}: fooling rate")
    missing, _ = _draw(fig)
    assert missing == []  # no empty boxes
    labels = [t.get_text().split("\n")[0] for t in fig.axes[0].get_xticklabels()]
    order = list(table["method"])
    assert labels[order.index(CYRILLIC)] == CYRILLIC
    assert labels[order.index(NO_FONT)] == "x\\U000f0001y"
    assert labels[order.index(CJK)] == drawable_text(CJK)[0]
    assert ESCAPED_NOTE in [t.get_text() for t in fig.findobj(Text)]
    latin = fooling_rate_figure(_summary(["alpha", "beta", "gamma"]))
    assert ESCAPED_NOTE not in [t.get_text() for t in latin.findobj(Text)]  # the note only when something was escaped


def _inside(fig, renderer) -> list[str]:
    """Texts whose drawn extent reaches outside the figure."""
    box = fig.bbox
    hidden = {  # the tick labels of axes switched off (images) are never drawn
        id(t)
        for ax in fig.axes
        if not ax.axison
        for axis in (ax.xaxis, ax.yaxis)
        for t in [axis.label, axis.offsetText, *(lab for tick in axis.get_major_ticks() + axis.get_minor_ticks() for lab in (tick.label1, tick.label2))]
    }
    out = []
    for text in fig.findobj(Text):
        if not text.get_text() or not text.get_visible() or id(text) in hidden:
            continue
        extent = text.get_window_extent(renderer)
        if extent.x0 < box.x0 - 1 or extent.x1 > box.x1 + 1 or extent.y0 < box.y0 - 1 or extent.y1 > box.y1 + 1:
            out.append(text.get_text())
    return out


def _png(colour) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (48, 48), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_gallery_captions_are_not_cut_off():
    long_method = "resnet18-unet-with-attention-and-a-very-long-experiment-name-v2-final-final"
    items = [
        (f"most convincing: {long_method} / photo_of_a_very_long_file_name_from_a_camera_DSC0001234\n12 of 15 taken for real", _png("red"), _png("blue")),
        (f"least convincing: {CJK} / {NO_FONT}\n0 of 9 taken for real", _png("green"), None),
    ]
    fig = gallery_figure(items)
    missing, renderer = _draw(fig)
    assert missing == [] and _inside(fig, renderer) == []
    captions = [sub._suptitle.get_text() for sub in fig.subfigs]
    assert long_method in captions[0].replace("\n", "") and max(len(line) for c in captions for line in c.split("\n")) <= 62


@pytest.mark.parametrize("rates", [(0.97, 0.95, 0.99), (0.5, 0.52, 0.48), (0.02, 0.6, 0.3)])
def test_the_legend_hides_no_bar(rates):
    fig = fooling_rate_figure(_summary(["alpha", "beta", "gamma"], rates=rates))
    _, renderer = _draw(fig)
    assert not fig.axes[0].get_legend() and len(fig.legends) == 1
    legend = fig.legends[0].get_window_extent(renderer)
    plot = fig.axes[0].get_window_extent(renderer)
    assert not legend.overlaps(plot)  # below the plotting area, so no interval or point is under it
    assert _inside(fig, renderer) == []


def test_response_time_legend_is_outside_the_histogram():
    frame = simulate_frame(SimulationConfig(true_rates={"m": 0.3}), participants=20, seed=2)
    trials = analyse(frame, options=ReportOptions(n_boot=50)).trials
    fig = response_time_figure(trials)
    _, renderer = _draw(fig)
    assert len(fig.legends) == 1 and not fig.legends[0].get_window_extent(renderer).overlaps(fig.axes[0].get_window_extent(renderer))
    assert np.isfinite(fig.axes[0].get_xlim()).all()


@pytest.mark.parametrize("names", [["gray"], ["gray", "ours"]], ids=["one method", "two methods"])
def test_the_legend_fits_a_small_study_s_narrow_figure(names):
    """The admin view plots a study with one or two methods; Gradio saves the figure as it is (no
    bbox_inches="tight"), so a legend wider than the figure was cut at both sides."""
    fig = fooling_rate_figure(_summary(names, rates=(0.3, 0.2)[: len(names)]))
    _, renderer = _draw(fig)
    assert _inside(fig, renderer) == []
