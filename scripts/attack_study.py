"""Issue 27's attack suite: a script with everything a participant receives, against a study built as a public one is.

    .venv/bin/python scripts/attack_study.py [--out results/study-attacks] [--note "what else ran"]

Builds, in a temporary SQLite file, the default public study (`survey.build`'s defaults: pair
mode, a practice pool of its own, one method per photo, real photos' colour at the model's
resolution) and the same study with real photos' colour at full resolution, from 150 crops of
scikit-image's five colour photos and the shipped model; serves PARTICIPANTS participants through
the Store and scores, on every test trial's two received PNGs, rules that know nothing of what
the pictures show: "the image with more X is the real one" (or "less X"). Then the control: two
images made the same way that differ only in how colourful they are (the more colourful one
counted as "real"), which shows which rules read colourfulness. Writes `<out>/attacks.md` and
`attacks.json` with the machine and the command; `tests/test_survey_attacks.py` runs the same
suite and checks it.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import sys
import time
import zlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter
from skimage import data
from skimage.color import rgb2lab

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's packages, whatever is installed

from colorize.pixels import gray_image  # noqa: E402
from survey.build import MethodSpec, build_study, load_method  # noqa: E402
from survey.stimuli import Presentation, chroma_detail, png_chunk_types, square_crop  # noqa: E402
from survey.store import Store  # noqa: E402
from survey.study import Protocol  # noqa: E402

# Many crops, so that a rule's score rests on many pictures (about 140 test photos: a coin scores 50% +- 4).
CROPS_PER_PHOTO = 30
PARTICIPANTS = 10
LIMIT = 0.60


def real_photos() -> list[tuple[str, Image.Image]]:
    """Crops of scikit-image's five colour photos, at random places and scales (seeded)."""
    photos = {"astronaut": data.astronaut(), "chelsea": data.chelsea(), "coffee": data.coffee(), "rocket": data.rocket(),
              "motorcycle": data.stereo_motorcycle()[0]}  # fmt: skip
    rng = np.random.default_rng(0)
    crops = []
    for name, pixels in photos.items():
        photo = Image.fromarray(pixels)
        for k in range(CROPS_PER_PHOTO):
            side = int(rng.uniform(0.45, 0.95) * min(photo.size))
            x, y = int(rng.uniform(0, photo.width - side)), int(rng.uniform(0, photo.height - side))
            crops.append((f"{name}-{k}", photo.crop((x, y, x + side, y + side))))
    return crops


def served_test_pairs(store: Store, study: str) -> tuple[list[tuple[bytes, bytes, str]], list[tuple[bytes, bytes, str]]]:
    """(left PNG, right PNG, real side) of every test trial (catch trials aside) that PARTICIPANTS people
    are served, and the same pairs as stored (before the trial's presentation: never sent)."""
    served, stored = [], []
    for _ in range(PARTICIPANTS):
        token = store.start_participant(study)
        store.consent(token)
        while (trial := store.next_trial(token)) is not None:
            truth = store.trial_truth(trial.trial_id)
            if truth.phase == "test":
                served.append((*trial.images, truth.real_side))
                pngs = [store.stimulus_png(study, truth.image_key, method) for method in ("real", truth.method)]
                stored.append((*(pngs if truth.real_side == "left" else pngs[::-1]), truth.real_side))
            store.answer(token, trial.trial_id, "left")
    return served, stored


# -- what a script can compute on a received image -------------------------------------------------


class Received:
    """One received PNG: its bytes, pixels and Lab values."""

    def __init__(self, png: bytes) -> None:
        self.png = png
        self.pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        self.lab = rgb2lab(self.pixels / 255.0)

    @property
    def ab(self) -> np.ndarray:
        return self.lab[..., 1:]

    @property
    def chroma(self) -> float:
        return float(np.hypot(self.lab[..., 1], self.lab[..., 2]).mean())


def high_frequency_chroma(image: Received) -> float:
    """The issue's rule: mean |ab - ab blurred with a sigma-1 Gaussian|."""
    blurred = np.stack([gaussian_filter(image.ab[..., i], 1.0) for i in range(2)], axis=-1)
    return float(np.abs(image.ab - blurred).mean())


def chroma_noise(image: Received) -> float:
    """Median |Laplacian of ab|: colour changing from one pixel to its neighbours (sensor noise in a photo)."""
    ab = image.ab
    laplacian = 4 * ab[1:-1, 1:-1] - ab[:-2, 1:-1] - ab[2:, 1:-1] - ab[1:-1, :-2] - ab[1:-1, 2:]
    return float(np.median(np.abs(laplacian)))


def block_edges(channel: np.ndarray) -> float:
    """Mean step across every 8th row and column over the mean step elsewhere: JPEG's 8x8 grid."""
    dx, dy = np.abs(np.diff(channel, axis=1)).mean(axis=0), np.abs(np.diff(channel, axis=0)).mean(axis=1)
    on_grid = dx[7::8].mean() + dy[7::8].mean()
    return float(on_grid / (np.delete(dx, np.s_[7::8]).mean() + np.delete(dy, np.s_[7::8]).mean()))


def lightness_noise(image: Received) -> float:
    return float(np.std(image.lab[..., 0] - gaussian_filter(image.lab[..., 0], 1.0)))


