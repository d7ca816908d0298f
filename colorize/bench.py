"""Speed and memory benchmark: `python -m colorize.bench`.

Every figure is taken for the model we ship (the default architecture with random weights when
none is installed, or `--model PATH`) and for the pix2pix reference U-Net (`REFERENCE_PIX2PIX`,
random weights: speed does not depend on them) in the same process, interleaved run by run
(A B B A ...), so a busy machine slows both alike and their ratio stays meaningful. The machine's
load average is recorded next to every section.

- latency: PIL image in, PIL image out through `Colorizer.colorize` (default settings), for
  512x512, 1024x768 and 4000x3000, first with each model at its own render size
  (`Colorizer.settings`: the shipped model's from its config.json, the reference pix2pix U-Net
  at its native 256), then both at render sizes 256 and 512; median, p10-p90 and IQR after warm-up.
- split (issue 17): for 1024x768 and 12 MP at the model's own settings, the stages of one call
  (reading, network input, network, full-resolution compose with each kernel) and the whole call,
  with the reference network alone at its native 256x256 in the same rounds, run as pix2pix runs
  it (eager PyTorch, fp32: the issue's reference) and through our fast path (ONNX Runtime or the
  folded model, as the shipped one); the full-resolution work around the network per megapixel
  is the whole call minus the network.
- png: the full-size PNG of a result written by Pillow (the app's old settings) and by
  `colorize.png.save_png`, with the file sizes.
- network: the generator alone at each render shape.
- memory: peak resident memory over the process's baseline for one `colorize` call, each case
  in a fresh subprocess (`resource.getrusage(...).ru_maxrss` against /proc/self/statm before).
- training: images/s of one generator + discriminator step of the default recipe
  (`TrainConfig` defaults: vanilla GAN + 100 x L1, Adam), at 128 and 256 pixels, batch 8.
- batch: `Colorizer.colorize_batch` of 8 images of 1024x768: images/s and CPU utilisation
  (process CPU time / wall time: 2.0 means both cores of a 2-core machine were busy).
- paths (`--compare-paths`): the ways to run the network (eager, channels_last, batch norm
  folded, ONNX Runtime, TorchScript freeze, torch.compile, bf16 autocast, 1 thread) at 256 and end to end.
- huge (`--huge`): a synthetic 50-megapixel image (time, memory), and a 60-megapixel one, which
  must be refused with a sentence.
- cuda: bf16 training and batched inference throughput when a CUDA device is present.

Writes the JSON (`--out`, default results/bench.json) and a Markdown report rendered from it
next to it (results/bench.md). `--quick` runs the same code on tiny sizes in seconds (the tests).
"""

from __future__ import annotations

import argparse
import copy
import datetime as _dt
import gc
import json
import logging
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image

from . import __version__, fastpath
from .catalog import shipped_or_untrained
from .checkpoint import CONFIG_FILE, SHIPPED_MODEL_DIR
from .cli import add_arguments, given, option, options
from .imageio import DEFAULT_MAX_PIXELS
from .compose import compose, resolve_kernel
from .hints import simulate_user_hints
from .imageio import load_image
from .infer import Colorizer, network_input, render_shape
from .png import save_png
from .models import REFERENCE_PIX2PIX, ModelConfig, build_discriminator, build_generator, count_parameters

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MIB = 1024 * 1024

# Targets of issue 8 on a 2-core CPU (checked only by the full benchmark, never in --quick).
TARGET_LATENCY_S = {(1024, 768, 256): 0.150, (4000, 3000, 256): 1.5}
TARGET_MEMORY_MIB = {(4000, 3000, 256): 1.5 * 1024}
# Targets of issue 17, at the model's own render size (render_size None in the plan).
OWN = None  # a render size in a plan: each model's own (`Colorizer.default_render_size`)
TARGET_OWN_LATENCY_S = {(1024, 768): 0.035, (4000, 3000): 0.300}
TARGET_OWN_MEMORY_MIB = {(4000, 3000): 1024}
TARGET_AROUND_NETWORK_MS_PER_MP = 20.0
TARGET_SPEEDUP_VS_REFERENCE_NETWORK = 4.0
REFERENCE_NATIVE = 256  # pix2pix's U-Net is made for 256x256 inputs
TARGET_SPEEDUP = 3.0
THREADING_ENV = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MKL_NUM_THREADS", "KMP_BLOCKTIME")
MAX_PREPARE_S = 5.0  # a network path must be ready this soon after loading to be worth making the default


# --------------------------------------------------------------------------------------------
# Settings and plans
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchSettings:
    """What `python -m colorize.bench` runs; the command line is generated from these fields."""

    quick: bool = option(False, "tiny sizes, few repeats: checks the code runs (seconds)")
    model: str = option("", "checkpoint folder (default: the shipped model, else the default architecture untrained)")
    out: str = option("results/bench.json", "JSON output; the Markdown report goes next to it (.md)")
    repeats: int = option(7, "timed runs per latency figure, after warm-up (batch and training use about half)")
    compare_paths: bool = option(False, "also compare ways to run the network (eager, folded, ONNX Runtime, TorchScript, torch.compile, bf16, threads)")
    huge: bool = option(False, "also colourise a synthetic 50-megapixel image and check a 60-megapixel one is refused")
    threads: int = option(0, "torch intra-op threads (0 = one per physical core)")


@dataclass(frozen=True)
class Plan:
    sizes: tuple[tuple[int, int], ...]
    render_sizes: tuple[int | None, ...]
    train_sizes: tuple[int, ...]
    train_batch: int
    batch_images: int
    batch_size: tuple[int, int]
    batch_render: int
    memory_sizes: tuple[tuple[int, int], ...]
    memory_renders: tuple[int | None, ...]
    paths_size: tuple[int, int]
    paths_render: int
    huge_size: tuple[int, int]
    refused_size: tuple[int, int]
    split_sizes: tuple[tuple[int, int], ...]


FULL_PLAN = Plan(
    sizes=((512, 512), (1024, 768), (4000, 3000)),
    render_sizes=(OWN, 256, 512),
    train_sizes=(128, 256),
    train_batch=8,
    batch_images=8,
    batch_size=(1024, 768),
    batch_render=256,
    memory_sizes=((512, 512), (1024, 768), (4000, 3000)),
    memory_renders=(OWN, 256),
    paths_size=(1024, 768),
    paths_render=256,
    huge_size=(8192, 6100),  # 49.97 MP: just under imageio.DEFAULT_MAX_PIXELS
    refused_size=(9000, 6700),  # 60.3 MP
    split_sizes=((1024, 768), (4000, 3000)),
)
QUICK_PLAN = Plan(
    sizes=((96, 64), (160, 120)),
    render_sizes=(OWN, 64),
    train_sizes=(64,),
    train_batch=2,
    batch_images=2,
    batch_size=(96, 64),
    batch_render=64,
    memory_sizes=((160, 120),),
    memory_renders=(OWN,),
    paths_size=(96, 64),
    paths_render=64,
    huge_size=(400, 300),
    refused_size=(9000, 6700),
    split_sizes=((160, 120),),
)


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------


def load_average() -> list[float] | None:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except (AttributeError, OSError):
        return None


