"""Lightning checkpoints that survive a failed write, and the port's loader for `--resume`.

Lightning's own `TorchCheckpointIO` writes through a temporary file in the system temporary
folder and moves it into place: across file systems that move is a copy, so a full disk leaves a
truncated `last.ckpt` where the good one was. This CheckpointIO writes next to the target, flushes,
checks that the file loads back, and only then renames it; the per-epoch checkpoint's previous
version is kept as `last.previous.ckpt` (`cifar_common.rundir.resume`).
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Mapping, Optional

import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.fabric.utilities.types import _PATH

from cifar_common.errors import UserError
from cifar_common.rundir.atomic import write_atomically
from cifar_common.rundir.resume import Checkpoint, checkpoint_to_resume, previous_version
from lightning_impl.module import CifarClassifier, described_architecture

LAST = Path("checkpoints") / "last.ckpt"


def read_checkpoint(path: Path) -> dict[str, Any]:
    # The run's own files, which hold Lightning's state besides tensors.
    return torch.load(path, map_location="cpu", weights_only=False)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Same folder, flushed, verified, renamed; keeps `keep_previous_of`'s last version."""

    def __init__(self, keep_previous_of: Path | None = None):
        # Resolved: ModelCheckpoint hands over the real path of its folder.
        self.keep_previous_of = Path(keep_previous_of).resolve() if keep_previous_of is not None else None

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        keep = previous_version(path) if path.resolve() == self.keep_previous_of else None
        # Serialised in memory first: torch's own file writer reports a full disk as a bare RuntimeError.
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        write_atomically(path, lambda tmp: tmp.write_bytes(buffer.getbuffer()), verify=read_checkpoint,
                              previous=keep)


def network_mismatch(state_dict: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> str | None:
    """The first difference in parameter names or shapes between a checkpoint and the network, or None."""
    for name, tensor in expected.items():
        if name not in state_dict:
            return f"it has no {name}"
        if tuple(state_dict[name].shape) != tuple(tensor.shape):
            return f"{name} is {tuple(state_dict[name].shape)}, not {tuple(tensor.shape)}"
    extra = sorted(set(state_dict) - set(expected))
    return f"it has {extra[0]}, which this network lacks" if extra else None


def settings_mismatch(saved: Mapping[str, Any], module: CifarClassifier) -> str | None:
    """The first module setting (the network, classes, ...) the checkpoint was made with that differs, or None.

    Networks are compared by what they are (the architecture's fingerprint), so a checkpoint written
    before architectures were data (`dropout=True`, no `architecture`) matches the same network today.
    """
    network = described_architecture(saved)
    if network.fingerprint != module.architecture.fingerprint:
        return (f"it holds the network {network.name} ({network.fingerprint}), this run has "
                f"{module.architecture.name} ({module.architecture.fingerprint})")
    for name, value in module.hparams.items():
        if name not in ("architecture", "dropout") and name in saved and saved[name] != value:
            return f"it was made with {name}={saved[name]}, this run has {name}={value}"
    return None


def checkpoint_loader(module: CifarClassifier):
    """`cifar_common.rundir.resume`'s loader for the port: epochs finished, refusing another network's checkpoint."""
    expected = module.state_dict()

    def load(path: Path) -> tuple[int, dict[str, Any]]:
        checkpoint = read_checkpoint(path)
        mismatch = (settings_mismatch(checkpoint.get("hyper_parameters", {}), module)
                    or network_mismatch(checkpoint["state_dict"], expected))
        if mismatch:
            raise UserError(f"{path} is from another network or variant than config.yaml describes "
                            f"({mismatch}); start a new run for it")
        return int(checkpoint["epoch"]) + 1, checkpoint  # Lightning counts epochs from 0

    return load


def epochs_done(path: Path) -> tuple[int, None]:
    """The plain loader: any checkpoint of the port that loads (for saying where a run can carry on)."""
    return int(read_checkpoint(path)["epoch"]) + 1, None


def resume_checkpoint(run_dir: Path, module: CifarClassifier) -> Checkpoint:
    """The checkpoint `--resume run_dir` carries on from, checked against the network `module` is."""
    return checkpoint_to_resume(run_dir, run_dir / LAST, checkpoint_loader(module))
