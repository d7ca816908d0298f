"""Assemble a Hugging Face Space folder that can be pushed as it is: the app, its packages, the weights in Git LFS.

    python scripts/make_space.py dist/space      # or: make space

Spaces refuses files over 10 MB in plain git, and the shipped weights are larger, so the Space
is a fresh folder (no history holding old weights) with its own git repository, in which the
weights are staged through Git LFS. It holds `app.py`, the `colorize`, `survey` and `ui`
packages as last committed (weights included), `requirements.txt` (torch's CPU build from
PyTorch's index) and the Space's own `README.md` (from `docs/space/README.md`; its front matter,
`sdk: gradio`, `app_file: app.py`, ..., configures the Space). Nothing is written when git-lfs is
missing or when a file over 10 MB would be staged as plain git. What is left to do is printed:
commit, add the Space as a remote, push. Standard library only.
"""

from __future__ import annotations

import argparse
import fnmatch
import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = ("app.py", "requirements.txt")
PACKAGES = ("colorize", "survey", "ui")
README = Path("docs/space/README.md")  # becomes the Space's README.md
LFS_PATTERNS = ("*.safetensors",)
PLAIN_GIT_LIMIT = 10 * 1024 * 1024  # Spaces refuses larger files that are not in Git LFS
NO_GIT_LFS = (
    "git-lfs is not installed, and without it the weights (over 10 MB) would go into plain git, which "
    "Spaces refuse; install it (Debian/Ubuntu: apt install git-lfs; elsewhere: https://git-lfs.com) and run this again."
)


class SpaceError(RuntimeError):
    """A Space folder that cannot be made; one sentence."""


def git(*args: str, cwd: Path, input: str | None = None) -> str:
    """A git command's output; SpaceError with git's own last words when it fails."""
    try:
        return subprocess.run(["git", *args], cwd=cwd, input=input, check=True, capture_output=True, text=True).stdout
    except OSError as error:
        raise SpaceError(f"git could not be run ({error.strerror}); install git first.") from None
    except subprocess.CalledProcessError as error:
        said = (error.stderr or error.stdout or "").strip().splitlines()
        raise SpaceError(f"`git {' '.join(args)}` failed: {said[-1] if said else f'exit code {error.returncode}'}") from None


def require_git_lfs() -> None:
    try:
        subprocess.run(["git", "lfs", "version"], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        raise SpaceError(NO_GIT_LFS) from None


def committed_files(root: Path = ROOT) -> list[Path]:
    """The files of the app, its packages and the Space's README as last committed, relative to `root`:
    what is pushed is what is committed, never a half-edited working tree or local leftovers."""
    try:
        listed = git("ls-tree", "-r", "-z", "--name-only", "HEAD", "--", *FILES, *PACKAGES, str(README), cwd=root)
    except SpaceError as error:
        raise SpaceError(f"{root} must be a git checkout with a commit: the Space holds the committed files ({error})") from None
    return [Path(name) for name in listed.split("\0") if name]


def uncommitted(root: Path = ROOT) -> list[str]:
    """Changed or new files under the Space's paths that are not committed, so not in the Space."""
    status = git("status", "--porcelain", "-z", "--untracked-files=all", "--", *FILES, *PACKAGES, str(README), cwd=root)
    return sorted(entry[3:] for entry in status.split("\0") if len(entry) > 3 and not entry.endswith((".pyc", ".pyi")))


def staged_as_plain_git(space: Path) -> list[str]:
    """Files staged in `space`'s repository as blobs over Spaces' plain-git limit (an LFS pointer is a few hundred bytes)."""
    staged = git("ls-files", "-s", "-z", cwd=space)
    blobs = {line.split()[1]: line.split("\t", 1)[1] for line in staged.split("\0") if line}
    checked = git("cat-file", "--batch-check=%(objectname) %(objectsize)", cwd=space, input="".join(f"{blob}\n" for blob in blobs))
    return sorted(blobs[name] for name, size in (line.split() for line in checked.splitlines()) if int(size) > PLAIN_GIT_LIMIT)


def stage(space: Path) -> None:
    """A new repository in `space` with every file staged, files matching LFS_PATTERNS through Git LFS."""
    git("init", "-q", "-b", "main", cwd=space)
    git("lfs", "install", "--local", cwd=space)  # the LFS filters for this repository, whatever the user's global git config
    git("add", "--all", cwd=space)
    refused = staged_as_plain_git(space)
    if refused:
        raise SpaceError(
            f"{', '.join(refused)} would go to the Space as plain git, over its 10 MB limit; "
            "add a pattern for it to LFS_PATTERNS in scripts/make_space.py."
        )


def make_space(out: Path, *, root: Path = ROOT, lfs_patterns: tuple[str, ...] = LFS_PATTERNS) -> list[Path]:
    """Write the Space into `out` (new or empty), staged in its own git repository; returns its files, relative to `out`.

    Built in a sibling folder and moved into place at the end, so a refusal leaves nothing behind.
    """
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SpaceError(f"{out} is not empty; give a new folder, or remove it first.")
    require_git_lfs()
    files = committed_files(root)
    missing = [str(name) for name in (*FILES, README) if Path(name) not in files]
    if missing:
        raise SpaceError(f"{', '.join(missing)} is not committed in {root}.")
    building = out.parent / f".{out.name}.partial"
    shutil.rmtree(building, ignore_errors=True)
    try:
        building.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", "--format=tar", "HEAD", "--", *map(str, files)], cwd=root, capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            # Python's own safe extraction where it has it (3.10.12 and later); the archive is our own commit either way.
            tar.extractall(building, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        os.replace(building / README, building / "README.md")
        shutil.rmtree(building / README.parts[0])
        written = [Path("README.md") if path == README else path for path in files]
        (building / ".gitattributes").write_text("".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in lfs_patterns), encoding="utf-8")
        written.append(Path(".gitattributes"))
        stage(building)
        if out.exists():
            out.rmdir()
        os.replace(building, out)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return written


def lfs_tracked(path: Path, patterns: tuple[str, ...] = LFS_PATTERNS) -> bool:
    return any(fnmatch.fnmatch(path.name, pattern) for pattern in patterns)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/make_space.py", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write the Space into (new or empty)")
    args = parser.parse_args(argv)
    try:
        files = make_space(args.out)
    except SpaceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    left_out = uncommitted()
    if left_out:
        print(f"Not committed, so not in the Space: {', '.join(left_out[:10])}{' ...' if len(left_out) > 10 else ''}")
    size = sum((args.out / path).stat().st_size for path in files) / 1e6
    in_lfs = [str(path) for path in files if lfs_tracked(path)]
    print(f"Wrote {len(files)} files ({size:.1f} MB) to {args.out}, staged in a new git repository ({', '.join(in_lfs)} in Git LFS).")
    print("To publish it (a new Gradio Space of yours; a Hugging Face access token with write access is the password):")
    print(f"  cd {args.out} && git commit -m 'Colorize Space'")
    print("  git remote add space https://huggingface.co/spaces/YOUR-NAME/YOUR-SPACE && git push --force space main")
    return 0


if __name__ == "__main__":
    sys.exit(main())
