"""Image folders as (L, ab) training pairs, with the bad files left out and counted.

`ColorizationDataset` scans one or more folder trees once at construction. Each candidate
file is decoded at a reduced size (PIL's JPEG draft mode, so a 10k-image scan takes seconds,
not minutes) and is skipped, with one log line and a count in `dataset.skipped`, when it:

- cannot be read (not an image, empty, truncated, corrupt): reason "unreadable";
- is too small to be useful (short side under `MIN_SIDE` pixels): reason "too_small";
- is gray or nearly so: reason "gray". The test is the mean Lab chroma sqrt(a^2 + b^2)
  over a copy at most `GRAY_CHECK_SIZE` pixels on its long side, below `gray_threshold`
  (default 3.0, the threshold of imagenette's near_gray.txt; sepia and faded photos sit
  around 5-10, ordinary photos at 10-30). A gray target teaches the network to predict gray.
- is named in an exclusion list: reason "excluded" (counted, not logged one by one).

Items are `(L_norm (1, S, S), ab_norm (2, S, S))` in the network's normalisation. Training
items use a random resized crop and a horizontal flip whose randomness comes from
(seed, epoch, index) only, so an epoch's batches are identical whatever the number of
workers and after a resume; validation items use a resize of the short side and a center crop.
"""

from __future__ import annotations

import logging
import math
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from .color import normalized_from_rgb
from .imageio import ImageLoadError, find_images, load_image
from .pixels import mean_chroma

logger = logging.getLogger(__name__)

GRAY_CHECK_SIZE = 64
MIN_SIDE = 16
PRELOAD_MARGIN = 1.15  # preloaded short side = margin x crop size: room for the random crop
CROP_SCALE = (0.25, 1.0)  # random resized crop: fraction of the image area
CROP_RATIO = (3 / 4, 4 / 3)
SKIP_REASONS = ("excluded", "unreadable", "too_small", "gray")


class DatasetError(ValueError):
    """A data folder that cannot be trained on; the message is one sentence."""


def read_exclusion_list(path: str | Path) -> list[str]:
    """Entries of an exclusion file: one path per line, '#' comments and blank lines ignored."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"There is no exclusion list at {path}.")
    entries = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            entries.append(line.replace("\\", "/"))
    return entries


class ExclusionMatcher:
    """Matches a file when an entry equals the trailing part of its path.

    "train/x.JPEG" (relative to the dataset's folder, the format of near_gray.txt) matches
    .../imagenette/train/x.JPEG whichever folder was passed as --data; "x.JPEG" matches that
    name anywhere; an absolute path matches that file only.
    """

    def __init__(self, entries: Iterable[str]) -> None:
        self._suffixes: set[tuple[str, ...]] = set()
        self._lengths: set[int] = set()
        for entry in entries:
            parts = tuple(p for p in Path(entry).parts if p not in ("", ".", "/"))
            if Path(entry).is_absolute():
                parts = Path(entry).resolve().parts
            if parts:
                self._suffixes.add(parts)
                self._lengths.add(len(parts))

    def __bool__(self) -> bool:
        return bool(self._suffixes)

    def __call__(self, path: Path) -> bool:
        parts = path.resolve().parts
        return any(parts[-n:] in self._suffixes for n in self._lengths if n <= len(parts))


def thumbnail_chroma(image: Image.Image) -> float:
    """`pixels.mean_chroma` of an RGB image on a copy of at most GRAY_CHECK_SIZE px: enough to tell gray from colour."""
    small = image.copy()
    small.thumbnail((GRAY_CHECK_SIZE, GRAY_CHECK_SIZE), Image.Resampling.BILINEAR)
    return mean_chroma(small)


def _open_reduced(path: Path, short_side: int | None) -> Image.Image:
    """load_image, letting the JPEG decoder skip detail: the result's short side stays >= short_side."""
    with Image.open(path) as handle:
        if short_side is not None and handle.format == "JPEG":
            width, height = handle.size
            scale = short_side / min(width, height)
            handle.draft("RGB", (max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))))
        return load_image(handle)


