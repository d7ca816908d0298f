"""Assemble a ready Hugging Face Space folder: the app, its packages, the weights (tracked by Git LFS) and its requirements.

    python scripts/make_space.py dist/space      # or: make space

Spaces refuses files over 10 MB in plain git, and the shipped weights are larger, so the Space
is a fresh folder (no history holding old weights) whose `.gitattributes` sends the weights
through Git LFS. It holds `app.py`, the `colorize`, `survey` and `ui` packages as git tracks
them (weights included), `requirements.txt`, and `README.md`, whose front matter (`sdk: gradio`,
`app_file: app.py`, ...) configures the Space. Push it as the README's "Deploy on Hugging Face
Spaces" says. Standard library only.
"""

from __future__ import annotations

import argparse
import fnmatch
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = ("app.py", "requirements.txt", "README.md")
PACKAGES = ("colorize", "survey", "ui")
LFS_PATTERNS = ("*.safetensors",)
PLAIN_GIT_LIMIT = 10 * 1024 * 1024  # Spaces refuses larger files that are not in Git LFS


class SpaceError(RuntimeError):
    """A Space folder that cannot be made; one sentence."""


def tracked_files(root: Path = ROOT) -> list[Path]:
    """The files of the app and its packages as git tracks them (no caches, no local leftovers), relative to `root`."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--", *FILES, *PACKAGES], cwd=root, check=True, capture_output=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        raise SpaceError(f"{root} must be a git checkout: the Space holds the files git tracks ({error}).") from None
    return [Path(name) for name in listed.split("\0") if name and (root / name).is_file()]


def lfs_tracked(path: Path) -> bool:
    return any(fnmatch.fnmatch(path.name, pattern) for pattern in LFS_PATTERNS)


def make_space(out: Path, *, root: Path = ROOT) -> list[Path]:
    """Write the Space into `out` (new or empty); returns its files, relative to `out`."""
    if out.exists() and any(out.iterdir()):
        raise SpaceError(f"{out} is not empty; give a new folder, or remove it first.")
    files = tracked_files(root)
    missing = [name for name in FILES if Path(name) not in files]
    if missing:
        raise SpaceError(f"git does not track {', '.join(missing)} in {root}.")
    too_large = [str(path) for path in files if (root / path).stat().st_size > PLAIN_GIT_LIMIT and not lfs_tracked(path)]
    if too_large:
        raise SpaceError(f"{', '.join(too_large)} would be over the 10 MB plain-git limit of Spaces; add a pattern to LFS_PATTERNS.")
    for path in files:
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / path, out / path)
    attributes = "".join(f"{pattern} filter=lfs diff=lfs merge=lfs -text\n" for pattern in LFS_PATTERNS)
    (out / ".gitattributes").write_text(attributes, encoding="utf-8")
    return [*files, Path(".gitattributes")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/make_space.py", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write the Space into (new or empty)")
    args = parser.parse_args(argv)
    try:
        files = make_space(args.out)
    except SpaceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    size = sum((args.out / path).stat().st_size for path in files) / 1e6
    print(f"Wrote {len(files)} files ({size:.1f} MB) to {args.out}. To publish it:")
    print(f"  cd {args.out} && git init -b main && git lfs install && git add . && git commit -m 'Colorize Space'")
    print("  git remote add space https://huggingface.co/spaces/YOUR-NAME/YOUR-SPACE && git push --force space main")
    return 0


if __name__ == "__main__":
    sys.exit(main())
