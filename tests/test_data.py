"""The training dataset: any image folder, bad files skipped and counted, deterministic augmentation."""

import io
import logging

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from colorize.data import (
    ColorizationDataset,
    DatasetError,
    EpochSampler,
    ExclusionMatcher,
    folder_draws,
    thumbnail_chroma,
    read_exclusion_list,
)

torch.set_num_threads(1)


def _photo(name: str, size=(60, 44)) -> Image.Image:
    return Image.fromarray(getattr(data, name)()).convert("RGB").resize(size)


def _write_good(folder, names=("astronaut", "chelsea", "coffee", "rocket")):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        path = folder / f"{name}.jpg"
        _photo(name).save(path, quality=90)
        paths.append(path)
    return paths


def _jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _write_bad(folder):
    """Three unreadable files and two gray ones; returns the expected counts."""
    (folder / "random_bytes.jpg").write_bytes(np.random.default_rng(0).bytes(2000))
    (folder / "empty.png").write_bytes(b"")
    big = _jpeg_bytes(_photo("astronaut", (300, 200)))
    (folder / "truncated.jpg").write_bytes(big[: len(big) // 2])
    gray = np.asarray(_photo("camera").convert("L"))
    Image.fromarray(np.stack([gray] * 3, -1)).save(folder / "gray_rgb.png")
    tinted = np.stack([gray, gray, np.clip(gray.astype(int) + 2, 0, 255).astype(np.uint8)], -1)
    Image.fromarray(tinted).save(folder / "nearly_gray.png")
    return {"unreadable": 3, "gray": 2}


def test_items_are_normalised_l_and_ab(tmp_path):
    _write_good(tmp_path / "train")
    dataset = ColorizationDataset(tmp_path / "train", image_size=32)
    assert len(dataset) == 4 and dataset.skipped == {"excluded": 0, "unreadable": 0, "too_small": 0, "gray": 0}
    lightness, ab = dataset[0]
    assert lightness.shape == (1, 32, 32) and ab.shape == (2, 32, 32)
    assert lightness.dtype == torch.float32
    assert -1 <= lightness.min() and lightness.max() <= 1 and ab.abs().max() <= 1
    assert ab.abs().mean() > 0.01  # a colour photo has colour


def test_any_mode_and_format_nested_folders(tmp_path):
    root = tmp_path / "mixed"
    (root / "a" / "b").mkdir(parents=True)
    photo = _photo("coffee")
    photo.convert("RGBA").save(root / "rgba.png")
    photo.convert("P").save(root / "a" / "palette.png")
    photo.convert("CMYK").save(root / "a" / "cmyk.tiff")
    photo.save(root / "a" / "b" / "photo.webp")
    photo.save(root / "a" / "b" / "photo.bmp")
    (root / "notes.txt").write_text("not an image")
    dataset = ColorizationDataset(root, image_size=24)
    assert len(dataset) == 5
    assert all(dataset[i][1].shape == (2, 24, 24) for i in range(5))


def test_corrupt_truncated_and_gray_files_are_skipped_counted_and_logged(tmp_path, caplog):
    _write_good(tmp_path / "train")
    expected = _write_bad(tmp_path / "train")
    with caplog.at_level(logging.INFO, logger="colorize.data"):
        dataset = ColorizationDataset(tmp_path / "train", image_size=32)
    assert len(dataset) == 4
    assert {name for name in {p.stem for p in dataset.paths}} == {"astronaut", "chelsea", "coffee", "rocket"}
    assert dataset.skipped["unreadable"] == expected["unreadable"]
    assert dataset.skipped["gray"] == expected["gray"]
    skipped_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Skipping")]
    assert len(skipped_lines) == 5
    assert any("truncated.jpg" in line for line in skipped_lines)
    assert any("nearly_gray.png" in line and "chroma" in line for line in skipped_lines)
    assert dataset.summary()["skipped"] == {"unreadable": 3, "gray": 2}
    # every item loads: none of the skipped files reach __getitem__
    for index in range(len(dataset)):
        dataset[(index, 3)]


def test_gray_threshold_zero_keeps_gray_images(tmp_path):
    _write_good(tmp_path / "train", names=("astronaut",))
    _write_bad(tmp_path / "train")
    dataset = ColorizationDataset(tmp_path / "train", image_size=32, gray_threshold=0)
    assert len(dataset) == 3 and dataset.skipped["gray"] == 0


def test_thumbnail_chroma_separates_gray_from_colour():
    assert thumbnail_chroma(_photo("coffee")) > 10
    assert thumbnail_chroma(_photo("coffee").convert("L").convert("RGB")) < 0.5


def test_empty_folder_and_folder_without_usable_images_are_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="empty.*no image files"):
        ColorizationDataset(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    _write_bad(tmp_path / "bad")
    with pytest.raises(DatasetError, match=r"bad has no usable image \(3 unreadable, 2 gray\)"):
        ColorizationDataset(tmp_path / "bad")
    with pytest.raises(DatasetError, match="does not exist"):
        ColorizationDataset(tmp_path / "missing")


def test_exclusion_list_in_near_gray_format(tmp_path):
    # near_gray.txt lists paths relative to the dataset folder: "train/<name>"
    good = _write_good(tmp_path / "imagenette" / "train")
    listing = tmp_path / "imagenette" / "near_gray.txt"
    listing.write_text(f"# near-gray images\ntrain/{good[0].name}\n\n{good[1].name}\n")
    assert read_exclusion_list(listing) == [f"train/{good[0].name}", good[1].name]
    dataset = ColorizationDataset(tmp_path / "imagenette" / "train", image_size=32, exclude=[listing])
    assert dataset.skipped["excluded"] == 2
    assert sorted(p.name for p in dataset.paths) == sorted(p.name for p in good[2:])
    matcher = ExclusionMatcher(["val/x.jpg"])
    assert matcher(tmp_path / "val" / "x.jpg") and not matcher(tmp_path / "train" / "x.jpg")
    with pytest.raises(DatasetError, match="no exclusion list"):
        ColorizationDataset(tmp_path / "imagenette" / "train", exclude=[tmp_path / "missing.txt"])


def test_several_folders_and_max_images(tmp_path):
    _write_good(tmp_path / "one", names=("astronaut", "chelsea"))
    _write_good(tmp_path / "two", names=("coffee", "rocket"))
    both = ColorizationDataset([tmp_path / "one", tmp_path / "two"], image_size=32)
    assert len(both) == 4
    capped = ColorizationDataset([tmp_path / "one", tmp_path / "two"], image_size=32, max_images=3, seed=1)
    assert len(capped) == 3 and capped.paths == sorted(capped.paths)
    again = ColorizationDataset([tmp_path / "one", tmp_path / "two"], image_size=32, max_images=3, seed=1)
    assert again.paths == capped.paths


def test_training_augmentation_depends_only_on_seed_epoch_index(tmp_path):
    _write_good(tmp_path / "train")
    dataset = ColorizationDataset(tmp_path / "train", image_size=32, seed=3)
    other = ColorizationDataset(tmp_path / "train", image_size=32, seed=3)
    first = dataset[(1, 0)]
    assert all(torch.equal(a, b) for a, b in zip(first, other[(1, 0)]))
    assert not torch.equal(first[1], dataset[(1, 1)][1])  # another epoch, another crop


def test_validation_is_a_deterministic_center_crop(tmp_path):
    _write_good(tmp_path / "val")
    dataset = ColorizationDataset(tmp_path / "val", image_size=32, train=False)
    assert all(torch.equal(a, b) for a, b in zip(dataset[(0, 0)], dataset[(0, 5)]))
    assert dataset[0][0].shape == (1, 32, 32)


def test_preload_keeps_reduced_uint8_copies(tmp_path):
    (tmp_path / "train").mkdir()
    _photo("astronaut", (200, 120)).save(tmp_path / "train" / "big.png")
    _photo("coffee", (30, 20)).save(tmp_path / "train" / "small.png")
    dataset = ColorizationDataset(tmp_path / "train", image_size=32, preload=True)
    shapes = sorted(a.shape for a in dataset._pixels)
    assert shapes == [(20, 30, 3), (37, 62, 3)]  # short side ceil(1.15 * 32) = 37; small ones kept as they are
    assert all(a.dtype == np.uint8 for a in dataset._pixels)
    (tmp_path / "train" / "big.png").unlink()  # preloaded: the files are no longer read
    lightness, ab = dataset[(0, 2)]
    assert lightness.shape == (1, 32, 32) and ab.shape == (2, 32, 32)


def test_epoch_sampler_order_resume_and_shards():
    sampler = EpochSampler(10, seed=7)
    sampler.set_epoch(0)
    epoch0 = [i for i, _ in sampler]
    assert sorted(epoch0) == list(range(10))
    sampler.set_epoch(0)
    assert [i for i, _ in sampler] == epoch0
    sampler.set_epoch(1)
    assert [i for i, _ in sampler] != epoch0
    sampler.set_epoch(0, start=4)
    assert [i for i, _ in sampler] == epoch0[4:] and len(sampler) == 6
    assert {e for _, e in sampler} == {0}
    shards = []
    for rank in range(3):
        shard = EpochSampler(10, seed=7, rank=rank, world_size=3)
        shard.set_epoch(2)
        shards.append([i for i, _ in shard])
    assert all(len(s) == 4 for s in shards) and set(sum(shards, [])) == set(range(10))


def test_folder_shares_split_each_epoch_and_repeats_get_other_crops(tmp_path):
    _write_good(tmp_path / "big", names=("astronaut", "chelsea", "coffee", "rocket", "colorwheel", "immunohistochemistry"))
    _write_good(tmp_path / "small", names=("retina",))
    dataset = ColorizationDataset([tmp_path / "big", tmp_path / "small"], image_size=32, seed=2)
    folders = dataset.folder_items()
    assert [len(items) for items in folders] == [6, 1] and sorted(sum(folders, [])) == list(range(7))
    assert all(dataset.paths[i].parent.name == "small" for i in folders[1])

    sampler = EpochSampler(len(dataset), seed=5, folders=folders, shares=(0.5, 0.5))
    sampler.set_epoch(3)
    keys = list(sampler)
    assert len(keys) == len(sampler) == 7  # an epoch keeps its length
    small = [key for key in keys if key[0] in folders[1]]
    big = [key[0] for key in keys if key[0] in folders[0]]
    assert len(small) == 3 and len(big) == 4 and len(set(big)) == 4  # 50/50; no big photo twice before all have come
    # the small folder's one photo comes three times, each time with another crop
    assert sorted(key[2] if len(key) == 3 else 0 for key in small) == [0, 1, 2]
    crops = [dataset[key][1] for key in small]
    assert not torch.equal(crops[0], crops[1]) and not torch.equal(crops[1], crops[2])
    sampler.set_epoch(3, start=2)
    assert list(sampler) == keys[2:]  # a resume mid-epoch continues the same draws

    # without shares the order is what it always was (exact resumes of older runs)
    plain, natural = EpochSampler(7, seed=5), EpochSampler(7, seed=5, folders=folders, shares=None)
    plain.set_epoch(1), natural.set_epoch(1)
    assert list(plain) == list(natural) and all(len(key) == 2 for key in plain)


def test_folder_draws_split_by_share_and_give_every_folder_one():
    assert folder_draws(10, [6, 1], [0.5, 0.5]) == [5, 5]
    assert folder_draws(100, [50, 30, 20], [1, 1, 2]) == [25, 25, 50]
    assert sum(folder_draws(7, [3, 3, 3], [1, 1, 1])) == 7
    assert folder_draws(10, [9, 1], [1000, 0.001]) == [9, 1]
    assert folder_draws(10, [9, 0], [1, 1]) == [10, 0]  # a folder left without photos draws none
