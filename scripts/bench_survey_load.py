"""Load benchmark of the study: many participants at once against `python app.py --mode survey`, on loopback.

    .venv/bin/python scripts/bench_survey_load.py [--out results/survey-load] [--scenario NAME ...]

Starts the app as a study is run (survey mode, a fresh SQLite file, 256-pixel stimuli: 40
synthetic photos, two fake methods, the default protocol of 3 practice and 20 test trials, 1 s
exposure) on a free port of 127.0.0.1, and nowhere else. Simulated participants speak the app's
HTTP API as a browser's buttons do (POST /gradio_api/run/survey_consent, survey_next,
survey_answer: the participant events skip Gradio's queue), each from its own address
(X-Forwarded-For, which the server believes from loopback only), and accept brotli and gzip as a
browser does. Measured per answer: the time from sending it to having the next screen and its
images; per scenario: how many were admitted and finished, and answers per second.

Scenarios (each bounded in participants and time):
- `50-participants`: 50 participants start together and answer 2 s after each trial arrives (the
  1 s exposure and a quick decision; `survey.texts` estimates 3.5 s). Target: p95 <= 1 s.
- `50-back-to-back`: the same 50, answering the moment the next trial arrives (no exposure, no
  thinking: the heaviest load 50 people can make, and the server's throughput).
- `200-arriving`: 200 participants arrive within 5 s and answer 2 s after each trial arrives;
  all must be admitted and finish.
- `200-within-2s`: 200 participants arrive within 2 s and answer 2 s after each trial arrives
  (issue 27's capacity case). Target, on this machine with nothing else running: p95 under 1 s.

Per scenario also the server's CPU time per answer (the app process's user + system time from
/proc over the scenario, consents and every other screen included, divided by the answers):
what one answer costs the server, whatever else the machine is doing.

Writes `<out>/load.json` (every figure, the machine, the load average before and after) and
`<out>/load.md`. The load generator runs on the same machine as the server and takes its share
of the CPU: the figures are an upper bound on what the server alone needs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

from bench_app_startup import ROOT, _cpu_model, _free_port, wait_for_page

sys.path.insert(0, str(ROOT))  # this checkout's packages, whatever is installed
STUDY = "load"
ACCEPT_ENCODING = "gzip, deflate, br"  # what Chromium sends, but zstd (not installed here)
MAX_PARTICIPANTS = 500


@dataclass(frozen=True)
class Scenario:
    name: str
    participants: int
    arrival_s: float  # arrivals spread evenly over this many seconds (0: all at once)
    think_s: float  # from a trial's arrival to its answer
    time_limit_s: float  # the scenario is stopped (and reported as such) after this long


SCENARIOS = {
    "50-participants": Scenario("50-participants", participants=50, arrival_s=0.0, think_s=2.0, time_limit_s=300),
    "50-back-to-back": Scenario("50-back-to-back", participants=50, arrival_s=0.0, think_s=0.0, time_limit_s=300),
    "200-arriving": Scenario("200-arriving", participants=200, arrival_s=5.0, think_s=2.0, time_limit_s=300),
    "200-within-2s": Scenario("200-within-2s", participants=200, arrival_s=2.0, think_s=2.0, time_limit_s=300),
}


@dataclass
class Outcome:
    """What the participants of one scenario met."""

    answer_s: list[float] = field(default_factory=list)  # one per answer
    start_s: list[float] = field(default_factory=list)  # consent, one per participant admitted
    admitted: int = 0
    finished: int = 0
    errors: list[str] = field(default_factory=list)


# -- the app and its study --------------------------------------------------------------------------


def synthetic_photo(seed: int, size: int = 320) -> Image.Image:
    """A smooth, colourful stand-in photo (sines of random frequencies per channel)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    channels = [np.sin(2 * np.pi * (f * x + g * y) + p) for f, g, p in rng.uniform(0.3, 2.5, (3, 3))]
    return Image.fromarray(((np.stack(channels, axis=-1) * 0.5 + 0.5) * 255).astype(np.uint8), mode="RGB")


def build_load_study(db_url: str, *, images: int = 40, image_size: int = 256, **protocol) -> None:
    """The benchmark's study: `images` synthetic photos, the gray baseline and a warm-tinted fake."""
    from colorize.pixels import gray_image
    from survey.build import build_study
    from survey.store import Store
    from survey.study import Protocol

    def warm(gray: Image.Image) -> Image.Image:
        return Image.blend(gray, Image.new("RGB", gray.size, (255, 150, 40)), 0.25)

    sources = [(f"photo{i:03d}", synthetic_photo(i)) for i in range(images)]
    store = Store(db_url)
    try:
        build_study(store, name=STUDY, sources=sources, makers={"gray": gray_image, "warm": warm},
                    protocol=Protocol(image_size=image_size, **protocol), progress=False)  # fmt: skip
    finally:
        store.close()


