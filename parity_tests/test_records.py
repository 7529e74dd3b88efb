"""Records (metrics.json, the bench JSONs) name paths inside the repository relative to it and any other
path by its last part: no committed record names the folders of the machine it ran on."""
from __future__ import annotations

import json
import re

from cifar_common.paths import REPO_ROOT, REPORTS_DIR
from cifar_common.rundir.metrics_json import portable_command

ABSOLUTE_PATH = re.compile(r"(^|[\s=])/[A-Za-z]")


def strings_in(value) -> list[str]:
    if isinstance(value, dict):
        return [s for item in value.values() for s in strings_in(item)]
    if isinstance(value, list):
        return [s for item in value for s in strings_in(item)]
    return [value] if isinstance(value, str) else []


def test_the_recorded_command_keeps_repository_paths_relative_and_others_by_name():
    """Inside the repository: relative to it; outside: the last part only; flags and relative paths as given."""
    argv = ["--out", str(REPO_ROOT / "runs" / "full"), f"--resume={REPO_ROOT}/runs/full/lightning-x",
            "--data-dir", "/somewhere/else/cifar10", "--seed", "1", "runs/relative"]
    assert portable_command("python -m lightning_impl.fit", argv) == (
        "python -m lightning_impl.fit --out runs/full --resume=runs/full/lightning-x --data-dir cifar10 --seed 1 "
        "runs/relative")


def test_committed_records_hold_no_absolute_path():
    """Every string in every committed JSON record under reports/ (the run folders' metrics.json included)."""
    records = sorted(REPORTS_DIR.rglob("*.json"))
    assert records, f"no records under {REPORTS_DIR}"
    found = {str(path.relative_to(REPO_ROOT)): text for path in records
             for text in strings_in(json.loads(path.read_text())) if ABSOLUTE_PATH.search(text)}
    assert not found, found