STATISTICS: dict[str, Callable[[Received], float]] = {
    "file size (bytes)": lambda image: len(image.png),
    "dimensions": lambda image: image.pixels.shape[0] * 10_000 + image.pixels.shape[1],
    "PNG chunks": lambda image: hash(tuple(png_chunk_types(image.png))),
    "brightness (mean L)": lambda image: float(image.lab[..., 0].mean()),
    "8x8 block edges in L": lambda image: block_edges(image.lab[..., 0]),
    "high-frequency chroma": high_frequency_chroma,
    "chroma detail per unit of colour": lambda image: chroma_detail(image.pixels),
    "chroma noise": chroma_noise,
    "lightness noise": lightness_noise,
    "compressed size (zlib)": lambda image: len(zlib.compress(image.pixels.tobytes(), 6)),
    "pixels at 0 or 255": lambda image: float(((image.pixels == 0) | (image.pixels == 255)).any(axis=-1).mean()),
    "colourfulness (mean chroma)": lambda image: image.chroma,
}


def scores(pairs: list[tuple[bytes, bytes, str]]) -> dict[str, tuple[float, float]]:
    """Per statistic: (share of trials where "more is real" is right, the better of that and its mirror);
    a tie counts half, what a script guessing there scores on average."""
    right: dict[str, list[float]] = {name: [] for name in STATISTICS}
    for left_png, right_png, real_side in pairs:
        left, right_image = Received(left_png), Received(right_png)
        for name, statistic in STATISTICS.items():
            a, b = statistic(left), statistic(right_image)
            right[name].append(0.5 if a == b else float(("left" if a > b else "right") == real_side))
    return {name: (float(np.mean(hits)), max(float(np.mean(hits)), 1 - float(np.mean(hits)))) for name, hits in right.items()}


def table(found: dict[str, tuple[float, float]]) -> str:
    return "\n".join(f"  {name:34s} more is real {more:.2f}, best rule {best:.2f}" for name, (more, best) in found.items())


def built_studies(db_url: str) -> dict:
    """The default public study and the full-colour one, built and served: {name: served pairs, "<name> as stored": ..., "store": Store}."""
    store = Store(db_url)
    shipped = load_method(MethodSpec("shipped", "model"))
    photos = real_photos()
    designs = {
        "public": Protocol(),  # what `python -m survey.build` builds by default
        "full-chroma": Protocol(equal_chroma_bandwidth=False),
    }
    served = {"store": store}
    for name, protocol in designs.items():
        build_study(store, name=name, sources=photos, makers={"shipped": shipped}, protocol=protocol, progress=False)
        served[name], served[f"{name} as stored"] = served_test_pairs(store, name)
    return served


def made_alike_pairs() -> list[tuple[bytes, bytes, str]]:
    """Two images made the same way (a real photo's colour at the shipped model's render shape, on its
    gray) that differ only in how colourful they are, presented as a trial; the more colourful one is "real"."""
    import torch

    from colorize import color
    from colorize.compose import compose
    from colorize.infer import resize_rgb8

    rng, pairs = random.Random(1), []
    for _, photo in real_photos():
        real = square_crop(photo, 256)
        gray = gray_image(real)
        small = torch.from_numpy(resize_rgb8(real, (128, 128))).permute(2, 0, 1).float() / 255
        ab = color.rgb_to_lab(small)[1:]
        vivid, muted = compose(gray, ab), compose(gray, 0.5 * ab)
        side = rng.choice(("left", "right"))
        shown = Presentation.draw(256, rng).render_all([vivid, muted] if side == "left" else [muted, vivid])
        pairs.append((*shown, side))
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "study-attacks")
    parser.add_argument("--note", default="", help="what else the machine was doing (written into the results)")
    args = parser.parse_args(argv)
    import tempfile

    import torch

    torch.set_num_threads(1)
    began, load_before = time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="attacks-") as folder:
        served = built_studies(f"sqlite:///{Path(folder) / 'survey.sqlite'}")
        found = {
            "default public study, as received": scores(served["public"]),
            "default public study, as stored (before each trial's presentation; never sent)": scores(served["public as stored"]),
            "real photos' colour at full resolution, as received": scores(served["full-chroma"]),
            "control: made alike, differing only in colourfulness (the more colourful one counted as real)": scores(made_alike_pairs()),
        }
        trials = len(served["public"])
    record = {
        "command": "python scripts/attack_study.py" + (f" --note {json.dumps(args.note)}" if args.note else ""),
        "when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": len(os.sched_getaffinity(0)),
                    "load_before": load_before, "load_after": os.getloadavg()[0], "note": args.note},  # fmt: skip
        "test_trials": trials,
        "seconds": round(time.perf_counter() - began),
        "scores": {arm: {name: {"more_is_real": more, "best_rule": best} for name, (more, best) in rows.items()} for arm, rows in found.items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "attacks.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [
        "# Attacks on a built study",
        "",
        f"`{record['command']}` on {record['machine']['platform']}, Python {record['machine']['python']}, "
        f"{record['machine']['cpus']} CPUs; {record['when']}; {record['seconds']} s. Load average (1 min) before "
        f"{load_before:.2f}, after {record['machine']['load_after']:.2f}.{' ' + args.note if args.note else ''}",
        "",
        f"150 crops of scikit-image's five colour photos, the shipped model, {PARTICIPANTS} participants served through the "
        f"Store ({trials} test trials of the default public study). A rule's score: the share of trials it gets right in "
        "its better direction (50% is a coin); a tie counts half.",
        "",
    ]
    for arm, rows in found.items():
        lines += [f"## {arm}", "", "| rule: the image with more ... is real | more is real | better direction |", "|---|---|---|"]
        lines += [f"| {name} | {100 * more:.0f}% | {100 * best:.0f}% |" for name, (more, best) in rows.items()]
        lines.append("")
    (args.out / "attacks.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
