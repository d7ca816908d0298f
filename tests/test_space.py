"""The Hugging Face Space folder `python scripts/make_space.py` assembles: complete, pushable as it is, and it runs.

What cannot be run here: PyTorch's own index (download.pytorch.org) is out of this machine's
reach, so the fresh install takes the same `torch==2.13.0+cpu` wheel from the machine's wheel
folder (pip's find-links); and nothing is pushed to Hugging Face.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from packaging.requirements import Requirement
from PIL import Image

from browser import free_port, gray_photo, wait_for_http

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from make_space import NO_GIT_LFS, PLAIN_GIT_LIMIT, SpaceError, main, make_space  # noqa: E402

LFS_POINTER = "version https://git-lfs.github.com/spec/v1"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


@pytest.fixture(scope="module")
def space(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("space") / "space"
    assert main([str(out)]) == 0
    return out


def space_files(space: Path) -> set[str]:
    """The Space's files, its git repository aside."""
    return {path.relative_to(space).as_posix() for path in space.rglob("*") if path.is_file() and ".git" not in path.relative_to(space).parts}


def front_matter(readme: Path) -> dict[str, str]:
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("---\n"), "a Space's README.md starts with its front matter"
    block = text.split("---\n")[1]
    return {key: value.strip('"') for key, value in (line.split(": ", 1) for line in block.splitlines() if ": " in line)}


def git(space: Path, *args: str, input: str | None = None) -> str:
    return subprocess.run(["git", *args], cwd=space, input=input, capture_output=True, text=True, check=True).stdout


def test_the_space_holds_the_app_its_packages_and_the_weights(space):
    files = space_files(space)
    for needed in ("app.py", "requirements.txt", "README.md", ".gitattributes", "colorize/__init__.py", "survey/__init__.py",
                   "ui/__init__.py", "ui/static/app.css", "ui/static/stimulus.js", "colorize/weights/config.json",
                   "colorize/weights/model.safetensors"):  # fmt: skip
        assert needed in files, needed
    assert not [name for name in files if name.startswith(("tests/", "results/", "docs/", "scripts/", ".venv/"))]
    assert not [name for name in files if "__pycache__" in name or name.endswith((".pyc", ".pyi"))]
    assert (space / "README.md").read_bytes() == git(ROOT, "show", "HEAD:docs/space/README.md").encode()


def test_it_holds_the_committed_files_not_the_working_tree(space):
    """What is pushed is what is committed: each file's staged blob is the project's committed one."""
    listed = git(ROOT, "ls-tree", "-r", "HEAD", "--", "app.py", "requirements.txt", "colorize", "survey", "ui")
    committed = {line.split("\t")[1]: line.split()[2] for line in listed.splitlines()}  # mode type blob<TAB>path
    staged = {line.split("\t")[1]: line.split()[1] for line in git(space, "ls-files", "-s").splitlines()}  # mode blob stage<TAB>path
    plain = {path: blob for path, blob in staged.items() if path not in ("README.md", ".gitattributes") and not path.endswith(".safetensors")}
    assert plain == {path: blob for path, blob in committed.items() if not path.endswith(".safetensors")}


def test_it_is_staged_in_its_own_repository_with_the_weights_in_git_lfs(space):
    staged = set(git(space, "ls-files", "-z").split("\0")) - {""}
    assert staged == space_files(space)
    pointer = git(space, "cat-file", "blob", ":colorize/weights/model.safetensors")
    assert pointer.startswith(LFS_POINTER) and (space / "colorize/weights/model.safetensors").stat().st_size > PLAIN_GIT_LIMIT
    # no staged blob is over Spaces' plain-git limit
    blobs = [line.split()[1] for line in git(space, "ls-files", "-s").splitlines()]
    sizes = git(space, "cat-file", "--batch-check=%(objectsize)", input="\n".join(blobs) + "\n").split()
    assert max(map(int, sizes)) <= PLAIN_GIT_LIMIT
    assert git(space, "branch", "--show-current").strip() == "main"


