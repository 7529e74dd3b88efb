"""The package boundaries: neutral code imports neither framework, and each side never the other's.

Read from the source (every import statement, at any depth), so a lazy import inside a function
counts as much as one at the top of a module.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TORCH = {"torch", "torchvision", "torchmetrics", "lightning", "pytorch_lightning"}
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
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no sources found for {package}"
    offences = {str(path.relative_to(ROOT)): sorted(imported_packages(path) & FORBIDDEN[package]) for path in files}
    assert not {path: names for path, names in offences.items() if names}


def test_the_rule_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "lazy.py"
    source.write_text("def f():\n    import torch.nn as nn\n    from keras import layers\n    from . import x\n")
    assert imported_packages(source) == {"torch", "keras"}
