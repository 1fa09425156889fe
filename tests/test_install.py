"""What a user's `pip install .` gets: a wheel, installed non-editable into a new venv, migrates.

The wheel is built from this checkout and installed without its dependencies into a fresh
virtual environment that borrows this environment's third-party packages (a .pth line), so
the test needs no network. Every command runs in an empty folder, with no PYTHONPATH, so
only the installed package can be imported: a missing data file shows up here as it would
for a user.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tomllib
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ folder of a new venv holding press-digest from a freshly built wheel."""
    base = tmp_path_factory.mktemp("install")
    wheels = base / "wheels"
    build = _run(
        [
            sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
            "--no-build-isolation", "--wheel-dir", str(wheels), str(ROOT),
        ],
        cwd=base,
        env=dict(os.environ),
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (wheel,) = wheels.glob("press_digest-*.whl")

    target = base / "venv"
    venv.create(target, with_pip=False)
    purelib = Path(
        sysconfig.get_path("purelib", vars={"base": str(target), "platbase": str(target)})
    )
    # the dependencies come from this environment; the package itself only from the wheel
    (purelib / "_deps_from_test_env.pth").write_text(sysconfig.get_path("purelib") + "\n")
    install = _run(
        [
            sys.executable, "-m", "pip", "--python", str(target / "bin" / "python"),
            "install", "--quiet", "--no-deps", "--no-index", str(wheel),
        ],
        cwd=base,
        env=dict(os.environ),
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    return target / "bin"


@pytest.fixture
def user_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "VIRTUAL_ENV"} and not k.endswith(("_URL", "TOKEN", "FEEDS"))
    }
    env["FEEDS"] = "http://127.0.0.1:9/feed.xml"
    return env


def test_the_installed_package_is_not_this_checkout(installed: Path, tmp_path: Path, user_env):
    where = _run(
        [str(installed / "python"), "-c", "import bot; print(bot.__file__)"], tmp_path, user_env
    )
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(installed.parent)


def test_installed_press_digest_migrates_an_empty_folder_and_reports_stats(
    installed: Path, tmp_path: Path, user_env: dict[str, str]
) -> None:
    migrate = _run([str(installed / "press-digest"), "migrate"], tmp_path, user_env)
    assert migrate.returncode == 0, migrate.stderr
    assert (tmp_path / "data" / "press_digest.db").is_file()  # the default DATABASE_URL

    stats = _run([str(installed / "press-digest"), "stats", "--json"], tmp_path, user_env)
    assert stats.returncode == 0, stats.stderr
    figures = json.loads(stats.stdout)
    assert figures["feeds"] == 1 and figures["releases"] == 0

    version = _run([str(installed / "press-digest"), "--version"], tmp_path, user_env)
    assert version.returncode == 0
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert version.stdout.split() == ["press-digest", declared]


def test_installed_press_digest_migrates_postgresql(
    installed: Path, tmp_path: Path, user_env: dict[str, str], pg_url: str
) -> None:
    user_env["DATABASE_URL"] = pg_url
    migrate = _run([str(installed / "press-digest"), "migrate"], tmp_path, user_env)
    assert migrate.returncode == 0, migrate.stderr
    stats = _run([str(installed / "press-digest"), "stats", "--json"], tmp_path, user_env)
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["feeds"] == 1
