"""`python -m colorize.bench`: run the way the lead runs it (here with --quick: tiny sizes)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from colorize import bench, fastpath

MODELS = {"shipped", "reference"}
TIMING = {"median_s", "p10_s", "p90_s", "iqr_s", "min_s", "n"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> tuple[dict, str, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("bench") / "nested" / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "colorize.bench", "--quick", "--compare-paths", "--huge", "--threads", "1", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(out.read_text()), out.with_suffix(".md").read_text(), result


@pytest.mark.slow
def test_quick_run_writes_json_with_every_section(quick_run):
    data, _, _ = quick_run
    assert data["schema"] == bench.SCHEMA_VERSION and data["quick"] is True
    assert {"latency", "network", "memory", "batch", "training", "paths", "wait_policy", "huge", "cuda", "targets", "environment", "models"} <= set(data)

    env = data["environment"]
    assert env["command"].startswith("python -m colorize.bench --quick")
    assert env["torch_threads"] == 1 and env["torch_version"]
    assert env["cpu"]["model"] and env["cpu"]["logical_cores"] >= 1 and "avx512_bf16" in env["cpu"]["flags"]
    assert len(env["load_average_start"]) == 3 and env["date_utc"].endswith("UTC")
    assert set(data["models"]) == MODELS
    assert data["models"]["reference"]["parameters"] > 4 * data["models"]["shipped"]["parameters"]

    sizes = {tuple(row["size"]) for row in data["latency"]}
    assert sizes == set(bench.QUICK_PLAN.sizes)
    for row in data["latency"] + data["network"]:
        assert set(row["models"]) == MODELS
        for stats in row["models"].values():
            assert TIMING <= set(stats) and 0 < stats["p10_s"] <= stats["median_s"] <= stats["p90_s"]
        ratio = row["models"]["reference"]["median_s"] / row["models"]["shipped"]["median_s"]
        assert row["speedup_vs_reference"] == pytest.approx(ratio)
        assert len(row["load_before"]) == 3 and all(load >= 0 for load in row["load_before"])  # 1, 5, 15 min averages

    for row in data["memory"]:
        for label in MODELS:
            case = row["models"][label]
            assert case["ok"], case
            assert case["peak_mib"] >= case["baseline_mib"] > 0 and case["extra_mib"] >= 0

    batch = data["batch"]
    assert batch["images"] == bench.QUICK_PLAN.batch_images
    assert all(m["images_per_s"] > 0 and m["cpu_utilisation"] > 0 for m in batch["models"].values())
    assert [row["size"] for row in data["training"]] == list(bench.QUICK_PLAN.train_sizes)
    assert all(m["images_per_s"] > 0 for row in data["training"] for m in row["models"].values())

    assert data["cuda"] == {"skipped": "no CUDA device"} or "batched_inference" in data["cuda"]
    assert data["targets"] == []  # targets are for the full sizes only


@pytest.mark.slow
def test_model_own_render_size_rows_and_the_split_of_one_call(quick_run):
    data = quick_run[0]
    own = [row for row in data["latency"] if row["render_size"] is None]
    assert len(own) == len(bench.QUICK_PLAN.sizes)
    assert all(row["render_sizes"]["reference"] == 256 for row in own)  # pix2pix at its native size
    assert all(row["render_sizes"]["shipped"] == data["split"][0]["settings"]["render_size"] for row in own)
    assert any(row["render_size"] is None for row in data["memory"])

    (split,) = data["split"]
    stages = split["stages"]
    assert {"end to end", "end to end, torch kernel", "network (predict_ab)", "full resolution (compose, torch)"} <= set(stages)
    network = stages["network (predict_ab)"]["median_s"]
    expected = (stages["end to end"]["median_s"] - network) * 1000 / (160 * 120 / 1e6)
    assert split["around_network_ms_per_mp"] == pytest.approx(expected)
    reference = stages[bench.REFERENCE_EAGER_STAGE]["median_s"]
    assert split["speedup_vs_reference_network"] == pytest.approx(reference / stages["end to end"]["median_s"])
    fast = stages[bench.REFERENCE_FAST_STAGE]["median_s"]
    assert split["speedup_vs_reference_network_fast_path"] == pytest.approx(fast / stages["end to end"]["median_s"])
    assert split["kernel"] in ("numba", "torch")

    (png,) = data["png"]
    assert set(png["writers"]) == set(bench.PNG_WRITERS)
    assert all(w["bytes"] > 0 and w["median_s"] > 0 for w in png["writers"].values())


@pytest.mark.slow
def test_compare_paths_measures_every_path_and_names_the_fastest_exact_one(quick_run):
    paths = quick_run[0]["paths"]
    rows = {row["path"]: row for row in paths["paths"]}
    assert any(name.startswith("eager fp32, contiguous") for name in rows)
    folded = rows["BN folded, channels_last"]
    assert folded["status"] == "ok" and folded["max_abs_ab_error_lab"] < 1e-3 and folded["network"]["median_s"] > 0
    bf16 = next(row for name, row in rows.items() if name.startswith("bf16"))
    assert bf16["status"] == "ok" and 0 < bf16["max_abs_ab_error_lab"] < fastpath.BF16_MAX_AB_ERROR_LAB  # not exact
    assert next(row for name, row in rows.items() if name.startswith("torch.compile"))["status"] == "skipped"
    assert paths["auto_uses"] == fastpath.choose_path("auto", "cpu")
    onnx = rows["ONNX Runtime (BN folded graph)"]
    assert onnx["status"] == "ok" and onnx["max_abs_ab_error_lab"] < 1e-3
    for key in ("fastest_exact_path", "fastest_exact_path_any_preparation"):
        assert paths[key] in rows and rows[paths[key]]["max_abs_ab_error_lab"] < 1e-3
    assert rows[paths["fastest_exact_path"]]["prepare_s"] <= paths["max_prepare_s"]
    auto = f"auto (here: {fastpath.choose_path('auto', 'cpu')})"
    assert set(paths["end_to_end"]) >= {"fp32 eager, contiguous", auto, "BN folded, channels_last", "ONNX Runtime", "bf16 autocast"}
    (wait,) = quick_run[0]["wait_policy"]  # one size in --quick
    assert set(wait["policies"]) == set(bench.WAIT_POLICIES)
    assert all(m["median_s"] > 0 and m["runs"] == 1 and not m["errors"] for m in wait["policies"].values())


@pytest.mark.slow
def test_huge_images_work_or_are_refused_with_a_sentence(quick_run):
    huge = quick_run[0]["huge"]
    assert huge["largest_allowed"]["ok"]
    refused = huge["too_large"]
    assert not refused["ok"] and refused["refused_with_message"]
    assert "megapixels" in refused["error"]


@pytest.mark.slow
def test_markdown_report_and_printed_table(quick_run):
    data, markdown, process = quick_run
    assert data["environment"]["command"] in markdown
    assert data["environment"]["cpu"]["model"] in markdown and "Load average" in markdown
    assert "torch " + data["environment"]["torch_version"] in markdown
    for heading in ("End-to-end latency", "Where the time goes", "Writing the full-size PNG", "Network alone", "Peak memory", "Batch colorization", "Training", "Ways to run the network", "OpenMP wait policy", "Very large images"):
        assert heading in markdown
    assert "--quick run" in markdown
    assert "| 96x64 (0.01 MP) | 64 |" in process.stdout  # the table is printed too


def test_targets_are_checked_on_full_size_results():
    stats = lambda seconds: {"median_s": seconds, "p10_s": seconds, "p90_s": seconds, "iqr_s": 0.0, "min_s": seconds, "n": 1}
    result = {
        "quick": False,
        "latency": [
            {"size": [1024, 768], "render_size": 256, "models": {"shipped": stats(0.12), "reference": stats(0.48)}, "speedup_vs_reference": 4.0},
            {"size": [4000, 3000], "render_size": 256, "models": {"shipped": stats(1.8), "reference": stats(2.0)}, "speedup_vs_reference": 1.1},
        ],
        "network": [{"render_shape": [256, 352], "speedup_vs_reference": 5.0}],
        "memory": [
            {"size": [4000, 3000], "render_size": 256, "models": {"shipped": {"ok": True, "extra_mib": 300.0}}},
            {"size": [4000, 3000], "render_size": None, "models": {"shipped": {"ok": True, "extra_mib": 1300.0}}},
        ],
        "split": [
            {"size": [1024, 768], "stages": {"end to end": stats(0.030)}, "around_network_ms_per_mp": 19.0, "around_network_ms_per_mp_torch_kernel": 80.0, "speedup_vs_reference_network": 4.5},
            {"size": [4000, 3000], "stages": {"end to end": stats(0.310)}, "around_network_ms_per_mp": 21.0, "around_network_ms_per_mp_torch_kernel": 80.0, "speedup_vs_reference_network": 0.5},
        ],
        "huge": None,
    }
    checks = {check["target"]: check["met"] for check in bench.check_targets(result)}
    assert checks["1024x768 at render 256: median <= 150 ms"] is True
    assert checks["4000x3000 at render 256: median <= 1500 ms"] is False
    assert checks["1024x768 at render 256: >= 3x faster than the reference end to end"] is True
    assert checks["network alone at 256x352: >= 3x faster than the reference"] is True
    assert checks["4000x3000 at render 256: peak extra memory <= 1.5 GiB"] is True
    own = "the model's own render size"
    assert checks[f"1024x768 at {own}: full-resolution work around the network <= 20 ms per megapixel"] is True
    assert checks[f"4000x3000 at {own}: full-resolution work around the network <= 20 ms per megapixel"] is False
    assert checks[f"1024x768 at {own}: end to end <= 35 ms"] is True
    assert checks[f"4000x3000 at {own}: end to end <= 300 ms"] is False
    assert checks[f"1024x768 end to end at {own}: >= 4x faster than the reference U-Net's forward pass alone at 256x256 (eager fp32, as pix2pix runs it)"] is True
    assert checks[f"4000x3000 at {own}: peak extra memory <= 1 GiB"] is False


def test_bad_arguments_exit_2_with_a_sentence(tmp_path, capsys):
    assert bench.main(["--repeats", "0", "--out", str(tmp_path / "b.json")]) == 2
    assert bench.main(["--model", str(tmp_path / "missing"), "--out", str(tmp_path / "b.json")]) == 2
    err = capsys.readouterr().err
    assert "--repeats" in err and "not a checkpoint folder" in err
    assert not (tmp_path / "b.json").exists()


def test_summary_statistics():
    stats = bench.summarize([0.1, 0.2, 0.3, 0.4, 10.0])
    assert stats["median_s"] == pytest.approx(0.3) and stats["min_s"] == pytest.approx(0.1) and stats["n"] == 5
    assert stats["p10_s"] < stats["median_s"] < stats["p90_s"] and stats["iqr_s"] == pytest.approx(0.2)
    calls = []
    times = bench.time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warm-up, then A B / B A / A B
    assert [(len(v.wall), len(v.cpu)) for v in times.values()] == [(3, 3), (3, 3)]
    assert "cpu_median_s" in bench.summarize(times["a"])


def test_busy_machine_detection_discounts_the_benchmarks_own_threads():
    def result(start: float, during: float, threads: int = 2) -> dict:
        env = {"cpu": {"logical_cores": 2}, "torch_threads": threads, "busy_at_start": start > 1.0}
        rows = [{"load_before": [during, during, during]}]
        return {"environment": env, "latency": rows, "network": rows, "training": rows}

    assert not bench.machine_was_busy(result(0.3, 1.9))  # our own two threads
    assert bench.machine_was_busy(result(0.3, 4.5))  # a training run beside us
    assert bench.machine_was_busy(result(2.5, 2.0))  # busy before we started
    assert bench.machine_was_busy(result(0.3, 2.2, threads=1))


def test_the_reference_is_pix2pix_as_its_authors_run_it():
    reference = bench.reference_colorizer(precision="fp32")
    assert reference._fast is None  # eager PyTorch: the reference, no folding, no ONNX
    assert not reference.generator.pads_per_level  # unet_256 takes multiples of 256 only: padded whole
    assert reference.generator.padded_input_shape(256, 352) == (256, 512)