def start_app(workdir: Path, db_url: str) -> tuple[subprocess.Popen, str]:
    """`python app.py --mode survey` on a free loopback port; returns the process and its URL once it answers."""
    port = _free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "XDG_CACHE_HOME": str(workdir / "cache")}
    env.pop("SURVEY_ADMIN_PASSWORD", None)
    # The load generator plays a proxy on this machine naming each participant's address in X-Forwarded-For.
    command = [sys.executable, str(ROOT / "app.py"), "--mode", "survey", "--host", "127.0.0.1", "--port", str(port), "--db", db_url,
               "--trusted-proxies", "127.0.0.1"]  # fmt: skip
    with open(workdir / "app.log", "w") as log:
        process = subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_page(process, url, workdir / "app.log", timeout_s=120)
    except (RuntimeError, TimeoutError):
        stop_app(process)
        raise
    return process, url


def stop_app(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# -- participants --------------------------------------------------------------------------------


class CallFailed(Exception):
    pass


async def call(client, url: str, endpoint: str, data: list, address: str, session: str) -> list:
    """One event of the app's API, as a browser's button sends it (no queue, its page's session); its outputs."""
    response = await client.post(
        f"{url}gradio_api/run/{endpoint}",
        json={"data": data, "session_hash": session},
        headers={"X-Forwarded-For": address, "Accept-Encoding": ACCEPT_ENCODING},
    )
    if response.status_code != 200:
        try:
            message = response.json().get("error")
        except ValueError:
            message = None
        raise CallFailed(f"{endpoint}: HTTP {response.status_code}: {str(message or response.text)[:200]}")
    return response.json()["data"]


async def participant(client, url: str, study: str, number: int, scenario: Scenario, outcome: Outcome, *, rng: random.Random) -> None:
    """One participant from consent to the thank-you screen; answers at random."""
    address = f"10.{number // 65536 % 256}.{number // 256 % 256}.{number % 256 + 1}"
    session = f"load{number:05d}{rng.getrandbits(40):010x}"
    began = time.perf_counter()
    tokens, screen, _ = await call(client, url, "survey_consent", [study, {}], address, session)
    outcome.start_s.append(time.perf_counter() - began)
    outcome.admitted += 1
    tokens, screen, _ = await call(client, url, "survey_next", [study, tokens], address, session)
    while screen["screen"] in ("trial", "feedback"):
        if screen["screen"] == "feedback":
            tokens, screen, _ = await call(client, url, "survey_next", [study, tokens], address, session)
            continue
        if scenario.think_s:
            await asyncio.sleep(scenario.think_s)
        sent = time.perf_counter()
        # gr.api's one output: (tokens, screen, html)
        (tokens, screen, html), = await call(client, url, "survey_answer", [study, tokens, screen, rng.choice(screen["choices"])], address, session)
        outcome.answer_s.append(time.perf_counter() - sent)
        if screen["screen"] == "trial" and "data:image/png;base64," not in html:
            raise CallFailed("a trial came without its images")
    if screen["screen"] != "done":
        raise CallFailed(f"ended on the {screen['screen']!r} screen: {screen.get('message', '')[:200]}")
    outcome.finished += 1


async def run_scenario(url: str, scenario: Scenario, *, study: str = STUDY, seed: int = 0) -> tuple[Outcome, float]:
    """All participants of `scenario`; returns what they met and the wall time."""
    import httpx

    if not 1 <= scenario.participants <= MAX_PARTICIPANTS:
        raise ValueError(f"A scenario has 1 to {MAX_PARTICIPANTS} participants.")
    if not url.startswith(("http://127.0.0.1:", "http://localhost:")):
        raise ValueError("The load benchmark talks to a server on this machine's loopback only.")
    outcome = Outcome()
    # Idle connections are dropped after 1 s, well before the server's 5 s (uvicorn): a request sent
    # on a connection the server is closing fails, and browsers retry those, httpx does not.
    limits = httpx.Limits(
        max_connections=scenario.participants + 8, max_keepalive_connections=scenario.participants + 8, keepalive_expiry=1.0
    )
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(120.0)) as client:

        async def arrive(number: int) -> None:
            delay = scenario.arrival_s * number / max(1, scenario.participants - 1)
            await asyncio.sleep(delay)
            try:
                await participant(client, url, study, number, scenario, outcome, rng=random.Random(seed * 100_000 + number))
            except Exception as error:  # noqa: BLE001 - whatever went wrong is reported, not raised
                outcome.errors.append(f"participant {number}: {type(error).__name__}: {error}")

        began = time.perf_counter()
        tasks = [asyncio.ensure_future(arrive(number)) for number in range(scenario.participants)]
        done, pending = await asyncio.wait(tasks, timeout=scenario.time_limit_s)
        for task in pending:
            task.cancel()
        if pending:
            outcome.errors.append(f"{len(pending)} participants had not finished after the {scenario.time_limit_s:.0f} s limit")
        wall = time.perf_counter() - began
    return outcome, wall


