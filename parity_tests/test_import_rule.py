"""The package boundaries: neutral code imports neither framework, and each side never the other's.

Read from the source (every import statement, at any depth), so a lazy import inside a function
counts as much as one at the top of a module.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from cifar_common.paths import REPO_ROOT

TORCH = {"torch", "torchvision", "torchmetrics", "lightning", "pytorch_lightning", "tensorboardX"}  # tensorboardX loads torch
TENSORFLOW = {"tensorflow", "keras", "tf_keras"}
FORBIDDEN = {"cifar_common": TORCH | TENSORFLOW, "keras_reference": TORCH, "lightning_impl": TENSORFLOW}


def imported_packages(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_nothing_it_must_not(package):
    files = sorted((REPO_ROOT / package).rglob("*.py"))
    assert files, f"no sources found for {package}"
    offences = {str(path.relative_to(REPO_ROOT)): sorted(imported_packages(path) & FORBIDDEN[package])
                for path in files}
    assert not {path: names for path, names in offences.items() if names}


def test_the_rule_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "lazy.py"
    source.write_text("def f():\n    import torch.nn as nn\n    from keras import layers\n    from . import x\n")
    assert imported_packages(source) == {"torch", "keras"}


# The neutral package's layers, as each sub-package's docstring states them: the run's description
# (spec) needs no run folder, the run folder needs no analysis, and only the entry points read analysis.
NEUTRAL_LAYERS = {
    "cifar_common/spec": ("cifar_common.rundir", "cifar_common.analysis", "cifar_common.bench"),
    "cifar_common/rundir": ("cifar_common.analysis", "cifar_common.bench"),
}
SPEC_MAY_USE = ("cifar_common.rundir.atomic",)  # atomic writes are a leaf every layer uses
READ_ANALYSIS = ("cifar_common/analysis", "cifar_common/compare.py", "cifar_common/report.py", "parity_tests")


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def reaches(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def test_neutral_sub_packages_import_only_the_layers_below():
    """spec imports no run folder code, rundir no analysis, and only the entry points import analysis."""
    offences = []
    for path in sorted(REPO_ROOT.rglob("*.py")):
        where = str(path.relative_to(REPO_ROOT))
        if where.startswith((".", "build")):
            continue
        forbidden = next((rule for folder, rule in NEUTRAL_LAYERS.items() if where.startswith(folder)), ())
        if not where.startswith(READ_ANALYSIS):
            forbidden += ("cifar_common.analysis",)
        for module in imported_modules(path):
            if any(reaches(module, prefix) for prefix in forbidden) and \
                    not any(reaches(module, allowed) for allowed in SPEC_MAY_USE):
                offences.append(f"{where} imports {module}")
    assert not offences, offences


OWN_PACKAGES = ("cifar_common", "keras_reference", "lightning_impl", "parity_tests")


def test_every_imported_project_module_exists_in_this_checkout():
    """No import names a module that moved away: an editable install of another checkout would otherwise
    serve the old file silently."""
    missing = []
    for path in sorted(REPO_ROOT.rglob("*.py")):
        where = str(path.relative_to(REPO_ROOT))
        if where.startswith((".", "build")):
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            for module in modules:
                file = REPO_ROOT / module.replace(".", "/")
                if module.startswith(OWN_PACKAGES) and not (file.with_suffix(".py").is_file() or file.is_dir()):
                    missing.append(f"{where}: {module}")
    assert not missing, missing


# What the AST rule cannot see: what an import drags in. These load in a fresh interpreter without either framework.
NEUTRAL_ENTRY_POINTS = ("cifar_common.compare", "cifar_common.report", "cifar_common.bench.driver",
                        "cifar_common.spec.describe_keras", "cifar_common.spec.keras_config")


@pytest.mark.parametrize("module", NEUTRAL_ENTRY_POINTS)
def test_neutral_entry_points_load_neither_framework(module):
    """Importing the module in a fresh interpreter loads neither torch, Lightning nor TensorFlow/Keras."""
    code = (f"import sys, {module}; "
            f"print(sorted({{name.split('.')[0] for name in sys.modules}} & set({sorted(TORCH | TENSORFLOW)!r})))")
    finished = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert finished.stdout.strip() == "[]", finished.stderr[-2000:]
