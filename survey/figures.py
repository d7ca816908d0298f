"""The study report's figures (matplotlib's object API: no pyplot, no GUI backend).

- `fooling_rate_figure`: each method's rate with its Wilson and reported (cluster) intervals.
- `response_time_figure`, `per_image_figure`, `gallery_figure`: the report's other figures.
- `drawable_text`: a name as the installed fonts can draw it.

Names come from people (method names, image file names) and may be in any script. Each figure
draws them in DejaVu Sans, with any installed font that has the glyphs DejaVu lacks as a
fallback (CJK names render where a CJK font such as Noto Sans CJK is installed). A character no
installed font has is written as its \\uXXXX escape, and the figure says so in a footnote, rather
than drawn as an empty box. Legends sit outside the plotting area, so they hide no bar or point.
"""

from __future__ import annotations

import functools
import io
import textwrap

import numpy as np
import pandas as pd
from matplotlib import font_manager
from matplotlib.figure import Figure
from matplotlib.ft2font import FT2Font
from matplotlib.text import Text

__all__ = ["drawable_text", "fooling_rate_figure", "gallery_figure", "per_image_figure", "response_time_figure"]

REAL = "real"
CHANCE = 0.5
DPI = 100
BASE_FONT = "DejaVu Sans"  # matplotlib's own font: Latin, Greek, Cyrillic and more
# matplotlib also ships "Last Resort", whose "glyph" for every character is a box naming its Unicode
# block: the empty box we avoid, so it never counts as having a character.
PLACEHOLDER_FONT = "Last Resort"
ESCAPED_NOTE = "Characters no installed font has are shown as \\u escapes."


@functools.lru_cache(maxsize=None)
def _glyphs(path: str) -> frozenset[int]:
    try:
        return frozenset(FT2Font(path).get_charmap())
    except (OSError, RuntimeError, ValueError):  # an unreadable font file just offers no glyphs
        return frozenset()


@functools.lru_cache(maxsize=4096)
def _font_with(codepoint: int) -> str | None:
    """Family of an installed font with a glyph for `codepoint`, DejaVu Sans first; None when none has one."""
    if codepoint in _glyphs(font_manager.findfont(BASE_FONT, fallback_to_default=True)):
        return BASE_FONT
    for entry in sorted(font_manager.fontManager.ttflist, key=lambda f: (f.name, f.fname)):
        if entry.name.startswith(PLACEHOLDER_FONT):
            continue
        if codepoint in _glyphs(entry.fname):
            return entry.name
    return None


def drawable_text(text: str) -> tuple[str, list[str]]:
    """(`text` with every character no installed font can draw replaced by its \\u escape, font families to draw it with).

    The families start with DejaVu Sans and add, in order of need, fonts that have the other
    characters; matplotlib falls back along the list glyph by glyph.
    """
    families = [BASE_FONT]
    out = []
    for char in str(text):
        if char.isspace():
            out.append(char)
            continue
        family = _font_with(ord(char))
        if family is None:
            out.append(char.encode("unicode_escape").decode("ascii"))
            continue
        if family not in families:
            families.append(family)
        out.append(char)
    return "".join(out), families


def _draw_texts(fig: Figure, texts: list) -> bool:
    """Give every Text artist in `texts` drawable text and fonts; True when some character had to be escaped."""
    escaped = False
    for artist in texts:
        original = artist.get_text()
        text, families = drawable_text(original)
        escaped |= text != original
        artist.set_text(text)
        artist.set_fontfamily(families)
    return escaped


def _labels(names) -> tuple[list[str], list[str], bool]:
    """Tick labels: (drawable labels, the union of their font families, whether any was escaped)."""
    labels, families = [], [BASE_FONT]
    for name in names:
        text, fams = drawable_text(name)
        labels.append(text)
        families += [f for f in fams if f not in families]
    return labels, families, any(label != str(name) for label, name in zip(labels, names))


def _finish(fig: Figure, *, escaped: bool) -> Figure:
    """Titles, legends and notes drawable in the installed fonts, and the escape footnote when needed."""
    texts = [t for t in fig.findobj(Text) if t.get_text()]
    tick_labels = {id(t) for ax in fig.axes for t in ax.get_xticklabels() + ax.get_yticklabels()}
    # Tick labels were made drawable when they were set (their formatter would undo a change here).
    escaped = _draw_texts(fig, [t for t in texts if id(t) not in tick_labels]) or escaped
    if escaped:  # on top, where constrained layout makes room for it (the legend is below)
        fig.suptitle(ESCAPED_NOTE, fontsize=6, color="#555555")
    return fig


