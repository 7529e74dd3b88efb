"""Two CPU processes under Lightning's DDP (gloo) against one process, on real CIFAR-10.

With a global batch of 256, each process trains on its half of every batch and DDP averages the
gradients, so the first optimizer step must equal one process's step on the whole batch; and over
an epoch the processes together see every training image exactly once.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch
from lightning_impl.datamodule import Cifar10DataModule
from parity_tests.ddp_probe import SUBSET, fingerprint
from parity_tests.harness import assert_close


def probe(run_cli, devices: int, out: Path) -> Path:
    result = run_cli("-m", "parity_tests.ddp_probe", "--devices", str(devices), "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def runs(run_cli, tmp_path_factory) -> dict[int, Path]:
    return {devices: probe(run_cli, devices, tmp_path_factory.mktemp(f"devices{devices}")) for devices in (1, 2)}


def test_two_processes_take_the_same_first_step_as_one(runs):
    one, two = (torch.load(runs[devices] / "after_first_step.pt") for devices in (1, 2))
    initial = torch.load(runs[1] / "initial.pt")
    assert one.keys() == two.keys() == initial.keys()
    assert_close({name: (one[name].numpy(), two[name].numpy()) for name in one}, atol=1e-5,
                 title="weights after step 1: 1 process vs 2 under DDP")
    # RMSprop's first step moves every weight by about its step size, far beyond the tolerance.
    assert max((one[name] - initial[name]).abs().max().item() for name in one) > 1e-4


def test_every_training_image_is_seen_once_per_epoch_across_processes(runs):
    datamodule = Cifar10DataModule(seed=0, subset=SUBSET)
    datamodule.setup("fit")
    expected = Counter(fingerprint(image) for image in datamodule.train_images)
    rank0, rank1 = (Counter(json.loads((runs[2] / f"seen-rank{rank}.json").read_text())) for rank in (0, 1))
    single = Counter(json.loads((runs[1] / "seen-rank0.json").read_text()))
    assert single == expected
    assert rank0 + rank1 == expected, "the two processes together must see each training image once"
    assert not rank0 & rank1 and sum(rank0.values()) == sum(rank1.values()) == len(datamodule.train_labels) // 2