def test_the_requirements_take_torch_s_cpu_build_from_pytorch_s_index(space):
    lines = [line.strip() for line in (space / "requirements.txt").read_text().splitlines()]
    assert f"--extra-index-url {CPU_INDEX}" in lines
    (torch,) = [Requirement(line) for line in lines if line.startswith("torch")]
    (pin,) = torch.specifier
    assert pin.operator == "==" and pin.version.endswith("+cpu")  # PyPI has no +cpu build: only PyTorch's index does


def test_the_readme_is_the_space_s_own(space):
    readme = space / "README.md"
    meta = front_matter(readme)
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    assert meta["python_version"] == f"{sys.version_info.major}.{sys.version_info.minor}"  # the Python the tests run on
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    gradio = next(Requirement(line) for line in pyproject["project"]["optional-dependencies"]["app"] if line.startswith("gradio"))
    assert gradio.specifier.contains(meta["sdk_version"]), f"the Space would run gradio {meta['sdk_version']}, outside {gradio}"
    text = readme.read_text(encoding="utf-8")
    assert len(text) < 6000  # short: the Space's page, not the project's README
    for needed in ("SURVEY_ADMIN_PASSWORD", "COLORIZE_MODE", "SURVEY_DB_URL", "/data/survey.sqlite", "persistent storage",
                   "from gradio_client import Client, handle_file", 'api_name="/colorize"', "?study="):  # fmt: skip
        assert needed in text, needed
    assert not re.search(r"\bmake\b|\.venv|\.\./shared|\.device", text), "commands of the project's checkout, not of a Space"
    for target in re.findall(r"\]\(([^)]+)\)", text):  # every link that is not a web address leads to a file of the Space
        assert re.match(r"https?://", target) or (space / target.split("#")[0]).exists(), f"broken link: {target}"


def test_a_folder_in_use_is_refused(space):
    with pytest.raises(SpaceError, match="is not empty; give a new folder, or remove it first."):
        make_space(space)


def test_nothing_is_written_without_git_lfs(tmp_path):
    """With git but no git-lfs on PATH, as on a machine where it was never installed."""
    tools = tmp_path / "bin"
    tools.mkdir()
    git_path = subprocess.run(["which", "git"], capture_output=True, text=True, check=True).stdout.strip()
    (tools / "git").symlink_to(git_path)
    out = tmp_path / "space"
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_space.py"), str(out)],
        env={**os.environ, "PATH": str(tools)}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2 and run.stderr == f"error: {NO_GIT_LFS}\n" and run.stdout == ""
    assert not out.exists()


def test_nothing_is_written_when_the_weights_would_go_to_plain_git(tmp_path):
    out = tmp_path / "space"
    with pytest.raises(SpaceError, match=r"^colorize/weights/hints/model.safetensors, colorize/weights/model.safetensors would go to the Space as plain git, over its 10 MB limit"):
        make_space(out, lfs_patterns=("*.onnx",))  # a pattern that misses the weights
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_the_space_installs_from_its_own_requirements_in_a_fresh_venv_and_colorizes(space, tmp_path):
    """As Spaces runs it: `pip install -r requirements.txt` in an empty environment, then `python app.py` from the folder."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    # --retries 0: PyTorch's index does not resolve here; pip says so at once and goes on with the others.
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--retries", "0", "-r", "requirements.txt"],
        cwd=space, capture_output=True, text=True, timeout=1500,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]
    probe = "import json, torch; print(json.dumps([torch.__version__, torch.version.cuda]))"
    torch_version, cuda = json.loads(subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=True).stdout)
    assert torch_version.endswith("+cpu") and cuda is None

    port = free_port()
    log = tmp_path / "space.log"
    environment = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1",
                   "SURVEY_DB_URL": f"sqlite:///{tmp_path / 'survey.sqlite'}"}  # fmt: skip
    photo = tmp_path / "photo.png"
    gray_photo((64, 48)).save(photo)
    with open(log, "w") as sink:
        app = subprocess.Popen([str(python), "app.py"], cwd=space, env=environment, stdout=sink, stderr=subprocess.STDOUT)
        try:
            wait_for_http(f"http://127.0.0.1:{port}/", timeout=240, process=app, log=log)
            client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            png_path = client.predict(handle_file(str(photo)), api_name="/colorize")  # the Space README's call
            assert Image.open(png_path).size == (64, 48)
        finally:
            app.terminate()
            app.wait(timeout=30)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
