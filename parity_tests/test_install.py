"""A non-editable `pip install` works away from the repository: the console commands fit (both sides) and
compare with their defaults, from an empty folder, running the installed modules and the shipped configs.

The project is copied and installed with `--no-deps --no-build-isolation --target` beside the
dependencies already installed (seconds, not minutes). The source checkout stays reachable through the
editable install, so the check that every module ran from the install can fail. One 128-image epoch a side.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cifar_common.paths import REPO_ROOT

BUILD_INPUTS = ("pyproject.toml", "README.md", "configs", "cifar_common", "keras_reference", "lightning_impl")
PACKAGES = ("cifar_common", "keras_reference", "lightning_impl")
COMMANDS = ("lightning_fit", "keras_fit", "compare_runs", "check_parity", "parity_bench", "parity_report",
            "keras2lightning")
# Imported first by every Python process started with it on PYTHONPATH: at exit it appends the file each
# of the project's modules in that process was loaded from.
RECORDER = f"""import atexit, json, os, sys

def record():
    with open(os.environ["MODULE_FILES"], "a") as f:
        f.write(json.dumps({{name: getattr(module, "__file__", None) for name, module in list(sys.modules.items())
                            if name.split(".")[0] in {PACKAGES!r}}}) + "\\n")

atexit.register(record)
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The project installed (not editable) into a fresh folder: its site folder."""
    tmp = tmp_path_factory.mktemp("install")
    source = tmp / "source"  # a copy, so that the build leaves nothing in the checkout
    source.mkdir()
    for name in BUILD_INPUTS:
        if (REPO_ROOT / name).is_dir():
            shutil.copytree(REPO_ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO_ROOT / name, source / name)
    site = tmp / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-compile", "--target", str(site), str(source)], check=True, capture_output=True,
                   timeout=300)
    (tmp / "recorder").mkdir()
    (tmp / "recorder" / "sitecustomize.py").write_text(RECORDER)
    return site


def run(site: Path, cwd: Path, command: str, *args: str, background: bool = False):
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{site.parent / 'recorder'}",
           "MODULE_FILES": str(site.parent / "module_files.jsonl"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    start = subprocess.Popen if background else subprocess.run
    return start([str(site / "bin" / command), *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE, text=True)


def recorded_module_files(site: Path) -> dict[str, str]:
    lines = (site.parent / "module_files.jsonl").read_text().splitlines()
    return {name: path for line in lines for name, path in json.loads(line).items()}


def test_install_declares_every_console_command(installed):
    """pip writes a launcher for each command in [project.scripts]."""
    assert sorted(path.name for path in (installed / "bin").iterdir()) == sorted(COMMANDS)


def test_installed_fit_and_compare_run_from_another_folder(cifar_dir, installed, tmp_path):
    """lightning_fit and keras_fit (one 128-image epoch, default config) and compare_runs on their two runs,
    from an empty folder, exit 0 and run only modules from the install."""
    args = ("--subset", "128", "--epochs", "1", "--out", "runs")
    keras = run(installed, tmp_path, "keras_fit", *args, background=True)  # beside the port's fit
    port = run(installed, tmp_path, "lightning_fit", *args)
    keras_out, keras_err = keras.communicate(timeout=300)
    assert port.returncode == 0, port.stderr[-3000:]
    assert keras.returncode == 0, keras_err[-3000:]
    run_dirs = sorted((tmp_path / "runs").iterdir())
    assert [path.name.split("-")[:2] for path in run_dirs] == [["keras", "baseline"], ["lightning", "baseline"]]

    compared = run(installed, tmp_path, "compare_runs", *map(str, run_dirs))
    assert compared.returncode == 0, compared.stderr[-3000:]
    assert (tmp_path / "runs" / "comparisons" / f"{run_dirs[0].name}-vs-{run_dirs[1].name}"
            / "comparison.json").is_file()

    files = recorded_module_files(installed)
    assert {"lightning_impl.fit", "keras_reference.fit", "cifar_common.compare", "cifar_common.spec.config"} <= set(files)
    outside = {name: path for name, path in files.items() if path is None or not Path(path).is_relative_to(installed)}
    assert outside == {}, f"modules loaded from outside the install: {outside}"


def test_installed_report_refuses_its_repository_default_clearly(installed, tmp_path):
    """parity_report's default reports/ lives in the repository: --help says so, and from an installed copy
    the command says so in one line and exits with status 2."""
    help_text = " ".join(run(installed, tmp_path, "parity_report", "--help").stdout.split())
    assert "the repository's reports/" in help_text
    result = run(installed, tmp_path, "parity_report")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "repository's reports/" in line