@dataclass
class Samples:
    """Timings of one function: wall seconds, and this process's CPU seconds (all threads) per run."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def summarize(samples: Samples | Sequence[float]) -> dict[str, Any]:
    """Median and spread of wall timings (seconds): p10, p25, p75, p90, min, n; and the median CPU time.

    CPU time is the work done (summed over threads, spin-waits included). With one thread on
    a busy machine it is close to what the wall time would be on an idle one.
    """
    wall = samples.wall if isinstance(samples, Samples) else list(samples)
    values = np.asarray(wall, dtype=np.float64)
    p10, p25, p50, p75, p90 = np.percentile(values, [10, 25, 50, 75, 90])
    stats = {
        "median_s": float(p50),
        "p10_s": float(p10),
        "p90_s": float(p90),
        "iqr_s": float(p75 - p25),
        "min_s": float(values.min()),
        "n": int(values.size),
    }
    if isinstance(samples, Samples) and samples.cpu:
        stats["cpu_median_s"] = float(np.median(samples.cpu))
    return stats


def time_interleaved(
    functions: dict[str, Callable[[], Any]], *, repeats: int, warmup: int = 1
) -> dict[str, Samples]:
    """Wall and CPU seconds of each function, run in turn (order reversed every round: A B, B A, ...)."""
    names = list(functions)
    for _ in range(warmup):
        for name in names:
            functions[name]()
    times = {name: Samples() for name in names}
    for round_ in range(repeats):
        for name in names if round_ % 2 == 0 else reversed(names):
            start, cpu = time.perf_counter(), time.process_time()
            functions[name]()
            times[name].wall.append(time.perf_counter() - start)
            times[name].cpu.append(time.process_time() - cpu)
    return times


def current_rss_bytes() -> int | None:
    """Resident memory of this process now (Linux /proc/self/statm), or None elsewhere."""
    try:
        resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def reset_peak_rss() -> bool:
    """Restart the peak-RSS count from the current RSS (Linux >= 4.0: `5` into /proc/self/clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """Peak resident memory of this process: VmHWM (resettable) where Linux has it, else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # kilobytes on Linux


def test_image(width: int, height: int, *, seed: int = 0) -> Image.Image:
    """A photo-like RGB image of any size (skimage's astronaut, resized, slightly varied by seed)."""
    from skimage import data

    source = Image.fromarray(data.astronaut())
    if seed:
        source = source.rotate(seed * 7 % 360)
    return source.resize((width, height), Image.BICUBIC)


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


def shipped_label(model: str) -> tuple[str, str]:
    """(label, description) of the model under test."""
    if model:
        return "shipped", f"checkpoint {model}"
    if (SHIPPED_MODEL_DIR / CONFIG_FILE).is_file():
        return "shipped", f"shipped model ({SHIPPED_MODEL_DIR})"
    return "shipped", "default architecture (ModelConfig()), random weights: no trained model is installed"


def build_colorizers(model: str, *, only: str | None = None, **kwargs: Any) -> dict[str, Colorizer]:
    """{"shipped": the model under test, "reference": pix2pix unet_256 with random weights}."""
    colorizers = {}
    if only in (None, "shipped"):
        if model:
            colorizers["shipped"] = Colorizer.from_pretrained(model, device="cpu", **kwargs)
        else:
            colorizers["shipped"] = shipped_or_untrained(device="cpu", **kwargs)[0]
    if only in (None, "reference"):
        colorizers["reference"] = reference_colorizer(**kwargs)
    return colorizers


def reference_colorizer(**kwargs: Any) -> Colorizer:
    """pix2pix's unet_256 as its authors run it: it cannot take sides that are not multiples of 256,
    so its input is padded to them as a whole (not level by level, as our U-Nets do)."""
    return Colorizer.untrained(model_config=REFERENCE_PIX2PIX, pads_per_level=False, **kwargs)


def _padding_words(model: dict[str, Any]) -> str:
    if model.get("pads_per_level"):
        return "pads odd sides level by level"
    return f"pads to multiples of {model['size_multiple']}"


def describe_models(colorizers: dict[str, Colorizer], model: str) -> dict[str, Any]:
    described = {}
    for label, colorizer in colorizers.items():
        config = colorizer.model_config
        described[label] = {
            "description": shipped_label(model)[1] if label == "shipped" else "pix2pix unet_256 (REFERENCE_PIX2PIX), random weights",
            "config": config.to_dict() if config is not None else None,
            "parameters": count_parameters(colorizer.generator),
            "size_multiple": getattr(colorizer.generator, "size_multiple", 1),
            "pads_per_level": getattr(colorizer.generator, "pads_per_level", False),
            "precision": colorizer.precision,
        }
    return described


def _ratio(values: dict[str, Any], key: str = "median_s") -> float | None:
    shipped, reference = values.get("shipped"), values.get("reference")
    if not shipped or not reference or not shipped.get(key):
        return None
    return reference[key] / shipped[key]


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------


def bench_latency(colorizers: dict[str, Colorizer], plan: Plan, repeats: int, progress) -> list[dict[str, Any]]:
    rows = []
    for width, height in plan.sizes:
        image = test_image(width, height)
        for render in plan.render_sizes:
            progress.set_postfix_str(f"latency {width}x{height} @{render}")
            load_before = load_average()
            times = time_interleaved(
                {label: (lambda c=c: c.colorize(image, render_size=render)) for label, c in colorizers.items()},
                repeats=repeats,
            )
            stats = {label: summarize(values) for label, values in times.items()}
            sizes = {label: c.default_render_size if render is OWN else render for label, c in colorizers.items()}
            rows.append(
                {
                    "size": [width, height],
                    "megapixels": round(width * height / 1e6, 2),
                    "render_size": render,  # None: each model's own, in render_sizes
                    "render_sizes": sizes,
                    "render_shape": list(render_shape(height, width, sizes["shipped"])),
                    "render_shapes": {label: list(render_shape(height, width, size)) for label, size in sizes.items()},
                    "models": stats,
                    "speedup_vs_reference": _ratio(stats),
                    "cpu_speedup_vs_reference": _ratio(stats, "cpu_median_s"),
                    "load_before": load_before,
                    "load_after": load_average(),
                }
            )
            progress.update()
    return rows


def bench_network(colorizers: dict[str, Colorizer], plan: Plan, repeats: int, progress) -> list[dict[str, Any]]:
    shapes = sorted({render_shape(h, w, r) for w, h in plan.sizes for r in effective_render_sizes(colorizers, plan)})
    rows = []
    for shape in shapes:
        progress.set_postfix_str(f"network {shape[0]}x{shape[1]}")
        x = torch.rand(1, 1, *shape) * 2 - 1
        load_before = load_average()
        times = time_interleaved(
            {label: (lambda c=c: c.predict_ab(x)) for label, c in colorizers.items()}, repeats=repeats
        )
        stats = {label: summarize(values) for label, values in times.items()}
        padded = {label: list(c.generator.padded_input_shape(*shape)) for label, c in colorizers.items()}
        rows.append(
            {
                "render_shape": list(shape),
                "padded_shape": padded,
                "models": stats,
                "speedup_vs_reference": _ratio(stats),
                "cpu_speedup_vs_reference": _ratio(stats, "cpu_median_s"),
                "load_before": load_before,
                "load_after": load_average(),
            }
        )
        progress.update()
    return rows


def bench_batch(colorizers: dict[str, Colorizer], plan: Plan, repeats: int, progress) -> dict[str, Any]:
    progress.set_postfix_str("batch")
    width, height = plan.batch_size
    images = [test_image(width, height, seed=i) for i in range(plan.batch_images)]
    cpu: dict[str, list[float]] = {label: [] for label in colorizers}

    def run(label: str, colorizer: Colorizer) -> Callable[[], Any]:
        def call() -> None:
            wall, process = time.perf_counter(), time.process_time()
            colorizer.colorize_batch(images, render_size=plan.batch_render)
            cpu[label].append((time.process_time() - process) / max(time.perf_counter() - wall, 1e-9))

        return call

    load_before = load_average()
    times = time_interleaved({label: run(label, c) for label, c in colorizers.items()}, repeats=repeats)
    models = {}
    for label, values in times.items():
        stats = summarize(values)
        stats["images_per_s"] = plan.batch_images / stats["median_s"]
        stats["cpu_utilisation"] = float(np.median(cpu[label][-repeats:]))  # = cpu_median_s / median_s, roughly
        models[label] = stats
    progress.update()
    return {
        "images": plan.batch_images,
        "size": [width, height],
        "render_size": plan.batch_render,
        "torch_threads": torch.get_num_threads(),
        "models": models,
        "speedup_vs_reference": _ratio(models),
        "cpu_speedup_vs_reference": _ratio(models, "cpu_median_s"),
        "load_before": load_before,
        "load_after": load_average(),
    }


class TrainingStep:
    """One step of the default recipe: discriminator update, then generator update (GAN + L1)."""

    def __init__(self, model_config: ModelConfig, size: int, batch: int, device: torch.device, *, amp: bool = False) -> None:
        from .config import TrainConfig
        from .losses import build_objective, l1_loss

        recipe = TrainConfig()
        self.recipe = recipe
        self.l1_loss = l1_loss
        self.objective = build_objective(recipe.gan_mode) if recipe.uses_gan else None
        self.device, self.amp = device, amp
        memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
        self.generator = build_generator(model_config).to(device, memory_format=memory_format).train()
        self.discriminator = build_discriminator(model_config).to(device, memory_format=memory_format).train()
        betas = (recipe.beta1, recipe.beta2)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=recipe.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=recipe.lr, betas=betas)
        generator = torch.Generator().manual_seed(0)
        self.lightness = (torch.rand(batch, 1, size, size, generator=generator) * 2 - 1).to(device)
        self.ab = ((torch.rand(batch, 2, size, size, generator=generator) * 2 - 1) * 0.3).to(device)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    def __call__(self) -> None:
        recipe, lightness, ab = self.recipe, self.lightness, self.ab
        with self._autocast():
            fake = self.generator(lightness)
        if self.objective is not None:
            self.discriminator.requires_grad_(True)
            self.opt_d.zero_grad(set_to_none=True)
            with self._autocast():
                real_scores = self.discriminator(lightness, ab)
                fake_scores = self.discriminator(lightness, fake.detach())
                d_loss = self.objective.discriminator_loss(real_scores.float(), fake_scores.float())
            d_loss.backward()
            self.opt_d.step()
            self.discriminator.requires_grad_(False)
        self.opt_g.zero_grad(set_to_none=True)
        loss = recipe.lambda_l1 * self.l1_loss(fake.float(), ab)
        if self.objective is not None:
            with self._autocast():
                loss = loss + recipe.lambda_gan * self.objective.generator_loss(self.discriminator(lightness, fake).float())
        loss.backward()
        self.opt_g.step()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def bench_training(
    model_configs: dict[str, ModelConfig],
    plan: Plan,
    repeats: int,
    progress,
    *,
    device: torch.device | None = None,
    amp: bool = False,
    warmup: int = 1,
) -> list[dict[str, Any]]:
    device = device or torch.device("cpu")
    rows = []
    for size in plan.train_sizes:
        progress.set_postfix_str(f"training {size}px{' bf16' if amp else ''}")
        steps = {label: TrainingStep(config, size, plan.train_batch, device, amp=amp) for label, config in model_configs.items()}
        load_before = load_average()
        times = time_interleaved(dict(steps), repeats=repeats, warmup=warmup)
        models = {}
        for label, values in times.items():
            stats = summarize(values)
            stats["images_per_s"] = plan.train_batch / stats["median_s"]
            models[label] = stats
        rows.append(
            {
                "size": size,
                "batch": plan.train_batch,
                "device": str(device),
                "bf16_autocast": amp,
                "models": models,
                "speedup_vs_reference": _ratio(models),
                "cpu_speedup_vs_reference": _ratio(models, "cpu_median_s"),
                "load_before": load_before,
                "load_after": load_average(),
            }
        )
        del steps
        gc.collect()
        progress.update()
    return rows


def _memory_child(case: dict[str, Any]) -> dict[str, Any]:
    """Runs in a fresh interpreter: one colorize call, peak RSS over the baseline before it."""
    torch.set_num_threads(case["threads"])
    if case["model"] == "reference":
        colorizer = reference_colorizer()
    else:
        colorizer = build_colorizers(case["checkpoint"], only="shipped")["shipped"]
    width, height = case["size"]
    # over the pixel limit the content does not matter (it must be refused): a blank image is quicker
    image = test_image(width, height) if width * height <= DEFAULT_MAX_PIXELS else Image.new("RGB", (width, height))
    # loading the compiled compose kernel and preparing the network path (the ONNX Runtime session:
    # its export peaks near 150 MiB once) belong with loading the model, before the baseline, as in the app
    resolve_kernel("auto")
    colorizer.warm_up()
    gc.collect()
    reset = reset_peak_rss()
    baseline = current_rss_bytes()
    peak_before = peak_rss_bytes()
    start = time.perf_counter()
    try:
        output = colorizer.colorize(image, render_size=case["render_size"])
    except Exception as error:  # reported, not raised: a refusal is a result here
        return {"ok": False, "error": f"{type(error).__name__}: {error}", "seconds": time.perf_counter() - start}
    seconds = time.perf_counter() - start
    assert output.size == image.size
    peak = peak_rss_bytes()
    baseline = baseline if baseline is not None else peak_before
    result = {
        "ok": True,
        "seconds": seconds,
        "baseline_mib": baseline / MIB,
        "peak_mib": peak / MIB,
        "extra_mib": max(0, peak - baseline) / MIB,
        "peak_reset": reset,  # False: an earlier high-water mark (building the model) could hide the call's
    }
    if case.get("repeats"):  # warm latency too, for settings that only a fresh process can change
        times = time_interleaved({"run": lambda: colorizer.colorize(image, render_size=case["render_size"])}, repeats=case["repeats"], warmup=0)
        result["latency"] = summarize(times["run"])
    return result


def run_memory_case(case: dict[str, Any], *, timeout: float = 1800, env: dict[str, str | None] | None = None) -> dict[str, Any]:
    """Run `_memory_child` in a fresh interpreter; `env` adds (or, with None, removes) variables."""
    command = [sys.executable, "-m", "colorize.bench", "--memory-case", json.dumps(case)]
    child_env = dict(os.environ, PYTHONWARNINGS="ignore")
    for key, value in (env or {}).items():
        if value is None:
            child_env.pop(key, None)
        else:
            child_env[key] = value
    env = child_env
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        signal_note = " (killed: out of memory?)" if result.returncode < 0 else ""
        return {"ok": False, "error": f"exit code {result.returncode}{signal_note}: {tail}"}
    return json.loads(lines[-1])


def bench_memory(settings: BenchSettings, plan: Plan, threads: int, progress) -> list[dict[str, Any]]:
    rows = []
    for width, height in plan.memory_sizes:
        for render in plan.memory_renders:
            progress.set_postfix_str(f"memory {width}x{height} @{render}")
            models = {}
            for label in ("shipped", "reference"):
                case = {"model": label, "checkpoint": settings.model, "size": [width, height], "render_size": render, "threads": threads}
                models[label] = run_memory_case(case)
            rows.append({"size": [width, height], "megapixels": round(width * height / 1e6, 2), "render_size": render, "models": models, "load_after": load_average()})
            progress.update()
    return rows


def bench_huge(settings: BenchSettings, plan: Plan, threads: int, progress) -> dict[str, Any]:
    progress.set_postfix_str("huge images")
    results = {}
    for key, size in (("largest_allowed", plan.huge_size), ("too_large", plan.refused_size)):
        case = {"model": "shipped", "checkpoint": settings.model, "size": list(size), "render_size": OWN, "threads": threads}
        result = run_memory_case(case)
        result.update(size=list(size), megapixels=round(size[0] * size[1] / 1e6, 2))
        results[key] = result
    refused = results["too_large"]
    results["too_large"]["refused_with_message"] = (not refused["ok"]) and "ImageLoadError" in refused.get("error", "")
    progress.update()
    return results


WAIT_POLICIES = {"libgomp default (spin, then sleep)": None, "OMP_WAIT_POLICY=PASSIVE": "PASSIVE"}


def bench_wait_policy(settings: BenchSettings, plan: Plan, threads: int, repeats: int, progress) -> list[dict[str, Any]]:
    """End-to-end latency under each OpenMP wait policy (a fresh process each: libgomp reads it at start).

    On a busy machine the default spin-waiting burns the CPU another process needs and waits a
    time slice at every barrier when a partner thread is descheduled; PASSIVE threads sleep instead.
    Runs go A B B A so drift hits both alike. Always with one thread per physical core (at least 2):
    with one thread there is no barrier to wait at.
    """
    threads = max(2, threads, fastpath.recommended_threads())
    rows = []
    cases = [(plan.paths_size, OWN)] if settings.quick else [(plan.paths_size, OWN), (plan.paths_size, plan.paths_render), (plan.sizes[-1], OWN)]
    for (width, height), render in cases:
        progress.set_postfix_str(f"wait policy {width}x{height}")
        case = {"model": "shipped", "checkpoint": settings.model, "size": [width, height], "render_size": render, "threads": threads, "repeats": repeats}
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in WAIT_POLICIES}
        names = list(WAIT_POLICIES)
        for name in names if settings.quick else names + names[::-1]:
            runs[name].append(run_memory_case(case, env={"OMP_WAIT_POLICY": WAIT_POLICIES[name]}))
        policies = {}
        for name, results in runs.items():
            good = [r["latency"] for r in results if r.get("ok") and "latency" in r]
            policies[name] = {
                "median_s": float(np.median([r["median_s"] for r in good])) if good else None,
                "cpu_median_s": float(np.median([r["cpu_median_s"] for r in good])) if good else None,
                "runs": len(good),
                "errors": [r.get("error") for r in results if not r.get("ok")],
            }
        rows.append({"size": [width, height], "render_size": render, "threads": threads, "policies": policies, "load_after": load_average()})
    progress.update()
    return rows