# -- figures -------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14 and 15)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def summary(scenario: Scenario, outcome: Outcome, wall_s: float, server_cpu_s: float) -> dict:
    answers = outcome.answer_s
    return {
        "server_cpu_ms_per_answer": round(1000 * server_cpu_s / len(answers), 1) if answers else None,
        "scenario": asdict(scenario),
        "admitted": outcome.admitted,
        "finished": outcome.finished,
        "errors": outcome.errors[:20],
        "error_count": len(outcome.errors),
        "answers": len(answers),
        "answer_p50_ms": round(1000 * percentile(answers, 50), 1),
        "answer_p95_ms": round(1000 * percentile(answers, 95), 1),
        "answer_max_ms": round(1000 * max(answers), 1) if answers else None,
        "start_p95_ms": round(1000 * percentile(outcome.start_s, 95), 1),
        "wall_s": round(wall_s, 2),
        "answers_per_s": round(len(answers) / wall_s, 1) if wall_s else None,
    }


def markdown(record: dict) -> str:
    machine = record["machine"]
    lines = [
        "# Study load benchmark",
        "",
        f"`{record['command']}` on {machine['cpu']} ({machine['cpus']} CPUs), Python {machine['python']}, "
        f"Gradio {machine['gradio']}, {record['database']}; {record['when']}. Load average (1 min) before "
        f"{machine['load_before']:.2f}, after {machine['load_after']:.2f}. Server and load generator share the machine."
        + (f" {machine['note']}" if machine.get("note") else ""),
        "",
        "| scenario | participants | admitted | finished | answers | p50 per answer | p95 per answer | max | answers/s | server CPU per answer | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in record["results"]:
        s = row["scenario"]
        lines.append(
            f"| {s['name']} (arrivals over {s['arrival_s']:g} s, answer {s['think_s']:g} s after each trial) | {s['participants']} "
            f"| {row['admitted']} | {row['finished']} | {row['answers']} | {row['answer_p50_ms']:.0f} ms | {row['answer_p95_ms']:.0f} ms "
            f"| {row['answer_max_ms']:.0f} ms | {row['answers_per_s']} | {row['server_cpu_ms_per_answer']} ms | {row['error_count']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "survey-load")
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="default: all, in turn")
    parser.add_argument("--note", default="", help="what else the machine was doing (written into the results)")
    args = parser.parse_args(argv)
    from importlib.metadata import version

    scenarios = [SCENARIOS[name] for name in (args.scenario or list(SCENARIOS))]
    load_before = os.getloadavg()[0]
    results = []
    with tempfile.TemporaryDirectory(prefix="survey-load-") as folder:
        workdir = Path(folder)
        for number, scenario in enumerate(scenarios):
            db_url = f"sqlite:///{workdir / f'load-{number}.sqlite'}"
            build_load_study(db_url)
            process, url = start_app(workdir, db_url)
            try:
                cpu_before = cpu_seconds(process.pid)
                outcome, wall = asyncio.run(run_scenario(url, scenario))
                cpu = cpu_seconds(process.pid) - cpu_before
            finally:
                stop_app(process)
            results.append(summary(scenario, outcome, wall, cpu))
            print(json.dumps(results[-1]), flush=True)
    record = {
        "command": "python scripts/bench_survey_load.py" + "".join(f" --scenario {s.name}" for s in scenarios if args.scenario),
        "when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "database": "SQLite (WAL) in a temporary folder",
        "study": "40 synthetic photos at 256 px, methods gray and warm, 3 practice + 20 test trials (2 catch), 1 s exposure",
        "machine": {
            "cpu": _cpu_model(),
            "cpus": len(os.sched_getaffinity(0)),
            "python": platform.python_version(),
            "gradio": version("gradio"),
            "load_before": load_before,
            "load_after": os.getloadavg()[0],
            "note": args.note,
        },
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "load.json").write_text(json.dumps(record, indent=2) + "\n")
    (args.out / "load.md").write_text(markdown(record))
    print(markdown(record))
    return 0 if all(r["finished"] == r["scenario"]["participants"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
