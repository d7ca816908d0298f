"""Helpers for the app tests: start `python app.py`, drive it in Chromium, make inputs, measure colour.

Playwright's own browser downloads are never used (no `playwright install`): tests launch
the system Chromium at CHROMIUM (env COLORIZE_TEST_CHROMIUM overrides it).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image

from colorize.checkpoint import save_model
from colorize.models import ModelConfig, build_generator

ROOT = Path(__file__).resolve().parents[1]
# Screenshots and other files a reviewer looks at after a run (git ignores the folder).
ARTIFACTS = Path(os.environ.get("COLORIZE_TEST_ARTIFACTS") or ROOT / "artifacts")
CHROMIUM = os.environ.get("COLORIZE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def screenshot_folder(name: str) -> Path:
    """An emptied `ARTIFACTS/name` for one test module's screenshots, announced in pytest's output."""
    folder = ARTIFACTS / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    print(f"\nscreenshots in {folder}")
    return folder


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_http(url: str, *, timeout: float, process: subprocess.Popen | None = None, log: Path | None = None) -> float:
    """Seconds until `url` answers 200; raises with the server's log if it dies or times out."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"The app exited with {process.returncode}:\n{log.read_text() if log else ''}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - start
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout} s:\n{log.read_text() if log else ''}")


@dataclass(frozen=True)
class RunningApp:
    url: str
    started_s: float  # seconds from launch to the first answer of its page
    process: subprocess.Popen
    log: Path  # everything it printed