def effective_render_sizes(colorizers: dict[str, Colorizer], plan: Plan) -> set[int]:
    """The render sizes a plan runs: its fixed ones and each model's own."""
    return {size for size in plan.render_sizes if size is not OWN} | {c.default_render_size for c in colorizers.values()}


REFERENCE_EAGER_STAGE = f"reference network alone at {REFERENCE_NATIVE}x{REFERENCE_NATIVE}, as pix2pix runs it (eager fp32)"
REFERENCE_FAST_STAGE = f"reference network alone at {REFERENCE_NATIVE}x{REFERENCE_NATIVE}, through our fast path"
BENCH_HINTS = 10
HINTS_STAGE = f"end to end with {BENCH_HINTS} colour hints"
TARGET_HINTS_OVER_AUTOMATIC = 1.5  # issue 26: hints may cost at most half again the automatic call


def bench_split(colorizers: dict[str, Colorizer], plan: Plan, repeats: int, progress) -> list[dict[str, Any]]:
    """Issue 17's split: the stages of `colorize` at the model's own settings, timed in the same rounds.

    The compose kernels are timed apart ("numba", "torch": the same image within one level) and
    end to end; the reference U-Net alone at its native 256x256 runs in the same rounds.
    """
    shipped, reference = colorizers["shipped"], colorizers["reference"]
    reference_eager = reference_colorizer(precision="fp32")
    torch_kernel = Colorizer(shipped.generator, shipped.config, name="torch kernel", kernel="torch")
    native = torch.rand(1, 1, REFERENCE_NATIVE, REFERENCE_NATIVE, generator=torch.Generator().manual_seed(0)) * 2 - 1
    rows = []
    for width, height in plan.split_sizes:
        progress.set_postfix_str(f"split {width}x{height}")
        image = test_image(width, height)
        shape = render_shape(height, width, shipped.default_render_size)
        x = network_input(image, shape)
        ab, strength = shipped.compose_inputs(shipped.predict_ab(x)[0])  # what colorize hands compose
        stages = {
            "end to end": lambda: shipped.colorize(image),
            "end to end, torch kernel": lambda: torch_kernel.colorize(image),
            "read (load_image)": lambda: load_image(image),
            "network input (resize + L)": lambda: network_input(image, shape),
            "network (predict_ab)": lambda: shipped.predict_ab(x),
            "full resolution (compose, numba)": lambda: compose(image, ab, saturation=strength, kernel="numba"),
            "full resolution (compose, torch)": lambda: compose(image, ab, saturation=strength, kernel="torch"),
            REFERENCE_EAGER_STAGE: lambda: reference_eager.predict_ab(native),
            REFERENCE_FAST_STAGE: lambda: reference.predict_ab(native),
        }
        if shipped.takes_hints:
            hints = simulate_user_hints(image, BENCH_HINTS, seed=0)
            stages[HINTS_STAGE] = lambda: shipped.colorize(image, hints=hints)
        if resolve_kernel("auto") != "numba":
            stages = {name: run for name, run in stages.items() if "numba" not in name}
        load_before = load_average()
        times = time_interleaved(stages, repeats=repeats)
        stats = {name: summarize(values) for name, values in times.items()}
        network = stats["network (predict_ab)"]["median_s"]
        megapixels = width * height / 1e6
        rows.append(
            {
                "size": [width, height],
                "megapixels": round(megapixels, 2),
                "settings": shipped.settings.to_dict(),
                "render_shape": list(shape),
                "kernel": resolve_kernel(shipped.kernel),
                "stages": stats,
                "around_network_ms_per_mp": (stats["end to end"]["median_s"] - network) * 1000 / megapixels,
                "around_network_ms_per_mp_torch_kernel": (stats["end to end, torch kernel"]["median_s"] - network) * 1000 / megapixels,
                "speedup_vs_reference_network": stats[REFERENCE_EAGER_STAGE]["median_s"] / stats["end to end"]["median_s"],
                "speedup_vs_reference_network_fast_path": stats[REFERENCE_FAST_STAGE]["median_s"] / stats["end to end"]["median_s"],
                **({"hints_over_automatic": stats[HINTS_STAGE]["median_s"] / stats["end to end"]["median_s"]} if HINTS_STAGE in stats else {}),
                "load_before": load_before,
                "load_after": load_average(),
            }
        )
        progress.update()
    return rows


