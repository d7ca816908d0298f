"""The app's own latency in a real browser: upload a photo, click Colorize, see the result, get the PNG;
and with --hints, click the photo to place a colour point and see the result follow.

    .venv/bin/python scripts/bench_app_latency.py [--sizes 1024x1024,4000x3000] [--runs 3] [--out results/app_latency.json]
    .venv/bin/python scripts/bench_app_latency.py --hints --sizes 1024x768 --runs 5 [--model runs/hints-l1] [--out results/app_latency_hints.json]

Starts `python app.py` as a user does (its `main`: the shipped model, a fresh SQLite file, a free
loopback port), opens it in headless Chromium (Debian's, as the browser tests do; env
COLORIZE_TEST_CHROMIUM), and for each size uploads a gray JPEG of the benchmark photo
(`colorize.bench.test_image`) `--runs` times after one warm-up run. It times, from the moment the
file is handed to the page:

- upload: until the page shows the uploaded photo;
- PNG ready: until the "Download full-size PNG" button appears (the server has written it);
- result visible: until both pictures of the before/after slider have loaded in the browser.

The two clicks-to-X times are also given from the click. Records the CPU, the load average and
each run; medians in results/app_latency.json and printed as a Markdown table.

--hints (the model must take hints: the shipped one, or --model): after the upload and one
Colorize, each run clicks the photo at another place and times, in the page's own clock from the
click's event, until the new point is listed and until the result slider shows the new result,
loaded (checked at every animation frame). Between clicks it
waits for the suggested colours of the last point, as a person looking at them would (they
are computed after the result, by the same model). The Nth run colours with N points.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_app_startup import ROOT, _free_port, run_record

CHROMIUM = os.environ.get("COLORIZE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
TIMEOUT_MS = 180_000
SLIDER_LOADED = """() => {
    const images = [...document.querySelectorAll('#result-slider img')];
    return images.length >= 2 && images.every(img => img.complete && img.naturalWidth > 0);
}"""
UPLOAD_SHOWN = """() => {
    const img = document.querySelector('#input-image img');
    return img !== null && img.complete && img.naturalWidth > 0;
}"""
PREVIEW_SHOWN = """() => {
    const img = document.querySelector('#input-image img');
    return img !== null && img.complete && img.naturalWidth > 0 && /[.]jpg$/.test(img.src);
}"""
# Each check notes, in the page's own clock, when it first came true; the click is noted as the
# browser dispatches it (Playwright's own checks before a click are not part of what a person waits).
POINTS_LISTED = """(count) => (document.querySelectorAll('#hint-points .hint-choose').length === count
    && (window.marks.listed ??= performance.now()))"""
RESULT_CHANGED = """(previous) => {
    const images = [...document.querySelectorAll('#result-slider img')];
    return images.length >= 2 && images[1].src !== previous && images.every(img => img.complete && img.naturalWidth > 0)
        && (window.marks.visible ??= performance.now());
}"""
SUGGESTED = """() => (document.querySelectorAll('#hint-suggestions .hint-suggestion').length >= 6
    && (window.marks.suggested ??= performance.now()))"""
NOTE_CLICKS = """() => document.addEventListener('click', (event) => {
    if (event.target.closest('#input-image')) window.marks = {click: performance.now()};
}, true)"""
CLICK_PLACES = ((0.3, 0.4), (0.65, 0.55), (0.45, 0.75), (0.2, 0.8), (0.8, 0.2), (0.5, 0.3), (0.35, 0.6), (0.7, 0.85))


def start_app(workdir: Path, model: Path | None = None) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "XDG_CACHE_HOME": str(workdir / "cache")}
    if model is not None:
        env["COLORIZE_SHIPPED_MODEL"] = str(model)
    command = [sys.executable, str(ROOT / "app.py"), "--port", str(port), "--db", f"sqlite:///{workdir / 'survey.sqlite'}"]
    log = open(workdir / "app.log", "w")
    process = subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    import urllib.request

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited: {(workdir / 'app.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return process, url
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise TimeoutError("the app did not answer within 180 s")


def one_upload(page, url: str, photo: Path) -> dict[str, float]:
    page.goto(url)
    page.wait_for_selector("#colorize-button")
    start = time.monotonic()
    page.locator("#input-image input[type=file]").set_input_files(str(photo))
    page.wait_for_function(UPLOAD_SHOWN, timeout=TIMEOUT_MS, polling=20)
    uploaded = time.monotonic()
    page.click("#colorize-button")
    clicked = time.monotonic()
    page.wait_for_selector("#download-button", state="visible", timeout=TIMEOUT_MS)
    png_ready = time.monotonic()
    page.wait_for_function(SLIDER_LOADED, timeout=TIMEOUT_MS, polling=20)
    visible = time.monotonic()
    return {
        "upload_s": uploaded - start,
        "png_ready_s": png_ready - start,
        "result_visible_s": visible - start,
        "click_to_png_ready_s": png_ready - clicked,
        "click_to_result_visible_s": visible - clicked,
    }


def click_photo(page, fraction: tuple[float, float]) -> None:
    """Click the photo the input shows at (x, y) fractions of its width and height (Gradio draws it centred, never enlarged)."""
    image = page.locator("#input-image img").first
    box = image.bounding_box()
    width, height = image.evaluate("(img) => [img.naturalWidth, img.naturalHeight]")
    scale = min(box["width"] / width, box["height"] / height, 1)
    left, top = (box["width"] - width * scale) / 2, (box["height"] - height * scale) / 2
    image.click(position={"x": left + fraction[0] * width * scale, "y": top + fraction[1] * height * scale})


def hint_clicks(page, url: str, photo: Path, runs: int) -> list[dict[str, float]]:
    """Upload, Colorize once, then `runs` clicks on the photo, each timed until its point is listed and its result is shown."""
    one_upload(page, url, photo)
    page.wait_for_function(PREVIEW_SHOWN, timeout=TIMEOUT_MS, polling=20)
    page.evaluate(NOTE_CLICKS)
    timings = []
    for count in range(1, runs + 1):
        previous = page.evaluate("document.querySelectorAll('#result-slider img')[1]?.src ?? ''")
        load = os.getloadavg()[0]
        click_photo(page, CLICK_PLACES[(count - 1) % len(CLICK_PLACES)])
        for check, arg in ((POINTS_LISTED, count), (RESULT_CHANGED, previous), (SUGGESTED, None)):
            page.wait_for_function(check, arg=arg, timeout=TIMEOUT_MS, polling="raf")
        marks = page.evaluate("window.marks")
        timings.append({
            "points": count,
            "click_to_point_listed_s": round((marks["listed"] - marks["click"]) / 1000, 3),
            "click_to_result_visible_s": round((marks["visible"] - marks["click"]) / 1000, 3),
            "click_to_suggestions_s": round((marks["suggested"] - marks["click"]) / 1000, 3),
            "load_average_before": round(load, 2),
        })  # fmt: skip
        page.wait_for_function(PREVIEW_SHOWN, timeout=TIMEOUT_MS, polling=20)  # the markers drawn, before the next click
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1024x1024,4000x3000", help="comma-separated WIDTHxHEIGHT")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="default: results/app_latency.json, with --hints results/app_latency_hints.json")
    parser.add_argument("--label", default="", help="what is measured, e.g. the commit of an older checkout this script was copied into")
    parser.add_argument("--hints", action="store_true", help="time clicks that place colour points instead (see above)")
    parser.add_argument("--model", type=Path, default=None, help="checkpoint folder served as the shipped model (default: the shipped weights)")
    args = parser.parse_args()
    args.out = args.out or ROOT / "results" / ("app_latency_hints.json" if args.hints else "app_latency.json")
    sys.path.insert(0, str(ROOT))
    from playwright.sync_api import sync_playwright

    from colorize.bench import test_image

    sizes = [tuple(int(side) for side in size.lower().split("x")) for size in args.sizes.split(",")]
    load_start = os.getloadavg()
    results = []
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        process, url = start_app(workdir, args.model)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
                page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
                for width, height in sizes:
                    photo = workdir / f"photo-{width}x{height}.jpg"
                    test_image(width, height).convert("L").save(photo, quality=92)
                    one_upload(page, url, photo)  # warm-up: first use of the model and the kernels
                    if args.hints:
                        hint_clicks(page, url, photo, 2)  # warm-up of the hint path
                        runs = hint_clicks(page, url, photo, args.runs)
                        medians = {key: round(statistics.median(run[key] for run in runs), 3) for key in runs[0] if key.endswith("_s")}
                        results.append({"size": [width, height], "megapixels": round(width * height / 1e6, 2), "hints": True, "median": medians, "runs": runs})
                        print(f"{width}x{height} hints: " + ", ".join(f"{key} {value:.2f}" for key, value in medians.items()), flush=True)
                        continue
                    runs = []
                    for _ in range(args.runs):
                        load = os.getloadavg()[0]
                        run = {key: round(value, 3) for key, value in one_upload(page, url, photo).items()}
                        runs.append({**run, "load_average_before": round(load, 2)})
                    medians = {key: round(statistics.median(run[key] for run in runs), 3) for key in runs[0] if key.endswith("_s")}
                    results.append({"size": [width, height], "megapixels": round(width * height / 1e6, 2), "upload_bytes": photo.stat().st_size, "median": medians, "runs": runs})
                    print(f"{width}x{height}: " + ", ".join(f"{key} {value:.2f}" for key, value in medians.items()), flush=True)
                browser.close()
        finally:
            process.terminate()
            process.wait(timeout=20)
    summary = {
        **run_record("bench_app_latency.py"),
        "label": args.label,
        "model": str(args.model) if args.model else "shipped",
        "load_average_start": [round(value, 2) for value in load_start],
        "load_average_end": [round(value, 2) for value in os.getloadavg()],
        "sizes": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(markdown(summary))
    return 0


def markdown(summary: dict) -> str:
    if summary["sizes"] and summary["sizes"][0].get("hints"):
        lines = ["| photo (gray JPEG) | points | click to point listed | click to result visible | click to suggestions |", "|---|---|---|---|---|"]
        for row in summary["sizes"]:
            for run in row["runs"]:
                lines.append(
                    f"| {row['size'][0]}x{row['size'][1]} | {run['points']} | {run['click_to_point_listed_s']:.2f} s "
                    f"| {run['click_to_result_visible_s']:.2f} s | {run['click_to_suggestions_s']:.2f} s |"
                )
            m = row["median"]
            lines.append(f"| median | | {m['click_to_point_listed_s']:.2f} s | {m['click_to_result_visible_s']:.2f} s | {m['click_to_suggestions_s']:.2f} s |")
        return "\n".join(lines)
    lines = [
        "| photo (gray JPEG) | upload | PNG ready | result visible | click to PNG ready | click to result visible |",
        "|---|---|---|---|---|---|",
    ]
    for row in summary["sizes"]:
        m = row["median"]
        lines.append(
            f"| {row['size'][0]}x{row['size'][1]} ({row['megapixels']} MP, {row['upload_bytes'] / 1e6:.1f} MB) | {m['upload_s']:.2f} s "
            f"| {m['png_ready_s']:.2f} s | {m['result_visible_s']:.2f} s | {m['click_to_png_ready_s']:.2f} s | {m['click_to_result_visible_s']:.2f} s |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
