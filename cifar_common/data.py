"""CIFAR-10 from the standard `cifar-10-batches-py` folder: one reader for both frameworks.

Arrays come back as Keras's `cifar10.load_data()` gives them: uint8 images in NHWC order and int
labels. `to_unit_float` is the tutorial's `astype("float32") / 255`, so both sides train on the
same bits.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cifar_common.errors import UserError

TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck")
IMAGE_SHAPE = (32, 32, 3)
ARCHIVE_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
ENV_VAR = "CIFAR10_DIR"
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "keras-lightning-parity"


@dataclass(frozen=True)
class Cifar10:
    x_train: np.ndarray  # uint8, (n, 32, 32, 3)
    y_train: np.ndarray  # int64, (n,)
    x_test: np.ndarray
    y_test: np.ndarray

    def subset(self, n: int | None) -> "Cifar10":
        """The first `n` training and the first `n` test images (for quick runs)."""
        if n is None:
            return self
        limit = min(len(self.x_train), len(self.x_test))
        if not 0 < n <= limit:
            raise UserError(f"--subset must be between 1 and {limit} (the smaller split's size), got {n}")
        return Cifar10(self.x_train[:n], self.y_train[:n], self.x_test[:n], self.y_test[:n])


def to_unit_float(images: np.ndarray) -> np.ndarray:
    """Pixels as float32 in [0, 1], computed exactly as the Keras tutorial does."""
    return images.astype("float32") / 255


def keras_validation_split(n: int, validation_split: float) -> tuple[range, range]:
    """Indices Keras's `fit(validation_split=...)` trains and validates on: the LAST fraction validates."""
    split_at = int(n * (1.0 - validation_split))
    if split_at <= 0 or split_at >= n:
        raise UserError(f"validation_split={validation_split} leaves no training or no validation images of {n}")
    return range(0, split_at), range(split_at, n)


def resolve_data_dir(data_dir: str | Path | None) -> Path:
    """`--data-dir`, else `$CIFAR10_DIR`, else the cache folder (downloading the archive if needed)."""
    if data_dir is not None:
        return _checked_dir(Path(data_dir), "--data-dir")
    if os.environ.get(ENV_VAR):
        return _checked_dir(Path(os.environ[ENV_VAR]), ENV_VAR)
    cached = CACHE_DIR / "cifar-10-batches-py"
    if not (cached / TEST_FILE).is_file():
        download_archive(CACHE_DIR)
    return cached


def _checked_dir(path: Path, source: str) -> Path:
    if not path.is_dir():
        raise UserError(
            f"CIFAR-10 folder {path} (from {source}) does not exist: point --data-dir or {ENV_VAR} "
            f"at a cifar-10-batches-py folder, or set neither to download the archive"
        )
    if not any(path.iterdir()):
        raise UserError(f"CIFAR-10 folder {path} (from {source}) is empty: it should hold "
                        f"{', '.join(TRAIN_FILES)} and {TEST_FILE}")
    return path


def download_archive(cache_dir: Path, url: str = ARCHIVE_URL, md5: str = ARCHIVE_MD5) -> Path:
    """Download to a temporary file, verify the MD5, then rename and unpack: never a half archive."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    archive = cache_dir / "cifar-10-python.tar.gz"
    if not archive.is_file():
        fd, partial = tempfile.mkstemp(dir=cache_dir, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
                shutil.copyfileobj(response, out)
            digest = _md5(Path(partial))
            if digest != md5:
                raise UserError(f"download of {url} has MD5 {digest}, expected {md5}: try again, "
                                f"or pass --data-dir with a local copy")
            os.replace(partial, archive)
        except OSError as error:
            raise UserError(f"could not download CIFAR-10 from {url} ({error}): pass --data-dir or set "
                            f"{ENV_VAR} to a local cifar-10-batches-py folder") from None
        finally:
            if os.path.exists(partial):
                os.remove(partial)
    with tarfile.open(archive) as tar:
        tar.extractall(cache_dir, filter="data")
    return cache_dir / "cifar-10-batches-py"


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch file as (uint8 NHWC images, int64 labels), checked for shape and range."""
    if not path.is_file():
        raise UserError(f"CIFAR-10 batch file {path} is missing: the folder must hold "
                        f"{', '.join(TRAIN_FILES)} and {TEST_FILE}")
    try:
        with path.open("rb") as f:
            batch = pickle.load(f, encoding="bytes")
        data = np.asarray(batch[b"data"])
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except Exception as error:  # a corrupt pickle can raise almost anything
        raise UserError(f"CIFAR-10 batch file {path} is corrupt or truncated ({type(error).__name__}: "
                        f"{error}); replace it with a fresh copy") from None
    pixels = int(np.prod(IMAGE_SHAPE))
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != pixels or len(labels) != len(data):
        raise UserError(f"CIFAR-10 batch file {path} holds data of shape {data.shape} ({data.dtype}) and "
                        f"{len(labels)} labels; expected (n, {pixels}) uint8 and n labels: "
                        f"replace it with a fresh copy")
    if labels.size and (labels.min() < 0 or labels.max() >= len(CLASS_NAMES)):
        raise UserError(f"CIFAR-10 batch file {path} has labels outside 0..{len(CLASS_NAMES) - 1}: "
                        f"replace it with a fresh copy")
    # Stored as (n, channel, row, column); Keras hands out (n, row, column, channel).
    images = data.reshape(-1, IMAGE_SHAPE[2], *IMAGE_SHAPE[:2]).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def load_cifar10(data_dir: str | Path | None = None) -> Cifar10:
    folder = resolve_data_dir(data_dir)
    train = [read_batch(folder / name) for name in TRAIN_FILES]
    x_test, y_test = read_batch(folder / TEST_FILE)
    return Cifar10(
        x_train=np.concatenate([x for x, _ in train]),
        y_train=np.concatenate([y for _, y in train]),
        x_test=x_test,
        y_test=y_test,
    )


def write_batch(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """Write uint8 NHWC images in the official pickle format (used to build test folders)."""
    data = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    with Path(path).open("wb") as f:
        pickle.dump({b"data": data, b"labels": [int(v) for v in labels], b"batch_label": b"synthetic"}, f)