PNG_WRITERS = {
    "Pillow, compress_level=3 (the app before)": lambda image, sink: image.save(sink, format="PNG", compress_level=3),
    "Pillow, compress_level=1": lambda image, sink: image.save(sink, format="PNG", compress_level=1),
    "colorize.png.save_png (Up filter, level 1, parallel bands)": save_png,
    "JPEG quality 95 (display only: the app's before picture)": lambda image, sink: image.save(sink, format="JPEG", quality=95, subsampling=0),
}


def bench_png(colorizers: dict[str, Colorizer], plan: Plan, repeats: int, progress) -> list[dict[str, Any]]:
    """Writing the full-size PNG of a result, each way, interleaved; with the file sizes."""
    import io

    rows = []
    for width, height in plan.split_sizes:
        progress.set_postfix_str(f"png {width}x{height}")
        result = colorizers["shipped"].colorize(test_image(width, height))
        sizes: dict[str, int] = {}

        def writer(name: str) -> Callable[[], None]:
            def write() -> None:
                sink = io.BytesIO()
                PNG_WRITERS[name](result, sink)
                sizes[name] = sink.tell()

            return write

        times = time_interleaved({name: writer(name) for name in PNG_WRITERS}, repeats=repeats)
        rows.append(
            {
                "size": [width, height],
                "megapixels": round(width * height / 1e6, 2),
                "writers": {name: {**summarize(values), "bytes": sizes[name]} for name, values in times.items()},
                "load_after": load_average(),
            }
        )
        progress.update()
    return rows


# --------------------------------------------------------------------------------------------
# Network paths
# --------------------------------------------------------------------------------------------


