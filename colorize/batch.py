"""Batch colorization: image files and ZIP archives in, one ZIP of full-size PNGs out.

Files that cannot be read are skipped, never fatal: each one is named with its reason in
`report.txt` inside the output archive and in `BatchResult.skipped`. Archives are unpacked
into a private temporary folder with a cap on members and bytes, so a ZIP bomb or a member
named `../../x` cannot reach past it.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterable, Protocol

from PIL import Image
from tqdm.auto import tqdm

from .imageio import DEFAULT_MAX_PIXELS, ImageLoadError, is_image_file, load_image
from .png import save_png

logger = logging.getLogger(__name__)

REPORT_NAME = "report.txt"
MAX_ARCHIVE_MEMBERS = 2_000
MAX_ARCHIVE_BYTES = 2 * 1024**3  # uncompressed, over all members of one archive


class SupportsColorize(Protocol):
    def colorize(self, image: Image.Image, *, render_size: int | None, saturation: float, seed: int | None) -> Image.Image: ...


@dataclass(frozen=True)
class BatchItem:
    """One image to colorize: `name` is its path inside the output archive, without suffix."""

    name: str
    path: Path


@dataclass
class BatchResult:
    archive: Path
    colorized: list[str] = field(default_factory=list)  # names inside the archive
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (input name, reason)

    def report(self) -> str:
        """The text of report.txt: counts, then one line per skipped file."""
        lines = [f"Colorized {len(self.colorized)} image{'s' if len(self.colorized) != 1 else ''}."]
        if self.skipped:
            lines.append(f"Skipped {len(self.skipped)} file{'s' if len(self.skipped) != 1 else ''}:")
            lines += [f"- {name}: {reason}" for name, reason in self.skipped]
        return "\n".join(lines) + "\n"


def _size(n_bytes: int) -> str:
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2), ("kB", 1024)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{n_bytes} bytes"


def _safe_member_name(name: str) -> str | None:
    """A relative POSIX path with no '..' or root, or None for names to ignore (folders, macOS litter)."""
    parts = [part for part in PurePosixPath(name.replace("\\", "/")).parts if part not in ("", ".", "..", "/")]
    if not parts or name.endswith("/"):
        return None
    if parts[0] == "__MACOSX" or any(part.startswith(".") for part in parts):
        return None
    return "/".join(parts)


def _unpack(archive: Path, folder: Path, skipped: list[tuple[str, str]]) -> list[BatchItem]:
    label = archive.name
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = [info for info in bundle.infolist() if not info.is_dir()]
            if len(members) > MAX_ARCHIVE_MEMBERS:
                skipped.append((label, f"it holds {len(members)} files; the limit is {MAX_ARCHIVE_MEMBERS}."))
                return []
            unpacked = sum(info.file_size for info in members)
            if unpacked > MAX_ARCHIVE_BYTES:
                skipped.append((label, f"it unpacks to {_size(unpacked)}; the limit is {_size(MAX_ARCHIVE_BYTES)}."))
                return []
            items = []
            for number, info in enumerate(members):
                name = _safe_member_name(info.filename)
                if name is None:
                    continue
                shown = f"{Path(label).stem}/{name}"
                if not is_image_file(Path(name)):
                    skipped.append((shown, "not an image file (by its extension)."))
                    continue
                target = folder / f"{number:05d}" / Path(name).name
                target.parent.mkdir(parents=True)
                try:
                    with bundle.open(info) as source, open(target, "wb") as sink:
                        shutil.copyfileobj(source, sink)
                except (zipfile.BadZipFile, OSError, EOFError, RuntimeError) as error:
                    # RuntimeError: an encrypted member.
                    skipped.append((shown, f"it could not be unpacked ({error})."))
                    continue
                items.append(BatchItem(name=shown, path=target))
            return items
    except (zipfile.BadZipFile, OSError) as error:
        skipped.append((label, f"it is not a readable ZIP archive ({error})."))
        return []


def collect(paths: Iterable[str | Path], workdir: Path) -> tuple[list[BatchItem], list[tuple[str, str]]]:
    """Expand `paths` (images and .zip archives) into items; archives are unpacked under `workdir`."""
    items: list[BatchItem] = []
    skipped: list[tuple[str, str]] = []
    for number, path in enumerate(Path(p) for p in paths):
        if path.suffix.lower() == ".zip":
            items += _unpack(path, Path(workdir) / f"zip{number:03d}", skipped)
        else:
            items.append(BatchItem(name=path.name, path=path))
    return items, skipped


def _unique(name: str, taken: set[str]) -> str:
    stem = str(PurePosixPath(name).with_suffix(""))
    candidate, copy = f"{stem}.png", 2
    while candidate.lower() in taken or candidate == REPORT_NAME:
        candidate, copy = f"{stem} ({copy}).png", copy + 1
    taken.add(candidate.lower())
    return candidate


def colorize_batch(
    colorizer: SupportsColorize,
    paths: Iterable[str | Path],
    output: str | Path,
    *,
    render_size: int | None = None,
    saturation: float = 1.0,
    seed: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool = True,
) -> BatchResult:
    """Colorize every image in `paths` (files or ZIP archives) into the ZIP archive `output`.

    Each output is a full-size PNG named after its input (`photo.jpg` -> `photo.png`, a member
    `old.zip:family/a.tif` -> `old/family/a.png`); `report.txt` lists what was skipped and why.
    The archive is written under a temporary name and renamed, so it is complete or absent.
    """
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    result = BatchResult(archive=output)
    with tempfile.TemporaryDirectory(prefix="colorize-batch-") as workdir:
        items, result.skipped = collect(paths, Path(workdir))
        partial = Path(workdir) / "out.zip"
        taken: set[str] = set()
        # PNG is already compressed: store, do not deflate again.
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED) as bundle:
            for item in tqdm(items, desc="Colorizing", unit="image", disable=not progress):
                try:
                    image = load_image(item.path, max_pixels=max_pixels)
                except ImageLoadError as error:
                    result.skipped.append((item.name, str(error)))
                    continue
                try:
                    colour = colorizer.colorize(image, render_size=render_size, saturation=saturation, seed=seed)
                except (RuntimeError, MemoryError, ValueError) as error:
                    logger.warning("Could not colorize %s: %s", item.name, error)
                    result.skipped.append((item.name, f"it could not be colorized ({error})."))
                    continue
                name = _unique(item.name, taken)
                with bundle.open(name, "w") as sink:
                    save_png(colour, sink)
                result.colorized.append(name)
            bundle.writestr(REPORT_NAME, result.report())
        shutil.move(str(partial), output)
    return result
