"""`python -m survey.demo [--db URL]`: a small study called "demo", so the app has one to show.

Five natural colour photos from scikit-image (no download), the shipped model and the gray
baseline. Idempotent: when "demo" exists it says so and exits 0. Without a shipped model (a fresh
checkout before training) it falls back to the untrained generator, with a warning, so the demo
always works.
"""

from __future__ import annotations

import argparse
import logging
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from colorize.pixels import gray_image

from . import SurveyError
from .build import FakeMaker, build_study
from .store import Store, StudySummary
from .study import Protocol

DEMO_STUDY = "demo"
# One practice photo of its own; three test trials (one a catch trial), each test photo tied to one
# method as in a public study: what five photos allow.
DEMO_PROTOCOL = Protocol(practice_trials=1, test_trials=3, catch_rate=0.25)


def _demo_photos() -> dict[str, Callable[[], np.ndarray]]:
    from skimage import data  # lazy: only the demo needs the sample photos

    # Natural RGB photos bundled with scikit-image (no network); not the microscopy or space images.
    return {
        "astronaut": data.astronaut,
        "chelsea": data.chelsea,
        "coffee": data.coffee,
        "rocket": data.rocket,
        "motorcycle": lambda: data.stereo_motorcycle()[0],
    }


def demo_sources() -> list[tuple[str, Image.Image]]:
    return [(key, Image.fromarray(load()).convert("RGB")) for key, load in _demo_photos().items()]


def demo_method() -> tuple[str, FakeMaker]:
    """("shipped", its maker) at the model's own inference settings; ("untrained", ...) if no model is installed."""
    from colorize.catalog import SHIPPED, shipped_or_untrained  # lazy: torch only here

    colorizer, problem = shipped_or_untrained()
    return (SHIPPED if problem is None else colorizer.name), lambda gray: colorizer.colorize(gray)


def create_demo(store: Store, *, progress: bool = True) -> StudySummary | None:
    """Create the demo study; None if it already exists."""
    if any(study.name == DEMO_STUDY for study in store.list_studies()):
        return None
    name, maker = demo_method()
    try:
        return build_study(
            store,
            name=DEMO_STUDY,
            sources=demo_sources(),
            makers={name: maker, "gray": gray_image},
            protocol=DEMO_PROTOCOL,
            progress=progress,
        )
    except SurveyError:
        # Another process (a second `make demo`) may have created it meanwhile: that is fine.
        if any(study.name == DEMO_STUDY for study in store.list_studies()):
            return None
        raise


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m survey.demo", description="Create the small 'demo' study.")
    parser.add_argument("--db", default=None, help="database URL (default: SURVEY_DB_URL or sqlite:///survey.sqlite)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        store = Store(args.db)
        summary = create_demo(store)
    except SurveyError as error:
        raise SystemExit(f"error: {error}") from None
    if summary is None:
        print(f"The study '{DEMO_STUDY}' already exists in {store!r}; nothing to do.")
    else:
        print(f"Created the study '{DEMO_STUDY}' ({summary.images} images; methods {', '.join(summary.methods)}) in {store!r}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