def _autocast_bf16(module: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    def call(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return module(x)

    return call


def _torchscript(generator: torch.nn.Module, example: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """trace(predict) + freeze + optimize_for_inference, with the generator's own padding around it."""
    body = fastpath._Predict(copy.deepcopy(generator).eval())
    example = example.new_zeros((1, 1, *generator.padded_input_shape(*example.shape[-2:])))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(body, example, check_trace=False)  # for this one shape: see ways_to_run
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
    return fastpath.FoldedGenerator(frozen, generator.size_multiple, pads_per_level=generator.pads_per_level)


def _onnx(generator: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    if not fastpath.onnx_runtime_available():
        raise RuntimeError("onnx and onnxruntime are not installed (pip install -e '.[bench]')")
    return fastpath.prepare_generator(generator, "onnx")


def _compiled(generator: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    return torch.compile(fastpath.fold_batchnorm(generator).to(memory_format=torch.channels_last), dynamic=False)


def bench_paths(
    colorizers: dict[str, Colorizer], plan: Plan, repeats: int, threads: int, progress, *, compile_: bool = True
) -> dict[str, Any]:
    """Ways to run the shipped generator: network alone at the render shape, and end to end.

    `compile_=False` (--quick) skips torch.compile, which takes a minute or more on two cores.
    """
    info = fastpath.cpu_info()
    generator = colorizers["shipped"].generator
    width, height = plan.paths_size
    shape = render_shape(height, width, plan.paths_render)
    image = test_image(width, height)
    x = network_input(image, shape)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    eager_contiguous = copy.deepcopy(generator).to(memory_format=torch.contiguous_format).eval()
    eager_cl = copy.deepcopy(generator).to(memory_format=torch.channels_last).eval()
    with torch.inference_mode():
        reference_ab = eager_contiguous(x)

    bf16_note = "native bf16 (avx512_bf16/amx_bf16)" if info.native_bf16 else "no native bf16 on this CPU: emulated by oneDNN"
    builders: list[tuple[str, str, Callable[[], Callable[[torch.Tensor], torch.Tensor]], torch.Tensor]] = [
        ("eager fp32, contiguous", "Colorizer(precision='fp32', channels_last=False)", lambda: eager_contiguous, x),
        ("eager fp32, channels_last", "Colorizer(precision='fp32')", lambda: eager_cl, x_cl),
        ("BN folded, contiguous", "fastpath.fold_batchnorm", lambda: fastpath.fold_batchnorm(generator), x),
        ("BN folded, channels_last", "Colorizer(precision='folded'), the default off AVX-512", lambda: fastpath.prepare_generator(generator, "folded"), x_cl),
        ("ONNX Runtime (BN folded graph)", "Colorizer(precision='onnx'), the default on AVX-512; needs onnx + onnxruntime", lambda: _onnx(generator), x),
        ("TorchScript trace+freeze+optimize_for_inference", "torch.jit", lambda: _torchscript(generator, x), x),
        ("torch.compile (inductor) of the folded model", "torch.compile", lambda: _compiled(generator), x_cl),
        (f"bf16 autocast, channels_last ({bf16_note})", "Colorizer(precision='bf16')", lambda: _autocast_bf16(eager_cl), x_cl),
    ]
    rows: list[dict[str, Any]] = []
    candidates: dict[str, Callable[[], Any]] = {}
    for name, how, build, inputs in builders:
        progress.set_postfix_str(f"paths: preparing {name.split(',')[0]}")
        row: dict[str, Any] = {"path": name, "how": how}
        if name.startswith("torch.compile") and not compile_:
            rows.append({**row, "status": "skipped", "error": "skipped in --quick (compiling takes minutes)"})
            continue
        start = time.perf_counter()
        try:
            with torch.inference_mode():
                module = build()
                output = module(inputs)  # first call: tracing / compiling happens here
            row["prepare_s"] = time.perf_counter() - start
            row["max_abs_ab_error_lab"] = float((output.float() - reference_ab).abs().max()) * 110.0
            if name.startswith("torch.compile"):
                # a second input shape: does it recompile, and does that work?
                other = torch.rand(1, 1, shape[0], shape[1] + 64).contiguous(memory_format=torch.channels_last)
                again = time.perf_counter()
                with torch.inference_mode():
                    module(other)
                row["second_shape_s"] = time.perf_counter() - again
        except Exception as error:  # a path that does not work here is a result, not a crash
            row.update(status="failed", error=f"{type(error).__name__}: {str(error).splitlines()[0][:200]}")
            rows.append(row)
            continue
        row["status"] = "ok"
        candidates[name] = lambda m=module, i=inputs: m(i)
        rows.append(row)

    progress.set_postfix_str("paths: timing the network")
    load_before = load_average()
    with torch.inference_mode():
        times = time_interleaved(candidates, repeats=repeats)
        single = None
        if threads > 1:  # the same fast path on one thread, for the thread-count comparison
            folded = fastpath.prepare_generator(generator, "folded")
            torch.set_num_threads(1)
            try:
                single = time_interleaved({"1 thread": lambda: folded(x_cl)}, repeats=max(3, repeats // 2))["1 thread"]
            finally:
                torch.set_num_threads(threads)
    for row in rows:
        if row["path"] in times:
            row["network"] = summarize(times[row["path"]])
    if single is not None:
        rows.append({"path": "BN folded, channels_last, 1 thread", "how": "torch.set_num_threads(1)", "status": "ok", "network": summarize(single), "threads": 1})
    exact = [
        row for row in rows
        if row.get("status") == "ok" and row.get("max_abs_ab_error_lab", 1.0) < 1e-3 and "network" in row and "threads" not in row
    ]
    # what a Colorizer can afford at load time: torch.compile's minute (and again per new input shape) is not
    usable = [row for row in exact if row.get("prepare_s", 0.0) <= MAX_PREPARE_S]
    fastest = min(usable, key=lambda row: row["network"]["median_s"]) if usable else None
    fastest_any = min(exact, key=lambda row: row["network"]["median_s"]) if exact else None

    progress.set_postfix_str("paths: end to end")
    end_to_end = {}
    variants = {
        "fp32 eager, contiguous": dict(precision="fp32", channels_last=False),
        "fp32 eager, channels_last": dict(precision="fp32"),
        f"auto (here: {fastpath.choose_path('auto', 'cpu')})": dict(precision="auto"),
        "BN folded, channels_last": dict(precision="folded"),
        "ONNX Runtime": dict(precision="onnx"),
        "bf16 autocast": dict(precision="bf16"),
    }
    pipelines = {
        name: Colorizer(copy.deepcopy(generator), colorizers["shipped"].config, name="paths", **kwargs)
        for name, kwargs in variants.items()
    }
    e2e_times = time_interleaved(
        {name: (lambda c=c: c.colorize(image, render_size=plan.paths_render)) for name, c in pipelines.items()}, repeats=repeats
    )
    for name, values in e2e_times.items():
        end_to_end[name] = summarize(values)
    progress.update()
    return {
        "network_shape": list(shape),
        "size": [width, height],
        "render_size": plan.paths_render,
        "threads": threads,
        "cpu_native_bf16": info.native_bf16,
        "paths": rows,
        "fastest_exact_path": fastest["path"] if fastest else None,
        "fastest_exact_path_any_preparation": fastest_any["path"] if fastest_any else None,
        "max_prepare_s": MAX_PREPARE_S,
        "auto_uses": fastpath.choose_path("auto", "cpu"),
        "end_to_end": end_to_end,
        "load_before": load_before,
        "load_after": load_average(),
    }


# --------------------------------------------------------------------------------------------
# CUDA
# --------------------------------------------------------------------------------------------


def bench_cuda(model_configs: dict[str, ModelConfig], plan: Plan, repeats: int, progress) -> dict[str, Any]:
    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device"}
    device = torch.device("cuda")
    result: dict[str, Any] = {"device": torch.cuda.get_device_name(device)}
    result["training_bf16"] = bench_training(model_configs, plan, repeats, progress, device=device, amp=True)
    batch, side = 16, next(size for size in plan.render_sizes if size is not OWN)
    x = torch.rand(batch, 1, side, side, device=device) * 2 - 1
    inference = {}
    for precision in ("fp32", "bf16"):
        functions = {}
        for label, config in model_configs.items():
            colorizer = Colorizer(build_generator(config), {"model": config.to_dict()}, name=label, device=device, precision=precision)

            def call(c: Colorizer = colorizer) -> None:
                c.predict_ab(x)
                torch.cuda.synchronize(device)

            functions[label] = call
        times = time_interleaved(functions, repeats=repeats)
        models = {}
        for label, values in times.items():
            stats = summarize(values)
            stats["images_per_s"] = batch / stats["median_s"]
            models[label] = stats
        inference[precision] = {"batch": batch, "render_shape": [side, side], "models": models}
    result["batched_inference"] = inference
    return result


# --------------------------------------------------------------------------------------------
# Environment, targets, report
# --------------------------------------------------------------------------------------------


def environment(command: str, threads: int) -> dict[str, Any]:
    info = fastpath.cpu_info()
    load = load_average()
    busy = load is not None and load[0] > 0.5 * info.logical_cores
    return {
        "command": command,
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "colorize_version": __version__,
        "cpu": info.summary(),
        "available_cpus": fastpath.available_cpus(),
        "torch_version": torch.__version__,
        "torch_threads": threads,
        "torch_interop_threads": torch.get_num_interop_threads(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_start": load,
        "busy_at_start": busy,
        "threading_env": {key: os.environ.get(key) for key in THREADING_ENV if os.environ.get(key) is not None},
    }


def machine_was_busy(result: dict[str, Any]) -> bool:
    """Did other work load the machine? The 1-minute load average counts this benchmark's own
    threads too, so during a section we subtract them; at the start nothing of ours is running."""
    env = result["environment"]
    cores, threads = env["cpu"]["logical_cores"], env["torch_threads"]
    loads = [row.get("load_before") for section in ("latency", "network", "training") for row in result[section]]
    others = max((load[0] - threads for load in loads if load), default=0.0)
    return bool(env["busy_at_start"] or others > 0.5 * cores)


def check_targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    if result["quick"]:
        return []
    checks = []
    own = "the model's own render size"
    for row in result.get("split") or []:
        size = tuple(row["size"])
        label = f"{size[0]}x{size[1]}"
        end_to_end = row["stages"]["end to end"]["median_s"]
        around = row["around_network_ms_per_mp"]
        checks.append({"target": f"{label} at {own}: full-resolution work around the network <= {TARGET_AROUND_NETWORK_MS_PER_MP:.0f} ms per megapixel", "value": f"{around:.1f} ms/MP (torch kernel: {row['around_network_ms_per_mp_torch_kernel']:.1f})", "met": around <= TARGET_AROUND_NETWORK_MS_PER_MP})
        if size in TARGET_OWN_LATENCY_S:
            checks.append({"target": f"{label} at {own}: end to end <= {TARGET_OWN_LATENCY_S[size] * 1000:.0f} ms", "value": f"{end_to_end * 1000:.0f} ms", "met": end_to_end <= TARGET_OWN_LATENCY_S[size]})
        if size == (1024, 768) and "hints_over_automatic" in row:
            ratio = row["hints_over_automatic"]
            checks.append({"target": f"{label} end to end with {BENCH_HINTS} colour hints <= {TARGET_HINTS_OVER_AUTOMATIC:g}x the automatic call", "value": f"{ratio:.2f}x ({row['stages'][HINTS_STAGE]['median_s'] * 1000:.0f} ms)", "met": ratio <= TARGET_HINTS_OVER_AUTOMATIC})
        if size == (1024, 768):
            ratio = row["speedup_vs_reference_network"]
            fast = row.get("speedup_vs_reference_network_fast_path")
            value = f"{ratio:.2f}x" + (f" ({fast:.2f}x against it through our fast path)" if fast else "")
            checks.append({"target": f"{label} end to end at {own}: >= {TARGET_SPEEDUP_VS_REFERENCE_NETWORK:.0f}x faster than the reference U-Net's forward pass alone at {REFERENCE_NATIVE}x{REFERENCE_NATIVE} (eager fp32, as pix2pix runs it)", "value": value, "met": ratio >= TARGET_SPEEDUP_VS_REFERENCE_NETWORK})
    for row in result["memory"]:
        shipped = row["models"]["shipped"]
        size = tuple(row["size"])
        if row["render_size"] is OWN and size in TARGET_OWN_MEMORY_MIB and shipped.get("ok"):
            checks.append({"target": f"{size[0]}x{size[1]} at {own}: peak extra memory <= {TARGET_OWN_MEMORY_MIB[size] / 1024:.0f} GiB", "value": f"{shipped['extra_mib']:.0f} MiB", "met": shipped["extra_mib"] <= TARGET_OWN_MEMORY_MIB[size]})
    for row in result["latency"]:
        if row["render_size"] is OWN:
            continue
        key = (*row["size"], row["render_size"])
        if key in TARGET_LATENCY_S:
            median = row["models"]["shipped"]["median_s"]
            checks.append({"target": f"{key[0]}x{key[1]} at render {key[2]}: median <= {TARGET_LATENCY_S[key] * 1000:.0f} ms", "value": f"{median * 1000:.0f} ms", "met": median <= TARGET_LATENCY_S[key]})
        ratio = row["speedup_vs_reference"]
        if ratio is not None and row["size"] == [1024, 768]:
            cpu_ratio = row.get("cpu_speedup_vs_reference")
            value = f"{ratio:.2f}x" + ("" if cpu_ratio is None else f" (CPU time {cpu_ratio:.2f}x)")
            checks.append({"target": f"1024x768 at render {row['render_size']}: >= {TARGET_SPEEDUP:.0f}x faster than the reference end to end", "value": value, "met": ratio >= TARGET_SPEEDUP})
    for row in result["network"]:
        ratio = row["speedup_vs_reference"]
        if ratio is not None:
            shape = "x".join(map(str, row["render_shape"]))
            cpu_ratio = row.get("cpu_speedup_vs_reference")
            value = f"{ratio:.2f}x" + ("" if cpu_ratio is None else f" (CPU time {cpu_ratio:.2f}x)")
            checks.append({"target": f"network alone at {shape}: >= {TARGET_SPEEDUP:.0f}x faster than the reference", "value": value, "met": ratio >= TARGET_SPEEDUP})
    for row in result["memory"]:
        key = (*row["size"], row["render_size"])
        shipped = row["models"]["shipped"]
        if key in TARGET_MEMORY_MIB and shipped.get("ok"):
            checks.append({"target": f"{key[0]}x{key[1]} at render {key[2]}: peak extra memory <= 1.5 GiB", "value": f"{shipped['extra_mib']:.0f} MiB", "met": shipped["extra_mib"] <= TARGET_MEMORY_MIB[key]})
    huge = result.get("huge")
    if huge:
        big, refused = huge["largest_allowed"], huge["too_large"]
        checks.append({"target": f"{big['megapixels']:.0f} MP image works (no OOM)", "value": f"{big.get('seconds', 0):.1f} s, {big.get('extra_mib', 0):.0f} MiB extra" if big["ok"] else big.get("error", "failed"), "met": bool(big["ok"])})
        checks.append({"target": f"{refused['megapixels']:.0f} MP image refused with a sentence", "value": refused.get("error", "accepted")[:120], "met": bool(refused.get("refused_with_message"))})
    return checks


def _ms(stats: dict[str, Any] | None) -> str:
    if not stats or "median_s" not in stats:
        return "-"
    return f"{stats['median_s'] * 1000:.0f} ({stats['p10_s'] * 1000:.0f}-{stats['p90_s'] * 1000:.0f})"


def _cpu(stats: dict[str, Any] | None) -> str:
    return "-" if not stats or "cpu_median_s" not in stats else f"{stats['cpu_median_s'] * 1000:.0f}"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _load(values: list[float] | None) -> str:
    return "-" if not values else f"{values[0]:.2f}"


def _render(row: dict[str, Any]) -> str:
    """A row's render size; "own" rows name each model's (shipped / reference)."""
    if row["render_size"] is not OWN:
        return str(row["render_size"])
    sizes = row.get("render_sizes")
    return "own" + (f" ({sizes['shipped']} / {sizes['reference']})" if sizes else "")


def _shapes(row: dict[str, Any]) -> str:
    shapes = row.get("render_shapes") or {"shipped": row["render_shape"]}
    unique = {tuple(shape) for shape in shapes.values()}
    if len(unique) == 1:
        return "x".join(map(str, row["render_shape"]))
    return " / ".join("x".join(map(str, shapes[label])) for label in ("shipped", "reference"))


def _split_markdown(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    settings = rows[0]["settings"]
    lines = [
        "",
        "## Where the time goes (issue 17): one colorize call at the model's own settings, by stage",
        "",
        f"The shipped model's settings: render size {settings['render_size']}, {settings['samples']} noise sample(s) per image"
        + (" (the network runs the zero-noise pass and that many noise draws)" if settings["samples"] > 1 else " (one deterministic network pass)")
        + f"; chroma scale {settings['chroma_scale']:g}, gamma {settings['chroma_gamma']:g}; full-resolution kernel: **{rows[0]['kernel']}**. "
        "Each stage is timed alone, all of them and the reference network interleaved in the same rounds. "
        "Around the network = end to end minus the network.",
        "",
        "| stage | " + " | ".join(f"{r['size'][0]}x{r['size'][1]} ({r['megapixels']} MP), render {r['render_shape'][0]}x{r['render_shape'][1]}" for r in rows) + " |",
        "|---" * (len(rows) + 1) + "|",
    ]
    for name in rows[0]["stages"]:
        lines.append(f"| {name} | " + " | ".join(f"{_ms(r['stages'].get(name))} (CPU {_cpu(r['stages'].get(name))})" for r in rows) + " |")
    lines.append("| **around the network, per megapixel** | " + " | ".join(f"**{r['around_network_ms_per_mp']:.1f} ms/MP** (torch kernel {r['around_network_ms_per_mp_torch_kernel']:.1f})" for r in rows) + " |")
    lines.append("| end to end vs the reference network alone (eager fp32) | " + " | ".join(f"{r['speedup_vs_reference_network']:.2f}x" for r in rows) + " |")
    if all("hints_over_automatic" in r for r in rows):
        lines.append(f"| end to end with {BENCH_HINTS} colour hints vs without | " + " | ".join(f"{r['hints_over_automatic']:.2f}x" for r in rows) + " |")
    if all("speedup_vs_reference_network_fast_path" in r for r in rows):
        lines.append("| end to end vs the reference network alone (our fast path) | " + " | ".join(f"{r['speedup_vs_reference_network_fast_path']:.2f}x" for r in rows) + " |")
    lines.append("| load average before | " + " | ".join(_load(r["load_before"]) for r in rows) + " |")
    return lines


def _png_markdown(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    lines = ["", "## Writing the full-size PNG of a result", "", "| input | writer | ms | CPU ms | file MB |", "|---|---|---|---|---|"]
    for row in rows:
        for name, stats in row["writers"].items():
            lines.append(f"| {row['size'][0]}x{row['size'][1]} | {name} | {_ms(stats)} | {_cpu(stats)} | {stats['bytes'] / 1e6:.1f} |")
    return lines


def render_markdown(result: dict[str, Any]) -> str:
    """The human report (results/bench.md), entirely from the JSON."""
    env = result["environment"]
    cpu = env["cpu"]
    flags = ", ".join(f"{flag} {'yes' if on else 'no'}" for flag, on in cpu["flags"].items())
    lines = [
        "# Colorizer benchmark",
        "",
        f"Command: `{env['command']}`  ",
        f"Date: {env['date_utc']}  ",
        f"CPU: {cpu['model']} - {cpu['physical_cores']} physical / {cpu['logical_cores']} logical cores ({env['available_cpus']} available to this process)  ",
        f"Flags: {flags}; torch CPU capability {env['torch_cpu_capability']}  ",
        f"torch {env['torch_version']}, {env['torch_threads']} intra-op threads, Python {env['python']}, {env['platform']}  ",
        f"CUDA: {env['cuda'] or 'none'}; threading environment: {', '.join(f'{k}={v}' for k, v in env.get('threading_env', {}).items()) or 'none set'}  ",
        f"Load average (1 min) at start: {_load(env['load_average_start'])}; at end: {_load(result.get('load_average_end'))}"
        + (" - **the machine was busy: absolute times are inflated and noisy; the ratios, measured interleaved in one process, are the figures to trust**" if result.get("busy") else ""),
        "",
        "Models: " + "; ".join(f"**{label}** = {m['description']} ({m['parameters'] / 1e6:.1f} M parameters, {_padding_words(m)}, precision {m['precision']})" for label, m in result["models"].items()),
        "",
        "Times are wall-clock medians in ms with the p10-p90 range in brackets; speed-up = reference time / shipped time, "
        "measured interleaved in the same process. CPU ms = CPU time of the process per run (all threads, spin-waits "
        "included); with 1 thread on a busy machine it is close to the wall time an idle machine would show, and the "
        "CPU speed-up is the ratio of work done.",
    ]
    if result["quick"]:
        lines += ["", "**--quick run: tiny sizes, only checks that the benchmark works; not figures to quote.**"]
    if result["targets"]:
        lines += ["", "## Targets", ""]
        if result.get("busy"):
            lines += ["The machine was busy during this run: wall-clock targets are not judged fairly here (see the CPU times).", ""]
        lines += ["| target | measured | met |", "|---|---|---|"]
        lines += [f"| {t['target']} | {t['value']} | {'yes' if t['met'] else '**no**'} |" for t in result["targets"]]
    header = "| shipped ms | reference ms | speed-up | shipped CPU ms | reference CPU ms | CPU speed-up | load |"
    lines += ["", "## End-to-end latency (PIL image in, PIL image out)", "", "| input | render | network sees " + header, "|---" * 10 + "|"]
    for row in result["latency"]:
        m = row["models"]
        lines.append(
            f"| {row['size'][0]}x{row['size'][1]} ({row['megapixels']} MP) | {_render(row)} | {_shapes(row)} "
            f"| {_ms(m['shipped'])} | {_ms(m['reference'])} | {_x(row['speedup_vs_reference'])} "
            f"| {_cpu(m['shipped'])} | {_cpu(m['reference'])} | {_x(row.get('cpu_speedup_vs_reference'))} | {_load(row['load_before'])} |"
        )
    lines += _split_markdown(result.get("split") or [])
    lines += _png_markdown(result.get("png") or [])
    lines += ["", "## Network alone (predict_ab, batch 1)", "", "| render shape | padded (shipped / reference) " + header, "|---" * 9 + "|"]
    for row in result["network"]:
        m, padded = row["models"], row["padded_shape"]
        lines.append(
            f"| {row['render_shape'][0]}x{row['render_shape'][1]} | {'x'.join(map(str, padded['shipped']))} / {'x'.join(map(str, padded['reference']))} "
            f"| {_ms(m['shipped'])} | {_ms(m['reference'])} | {_x(row['speedup_vs_reference'])} "
            f"| {_cpu(m['shipped'])} | {_cpu(m['reference'])} | {_x(row.get('cpu_speedup_vs_reference'))} | {_load(row['load_before'])} |"
        )
    lines += ["", "## Peak memory of one colorize call (fresh process each, model loaded and its network path prepared as in the app; extra = peak RSS - RSS before the call)", "", "| input | render | shipped extra MiB | reference extra MiB | shipped s (cold) |", "|---|---|---|---|---|"]
    for row in result["memory"]:
        cells = []
        for label in ("shipped", "reference"):
            m = row["models"][label]
            cells.append(f"{m['extra_mib']:.0f} (baseline {m['baseline_mib']:.0f})" if m.get("ok") else f"failed: {m.get('error', '')[:80]}")
        seconds = row["models"]["shipped"].get("seconds")
        lines.append(f"| {row['size'][0]}x{row['size'][1]} ({row['megapixels']} MP) | {_render(row)} | {cells[0]} | {cells[1]} | {'-' if seconds is None else f'{seconds:.2f}'} |")
    batch = result["batch"]
    lines += [
        "",
        f"## Batch colorization ({batch['images']} images of {batch['size'][0]}x{batch['size'][1]}, render {batch['render_size']}, {batch['torch_threads']} threads)",
        "",
        "| model | images/s | batch ms | CPU utilisation (cores busy) |",
        "|---|---|---|---|",
    ]
    for label, m in batch["models"].items():
        lines.append(f"| {label} | {m['images_per_s']:.2f} | {_ms(m)} | {m['cpu_utilisation']:.2f} |")
    lines += ["", f"Speed-up: {_x(batch['speedup_vs_reference'])} (CPU: {_x(batch.get('cpu_speedup_vs_reference'))})"]
    lines += [
        "",
        "## Training (one generator + discriminator step of the default recipe)",
        "",
        "| crop | batch | device | shipped images/s | reference images/s | speed-up | CPU speed-up | load |",
        "|---|---|---|---|---|---|---|---|",
    ]
    cuda = result.get("cuda") or {}
    for row in result["training"] + list(cuda.get("training_bf16", [])):
        m = row["models"]
        lines.append(
            f"| {row['size']} | {row['batch']} | {row['device']}{' bf16' if row['bf16_autocast'] else ''} | {m['shipped']['images_per_s']:.2f} "
            f"| {m['reference']['images_per_s']:.2f} | {_x(row['speedup_vs_reference'])} | {_x(row.get('cpu_speedup_vs_reference'))} | {_load(row['load_before'])} |"
        )
    if "skipped" in cuda:
        lines += ["", f"CUDA (bf16 training, batched inference): skipped - {cuda['skipped']}."]
    elif cuda:
        lines += ["", f"## CUDA batched inference ({cuda['device']})", "", "| precision | shipped images/s | reference images/s |", "|---|---|---|"]
        for precision, block in cuda["batched_inference"].items():
            lines.append(f"| {precision} | {block['models']['shipped']['images_per_s']:.1f} | {block['models']['reference']['images_per_s']:.1f} |")
    paths = result.get("paths")
    if paths:
        lines += [
            "",
            f"## Ways to run the network ({paths['network_shape'][0]}x{paths['network_shape'][1]}, the render shape of {paths['size'][0]}x{paths['size'][1]} at {paths['render_size']})",
            "",
            "| path | network ms | CPU ms | vs eager contiguous | prepare s | max abs ab error (Lab) | notes |",
            "|---|---|---|---|---|---|---|",
        ]
        base = next((row["network"]["median_s"] for row in paths["paths"] if row["path"].startswith("eager fp32, contiguous") and "network" in row), None)
        for row in paths["paths"]:
            if row.get("status") != "ok":
                lines.append(f"| {row['path']} | {row.get('status', 'failed')} | - | - | - | - | {row.get('error', '')} |")
                continue
            network = row.get("network")
            speed = f"{base / network['median_s']:.2f}x" if base and network else "-"
            notes = [row["how"]]
            if "second_shape_s" in row:
                notes.append(f"second input shape took {row['second_shape_s']:.1f} s")
            error = row.get("max_abs_ab_error_lab")
            lines.append(
                f"| {row['path']} | {_ms(network)} | {_cpu(network)} | {speed} | {row.get('prepare_s', 0):.2f} | {'-' if error is None else f'{error:.2g}'} | {'; '.join(notes)} |"
            )
        lines += [
            "",
            f"Fastest fp32-exact path (max error < 1e-3 Lab) that prepares in at most {paths['max_prepare_s']:.0f} s: "
            f"**{paths['fastest_exact_path']}**; regardless of preparation time: {paths['fastest_exact_path_any_preparation']}. "
            f"`precision='auto'` uses: **{paths['auto_uses']}**. Differences of a few per cent are within the noise of one run.",
            "",
        ]
        lines += ["End to end, same image:", "", "| Colorizer setting | ms | CPU ms |", "|---|---|---|"]
        lines += [f"| {name} | {_ms(stats)} | {_cpu(stats)} |" for name, stats in paths["end_to_end"].items()]
    wait = result.get("wait_policy")
    if wait:
        names = list(wait[0]["policies"])
        lines += [
            "",
            f"## OpenMP wait policy (end to end, {wait[0]['threads']} threads, a fresh process per run, A B B A)",
            "",
            "The app sets OMP_WAIT_POLICY=PASSIVE when it is not set (app.py): a spinning OpenMP thread keeps a core "
            "for milliseconds after each torch operation, which the compose kernel's threads then wait for.",
            "",
            "| input | render | " + " | ".join(f"{name} ms (CPU ms)" for name in names) + " | load after |",
            "|---" * (len(names) + 3) + "|",
        ]
        for row in wait:
            cells = []
            for name in names:
                m = row["policies"][name]
                cells.append("failed" if m["median_s"] is None else f"{m['median_s'] * 1000:.0f} ({m['cpu_median_s'] * 1000:.0f})")
            render = "own" if row["render_size"] is OWN else row["render_size"]
            lines.append(f"| {row['size'][0]}x{row['size'][1]} | {render} | " + " | ".join(cells) + f" | {_load(row['load_after'])} |")
    huge = result.get("huge")
    if huge:
        big, refused = huge["largest_allowed"], huge["too_large"]
        lines += ["", "## Very large images", ""]
        if big["ok"]:
            lines.append(f"- {big['size'][0]}x{big['size'][1]} ({big['megapixels']} MP): {big['seconds']:.1f} s, {big['extra_mib']:.0f} MiB extra (baseline {big['baseline_mib']:.0f} MiB).")
        else:
            lines.append(f"- {big['size'][0]}x{big['size'][1]} ({big['megapixels']} MP): failed - {big.get('error')}")
        lines.append(f"- {refused['size'][0]}x{refused['size'][1]} ({refused['megapixels']} MP): {'refused: ' + refused.get('error', '') if not refused['ok'] else 'accepted (should have been refused)'}")
    lines.append("")
    return "\n".join(lines)


def print_summary(result: dict[str, Any]) -> None:
    print(render_markdown(result))


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m colorize.bench", description="Speed and memory benchmark of the colorizer against the pix2pix reference U-Net.")
    add_arguments(parser, options(BenchSettings))
    parser.add_argument("--memory-case", default=None, help=argparse.SUPPRESS)  # internal: one subprocess case
    return parser


def run(settings: BenchSettings, *, command: str) -> dict[str, Any]:
    from tqdm import tqdm

    plan = QUICK_PLAN if settings.quick else FULL_PLAN
    threads = settings.threads or fastpath.recommended_threads()
    torch.set_num_threads(threads)
    repeats = max(1, settings.repeats if not settings.quick else min(settings.repeats, 2))
    half = max(2, repeats // 2) if not settings.quick else 1
    result: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "quick": settings.quick,
        "settings": asdict(settings),
        "environment": environment(command, threads),
    }
    colorizers = build_colorizers(settings.model)
    model_configs = {label: c.model_config or ModelConfig() for label, c in colorizers.items()}
    result["models"] = describe_models(colorizers, settings.model)
    steps = (
        len(plan.sizes) * len(plan.render_sizes)
        + len({render_shape(h, w, r) for w, h in plan.sizes for r in effective_render_sizes(colorizers, plan)})
        + len(plan.memory_sizes) * len(plan.memory_renders)
        + 1
        + len(plan.train_sizes)
        + (2 if settings.compare_paths else 0)
        + (len(plan.train_sizes) if torch.cuda.is_available() else 0)
        + (1 if settings.huge else 0)
        + 2 * len(plan.split_sizes)
    )
    with tqdm(total=steps, desc="bench", unit="case", file=sys.stderr, disable=None) as progress:
        result["latency"] = bench_latency(colorizers, plan, repeats, progress)
        result["split"] = bench_split(colorizers, plan, repeats, progress)
        result["png"] = bench_png(colorizers, plan, half, progress)
        result["network"] = bench_network(colorizers, plan, repeats, progress)
        result["batch"] = bench_batch(colorizers, plan, half, progress)
        result["training"] = bench_training(model_configs, plan, half, progress, warmup=0 if settings.quick else 1)
        result["memory"] = bench_memory(settings, plan, threads, progress)
        result["paths"] = (
            bench_paths(colorizers, plan, repeats, threads, progress, compile_=not settings.quick) if settings.compare_paths else None
        )
        result["wait_policy"] = bench_wait_policy(settings, plan, threads, half, progress) if settings.compare_paths else None
        result["huge"] = bench_huge(settings, plan, threads, progress) if settings.huge else None
        result["cuda"] = bench_cuda(model_configs, plan, half, progress)
    result["load_average_end"] = load_average()
    result["busy"] = machine_was_busy(result)
    result["targets"] = check_targets(result)
    return result


def write_results(result: dict[str, Any], out: Path) -> tuple[Path, Path]:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    markdown = out.with_suffix(".md")
    markdown.write_text(render_markdown(result), encoding="utf-8")
    return out, markdown


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.memory_case is not None:
        print(json.dumps(_memory_child(json.loads(args.memory_case))), flush=True)
        return 0
    del args.memory_case
    settings = BenchSettings(**given(args))
    if settings.repeats < 1 or settings.threads < 0:
        print("error: --repeats must be at least 1 and --threads 0 or more.", file=sys.stderr)
        return 2
    if settings.model and not (Path(settings.model) / CONFIG_FILE).is_file():
        print(f"error: {settings.model} is not a checkpoint folder (no {CONFIG_FILE}).", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    command = " ".join(["python -m colorize.bench", *map(shlex.quote, argv)])
    result = run(settings, command=command)
    json_path, markdown_path = write_results(result, Path(settings.out))
    print_summary(result)
    print(f"Wrote {json_path} and {markdown_path}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
