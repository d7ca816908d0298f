"""Building studies and planning trials: the protocol rules, anonymised stimuli, and the CLIs.

Studies are built from a handful of tiny images written to a temporary folder, with the gray
baseline (no torch); the untrained baseline and the demo run the real `colorize` generator.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, PngImagePlugin
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from survey import SurveyError, settings
from survey.admin import main as admin_main
from survey.build import MethodSpec, build_study, find_source_images, load_method, load_source_images, main as build_main
from survey.models import Stimulus
from colorize.pixels import gray_image
from survey.stimuli import encode_png, png_chunk_types, square_crop
from survey.store import Store
from survey.study import Protocol, fit_protocol, image_groups, plan_trials

REPO = Path(__file__).resolve().parents[1]
SIZE = 32


def colourful(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    base = rng.integers(0, 256, 3)
    pixels = base + 80 * np.stack([np.sin(xx / 7 + i) * np.cos(yy / 5 - i) for i in range(3)], axis=-1)
    return np.clip(pixels, 0, 255).astype(np.uint8)


@pytest.fixture
def photo_folder(tmp_path) -> Path:
    """Seven photos of mixed formats, sizes and metadata, plus one broken file."""
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(4):
        exif = Image.Exif()
        exif[0x010E] = "made with gray"  # ImageDescription: must not reach the stimuli
        Image.fromarray(colourful(rng, 40 + 10 * i, 60)).save(folder / f"jpeg{i}.jpg", quality=90, exif=exif)
    text = PngImagePlugin.PngInfo()
    text.add_text("Comment", "real photo, method=gray")
    Image.fromarray(colourful(rng, 50, 50)).save(folder / "sub" / "tagged.png", pnginfo=text, dpi=(300, 300))
    Image.fromarray(colourful(rng, 48, 36)).convert("RGBA").save(folder / "sub" / "alpha.png")
    Image.fromarray(colourful(rng, 45, 45)).convert("L").save(folder / "grayscale.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return folder


def stored_stimuli(url: str) -> list[Stimulus]:
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            return list(session.scalars(select(Stimulus)))
    finally:
        engine.dispose()


def run_module(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=300)


# -- trial plans ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["pair", "single"])
def test_plans_balance_sides_methods_and_images_over_thirty_participants(mode):
    protocol = Protocol(mode=mode, practice_trials=3, test_trials=20, catch_rate=0.1)
    keys = [f"img{i}" for i in range(30)]
    methods = ["zhang", "pix2pix", "gray"]
    plans = [plan_trials(protocol, image_keys=keys, methods=methods, ordinal=p) for p in range(30)]
    totals: Counter = Counter()
    for plan in plans:
        assert len(plan) == 23 and [t.position for t in plan] == list(range(23))
        assert len({t.image_key for t in plan}) == 23  # no image twice
        assert [t.phase for t in plan[:3]] == ["practice"] * 3
        assert sum(t.phase == "catch" for t in plan) == 2 and all(t.method == "catch" for t in plan if t.phase == "catch")
        test = Counter(t.method for t in plan if t.phase == "test")
        if mode == "pair":
            assert abs(sum(t.real_side == "left" for t in plan) - 23 / 2) <= 1
            assert abs(sum(t.real_side == "left" for t in plan if t.phase != "practice") - 10) <= 1
        else:
            assert all(t.real_side is None for t in plan)
            assert abs(test.pop("real") - 9) <= 1  # half of the 18 non-catch test trials
        assert set(test) == set(methods) and max(test.values()) - min(test.values()) <= 1
        totals.update(test)
    assert max(totals.values()) - min(totals.values()) <= 1
    assert len({tuple(t.image_key for t in plan) for plan in plans}) == 30  # orders differ


def test_plans_are_reproducible_and_catch_trials_use_catchable_images():
    protocol = Protocol(test_trials=10, catch_rate=0.3, practice_trials=0)
    keys = [f"img{i}" for i in range(12)]
    first = plan_trials(protocol, image_keys=keys, methods=["a"], ordinal=4, catch_keys=["img3", "img7"])
    assert first == plan_trials(protocol, image_keys=keys, methods=["a"], ordinal=4, catch_keys=["img3", "img7"])
    catch = [t.image_key for t in first if t.phase == "catch"]
    assert sorted(catch) == ["img3", "img7"]  # 3 wanted, only 2 images make good catch fakes


@pytest.mark.parametrize("mode", ["pair", "single"])
def test_one_method_per_image_ties_each_photo_to_one_condition_for_everyone(mode):
    protocol = Protocol(mode=mode, practice_trials=2, test_trials=12, catch_rate=0.1, one_method_per_image=True)
    keys = [f"img{i:02d}" for i in range(40)]
    methods = ["zhang", "gray"]
    groups = image_groups(protocol, image_keys=keys, methods=methods)
    assert sorted(k for group in groups.values() for k in group) == keys  # every photo in exactly one group
    assert len(groups["catch"]) == 4  # the catch rate's share of the photos serves catch trials only
    if mode == "single":
        assert len(groups["real"]) == len(groups["zhang"]) + len(groups["gray"])  # half the photos are shown real
    condition_of = {key: condition for condition, group in groups.items() for key in group}
    totals: Counter = Counter()
    for ordinal in range(24):
        for slot in (ordinal, ordinal + 1):  # the slot the store gives does not matter for the practice trials
            plan = plan_trials(protocol, image_keys=keys, methods=methods, ordinal=ordinal, rotation=slot)
            assert len(plan) == 14 and len({t.image_key for t in plan}) == 14
            assert all(condition_of[t.image_key] == t.method for t in plan)  # the photo's one condition, always
        test = Counter(t.method for t in plan if t.phase == "test")
        assert sum(t.phase == "catch" for t in plan) == 1
        if mode == "single":
            assert abs(test.pop("real") - 11 / 2) <= 1  # half of the 11 non-catch test trials show a real photo
        assert max(test.values()) - min(test.values()) <= 1
        totals.update(test)
    assert abs(totals["zhang"] - totals["gray"]) <= 1
    practice = [[t for t in plan_trials(protocol, image_keys=keys, methods=methods, ordinal=3, rotation=r) if t.phase == "practice"]
                for r in (0, 1)]  # fmt: skip
    assert practice[0] == practice[1]


def test_one_method_per_image_clips_to_the_smallest_group_and_says_so():
    protocol = Protocol(practice_trials=3, test_trials=30, catch_rate=0.1, one_method_per_image=True)
    keys = [f"img{i}" for i in range(30)]
    fitted, message = fit_protocol(protocol, image_keys=keys, methods=["a", "b", "c"])
    # 3 photos for catch trials, 9 per method: 1 practice trial and 24 non-catch test trials take 9 of one method
    assert (fitted.practice_trials, fitted.test_trials, fitted.catch_trials) == (1, 27, 3)
    assert message.startswith("Only 30 images are available for one method per image, so each participant gets 1 practice")
    for ordinal in range(6):
        assert len(plan_trials(fitted, image_keys=keys, methods=["a", "b", "c"], ordinal=ordinal)) == fitted.images_needed
    assert fit_protocol(dataclasses.replace(protocol, test_trials=10), image_keys=keys, methods=["a", "b", "c"])[1] is None
    with pytest.raises(SurveyError, match="too few to give each of 3 conditions"):
        fit_protocol(protocol, image_keys=keys[:2], methods=["a", "b", "c"])


def test_protocol_rejects_bad_settings_and_clips_to_the_images_available():
    for bad in ({"mode": "triple"}, {"test_trials": 0}, {"catch_rate": 0.7}, {"exposure_ms": -5}, {"practice_trials": -1}):
        with pytest.raises(SurveyError):
            Protocol(**bad)
    protocol = Protocol(practice_trials=3, test_trials=20)
    assert protocol.catch_trials == 2 and protocol.fitted(40) == (protocol, None)
    clipped, message = protocol.fitted(6)
    assert (clipped.practice_trials, clipped.test_trials) == (1, 5) and "Only 6 images" in message
    with pytest.raises(SurveyError, match="no images"):
        protocol.fitted(0)
    assert Protocol.from_dict({**protocol.to_dict(), "from_a_newer_version": 1}) == protocol
    assert "1 second" in Protocol().instructions and "3 trials are practice" in Protocol().instructions


# -- stimuli ---------------------------------------------------------------------------------


def test_encoding_strips_metadata_and_gives_every_stimulus_the_same_bytes_layout():
    rng = np.random.default_rng(1)
    photo = Image.fromarray(colourful(rng, 64, 64))
    photo.info["dpi"] = (300, 300)
    photo.info["icc_profile"] = b"fake profile"
    noisy = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    encoded = [encode_png(image) for image in (photo, gray_image(photo), noisy, Image.new("RGB", (64, 64)))]
    assert len({len(data) for data in encoded}) == 1  # the file size says nothing about the content
    for data in encoded:
        assert set(png_chunk_types(data)) == {"IHDR", "IDAT", "IEND"}
        reopened = Image.open(io.BytesIO(data))
        assert (reopened.format, reopened.mode, reopened.size, reopened.info) == ("PNG", "RGB", (64, 64), {})
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(encoded[0]))), np.asarray(photo))


# -- building a study ------------------------------------------------------------------------


@pytest.mark.slow
def test_build_cli_makes_an_anonymised_study(photo_folder, tmp_path):
    url = f"sqlite:///{tmp_path / 'study.sqlite'}"
    done = run_module(
        "survey.build", "--name", "birds", "--images", str(photo_folder), "--baseline", "gray", "--db", url,
        "--size", str(SIZE), "--practice", "1", "--trials", "5", "--catch-rate", "0.2",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "broken.jpg" in done.stderr  # skipped, with a warning
    assert "Built study 'birds'" in done.stdout

    stimuli = stored_stimuli(url)
    keys = {s.image_key for s in stimuli}
    assert keys == {"jpeg0.jpg", "jpeg1.jpg", "jpeg2.jpg", "jpeg3.jpg", "sub/tagged.png", "sub/alpha.png", "grayscale.png"}
    by_method = Counter(s.method for s in stimuli)
    assert by_method["real"] == 7 and by_method["gray"] == 7
    # One photo set aside for practice (its stimuli all in that pool); catch fakes only for test photos with colour.
    pools = {s.image_key: s.pool for s in stimuli}
    assert sorted(pools.values()).count("practice") == 1 and all(s.pool == pools[s.image_key] for s in stimuli)
    catch = {s.image_key for s in stimuli if s.method == "catch"}
    assert catch == {key for key, pool in pools.items() if pool == "test" and key != "grayscale.png"}

    assert len({len(s.png) for s in stimuli}) == 1
    assert len({s.id for s in stimuli}) == len(stimuli)
    for stimulus in stimuli:
        assert re.fullmatch(r"[0-9a-f]{32}", stimulus.id)
        image = Image.open(io.BytesIO(stimulus.png))
        assert (image.format, image.mode, image.size, image.info) == ("PNG", "RGB", (SIZE, SIZE), {})
        assert set(png_chunk_types(stimulus.png)) == {"IHDR", "IDAT", "IEND"}
        for giveaway in (b"gray", b"real", b"method", b"jpeg", b"Exif"):
            assert giveaway not in stimulus.png
        assert stimulus.sha256 == hashlib.sha256(stimulus.png).hexdigest()

    # The real stimulus is the centred square of the photo; the gray fake has its lightness.
    real = next(s for s in stimuli if s.image_key == "jpeg2.jpg" and s.method == "real")
    fake = next(s for s in stimuli if s.image_key == "jpeg2.jpg" and s.method == "gray")
    expected = square_crop(Image.open(photo_folder / "jpeg2.jpg"), SIZE)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(real.png))), np.asarray(expected))
    assert np.abs(
        np.asarray(Image.open(io.BytesIO(fake.png)), dtype=int) - np.asarray(gray_image(expected), dtype=int)
    ).max() == 0

    protocol = Store(url).get_protocol("birds")
    assert (protocol.image_size, protocol.practice_trials, protocol.test_trials, protocol.catch_trials) == (SIZE, 1, 5, 1)


def test_build_cli_refuses_bad_input_with_one_sentence(photo_folder, tmp_path):
    url = f"sqlite:///{tmp_path / 'study.sqlite'}"
    with pytest.raises(SystemExit, match="There is no folder"):
        build_main(["--name", "x", "--images", str(tmp_path / "nowhere"), "--baseline", "gray", "--db", url])
    with pytest.raises(SystemExit, match="at least one method"):
        build_main(["--name", "x", "--images", str(photo_folder), "--db", url])
    with pytest.raises(SystemExit, match="at least one test trial"):
        build_main(["--name", "x", "--images", str(photo_folder), "--baseline", "gray", "--db", url, "--trials", "0"])
    build_main(["--name", "x", "--images", str(photo_folder), "--baseline", "gray", "--db", url, "--size", "16"])
    with pytest.raises(SystemExit, match="already exists"):
        build_main(["--name", "x", "--images", str(photo_folder), "--baseline", "gray", "--db", url, "--size", "16"])
    assert [s.name for s in Store(url).list_studies()] == ["x"]


def test_too_few_images_clip_the_trials_and_say_so(photo_folder, tmp_path, caplog):
    store = Store(f"sqlite:///{tmp_path / 'study.sqlite'}")
    sources = load_source_images(find_source_images(photo_folder), max_images=3, seed=1)
    assert len(sources) == 3
    with caplog.at_level("WARNING"):
        summary = build_study(
            store, name="few", sources=sources, makers={"gray": load_method(MethodSpec("gray", "gray"))},
            protocol=Protocol(image_size=SIZE, one_method_per_image=False), progress=False,
        )  # fmt: skip
    assert summary.images == 3 and "Only 3 images" in caplog.text
    token = store.start_participant("few")
    store.consent(token)
    served = 0
    while (trial := store.next_trial(token)) is not None:
        store.answer(token, trial.trial_id, "left")
        served += 1
    assert served == 3


def test_untrained_baseline_builds_through_colorize(photo_folder, tmp_path):
    colorize = pytest.importorskip("colorize")
    try:
        colorize.Colorizer
    except (ImportError, AttributeError):
        pytest.skip("colorize.Colorizer is not available yet")
    store = Store(f"sqlite:///{tmp_path / 'study.sqlite'}")
    sources = load_source_images(find_source_images(photo_folder), max_images=4)
    makers = {spec.name: load_method(spec) for spec in (MethodSpec("untrained", "untrained"), MethodSpec("gray", "gray"))}
    summary = build_study(store, name="u", sources=sources, makers=makers, protocol=Protocol(image_size=SIZE), progress=False)
    assert summary.methods == ("gray", "untrained")
    with pytest.raises(SurveyError):
        load_method(MethodSpec("missing", "model", tmp_path / "no-such-checkpoint"))


def test_demo_is_created_once(tmp_path, capsys):
    colorize = pytest.importorskip("colorize")
    try:
        colorize.Colorizer
    except (ImportError, AttributeError):
        pytest.skip("colorize.Colorizer is not available yet")
    from survey.demo import main as demo_main

    url = f"sqlite:///{tmp_path / 'demo.sqlite'}"
    assert demo_main(["--db", url]) == 0
    assert "Created the study 'demo'" in capsys.readouterr().out
    assert demo_main(["--db", url]) == 0
    assert "already exists" in capsys.readouterr().out
    (demo,) = Store(url).list_studies()
    assert demo.name == "demo" and demo.images == 5
    assert "gray" in demo.methods and ({"shipped", "untrained"} & set(demo.methods))


# -- admin, settings, and staying torch-free ---------------------------------------------------


@pytest.mark.slow
def test_admin_cli_shows_status_and_exports_csv(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'study.sqlite'}"
    store = Store(url)
    rng = np.random.default_rng(2)
    sources = [(f"p{i}", Image.fromarray(colourful(rng, 40, 40))) for i in range(6)]
    build_study(store, name="pilot", sources=sources, makers={"gray": gray_image},
                protocol=Protocol(image_size=SIZE, practice_trials=1, test_trials=4), progress=False)  # fmt: skip
    token = store.start_participant("pilot")
    store.consent(token)
    for _ in range(3):
        trial = store.next_trial(token)
        store.answer(token, trial.trial_id, "right")

    status = run_module("survey.admin", "--db", url, "status", "--study", "pilot")
    assert status.returncode == 0, status.stderr
    assert "1 started, 1 consented, 0 finished" in status.stdout and "responses: 3 of 5" in status.stdout
    assert re.search(r"^gray\s+5\s+3\s+0$", status.stdout, re.M)  # 1 practice + 4 test trials (no catch at 4 x 0.1); nobody finished
    assert admin_main(["--db", url, "status"]) == 0
    assert re.search(r"^pilot\s+pair\s+6\s+gray\s+1\s+0", capsys.readouterr().out, re.M)

    out = tmp_path / "pilot.csv"
    export = run_module("survey.admin", "--db", url, "export", "--study", "pilot", "--out", str(out))
    assert export.returncode == 0 and "Wrote 3 responses" in export.stdout
    frame = pd.read_csv(out)
    assert len(frame) == 3 and set(frame["choice"]) == {"right"}

    with pytest.raises(SystemExit) as missing:
        admin_main(["--db", url, "status", "--study", "nope"])
    assert str(missing.value) == "error: There is no study called 'nope'."


def test_settings_choose_the_database_and_guard_the_admin(monkeypatch, tmp_path):
    monkeypatch.delenv("SURVEY_DB_URL", raising=False)
    monkeypatch.setattr(settings, "PERSISTENT_DIR", tmp_path / "absent")
    assert settings.database_url() == "sqlite:///survey.sqlite"
    monkeypatch.setattr(settings, "PERSISTENT_DIR", tmp_path)
    assert settings.database_url() == f"sqlite:///{tmp_path / 'survey.sqlite'}"
    monkeypatch.setenv("SURVEY_DB_URL", "postgresql+psycopg://u@h/db")
    assert settings.database_url() == "postgresql+psycopg://u@h/db"
    assert settings.database_url("sqlite:///x.sqlite") == "sqlite:///x.sqlite"

    monkeypatch.delenv("SURVEY_ADMIN_PASSWORD", raising=False)
    assert settings.admin_password() is None and not settings.check_admin("") and not settings.check_admin("x")
    monkeypatch.setenv("SURVEY_ADMIN_PASSWORD", "")
    assert settings.admin_password() is None and not settings.check_admin("")
    monkeypatch.setenv("SURVEY_ADMIN_PASSWORD", "s3cret")
    assert settings.check_admin("s3cret") and not settings.check_admin("s3cre") and not settings.check_admin(None)


def test_survey_never_imports_torch():
    code = (
        "import sys\n"
        "import survey.store, survey.study, survey.settings, survey.admin, survey.models, survey.stimuli\n"
        "import survey.build, survey.demo\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


# -- issue 26 item 6: hinted fakes; issue 27: practice photos of their own ----------------------------


@pytest.fixture(scope="module")
def hint_model(tmp_path_factory) -> Path:
    """A tiny untrained generator that takes colour hints, saved as a checkpoint folder."""
    from colorize.checkpoint import save_model
    from colorize.models import ModelConfig, build_generator

    config = ModelConfig(hints=True, base_channels=8, max_channels=16, depth=5, dropout=0.0)
    return save_model(tmp_path_factory.mktemp("models") / "hinter", build_generator(config), config)


def test_a_hinted_method_colours_each_photo_with_seeded_hints_from_the_real_photo_recorded_with_its_fake(photo_folder, hint_model, tmp_path):
    from colorize import Colorizer
    from colorize.hints import parse_hints, simulate_user_hints
    from survey.build import hint_seed, method_specs
    from survey.report import method_descriptions

    specs = method_specs([f"{hint_model}+hints:3", str(hint_model)])
    assert [(s.name, s.hints) for s in specs] == [("hinter+hints:3", 3), ("hinter", 0)]
    store = Store(f"sqlite:///{tmp_path / 'study.sqlite'}")
    protocol = Protocol(image_size=SIZE, practice_trials=1, test_trials=4, seed=7)
    sources = load_source_images(find_source_images(photo_folder))
    build_study(store, name="clicks", sources=sources, makers={s.name: load_method(s, seed=7) for s in specs}, protocol=protocol, progress=False)

    records = store.stimulus_records("clicks").set_index(["image_key", "method"])
    colorizer = Colorizer.from_pretrained(hint_model)
    for key, photo in sources[:3]:
        record = records.loc[(key, "hinter+hints:3"), "record"]
        assert record["hints"] == 3 and record["model"] == "hinter" and record["checkpoint"] == str(hint_model.resolve())
        assert record["hint_seed"] == hint_seed(7, key) and len(record["hint_points"]) == 3
        # the hints are those the library simulates from the real photo with that seed, and they made the stored fake
        real = square_crop(photo, SIZE)
        hints = parse_hints(record["hint_points"])
        assert hints == simulate_user_hints(real, 3, seed=hint_seed(7, key))
        stored = np.asarray(Image.open(io.BytesIO(store.stimulus_png("clicks", key, "hinter+hints:3"))))
        assert np.array_equal(stored, np.asarray(colorizer.colorize(gray_image(real), hints=hints)))
        unhinted = np.asarray(Image.open(io.BytesIO(store.stimulus_png("clicks", key, "hinter"))))
        assert not np.array_equal(stored, unhinted)  # the hints changed the colours
        assert records.loc[(key, "hinter"), "record"]["hints"] == 0 and "hint_points" not in records.loc[(key, "hinter"), "record"]
    described = method_descriptions(store.stimulus_records("clicks"), ["hinter", "hinter+hints:3"]).set_index("method")
    assert described.loc["hinter+hints:3", "hints per photo"].startswith("3 simulated from the real photo")
    assert described.loc["hinter", "hints per photo"] == "none" and described.loc["hinter", "model"] == "hinter"
    assert "render_size" in described.loc["hinter", "settings"]


def test_a_hinted_method_needs_a_model_that_takes_hints_and_says_so_when_the_study_is_built(photo_folder, tmp_path):
    from survey.build import method_specs

    from colorize.checkpoint import save_model
    from colorize.models import ModelConfig, build_generator

    url = f"sqlite:///{tmp_path / 'study.sqlite'}"
    config = ModelConfig(base_channels=4, depth=3, max_channels=8)
    plain = save_model(tmp_path / "plain", build_generator(config), config)
    with pytest.raises(SurveyError, match=r"^The model 'plain' takes no colour hints, so 'plain\+hints:10' cannot be built; use a model trained with --hints, or the model without '\+hints'.$"):
        load_method(method_specs([f"{plain}+hints:10"])[0])
    with pytest.raises(SystemExit, match="takes no colour hints"):
        build_main(["--name", "x", "--images", str(photo_folder), "--model", f"{plain}+hints:10", "--db", url, "--size", "16"])
    assert load_method(method_specs(["shipped+hints:10"])[0]).name == "shipped+hints:10"  # the shipped model pairs with a hint model
    assert Store(url).list_studies() == []
    for wrong in ("shipped+hints:0", "shipped+hints:100000"):
        with pytest.raises(SurveyError, match=r"hints; give 1 to 200 \(the model alone is 'shipped'\)"):
            method_specs([wrong])


def test_practice_photos_are_a_pool_of_their_own_never_shown_in_a_test_trial(photo_folder, tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'study.sqlite'}")
    sources = load_source_images(find_source_images(photo_folder))
    practice = [(f"practice/{key}", photo.rotate(90)) for key, photo in sources[:2]]
    protocol = Protocol(image_size=SIZE, practice_trials=2, test_trials=4, catch_rate=0.25, one_method_per_image=False)
    build_study(store, name="pools", sources=sources, practice_sources=practice, makers={"gray": gray_image}, protocol=protocol, progress=False)
    seen: dict[str, set[str]] = {"practice": set(), "test": set()}
    for _ in range(12):
        token = store.start_participant("pools")
        store.consent(token)
        while (trial := store.next_trial(token)) is not None:
            truth = store.trial_truth(trial.trial_id)
            seen["practice" if truth.phase == "practice" else "test"].add(truth.image_key)
            store.answer(token, trial.trial_id, "left")
    assert seen["practice"] == {key for key, _ in practice}
    assert not seen["practice"] & seen["test"] and len(seen["test"]) >= 6  # over 12 participations, never once

    # The builder refuses practice photos that are test photos, by name or by picture.
    for overlap, message in (([sources[0]], "is also a test photo"), ([("other-name.png", sources[1][1])], "is the test photo")):
        with pytest.raises(SurveyError, match=message):
            build_study(store, name="bad", sources=sources, practice_sources=overlap, makers={"gray": gray_image}, protocol=protocol, progress=False)
    # So does the store, for stimuli that put one image in both pools.
    from survey.store import StimulusImage

    real = square_crop(sources[0][1], SIZE)
    both = [StimulusImage("a", "real", real, "practice"), StimulusImage("a", "gray", gray_image(real), "test")]
    with pytest.raises(SurveyError, match="in both the practice and the test pool"):
        store.create_study("bad", protocol, both)
    assert [s.name for s in store.list_studies()] == ["pools"]
