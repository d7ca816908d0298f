"""Where `Colorizer.colorize` spends its time, by stage: a py-spy sampling profile, summarised.

    .venv/bin/python scripts/profile_colorize.py [--size 4000x3000] [--calls 10] [--out results/profile.md]

Runs the shipped model (at its own render size) on the benchmark's photo (`colorize.bench.test_image`)
`--calls` times under `py-spy record` (`pip install -e '.[bench]'`) and counts the samples of
every thread that is running (py-spy leaves out waiting threads) by the stage they are in:
reading the image, the network's input (resize + L), the network, the colour curve, and the
full-resolution work (`colorize.compose`, in the calling thread or in its tile workers), split by
the function it is in. The shares are of the CPU time sampled, so a stage spread over two cores
counts twice its wall time. (torch's own OpenMP threads are not Python threads: py-spy sees the
call that started them.) The warm-up call, which compiles or loads the numba kernel, goes through
`colorize_batch` and is not counted. To profile another checkout (e.g. the commit before a
change), put it first on PYTHONPATH. Appends a Markdown section to `--out` with the command, the
CPU and the load.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The first of these functions found in a sample's stack (from the outside in) names its stage.
STAGES = (
    ("load_image", "read the image (load_image)"),
    ("network_input", "network input (resize + L)"),
    ("predict_ab", "network (predict_ab)"),
    ("apply_chroma_gamma", "colour curve (apply_chroma_gamma)"),
    ("compose", "full resolution (compose)"),
)


def workload(size: tuple[int, int], calls: int) -> None:
    import torch

    from colorize import Colorizer
    from colorize.bench import test_image
    from colorize.fastpath import recommended_threads

    torch.set_num_threads(recommended_threads())
    colorizer = Colorizer.from_pretrained(device="cpu")
    image = test_image(*size)
    colorizer.colorize_batch([image])  # warm-up (compiled kernels, tables), not counted: not under colorize()
    start = time.perf_counter()
    for _ in range(calls):
        colorizer.colorize(image)
    print(f"{(time.perf_counter() - start) / calls * 1000:.0f} ms per call", flush=True)


def summarise(raw: Path) -> tuple[int, collections.Counter, collections.Counter]:
    """(samples in colorize, samples per stage, samples per compose function) from py-spy's raw output."""
    stages: collections.Counter = collections.Counter()
    inside_compose: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        names = [frame.split(" (")[0] for frame in stack.split(";")]
        if "Colorizer.colorize" in names:
            inner = names[names.index("Colorizer.colorize") + 1 :]
        elif any(name.startswith("compose.") for name in names):  # a tile worker of compose
            inner = ["compose", *names[next(i for i, name in enumerate(names) if name.startswith("compose.")) :]]
        else:
            continue
        total += int(count)
        stage = next((label for key, label in STAGES if any(name.split(".")[-1] == key for name in inner)), "other")
        stages[stage] += int(count)
        if stage == STAGES[-1][1]:
            below = inner[[name.split(".")[-1] for name in inner].index("compose") + 1 :]
            below = [name for name in below if not name.startswith(("compose.<locals>", "_WorkItem", "_worker"))]
            # two levels name the work: e.g. _NumbaTiles.__call__ alone is the compiled kernel itself
            inside_compose[" > ".join(below[:2]) if below else "compose itself"] += int(count)
    return total, stages, inside_compose


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="4000x3000")
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "profile.md")
    parser.add_argument("--label", default="", help="what is profiled (e.g. a commit)")
    parser.add_argument("--workload", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    width, height = (int(side) for side in args.size.lower().split("x"))
    if args.workload:
        workload((width, height), args.calls)
        return 0
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        print("error: py-spy is not installed (pip install -e '.[bench]').", file=sys.stderr)
        return 2
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        raw = Path(folder) / "profile.txt"
        command = [py_spy, "record", "-r", str(args.rate), "-f", "raw", "-o", str(raw), "--",
                   sys.executable, __file__, "--workload", "--size", args.size, "--calls", str(args.calls)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            print(result.stderr[-2000:], file=sys.stderr)
            return 1
        per_call = next((line for line in result.stdout.splitlines() if line.endswith("per call")), "?")
        total, stages, inside = summarise(raw)
    import colorize

    lines = [
        f"## {args.size} ({args.label or 'this checkout'}): {per_call}",
        "",
        f"Command: `python scripts/profile_colorize.py --size {args.size} --calls {args.calls}`"
        f" with colorize from `{Path(colorize.__file__).parent}`; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"CPU {_cpu_model()}, {os.cpu_count()} CPUs; load average {load:.2f} before, {os.getloadavg()[0]:.2f} after.",
        "",
        "| stage | share of the CPU time sampled in colorize() |",
        "|---|---|",
        *(f"| {label} | {stages[label] / total:.0%} |" for _, label in STAGES if stages[label]),
        *([f"| other | {stages['other'] / total:.0%} |"] if stages["other"] else []),
        "",
        "Inside compose: " + ", ".join(f"{name} {count / total:.0%}" for name, count in inside.most_common(8)),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.out.exists():
        args.out.write_text("# Profiles of Colorizer.colorize (py-spy, main thread)\n\n")
    with args.out.open("a") as handle:
        handle.write(text + "\n")
    return 0


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    sys.exit(main())
