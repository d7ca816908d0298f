"""The Hugging Face Space folder `python scripts/make_space.py` assembles: complete, within Spaces' limits, and it runs."""

from __future__ import annotations

import fnmatch
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from make_space import PLAIN_GIT_LIMIT, SpaceError, main, make_space  # noqa: E402


@pytest.fixture(scope="module")
def space(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("space")
    assert main([str(out)]) == 0
    return out


def front_matter(readme: Path) -> dict[str, str]:
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("---\n"), "a Space's README.md starts with its front matter"
    block = text.split("---\n")[1]
    return dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)


def lfs_patterns(space: Path) -> list[str]:
    lines = (space / ".gitattributes").read_text().splitlines()
    return [line.split()[0] for line in lines if "filter=lfs" in line.split()]


def test_the_space_holds_the_app_its_packages_and_the_weights(space):
    files = {path.relative_to(space).as_posix() for path in space.rglob("*") if path.is_file()}
    for needed in ("app.py", "requirements.txt", "README.md", ".gitattributes", "colorize/__init__.py", "survey/__init__.py",
                   "ui/__init__.py", "ui/static/app.css", "ui/static/stimulus.js", "colorize/weights/config.json",
                   "colorize/weights/model.safetensors"):  # fmt: skip
        assert needed in files, needed
    assert not [name for name in files if name.startswith(("tests/", "results/", "docs/", ".venv/"))]
    assert not [name for name in files if "__pycache__" in name or name.endswith((".pyc", ".pyi"))]
    assert (space / "requirements.txt").read_bytes() == (ROOT / "requirements.txt").read_bytes()


def test_every_file_over_10_mb_goes_through_git_lfs(space):
    patterns = lfs_patterns(space)
    assert "*.safetensors" in patterns
    large = [path for path in space.rglob("*") if path.is_file() and path.stat().st_size > PLAIN_GIT_LIMIT]
    assert large, "the shipped weights are over 10 MB: this test would check nothing otherwise"
    for path in large:
        assert any(fnmatch.fnmatch(path.name, pattern) for pattern in patterns), f"{path.name} would be refused by Spaces"


def test_the_readme_front_matter_makes_a_gradio_space_of_the_tested_version(space):
    meta = front_matter(space / "README.md")
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    gradio = next(Requirement(line) for line in pyproject["project"]["optional-dependencies"]["app"] if line.startswith("gradio"))
    assert gradio.specifier.contains(meta["sdk_version"]), f"the Space would run gradio {meta['sdk_version']}, outside {gradio}"


def test_a_folder_in_use_is_refused(space):
    with pytest.raises(SpaceError, match="is not empty; give a new folder, or remove it first."):
        make_space(space)


@pytest.mark.slow
def test_the_app_builds_from_the_space_folder_alone(space, tmp_path):
    """As Spaces runs it: `app.py` from the folder's root, importing the folder's own packages and weights."""
    code = (
        "import json, app, colorize, survey, ui, colorize.checkpoint as c\n"
        f"demo = app.build_app(db_url='sqlite://', models_dir={str(tmp_path)!r}, examples_dir={str(tmp_path / 'examples')!r})\n"
        "print(json.dumps({'files': [m.__file__ for m in (app, colorize, survey, ui)], 'weights': str(c.SHIPPED_MODEL_DIR),"
        " 'untrained': demo.catalog.untrained}))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=space, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert all(Path(name).resolve().is_relative_to(space.resolve()) for name in result["files"]), result["files"]
    assert Path(result["weights"]).resolve().is_relative_to(space.resolve())
    assert result["untrained"] is None  # the shipped weights load from the Space