def resize_short_side(image: Image.Image, short_side: int) -> Image.Image:
    """`image` with its short side `short_side` pixels, aspect kept (bicubic; as it is if already so)."""
    width, height = image.size
    scale = short_side / min(width, height)
    size = (max(short_side, round(width * scale)), max(short_side, round(height * scale)))
    if min(width, height) == short_side:
        return image
    return image.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0 if scale < 1 else None)


@dataclass
class _ScanResult:
    path: Path
    reason: str | None = None  # None: usable
    detail: str = ""
    pixels: np.ndarray | None = field(default=None, repr=False)


def random_resized_crop(
    image: Image.Image, size: int, rng: np.random.Generator, *, scale=CROP_SCALE, ratio=CROP_RATIO
) -> Image.Image:
    """torchvision's RandomResizedCrop on a PIL image, drawing from `rng`."""
    width, height = image.size
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        crop_w = round(math.sqrt(target_area * aspect))
        crop_h = round(math.sqrt(target_area / aspect))
        if 0 < crop_w <= width and 0 < crop_h <= height:
            left = int(rng.integers(0, width - crop_w + 1))
            top = int(rng.integers(0, height - crop_h + 1))
            break
    else:  # fall back to the largest centred crop within the ratio range
        in_ratio = width / height
        if in_ratio < ratio[0]:
            crop_w, crop_h = width, round(width / ratio[0])
        elif in_ratio > ratio[1]:
            crop_w, crop_h = round(height * ratio[1]), height
        else:
            crop_w, crop_h = width, height
        left, top = (width - crop_w) // 2, (height - crop_h) // 2
    return image.resize((size, size), Image.Resampling.BICUBIC, box=(left, top, left + crop_w, top + crop_h))


