"""Colour hints: parsing, mapping to the render size, hint images, the hint channels, simulated
hints, the edge-aware spread, Levin et al.'s baseline, suggestions, and the command line."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from colorize import Hint
from colorize.checkpoint import save_model
from colorize.hints import (
    HintError, colour_ab, encode_hints, hint_image_maps, hint_maps, hints_from_json, hints_to_json, lab_to_hex,
    parse_hints, read_hints_json, simulate_training_hints, simulate_user_hints,
)
from colorize.infer import Colorizer, main as infer_main
from colorize.models import ModelConfig, build_generator, load_generator_weights
from colorize.pixels import lab
from colorize.propagation import levin_colorize, reach_channel, spread_hints

TINY_HINTS = ModelConfig(hints=True, base_channels=8, max_channels=16, depth=4, dropout=0.0, noise_channels=2, noise_maps=False)


@pytest.fixture(scope="module")
def hint_model(tmp_path_factory, single_torch_thread):
    folder = tmp_path_factory.mktemp("hint-model")
    torch.manual_seed(0)
    save_model(folder, build_generator(TINY_HINTS), TINY_HINTS)
    return folder


@pytest.fixture(scope="module")
def plain_model(tmp_path_factory, single_torch_thread):
    folder = tmp_path_factory.mktemp("plain-model")
    config = ModelConfig(base_channels=8, max_channels=16, depth=4, dropout=0.0)
    torch.manual_seed(0)
    save_model(folder, build_generator(config), config)
    return folder


def two_regions(width: int = 96, height: int = 64) -> Image.Image:
    """A dark left half and a light right half: two flat regions split by a vertical edge."""
    pixels = np.full((height, width, 3), 200, np.uint8)
    pixels[:, : width // 2] = 60
    return Image.fromarray(pixels)


# -- parsing --------------------------------------------------------------------------------------


def test_hints_parse_from_objects_and_dicts_and_round_trip_through_json():
    hints = parse_hints([Hint(3, 4, "#FF0000", 2), {"x": 5.5, "y": 0, "color": "00ff00"}])
    assert hints == [Hint(3.0, 4.0, "#ff0000", 2.0), Hint(5.5, 0.0, "#00ff00", None)]
    assert hints_from_json(hints_to_json(hints)) == hints
    wrapped = hints_to_json(hints, image_size=(10, 8))
    assert json.loads(wrapped)["image_size"] == [10, 8] and hints_from_json(wrapped) == hints
    assert json.loads(hints_to_json(hints))[0] == {"x": 3, "y": 4, "color": "#ff0000", "radius": 2}


@pytest.mark.parametrize(
    "hints, words",
    [
        ([{"x": 1, "y": 2, "color": "red"}], "Hint 1: 'red' is not a colour"),
        ([{"x": 1, "y": 2, "color": "#12345"}], "is not a colour"),
        ([{"x": 1, "color": "#123456"}], "Hint 1 has no 'y'"),
        ([{"x": 1, "y": 2, "color": "#123456"}, {"x": "a", "y": 2, "color": "#123456"}], "Hint 2: 'x' must be a number"),
        ([{"x": 1, "y": 2, "color": "#123456", "size": 3}], "unknown field 'size'"),
        ([{"x": 1, "y": 2, "color": "#123456", "radius": -1}], "radius must be 0 or more"),
        ([{"x": float("nan"), "y": 2, "color": "#123456"}], "must be a number"),
        ([[1, 2]], "Hint 1 is not a point"),
        ({"x": 1}, "must be a list"),
        ("[]", "must be a list"),
    ],
)
def test_bad_hints_get_one_sentence_naming_the_hint(hints, words):
    with pytest.raises(HintError, match=words) as error:
        parse_hints(hints)
    assert "\n" not in str(error.value)


def test_hints_files_malformed_missing_or_of_the_wrong_shape(tmp_path):
    path = tmp_path / "photo.hints.json"
    path.write_text('[{"x": 1, "y": 2, "color": "#ff0000"}]')
    assert read_hints_json(path) == [Hint(1, 2, "#ff0000")]
    path.write_text('[{"x": 1, "y": 2, "color": "#ff0000"')
    with pytest.raises(HintError, match="is not valid JSON"):
        read_hints_json(path)
    path.write_text('{"points": []}')
    with pytest.raises(HintError, match="must hold a list of hints"):
        read_hints_json(path)
    with pytest.raises(HintError, match="There is no hints file"):
        read_hints_json(tmp_path / "missing.json")


# -- mapping to the render size -------------------------------------------------------------------


def test_hint_maps_scale_points_and_radii_to_the_render_shape_at_odd_sizes():
    image_size, shape = (101, 57), (32, 57)  # (w, h) of the photo; (h, w) the network sees
    ab, mask = hint_maps([Hint(100, 56, "#ff0000", 0), Hint(0, 0, "#0000ff", 20)], image_size, shape)
    assert mask[0, 0, 31, 56] == 1  # the far corner pixel, radius 0: exactly its pixel
    red = torch.tensor(colour_ab("#ff0000")) / 110
    assert torch.allclose(ab[0, :, 31, 56], red)
    # radius 20 photo pixels = 20 * 57 / 101 = 11.3 render columns and 20 * 32 / 57 = 11.2 rows
    rows, columns = torch.nonzero(mask[0, 0, :, :50], as_tuple=True)
    assert rows.max() == 11 and columns.max() == 11  # a disc, not a square: its corner is left out
    assert mask[0, 0, 0, 11] == 1 and mask[0, 0, 11, 0] == 1 and mask[0, 0, 8, 8] == 0


def test_a_later_hint_wins_where_two_overlap_and_outside_points_are_refused():
    ab, mask = hint_maps([Hint(10, 10, "#ff0000", 5), Hint(10, 10, "#00ff00", 2)], (20, 20), (20, 20))
    assert torch.allclose(ab[0, :, 10, 10], torch.tensor(colour_ab("#00ff00")) / 110)
    assert torch.allclose(ab[0, :, 10, 14], torch.tensor(colour_ab("#ff0000")) / 110)
    with pytest.raises(HintError, match=r"Hint 1 at \(20, 3\) is outside the photo, which is 20x20 pixels"):
        hint_maps([Hint(20, 3, "#ff0000")], (20, 20), (20, 20))


def test_hint_image_strokes_become_hints_and_bad_hint_images_are_refused(tmp_path):
    strokes = np.zeros((40, 60, 4), np.uint8)
    strokes[10:12, 5:55] = (255, 0, 0, 255)  # a thin red stroke, 2 px
    path = tmp_path / "strokes.png"
    Image.fromarray(strokes, "RGBA").save(path)
    ab, mask = hint_image_maps(path, (60, 40), (20, 30))
    assert mask[0, 0, 5, 2:28].all() and mask.sum() == mask[0, 0, 5].sum()  # the stroke survives at half size
    assert torch.allclose(ab[0, :, 5, 10], torch.tensor(colour_ab("#ff0000")) / 110, atol=1e-4)
    with pytest.raises(HintError, match="hint image is 60x40 pixels but the photo is 61x40"):
        hint_image_maps(path, (61, 40), (20, 30))
    Image.fromarray(strokes[..., :3]).save(tmp_path / "opaque.png")
    with pytest.raises(HintError, match="has no transparency"):
        hint_image_maps(tmp_path / "opaque.png", (60, 40), (20, 30))
    (tmp_path / "junk.png").write_bytes(b"not a picture")
    with pytest.raises(HintError, match="The hint image cannot be used"):
        hint_image_maps(tmp_path / "junk.png", (60, 40), (20, 30))


def test_hints_are_placed_in_the_upright_photo_of_an_exif_rotated_file(tmp_path, hint_model):
    raw = Image.fromarray(np.tile(np.linspace(0, 255, 40, dtype=np.uint8)[None, :, None], (20, 1, 3)))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to show: the upright photo is 20 wide, 40 tall
    path = tmp_path / "rotated.jpg"
    raw.save(path, exif=exif.tobytes())
    colorizer = Colorizer.from_pretrained(hint_model)
    assert colorizer.colorize(path, hints=[Hint(5, 35, "#ff0000")]).size == (20, 40)
    with pytest.raises(HintError, match="outside the photo, which is 20x40"):
        colorizer.colorize(path, hints=[Hint(35, 5, "#ff0000")])


# -- the hint channels and the generator -----------------------------------------------------------


def test_no_hints_is_the_automatic_colorizer_and_a_plain_model_starts_a_hint_model_unchanged(single_torch_thread):
    plain_config = ModelConfig(base_channels=8, max_channels=16, depth=4, dropout=0.0)
    torch.manual_seed(1)
    plain = build_generator(plain_config).eval()
    hinted = build_generator(ModelConfig(hints=True, base_channels=8, max_channels=16, depth=4, dropout=0.0)).eval()
    load_generator_weights(hinted, plain.state_dict())
    lightness = torch.rand(2, 1, 24, 40) * 2 - 1
    channels = encode_hints(lightness, torch.zeros(2, 2, 24, 40), torch.zeros(2, 1, 24, 40), propagation=True)
    assert channels.shape == (2, 6, 24, 40) and not channels.any()
    with torch.no_grad():
        assert torch.equal(plain(lightness), hinted(lightness))
        assert torch.equal(hinted(lightness), hinted(lightness, hints=channels))
        hinted.down[0][0].weight[:, 1:].fill_(0.5)
        assert not torch.equal(plain(lightness), hinted(lightness, hints=torch.ones_like(channels)))
    with pytest.raises(ValueError, match="takes no colour hints"):
        plain(lightness, hints=channels)


def test_a_model_without_hints_refuses_them_in_one_sentence(plain_model):
    colorizer = Colorizer.from_pretrained(plain_model)
    assert not colorizer.takes_hints
    photo = Image.fromarray(data.astronaut()).resize((64, 64))
    with pytest.raises(HintError, match="takes no colour hints; choose a model trained with --hints"):
        colorizer.colorize(photo, hints=[Hint(3, 3, "#ff0000")])
    assert np.array_equal(np.asarray(colorizer.colorize(photo, hints=[])), np.asarray(colorizer.colorize(photo)))


def test_library_batches_and_variations_give_the_same_hinted_colours(hint_model):
    colorizer = Colorizer.from_pretrained(hint_model)
    photo = Image.fromarray(data.astronaut()).resize((96, 80))
    hints = [Hint(40, 60, "#ff2200", 4), {"x": 80, "y": 10, "color": "#0044ff"}]
    alone = np.asarray(colorizer.colorize(photo, hints=hints))
    assert not np.array_equal(alone, np.asarray(colorizer.colorize(photo)))
    batch = colorizer.colorize_batch([photo, photo], hints=[hints, None])
    assert np.array_equal(np.asarray(batch[0]), alone)
    assert np.array_equal(np.asarray(batch[1]), np.asarray(colorizer.colorize(photo)))
    (variation,) = colorizer.colorize_variations(photo, count=1, seed=5, hints=hints)
    assert np.array_equal(np.asarray(variation), np.asarray(colorizer.colorize(photo, seed=5, hints=hints)))
    with pytest.raises(HintError, match="one list of hints per image"):
        colorizer.colorize_batch([photo, photo], hints=[hints])


def test_suggested_colours_are_at_least_six_distinct_colours_at_the_points_lightness(hint_model):
    colorizer = Colorizer.from_pretrained(hint_model)
    photo = Image.fromarray(data.astronaut()).resize((96, 96))
    for point in ((48, 70), (5, 5), (90, 30)):
        colours = colorizer.suggest_colours(photo, *point, hints=[Hint(10, 10, "#ff0000")])
        assert len(colours) >= 6 and len(set(colours)) == len(colours)
        point_l = lab(np.asarray(photo.convert("L").convert("RGB")))[point[1], point[0], 0]
        for colour in colours:
            rgb = np.array([[[int(colour[i : i + 2], 16) for i in (1, 3, 5)]]], np.uint8)
            assert abs(lab(rgb)[0, 0, 0] - point_l) < 1.5  # shown as that point would look
    with pytest.raises(HintError, match="outside the photo"):
        colorizer.suggest_colours(photo, 96, 3)


# -- simulated hints -------------------------------------------------------------------------------


def test_training_hints_are_geometric_in_number_and_hold_the_patch_mean():
    ab = torch.rand(4000, 2, 16, 16) - 0.5
    hint_ab, mask = simulate_training_hints(ab, generator=torch.Generator().manual_seed(0))
    hinted = mask.flatten(1).any(dim=1).float()
    assert abs(float(1 - hinted.mean()) - 1 / 8) < 0.02  # about one image in 8 gets no hint
    again = simulate_training_hints(ab, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again[0], hint_ab) and torch.equal(again[1], mask)
    # one fixed-count point on a constant image: its patch holds that constant, nothing else does
    flat = torch.full((3, 2, 32, 32), 0.25)
    flat[:, 1] = -0.1
    one_ab, one_mask = simulate_training_hints(flat, generator=torch.Generator().manual_seed(1), count=1)
    assert torch.allclose(one_ab[:, :, one_mask[0, 0] > 0][0], flat[0, :, :1, 0].expand(-1, int(one_mask[0].sum())))
    assert torch.all(one_mask.flatten(1).sum(1) <= 81) and torch.all(one_mask.flatten(1).sum(1) >= 1)


def test_user_hints_are_seeded_and_hold_the_real_photos_mean_colour_over_their_disc():
    photo = Image.fromarray(data.astronaut())
    hints = simulate_user_hints(photo, 10, seed=3)
    assert hints == simulate_user_hints(photo, 10, seed=3) and hints != simulate_user_hints(photo, 10, seed=4)
    assert simulate_user_hints(photo, 2, seed=3) == hints[:2]
    hint = hints[0]
    assert hint.radius == pytest.approx(5.12)  # 1% of the 512-pixel short side
    ys, xs = np.mgrid[:512, :512]
    disc = (xs - hint.x) ** 2 + (ys - hint.y) ** 2 <= hint.radius**2
    expected = lab(np.asarray(photo))[disc].mean(axis=0)
    assert math.dist(colour_ab(hint.color), expected[1:]) < 1.5  # 8-bit rounding of the hex colour
    assert hint.color == lab_to_hex(*expected)


# -- spreading hints -------------------------------------------------------------------------------


def test_spread_hints_reach_far_along_a_region_and_little_across_an_edge():
    photo = two_regions()
    lightness = torch.from_numpy(lab(np.asarray(photo))[..., 0] / 50 - 1).float()[None, None]
    ab = torch.zeros(1, 2, 64, 96)
    mask = torch.zeros(1, 1, 64, 96)
    mask[0, 0, 30:33, 10:13] = 1
    ab[0, 0, 30:33, 10:13] = 0.4
    colour, reach = spread_hints(lightness, ab, mask)
    level = reach_channel(reach)[0, 0]
    assert level[5, 40] > level[5, 60] + 0.15  # the far corner of its own region beats just across the edge
    assert torch.allclose(colour[0, 0, :, :48], torch.tensor(0.4), atol=1e-3)  # one hint: its colour wherever it reaches


def test_levin_fills_each_region_with_its_own_hint_and_leaves_a_photo_without_hints_gray():
    photo = two_regions()
    lightness = lab(np.asarray(photo))[..., 0]
    ab = np.zeros((2, 64, 96))
    mask = np.zeros((64, 96), bool)
    mask[30, 10], ab[:, 30, 10] = True, (40, 20)
    mask[30, 80], ab[:, 30, 80] = True, (-30, 10)
    result = levin_colorize(lightness, ab, mask)
    # a little of each colour leaks across the edge (its affinity is small, not zero)
    assert np.abs(result[:, :, :46] - np.array([40, 20])[:, None, None]).max() < 3
    assert np.abs(result[:, :, 50:] - np.array([-30, 10])[:, None, None]).max() < 3
    assert not levin_colorize(lightness, ab, np.zeros_like(mask)).any()


# -- the command line ------------------------------------------------------------------------------


def test_cli_colours_one_photo_with_a_hints_file_or_a_hint_image(hint_model, tmp_path):
    photo = tmp_path / "photo.png"
    Image.fromarray(data.astronaut()).resize((80, 64)).save(photo)
    hints = [{"x": 20, "y": 30, "color": "#ff0000", "radius": 3}]
    (tmp_path / "photo.hints.json").write_text(json.dumps(hints))
    out = tmp_path / "out"
    assert infer_main([str(photo), "--out", str(out), "--model", str(hint_model), "--hints", str(tmp_path / "photo.hints.json")]) == 0
    expected = Colorizer.from_pretrained(hint_model).colorize(photo, hints=hints)
    assert np.array_equal(np.asarray(Image.open(out / "photo_color.png")), np.asarray(expected))

    strokes = np.zeros((64, 80, 4), np.uint8)
    strokes[28:33, 18:23] = (255, 0, 0, 255)
    Image.fromarray(strokes, "RGBA").save(tmp_path / "strokes.png")
    assert infer_main([str(photo), "--out", str(tmp_path / "out2"), "--model", str(hint_model), "--hint-image", str(tmp_path / "strokes.png")]) == 0
    assert (tmp_path / "out2" / "photo_color.png").is_file()


@pytest.mark.parametrize(
    "content, extra, message",
    [
        ("[{\"x\": 20, \"y\": 30, \"color\": \"#ff00\"}]", [], "is not a colour"),
        ("[{\"x\": 200, \"y\": 30, \"color\": \"#ff0000\"}]", [], "outside the photo, which is 80x64"),
        ("[{\"x\": 20, \"y\": 30,", [], "is not valid JSON"),
        ("[]", ["SECOND"], "give exactly one input file"),
    ],
)
def test_cli_bad_hints_exit_2_with_one_sentence_and_write_nothing(hint_model, tmp_path, capsys, content, extra, message):
    photo = tmp_path / "photo.png"
    Image.fromarray(data.astronaut()).resize((80, 64)).save(photo)
    (tmp_path / "h.json").write_text(content)
    inputs = [str(photo)] + [str(photo.with_name("second.png")) for _ in extra]
    if extra:
        Image.open(photo).save(photo.with_name("second.png"))
    out = tmp_path / "out"
    code = infer_main([*inputs, "--out", str(out), "--model", str(hint_model), "--hints", str(tmp_path / "h.json")])
    error = capsys.readouterr().err
    assert code == 2 and message in error and "Traceback" not in error
    assert not out.exists() or not any(out.iterdir())


def test_cli_refuses_hints_for_a_model_that_takes_none(plain_model, tmp_path, capsys):
    photo = tmp_path / "photo.png"
    Image.fromarray(data.astronaut()).resize((80, 64)).save(photo)
    (tmp_path / "h.json").write_text('[{"x": 1, "y": 1, "color": "#ff0000"}]')
    assert infer_main([str(photo), "--out", str(tmp_path / "out"), "--model", str(plain_model), "--hints", str(tmp_path / "h.json")]) == 2
    assert "takes no colour hints" in capsys.readouterr().err


def test_hint_snap_keeps_every_hint_exactly_and_leaves_far_pixels_alone(hint_model):
    import dataclasses

    colorizer = Colorizer.from_pretrained(hint_model)
    photo = two_regions(96, 64)
    colour = lab_to_hex(lab(np.asarray(photo))[30, 20, 0], 30.0, 20.0)  # a brown the dark region can show
    hints = [Hint(20, 30, colour, 3)]
    plain = np.asarray(colorizer.colorize(photo, hints=hints))
    colorizer.settings = dataclasses.replace(colorizer.settings, hint_snap=1.0)
    snapped = np.asarray(colorizer.colorize(photo, hints=hints))
    target = colour_ab(colour)
    at_hint = lab(snapped)[30, 20, 1:]
    # L is the photo's own, so the hint's ab is kept within what 8-bit output and its gamut allow
    assert math.dist(at_hint, target) < min(3.0, math.dist(lab(plain)[30, 20, 1:], target))
    assert np.abs(snapped[:, 70:].astype(int) - plain[:, 70:]).max() <= 2  # across the edge, far away: unchanged
    assert np.array_equal(np.asarray(colorizer.colorize(photo)), np.asarray(Colorizer.from_pretrained(hint_model).colorize(photo)))


def test_the_compiled_domain_transform_computes_what_the_torch_loop_does():
    from colorize.propagation import domain_transform_filter

    torch.manual_seed(0)
    values, guide = torch.rand(2, 3, 20, 33), torch.rand(2, 1, 20, 33) * 0.3
    compiled = domain_transform_filter(values, guide, kernel="numba")
    assert torch.allclose(compiled, domain_transform_filter(values, guide, kernel="torch"), atol=1e-6)
    assert not torch.allclose(compiled, values)


def test_region_reach_covers_a_hints_whole_region_and_stops_at_its_edges():
    from colorize.hint_evaluation import flat_regions_photo
    from colorize.propagation import region_reach

    photo, labels = flat_regions_photo(160, 120)
    lightness = torch.from_numpy(lab(np.asarray(photo))[..., 0] / 50 - 1).float()[None, None]
    for x, y in ((10, 10), (120, 30), (120, 90), (40, 60)):
        mask = torch.zeros(1, 1, 120, 160)
        mask[0, 0, y, x] = 1
        reach = region_reach(lightness, mask)[0, 0].numpy()
        own = labels == labels[y, x]
        assert np.percentile(reach[own], 10) > 0.2  # however far from the click
        assert np.percentile(reach[~own], 90) < 0.15  # a 30 L* edge lets little through


def test_locality_keeps_the_automatic_colours_beyond_the_hints_region_and_snap_fills_it(hint_model):
    import dataclasses

    from colorize.hint_evaluation import flat_regions_photo, region_fill
    from colorize.suggest import in_gamut

    colorizer = Colorizer.from_pretrained(hint_model)
    photo, labels = flat_regions_photo(160, 120)
    point_l = lab(np.asarray(photo))[30, 120, 0]
    hint = Hint(120, 30, lab_to_hex(point_l, *in_gamut(point_l, -30.0, 30.0)))
    colorizer.settings = dataclasses.replace(colorizer.settings, hint_snap=1.0, hint_locality=1.0)
    fill = region_fill(colorizer, photo, labels, hint)
    assert fill.filled > 0.9 and fill.leaked < 0.1  # whatever the (untrained) network paints


def test_one_click_fills_the_astronauts_suit_and_each_flat_region_with_snap_and_locality(hint_model):
    import dataclasses

    from colorize.hint_evaluation import UNDECIDED, astronaut_suit_regions, one_click_fills

    photo, labels, hint = astronaut_suit_regions()
    assert labels[hint.y, hint.x] == 1 and 0.1 < (labels == 1).mean() < 0.25 and (labels == UNDECIDED).any()
    assert np.hypot(*colour_ab(hint.color)) > 40  # her suit is orange
    colorizer = Colorizer.from_pretrained(hint_model)
    colorizer.settings = dataclasses.replace(colorizer.settings, hint_snap=1.0, hint_locality=1.0)
    snapped = one_click_fills(colorizer)
    assert set(snapped["cases"]) == {*(f"flat region {n}" for n in range(4)), "astronaut suit"}
    # the untrained network adds nothing: the snap alone fills most of each region and leaks nowhere
    # (the shipped model's own test asks for the whole of it: tests/test_shipped_model.py)
    assert snapped["worst_filled"] > 0.6 and snapped["worst_leaked"] < 0.05
    colorizer.settings = dataclasses.replace(colorizer.settings, hint_snap=0.0, hint_locality=1.0)
    alone = one_click_fills(colorizer)
    assert not alone["passed"] and alone["worst_filled"] < snapped["worst_filled"] - 0.3


@pytest.fixture(scope="module")
def paired_model(tmp_path_factory, plain_model, hint_model):
    """An automatic model that names a hint model in its folder (config.json's "hint_model")."""
    import shutil

    folder = tmp_path_factory.mktemp("paired") / "model"
    shutil.copytree(plain_model, folder)
    shutil.copytree(hint_model, folder / "hints")
    config = json.loads((folder / "config.json").read_text())
    config["hint_model"] = "hints"
    config["inference"] = {"hint_snap": 1.0, "hint_locality": 1.0}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_an_automatic_model_paired_with_a_hint_model_colours_alone_without_hints_and_by_the_partner_with(
    paired_model, plain_model
):
    paired, automatic = Colorizer.from_pretrained(paired_model), Colorizer.from_pretrained(plain_model)
    assert paired.takes_hints and not automatic.takes_hints and paired.hint_network is paired.hint_partner
    photo = Image.fromarray(data.astronaut()).resize((96, 80))
    # no hints: exactly the automatic model, whatever the partner would paint
    assert np.array_equal(np.asarray(paired.colorize(photo)), np.asarray(automatic.colorize(photo)))
    from colorize.suggest import in_gamut

    point_l = lab(np.asarray(photo))[60, 20, 0]
    hint = Hint(20, 60, lab_to_hex(point_l, *in_gamut(point_l, -30.0, 30.0)), 3)
    hinted = lab(np.asarray(paired.colorize(photo, hints=[hint])))
    assert np.hypot(*(hinted[60, 20, 1:] - np.asarray(colour_ab(hint.color)))) < 5  # obeyed where placed
    same = paired.colorize_batch([photo, photo], hints=[[hint], None])
    assert np.array_equal(lab(np.asarray(same[0])), hinted) and np.array_equal(np.asarray(same[1]), np.asarray(automatic.colorize(photo)))
    assert len(paired.suggest_colours(photo, 50, 40, hints=[hint], count=6)) == 6


@pytest.mark.parametrize("entry, message", [
    ("elsewhere", "There is no model folder"),
    ("../hints", "must name a folder inside"),
    (7, "must name a folder inside"),
])
def test_a_missing_or_outside_hint_model_is_one_sentence(paired_model, tmp_path, entry, message):
    import shutil

    from colorize.checkpoint import CheckpointError

    folder = tmp_path / "model"
    shutil.copytree(paired_model, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "hint_model": entry}))
    with pytest.raises(CheckpointError, match=message):
        Colorizer.from_pretrained(folder)


def test_a_hint_model_that_takes_no_hints_is_refused(paired_model, plain_model, tmp_path):
    import shutil

    from colorize.checkpoint import CheckpointError

    folder = tmp_path / "model"
    shutil.copytree(paired_model, folder)
    shutil.rmtree(folder / "hints")
    shutil.copytree(plain_model, folder / "hints")
    with pytest.raises(CheckpointError, match="takes no colour hints"):
        Colorizer.from_pretrained(folder)
