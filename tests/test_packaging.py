"""Packaging by audience: pyproject's extras, requirements.txt for Spaces, one version, and what each package may import."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import colorize

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]


def requirements(lines) -> dict[str, Requirement]:
    """Name -> requirement of each line that is one (comments, pip options and self-references skipped)."""
    found = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            requirement = Requirement(line)
            if requirement.name != PROJECT["name"]:
                found[requirement.name.lower()] = requirement
    return found


def extra(name: str) -> dict[str, Requirement]:
    """An extra's requirements, with the extras it names of this project folded in."""
    lines = PROJECT["optional-dependencies"][name]
    found = requirements(lines)
    for line in lines:
        requirement = Requirement(line)
        if requirement.name == PROJECT["name"]:
            for inner in requirement.extras:
                found.update(extra(inner))
    return found


def test_pip_install_dot_gives_the_colorizer_alone():
    assert set(requirements(PROJECT["dependencies"])) == {"torch", "numpy", "pillow", "scikit-image", "safetensors", "tqdm"}
    assert {"sqlalchemy", "pandas", "psycopg"} <= set(extra("survey"))
    assert {"gradio", "sqlalchemy"} <= set(extra("app"))  # the app holds the study's tab
    assert set(extra("all")) == set(extra("app")) | set(extra("survey")) | set(extra("bench")) | set(extra("test"))


def test_requirements_txt_is_what_the_app_needs_as_pyproject_says():
    """requirements.txt (what a Space installs) = the colorizer + the app extra, with the same bounds; torch pinned within them."""
    wanted = {**requirements(PROJECT["dependencies"]), **extra("app")}
    listed = requirements((ROOT / "requirements.txt").read_text().splitlines())
    assert set(listed) == set(wanted), f"missing {set(wanted) - set(listed)}, extra {set(listed) - set(wanted)}"
    for name, requirement in listed.items():
        if name == "torch":
            (pin,) = requirement.specifier
            assert pin.operator == "==" and wanted[name].specifier.contains(pin.version)
        else:
            assert requirement.specifier == wanted[name].specifier and requirement.extras == wanted[name].extras, name


def test_the_version_is_written_once():
    assert "version" not in PROJECT and "version" in PROJECT["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "colorize.__version__"}
    assert colorize.__version__.count(".") == 2


def test_every_package_and_its_data_folders_are_listed():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    assert {p.parent.name for p in ROOT.glob("*/__init__.py")} | {"colorize.weights", "colorize.weights.hints", "ui.static"} == listed


@pytest.mark.slow
def test_pip_builds_the_package_with_its_data_and_without_warnings(tmp_path):
    """`pip install .` builds this wheel; setuptools once warned "Package would be ignored" for the data folders."""
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--verbose", "--wheel-dir", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-2000:]
    said = build.stdout + build.stderr
    assert "would be ignored" not in said and "BuildBackendWarning" not in said
    (wheel,) = tmp_path.glob("colorize_study-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"colorize/weights/{folder}{name}" for folder in ("", "hints/") for name in ("model.safetensors", "config.json")}
    shipped |= {"colorize/colour_prior.json"}
    static = {f"ui/static/{p.name}" for p in (ROOT / "ui" / "static").iterdir() if p.is_file()}
    assert shipped | static <= names, sorted(shipped | static - names)


def run_without(blocked: set[str], code: str) -> None:
    """Run `code` in a fresh interpreter where importing any of `blocked` fails, as if it were not installed."""
    guard = (
        "import sys, importlib.abc\n"
        "class Blocked(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {sorted(blocked)!r}: raise ImportError(name + ' is not installed')\n"
        "sys.meta_path.insert(0, Blocked())\n"
    )
    subprocess.run([sys.executable, "-c", guard + code], cwd=ROOT, check=True)


@pytest.mark.slow
def test_the_colorizer_runs_with_its_own_dependencies_only():
    modules = sorted(p.stem for p in (ROOT / "colorize").glob("*.py") if p.stem not in ("__init__", "plots"))  # plots: bench extra
    code = "".join(f"import colorize.{name}\n" for name in modules) + (
        "from colorize import Colorizer\n"
        "Colorizer.untrained().colorize(__import__('PIL.Image').Image.new('L', (40, 30), 128))\n"
    )
    run_without({"gradio", "gradio_client", "sqlalchemy", "pandas", "matplotlib", "psycopg", "survey", "ui", "onnx", "onnxruntime"}, code)


@pytest.mark.slow
def test_the_survey_never_needs_torch_nor_gradio():
    modules = sorted(p.stem for p in (ROOT / "survey").glob("*.py") if p.stem != "__init__")
    run_without({"torch", "gradio", "ui"}, "".join(f"import survey.{name}\n" for name in modules))