def center_crop(image: Image.Image, size: int) -> Image.Image:
    """Resize the short side to `size`, then cut the centre square."""
    image = resize_short_side(image, size)
    width, height = image.size
    left, top = (width - size) // 2, (height - size) // 2
    return image.crop((left, top, left + size, top + size))


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float tensor (3, H, W) in [0, 1]."""
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float().div_(255.0)


class ColorizationDataset(Dataset):
    """Every usable image under `roots`, as (L_norm, ab_norm) pairs of size `image_size`.

    Index it with an int (epoch 0) or with `(index, epoch)`, which `EpochSampler` yields:
    the augmentation of a training item is a function of (seed, epoch, index) alone.
    """

    def __init__(
        self,
        roots: str | Path | Sequence[str | Path],
        *,
        image_size: int = 256,
        train: bool = True,
        exclude: Sequence[str | Path] = (),
        max_images: int = 0,
        preload: bool = False,
        gray_threshold: float = 3.0,
        seed: int = 0,
        workers: int = 4,
        progress: bool = False,
    ) -> None:
        roots = [Path(roots)] if isinstance(roots, (str, Path)) else [Path(r) for r in roots]
        if not roots:
            raise DatasetError("No image folder was given.")
        self.roots = roots
        self.image_size = image_size
        self.train = train
        self.seed = seed
        self.gray_threshold = gray_threshold
        self.preloaded = preload
        self.skipped: dict[str, int] = {reason: 0 for reason in SKIP_REASONS}

        candidates: list[Path] = []
        folder_of_candidate: dict[Path, int] = {}
        for folder, root in enumerate(roots):
            if not root.exists():
                raise DatasetError(f"The image folder {root} does not exist.")
            found = find_images(root)
            if not found:
                raise DatasetError(f"The folder {root} contains no image files (jpg, png, webp, bmp, tiff).")
            candidates.extend(found)
            for path in found:
                folder_of_candidate.setdefault(path, folder)
        matcher = ExclusionMatcher(entry for path in exclude for entry in read_exclusion_list(path))
        if matcher:
            kept = [path for path in candidates if not matcher(path)]
            self.skipped["excluded"] = len(candidates) - len(kept)
            candidates = kept
        if max_images:
            random.Random(seed).shuffle(candidates)

        self.paths: list[Path] = []
        self._pixels: list[np.ndarray] = []
        reduced_side = math.ceil(PRELOAD_MARGIN * image_size) if preload else GRAY_CHECK_SIZE
        progress_bar = None
        if progress:
            from tqdm.auto import tqdm

            progress_bar = tqdm(total=max_images or len(candidates), desc=f"scanning {len(candidates)} images", unit="img", leave=False)
        # threads: PIL releases the GIL while decoding, so a scan overlaps file reads and decodes.
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for start in range(0, len(candidates), 256):
                chunk = candidates[start : start + 256]
                for result in pool.map(lambda p: self._scan(p, reduced_side), chunk):
                    if result.reason is not None:
                        self.skipped[result.reason] += 1
                        log = logger.warning if result.reason == "unreadable" else logger.info
                        log("Skipping %s: %s", result.path, result.detail)
                        continue
                    self.paths.append(result.path)
                    if preload:
                        self._pixels.append(result.pixels)
                    if progress_bar is not None:
                        progress_bar.update()
                    if max_images and len(self.paths) >= max_images:
                        break
                if max_images and len(self.paths) >= max_images:
                    break
        if progress_bar is not None:
            progress_bar.close()
        if max_images:  # back to a stable, sorted order
            order = sorted(range(len(self.paths)), key=lambda i: self.paths[i])
            self.paths = [self.paths[i] for i in order]
            self._pixels = [self._pixels[i] for i in order] if preload else []
        self.folder_of = [folder_of_candidate[path] for path in self.paths]  # index into roots, per item
        if not self.paths:
            names = ", ".join(str(r) for r in roots)
            counts = ", ".join(f"{n} {reason}" for reason, n in self.skipped.items() if n)
            raise DatasetError(f"The folder {names} has no usable image ({counts or 'none found'}).")

    def _scan(self, path: Path, reduced_side: int) -> _ScanResult:
        try:
            image = _open_reduced(path, reduced_side)
        except ImageLoadError as error:
            return _ScanResult(path, "unreadable", str(error))
        except Exception as error:  # PIL raises many types for odd files; none may stop a scan
            return _ScanResult(path, "unreadable", f"cannot be read ({type(error).__name__}: {error})")
        if min(image.size) < MIN_SIDE:
            return _ScanResult(path, "too_small", f"{image.size[0]}x{image.size[1]} pixels is below {MIN_SIDE} px")
        if self.gray_threshold > 0:
            chroma = thumbnail_chroma(image)
            if chroma < self.gray_threshold:
                return _ScanResult(path, "gray", f"mean chroma {chroma:.2f} is below {self.gray_threshold:g} (nearly gray)")
        pixels = None
        if self.preloaded:
            pixels = np.asarray(resize_short_side(image, reduced_side) if min(image.size) > reduced_side else image)
        return _ScanResult(path, None, pixels=pixels)

    def __len__(self) -> int:
        return len(self.paths)

    def image(self, index: int) -> Image.Image:
        """The RGB image behind item `index` (the preloaded copy when preloading)."""
        if self.preloaded:
            return Image.fromarray(self._pixels[index])
        side = math.ceil(PRELOAD_MARGIN * self.image_size)
        return _open_reduced(self.paths[index], side)

    def folder_items(self) -> list[list[int]]:
        """The item indices of each root folder, in the order the folders were given."""
        items: list[list[int]] = [[] for _ in self.roots]
        for index, folder in enumerate(self.folder_of):
            items[folder].append(index)
        return items

    def __getitem__(self, key: int | tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """`key`: an index, `(index, epoch)`, or `(index, epoch, repeat)` for the repeat-th draw of
        the same photo in one epoch (`EpochSampler` with folder shares), which gets another crop."""
        index, epoch, *repeat = key if isinstance(key, tuple) else (key, 0)
        try:
            image = self.image(index)
        except (ImageLoadError, OSError) as error:  # the file changed since the scan
            logger.warning("Skipping %s at load time: %s", self.paths[index], error)
            return self[((index + 1) % len(self), epoch, *repeat)]
        if self.train:
            rng = np.random.default_rng([self.seed, epoch, index, *[r for r in repeat if r]])
            image = random_resized_crop(image, self.image_size, rng)
            if rng.random() < 0.5:
                image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        else:
            image = center_crop(image, self.image_size)
        l_norm, ab_norm = normalized_from_rgb(pil_to_tensor(image))
        return l_norm, ab_norm

    def summary(self) -> dict:
        return {
            "folders": [str(r) for r in self.roots],
            "images": len(self),
            "skipped": {reason: n for reason, n in self.skipped.items() if n},
        }


class EpochSampler(Sampler):
    """Shuffled, sharded order with a known position, for exact resumes.

    The order of epoch e is a permutation from a generator seeded with (seed, e); under
    torchrun each rank takes every world_size-th item of it (padded to equal length, like
    DistributedSampler). `set_epoch(e, start=k)` skips the first k items of this rank's share,
    so a run resumed mid-epoch sees the batches the interrupted run would have seen.
    Yields `(index, epoch)` keys for `ColorizationDataset`.
    """

    def __init__(
        self,
        size: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        folders: Sequence[Sequence[int]] | None = None,
        shares: Sequence[float] | None = None,
    ) -> None:
        self.size = size
        self.seed = seed
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start = 0
        self.per_rank = math.ceil(size / world_size)
        self.folders = [list(items) for items in folders] if shares else None
        self.draws = folder_draws(size, [len(items) for items in self.folders], shares) if self.folders else None

    def set_epoch(self, epoch: int, *, start: int = 0) -> None:
        self.epoch = epoch
        self.start = start

    def order(self) -> list[tuple[int, int]]:
        """This rank's (item, repeat) pairs of the current epoch; repeat > 0 only with folder shares."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        if self.draws is not None:
            keys = self._shared_keys(generator)
        elif self.shuffle:
            keys = [(index, 0) for index in torch.randperm(self.size, generator=generator).tolist()]
        else:
            keys = [(index, 0) for index in range(self.size)]
        total = self.per_rank * self.world_size
        keys += keys[: total - len(keys)]
        return keys[self.rank : total : self.world_size]

    def _shared_keys(self, generator: torch.Generator) -> list[tuple[int, int]]:
        # each folder: whole shuffled passes over its photos, the last one cut short
        keys = []
        for items, draws in zip(self.folders, self.draws):
            for position in range(draws):
                if position % len(items) == 0:
                    permutation = torch.randperm(len(items), generator=generator).tolist()
                keys.append((items[permutation[position % len(items)]], position // len(items)))
        if self.shuffle:
            keys = [keys[i] for i in torch.randperm(len(keys), generator=generator).tolist()]
        return keys

    def __iter__(self) -> Iterator[tuple[int, ...]]:
        for index, repeat in self.order()[self.start :]:
            yield (index, self.epoch, repeat) if repeat else (index, self.epoch)

    def __len__(self) -> int:
        return max(0, self.per_rank - self.start)


def folder_draws(total: int, sizes: Sequence[int], shares: Sequence[float]) -> list[int]:
    """How many of an epoch's `total` crops come from each folder: `total` split by `shares`
    (largest remainders get the rounding), at least one from every folder that has photos."""
    if len(sizes) != len(shares):
        raise ValueError(f"{len(sizes)} folders but {len(shares)} shares.")
    weights = [share if size else 0.0 for size, share in zip(sizes, shares)]
    exact = [total * weight / sum(weights) for weight in weights]
    draws = [int(value) for value in exact]
    for folder in sorted(range(len(exact)), key=lambda i: draws[i] - exact[i])[: total - sum(draws)]:
        draws[folder] += 1
    for folder, size in enumerate(sizes):
        if size and not draws[folder]:
            draws[folder] = 1
            draws[max(range(len(draws)), key=draws.__getitem__)] -= 1
    return draws