def _outside_legend(fig: Figure, ax, *, columns: int = 2) -> None:
    """The axes' legend below the plotting area (constrained layout makes room), so it covers no data.

    Fewer columns, and then a wider figure, when it would be wider than the figure: Gradio saves a
    figure as it is (no bbox_inches="tight"), which cut such a legend at both sides.
    """
    handles, labels = ax.get_legend_handles_labels()
    for ncols in range(min(columns, len(handles)), 0, -1):
        legend = fig.legend(handles, labels, loc="outside lower center", ncols=ncols, fontsize=7, frameon=False)
        width = legend.get_window_extent().width / fig.dpi + 0.1  # inches, and a margin
        if width <= fig.get_figwidth():
            return
        if ncols > 1:
            legend.remove()
    if handles:
        fig.set_figwidth(width)


def _pct(value: float, digits: int = 1) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{100 * value:.{digits}f}%"


def fooling_rate_figure(table: pd.DataFrame, *, title: str | None = None, **summary_options) -> Figure:
    """The main plot: each method's rate with its Wilson (thin) and reported 95% interval (thick).

    The reported interval is the cluster bootstrap, or at a rate of 0% or 100% the boundary
    fallback the table's `ci_method` names. `table` is `summary_table(...)`'s result; a trials
    frame is accepted too (summarised with `summary_options`). Pair mode draws the 50% chance
    line; single mode draws the share of real photos judged real, the reference there.
    """
    if "rate" not in table.columns:
        from .report import summary_table  # the report imports this module; a trials frame is the rare case

        table = summary_table(table, **summary_options)
    mode = str(table["mode"].iloc[0]) if "mode" in table.columns and len(table) else "pair"
    rows = table.reset_index(drop=True)
    fig = Figure(figsize=(max(4.5, 1.1 * len(rows) + 2.5), 4.2), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(rows))
    rate = rows["rate"].to_numpy(dtype=float)
    low_col, high_col = ("ci_low", "ci_high") if "ci_low" in rows.columns else ("boot_low", "boot_high")
    for offset, low, high, width, label, colour in (
        (-0.12, "wilson_low", "wilson_high", 1.2, "Wilson 95% (trials independent)", "#555555"),
        (0.12, low_col, high_col, 3.0, "reported 95% (cluster bootstrap; boundary fallback at 0% or 100%)", "#1f77b4"),
    ):
        lo = rows[low].to_numpy(dtype=float)
        hi = rows[high].to_numpy(dtype=float)
        ok = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(rate)
        # a rescaled bootstrap bound can sit a hair on the wrong side of the estimate: draw it flat.
        ax.errorbar(x[ok] + offset, rate[ok], yerr=[np.maximum(rate[ok] - lo[ok], 0.0), np.maximum(hi[ok] - rate[ok], 0.0)], fmt="none", ecolor=colour, elinewidth=width, capsize=3 if width < 2 else 0, label=label)
    colours = np.where(rows["stimulus"].to_numpy() == "real", "#2ca02c", "#d62728")
    finite = np.isfinite(rate)
    ax.scatter(x[finite], rate[finite], c=list(colours[finite]), zorder=3, s=30)
    for xi in x[~finite]:
        ax.text(xi, 0.05, "no data", ha="center", fontsize=8, color="#777777")
    if mode == "pair":
        ax.axhline(CHANCE, ls="--", lw=1, color="#999999", label="50% (chance in pair mode)")
    else:
        real = rows[rows["stimulus"] == "real"]
        if len(real) and np.isfinite(real["rate"].iloc[0]):
            ax.axhline(float(real["rate"].iloc[0]), ls="--", lw=1, color="#2ca02c", label="real photos judged real (the reference)")
    names, families, escaped = _labels(rows["method"].astype(str))
    ax.set_xticks(x, [f"{m}\n(n={n})" for m, n in zip(names, rows["n_trials"])], fontsize=8, fontfamily=families)
    ax.set_ylim(0, 1)
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.set_ylabel("picked as the real photo" if mode == "pair" else "judged real")
    ax.yaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")
    ax.set_title(title or ("Fooling rate per method" if mode == "pair" else "Share judged real (fakes: fooling rate)"), fontsize=10)
    _outside_legend(fig, ax)
    return _finish(fig, escaped=escaped)