@contextlib.contextmanager
def running_app(
    *,
    models_dir: Path,
    db_url: str,
    workdir: Path,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    timeout: float = 60.0,
    preexec_fn=None,
) -> Iterator[RunningApp]:
    """`python app.py [args]` on a free port, as a user starts it; stopped with SIGTERM at the end.
    `preexec_fn` runs in the child before the app starts (e.g. to start it as a background job would)."""
    port = free_port()
    log = workdir / f"app-{port}.log"
    environment = {
        **os.environ,
        "GRADIO_ANALYTICS_ENABLED": "False",
        "XDG_CACHE_HOME": str(workdir / "cache"),
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    command = [sys.executable, str(ROOT / "app.py"), "--port", str(port), "--models-dir", str(models_dir), "--db", db_url, *args]
    with open(log, "w") as sink:
        process = subprocess.Popen(command, cwd=workdir, env=environment, stdout=sink, stderr=subprocess.STDOUT, preexec_fn=preexec_fn)
        try:
            url = f"http://127.0.0.1:{port}/"
            started = wait_for_http(url, timeout=timeout, process=process, log=log)
            yield RunningApp(url, started, process, log)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def running_study_app(workdir: Path, *, env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> Iterator[tuple[RunningApp, str]]:
    """`python app.py --mode survey [args]` over the two tiny studies in a fresh SQLite file; yields it and the database URL."""
    from survey.store import Store

    db_url = f"sqlite:///{workdir / 'survey.sqlite'}"
    build_tiny_studies(Store(db_url))
    with running_app(models_dir=workdir / "no-models", db_url=db_url, workdir=workdir, env=env, args=("--mode", "survey", *args)) as running:
        yield running, db_url


def post_event(url: str, endpoint: str, data: list, *, address: str) -> tuple[int, dict]:
    """One event as the page sends it (no queue): POST /gradio_api/run/<endpoint> from a visitor at
    `address` (X-Forwarded-For, believed when the app trusts loopback as a proxy); the status and the JSON answer."""
    request = urllib.request.Request(
        f"{url}gradio_api/run/{endpoint}",
        data=json.dumps({"data": data, "session_hash": f"s{address}"}).encode(),
        headers={"Content-Type": "application/json", "X-Forwarded-For": address},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@contextlib.contextmanager
def chromium():
    """A headless system Chromium; open pages in it with `new_page`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser, *, width: int = 1280, height: int = 900, timeout_ms: int = 60_000):
    """A page of the given viewport in its own browser context (390 x 844: a phone, touch and all)."""
    phone = width < 600
    context = browser.new_context(
        viewport={"width": width, "height": height}, is_mobile=phone, has_touch=phone, accept_downloads=True
    )
    page = context.new_page()
    page.set_default_timeout(timeout_ms)
    return page


# -- the Colorize tab --------------------------------------------------------------------------


def open_app(page, url: str) -> None:
    page.goto(url)
    for selector in ("#input-image", "#colorize-model", "#colorize-button"):  # the page renders in pieces
        page.wait_for_selector(selector)


def choose_model(page, prefix: str, name: str) -> None:
    box = page.locator(f"#{prefix}-model input")
    box.click()
    box.fill(name)
    page.get_by_role("option", name=name, exact=True).click()


def upload(page, path: Path) -> None:
    """Upload a photo and wait until the input shows it as the model sees it: gray."""
    page.locator("#input-image input[type=file]").set_input_files(str(path))
    page.wait_for_function(
        """(name) => {
          const img = document.querySelector('#input-image img');
          if (!img || !img.complete || !img.naturalWidth || !img.src.includes(name)) return false;
          const canvas = document.createElement('canvas');
          [canvas.width, canvas.height] = [img.naturalWidth, img.naturalHeight];
          const context = canvas.getContext('2d');
          context.drawImage(img, 0, 0);
          const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
          for (let i = 0; i < pixels.length; i += 4) if (pixels[i] !== pixels[i + 1] || pixels[i + 1] !== pixels[i + 2]) return false;
          return true;
        }""",
        arg=path.stem,
    )


def slider_images(page) -> list[str]:
    return page.locator("#result-slider img").evaluate_all("images => images.map((image) => image.src)")


def wait_for_new_result(page, previous: list[str]) -> list[str]:
    page.wait_for_function(
        "(previous) => { const srcs = Array.from(document.querySelectorAll('#result-slider img')).map((i) => i.src);"
        " return srcs.length === 2 && srcs.join() !== previous.join(); }",
        arg=previous,
    )
    return slider_images(page)


def fetch_image(url: str) -> Image.Image:
    with urllib.request.urlopen(url, timeout=30) as response:
        return Image.open(io.BytesIO(response.read())).convert("RGB")


def save_tiny_checkpoint(folder: Path, *, trained_at: int | None = None) -> Path:
    """A real checkpoint folder, 18 kB: a tiny U-Net whose output bias paints everything warm.

    trained_at: the training crop size its config records (so its render size defaults to it).
    """
    config = ModelConfig(base_channels=4, depth=3, max_channels=8, dropout=0.5, dropout_layers=1)
    generator = build_generator(config)
    with torch.no_grad():
        generator.head[1].bias.copy_(torch.tensor([0.25, 0.35]))  # a, b > 0: orange-ish
    metadata = {"name": folder.name, **({"training": {"image_size": trained_at}} if trained_at else {})}
    return save_model(folder, generator, config, metadata=metadata)


def gray_photo(size: tuple[int, int] = (96, 64)) -> Image.Image:
    width, height = size
    ramp = np.linspace(0, 255, width, dtype=np.float64)[None, :] * np.linspace(0.3, 1, height)[:, None]
    return Image.fromarray(ramp.astype(np.uint8), mode="L")


def colourful_photo(seed: int, size: int = 96) -> Image.Image:
    """A smooth, saturated synthetic photo (so the gray fake is easy to tell apart)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    channels = [np.sin(2 * np.pi * (f * x + g * y) + p) for f, g, p in rng.uniform(0.3, 1.5, (3, 3))]
    rgb = (np.stack(channels, axis=-1) * 0.5 + 0.5) * 255
    return Image.fromarray(rgb.astype(np.uint8), mode="RGB")


def build_tiny_studies(store, *, exposure_ms: int = 400, makers: dict | None = None, images: int = 5, test_trials: int = 3) -> None:
    """Two small studies, "tiny-pair" and "tiny-single", whose one fake is the gray baseline unless `makers` (name -> fake maker) says otherwise.

    Five photos: one for practice, and in single mode two for the fake and two for the real photo (a
    public study's default design), which three test trials need."""
    from survey.build import build_study
    from colorize.pixels import gray_image
    from survey.study import Protocol

    sources = [(f"photo{i}", colourful_photo(i)) for i in range(images)]
    for name, mode in (("tiny-pair", "pair"), ("tiny-single", "single")):
        protocol = Protocol(mode=mode, exposure_ms=exposure_ms, practice_trials=1, test_trials=test_trials, catch_rate=0.0, image_size=64)
        build_study(store, name=name, sources=sources, makers=makers or {"gray": gray_image}, protocol=protocol, progress=False)
