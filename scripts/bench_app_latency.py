"""The app's own latency in a real browser: upload a photo, click Colorize, see the result, get the PNG.

    .venv/bin/python scripts/bench_app_latency.py [--sizes 1024x1024,4000x3000] [--runs 3] [--out results/app_latency.json]

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


def start_app(workdir: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "XDG_CACHE_HOME": str(workdir / "cache")}
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1024x1024,4000x3000", help="comma-separated WIDTHxHEIGHT")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "app_latency.json")
    parser.add_argument("--label", default="", help="what is measured, e.g. the commit of an older checkout this script was copied into")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from playwright.sync_api import sync_playwright

    from colorize.bench import test_image

    sizes = [tuple(int(side) for side in size.lower().split("x")) for size in args.sizes.split(",")]
    load_start = os.getloadavg()
    results = []
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        process, url = start_app(workdir)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
                page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
                for width, height in sizes:
                    photo = workdir / f"photo-{width}x{height}.jpg"
                    test_image(width, height).convert("L").save(photo, quality=92)
                    one_upload(page, url, photo)  # warm-up: first use of the model and the kernels
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
        "load_average_start": [round(value, 2) for value in load_start],
        "load_average_end": [round(value, 2) for value in os.getloadavg()],
        "sizes": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(markdown(summary))
    return 0


def markdown(summary: dict) -> str:
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