def response_time_figure(trials: pd.DataFrame, *, min_rt_ms: float = 300.0) -> Figure:
    """Histogram (log time axis) of answered trials' response times, split by exclusion, with the floor."""
    fig = Figure(figsize=(6, 3.6), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    answered = trials[trials["answered"] & trials["response_ms"].notna() & (trials["response_ms"] > 0)]
    if answered.empty:
        ax.text(0.5, 0.5, "no answered trials", ha="center", va="center", transform=ax.transAxes)
        return fig
    rt = answered["response_ms"].to_numpy(dtype=float)
    lo, hi = max(10.0, min(rt.min(), min_rt_ms) * 0.8), max(rt.max(), min_rt_ms) * 1.25
    bins = np.geomspace(lo, hi, 40)
    excluded = answered["excluded_participant"].to_numpy() if "excluded_participant" in answered else np.zeros(len(rt), bool)
    ax.hist([rt[~excluded], rt[excluded]], bins=bins, stacked=True, color=["#1f77b4", "#ff7f0e"], label=["included participants", "excluded participants"])
    ax.axvline(min_rt_ms, color="#d62728", ls="--", lw=1, label=f"floor {min_rt_ms:g} ms ({int((rt < min_rt_ms).sum())} faster)")
    ax.set_xscale("log")
    ax.set_xlabel("response time (ms, server-side)")
    ax.set_ylabel("answers")
    ax.set_title("Response times", fontsize=10)
    _outside_legend(fig, ax, columns=3)
    return fig


def per_image_figure(per_image: pd.DataFrame, *, mode: str) -> Figure:
    """Per-image rates for each method: a box over images plus every image as a dot (size ~ trials)."""
    methods = sorted(per_image["method"].unique(), key=lambda m: (m == REAL, m))
    fig = Figure(figsize=(max(4.5, 1.2 * len(methods) + 2.5), 3.5), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)
    data = [per_image.loc[per_image["method"] == m, "rate"].to_numpy(dtype=float) for m in methods]
    if methods:
        ax.boxplot(data, positions=np.arange(len(methods)), widths=0.5, showfliers=False)
    for i, m in enumerate(methods):
        part = per_image[per_image["method"] == m]
        ax.scatter(i + rng.uniform(-0.18, 0.18, len(part)), part["rate"], s=6 + 4 * part["n_trials"], alpha=0.5, color="#2ca02c" if m == REAL else "#d62728")
    if mode == "pair":
        ax.axhline(CHANCE, ls="--", lw=1, color="#999999")
    names, families, escaped = _labels([str(m) for m in methods])
    ax.set_xticks(np.arange(len(methods)), names, fontsize=8, fontfamily=families)
    ax.set_ylim(-0.03, 1.03)
    ax.yaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")
    ax.set_ylabel("picked as real, per image" if mode == "pair" else "judged real, per image")
    ax.set_title("Per-image rates (dot size: trials)", fontsize=10)
    return _finish(fig, escaped=escaped)


GALLERY_WIDTH_IN = 4.6
CAPTION_CHARS = 62  # characters per caption line that fit GALLERY_WIDTH_IN at 7 pt


def gallery_figure(items: list[tuple[str, bytes, bytes | None]]) -> Figure:
    """Rows of (caption, colorization PNG, real PNG): the caption spans its row, wrapped to the figure's width."""
    from PIL import Image

    rows = max(1, len(items))
    fig = Figure(figsize=(GALLERY_WIDTH_IN, 2.3 * rows), dpi=DPI, layout="constrained")
    escaped = False
    for sub, (caption, fake, real) in zip(np.atleast_1d(fig.subfigures(rows, 1)), items):
        text, _ = drawable_text(caption)  # escape first, so the wrapping measures what is drawn
        escaped |= text != caption
        lines = [textwrap.fill(part, CAPTION_CHARS, break_long_words=True, break_on_hyphens=True) for part in text.split("\n")]
        sub.suptitle("\n".join(lines), fontsize=7)
        for ax, png, label in zip(sub.subplots(1, 2), (fake, real), ("colorization", "real photo")):
            ax.set_axis_off()
            if png:
                ax.imshow(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")))
            else:
                ax.text(0.5, 0.5, "(not stored)", ha="center", va="center", transform=ax.transAxes)
            ax.set_title(label, fontsize=7)
    return _finish(fig, escaped=escaped)
