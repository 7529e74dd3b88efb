"""The CIFAR-10 reader: pixel layout, dtypes, the real data's known facts, bad folders, the download.

Tiny batch folders are written in tmp_path in the official pickle format, with pixel values given by
a formula of (image, row, column, channel), so every expected pixel is known without the reader.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from cifar_common.data import (CLASS_NAMES, ENV_VAR, TEST_FILE, TRAIN_FILES, download_archive,
                               load_cifar10, read_batch, resolve_data_dir, to_unit_float, write_batch)
from cifar_common.errors import UserError

PER_FILE = 4  # images in each tiny batch file
N_TRAIN = PER_FILE * len(TRAIN_FILES)


def pixel(n, row, col, channel):
    """The value of image n's pixel (row, col, channel): every index moves it differently."""
    return (37 * n + 11 * row + 3 * col + 101 * channel) % 256


def planar_data(first: int, count: int) -> np.ndarray:
    """Images first..first+count-1 as the file stores them: (n, 3072), red plane, green, blue, row-major."""
    n, channel, row, col = np.indices((count, 3, 32, 32))
    return pixel(first + n, row, col, channel).astype(np.uint8).reshape(count, 3 * 32 * 32)


def nhwc_images(first: int, count: int) -> np.ndarray:
    """The same images as Keras hands them out: (n, 32, 32, 3)."""
    n, row, col, channel = np.indices((count, 32, 32, 3))
    return pixel(first + n, row, col, channel).astype(np.uint8)


def train_labels(first: int, count: int) -> np.ndarray:
    return np.arange(first, first + count) % len(CLASS_NAMES)


def batch_test_labels(count: int) -> np.ndarray:
    return (np.arange(count) * 3 + 1) % len(CLASS_NAMES)


def write_raw(path: Path, data, labels) -> None:
    """A batch file with exactly the given `data` and `labels` entries (no checks, no conversion)."""
    with path.open("wb") as f:
        pickle.dump({b"data": data, b"labels": labels, b"batch_label": b"hand-written"}, f)


@pytest.fixture
def tiny_dir(tmp_path) -> Path:
    """5 training files of 4 images, a test batch of 4 images and batches.meta, written by write_batch."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for k, name in enumerate(TRAIN_FILES):
        first = k * PER_FILE
        write_batch(folder / name, nhwc_images(first, PER_FILE), train_labels(first, PER_FILE))
    write_batch(folder / TEST_FILE, nhwc_images(1000, PER_FILE), batch_test_labels(PER_FILE))
    with (folder / "batches.meta").open("wb") as f:
        pickle.dump({b"label_names": [name.encode() for name in CLASS_NAMES], b"num_vis": 3072,
                     b"num_cases_per_batch": PER_FILE}, f)
    return folder


# --- pixel layout and dtypes -------------------------------------------------------------------

def test_reader_turns_planar_rgb_rows_into_uint8_nhwc(tmp_path):
    """A hand-written planar file comes back uint8 NHWC, each pixel where the format puts it, labels int64."""
    path = tmp_path / "data_batch_1"
    data = planar_data(0, 3)
    write_raw(path, data, [7, 0, 9])
    images, labels = read_batch(path)
    assert images.dtype == np.uint8 and images.shape == (3, 32, 32, 3)
    assert labels.dtype == np.int64 and labels.tolist() == [7, 0, 9]
    # Known positions: offset = channel * 1024 + row * 32 + column.
    assert images[1, 0, 0, 0] == data[1, 0]        # red, top-left
    assert images[1, 0, 1, 0] == data[1, 1]        # red, one column right
    assert images[1, 1, 0, 0] == data[1, 32]       # red, one row down
    assert images[1, 0, 0, 1] == data[1, 1024]     # green, top-left
    assert images[1, 0, 0, 2] == data[1, 2048]     # blue, top-left
    assert images[2, 31, 31, 2] == data[2, 3071]   # blue, bottom-right
    assert images[2, 5, 17, 1] == data[2, 1024 + 5 * 32 + 17]
    np.testing.assert_array_equal(images, nhwc_images(0, 3))
    assert images.flags["C_CONTIGUOUS"]


def test_write_batch_writes_the_official_planar_format(tmp_path):
    """write_batch stores (n, 3072) uint8 rows in red, green, blue plane order and the labels as ints."""
    path = tmp_path / "batch"
    write_batch(path, nhwc_images(5, 4), np.array([3, 1, 4, 1]))
    with path.open("rb") as f:
        batch = pickle.load(f, encoding="bytes")
    assert batch[b"data"].dtype == np.uint8
    np.testing.assert_array_equal(batch[b"data"], planar_data(5, 4))
    assert batch[b"labels"] == [3, 1, 4, 1] and all(type(v) is int for v in batch[b"labels"])


def test_load_cifar10_concatenates_the_five_files_in_order(tiny_dir):
    """The tiny folder loads as 20 training images in file order and 4 test images, every pixel exact."""
    data = load_cifar10(tiny_dir)
    assert data.x_train.dtype == np.uint8 and data.x_train.shape == (N_TRAIN, 32, 32, 3)
    assert data.x_test.dtype == np.uint8 and data.x_test.shape == (PER_FILE, 32, 32, 3)
    assert data.y_train.dtype == np.int64 and data.y_test.dtype == np.int64
    np.testing.assert_array_equal(data.x_train, nhwc_images(0, N_TRAIN))
    np.testing.assert_array_equal(data.y_train, train_labels(0, N_TRAIN))
    np.testing.assert_array_equal(data.x_test, nhwc_images(1000, PER_FILE))
    np.testing.assert_array_equal(data.y_test, batch_test_labels(PER_FILE))


def test_to_unit_float_is_the_tutorials_float32_division_bit_for_bit(tiny_dir):
    """to_unit_float gives exactly the bits of images.astype("float32") / 255, for every uint8 value."""
    every_value = np.arange(256, dtype=np.uint8).reshape(4, 4, 4, 4)
    for images in (every_value, load_cifar10(tiny_dir).x_train):
        got = to_unit_float(images)
        expected = images.astype("float32") / 255
        assert got.dtype == np.float32 and got.shape == images.shape
        np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))
    # The check can tell a different rounding apart: multiplying by 1/255 changes some values.
    assert not np.array_equal((every_value.astype("float32") * np.float32(1 / 255)).view(np.uint32),
                              to_unit_float(every_value).view(np.uint32))


# --- the real data ---------------------------------------------------------------------------

def test_real_data_has_the_published_sizes_labels_and_class_counts(cifar):
    """Real CIFAR-10: 50,000/10,000 uint8 NHWC images, the known first labels, 5,000/1,000 per class."""
    assert cifar.x_train.shape == (50000, 32, 32, 3) and cifar.x_train.dtype == np.uint8
    assert cifar.x_test.shape == (10000, 32, 32, 3) and cifar.x_test.dtype == np.uint8
    assert cifar.y_train.shape == (50000,) and cifar.y_train.dtype == np.int64
    assert cifar.y_test.shape == (10000,) and cifar.y_test.dtype == np.int64
    assert cifar.y_train[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert cifar.y_test[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert np.bincount(cifar.y_train, minlength=10).tolist() == [5000] * 10
    assert np.bincount(cifar.y_test, minlength=10).tolist() == [1000] * 10


def test_real_test_batch_pixels_match_the_file_bit_for_bit(cifar):
    """Every pixel of the real test set is the file's byte at channel*1024 + row*32 + column."""
    with (Path(os.environ[ENV_VAR]) / TEST_FILE).open("rb") as f:
        raw = np.asarray(pickle.load(f, encoding="bytes")[b"data"])
    n, row, col, channel = 1234, 7, 29, 2
    assert cifar.x_test[n, row, col, channel] == raw[n, channel * 1024 + row * 32 + col]
    np.testing.assert_array_equal(cifar.x_test.transpose(0, 3, 1, 2).reshape(10000, 3072), raw)


def test_real_training_channel_means_are_the_published_rgb_means(cifar):
    """The per-channel means are (0.4914, 0.4822, 0.4465) in R, G, B order: no channel is swapped."""
    means = to_unit_float(cifar.x_train).mean(axis=(0, 1, 2), dtype=np.float64)
    assert np.round(means, 4).tolist() == [0.4914, 0.4822, 0.4465]


# --- bad folders and files -------------------------------------------------------------------

def error_message(call) -> str:
    with pytest.raises(UserError) as caught:
        call()
    return str(caught.value)


def test_missing_folder_names_the_path_and_both_ways_to_set_it(tmp_path):
    """A folder that does not exist: the message names it, --data-dir and CIFAR10_DIR."""
    missing = tmp_path / "no-such-folder"
    message = error_message(lambda: load_cifar10(missing))
    assert str(missing) in message and "does not exist" in message
    assert "--data-dir" in message and ENV_VAR in message


def test_empty_folder_names_the_path_and_the_files_it_needs(tmp_path):
    """An empty folder: the message names it, says it is empty and lists the batch files it must hold."""
    message = error_message(lambda: load_cifar10(tmp_path))
    assert str(tmp_path) in message and "empty" in message
    assert all(name in message for name in (*TRAIN_FILES, TEST_FILE))


def test_missing_batch_file_is_named(tiny_dir):
    """A folder without data_batch_3: the message names that file and the files the folder must hold."""
    (tiny_dir / "data_batch_3").unlink()
    message = error_message(lambda: load_cifar10(tiny_dir))
    assert str(tiny_dir / "data_batch_3") in message and "missing" in message
    assert TEST_FILE in message


def test_truncated_pickle_is_named_with_the_fix(tiny_dir):
    """A batch file cut in half: the message names it, says corrupt or truncated and to replace it."""
    path = tiny_dir / "data_batch_2"
    content = path.read_bytes()
    path.write_bytes(content[:len(content) // 2])
    message = error_message(lambda: load_cifar10(tiny_dir))
    assert str(path) in message and "truncated" in message and "fresh copy" in message


@pytest.mark.parametrize("data, labels, shown", [
    (np.zeros((4, 3000), np.uint8), [0, 1, 2, 3], "(4, 3000)"),
    (np.zeros((4, 3, 32, 32), np.uint8), [0, 1, 2, 3], "(4, 3, 32, 32)"),
    (np.zeros((4, 3072), np.float32), [0, 1, 2, 3], "float32"),
    (np.zeros((4, 3072), np.uint8), [0, 1, 2], "3 labels"),
], ids=["short-rows", "4d", "float-pixels", "too-few-labels"])
def test_wrong_array_shape_is_named_with_the_expected_shape(tiny_dir, data, labels, shown):
    """Data not (n, 3072) uint8 with n labels: the message names the file, what it holds, what is expected."""
    path = tiny_dir / TEST_FILE
    write_raw(path, data, labels)
    message = error_message(lambda: load_cifar10(tiny_dir))
    assert str(path) in message and shown in message
    assert "expected (n, 3072) uint8 and n labels" in message and "fresh copy" in message


@pytest.mark.parametrize("bad_label", [10, -1])
def test_labels_out_of_range_are_named_with_the_valid_range(tiny_dir, bad_label):
    """A label outside 0..9: the message names the file, the valid range and the fix."""
    path = tiny_dir / "data_batch_4"
    write_raw(path, planar_data(0, 4), [0, 1, bad_label, 3])
    message = error_message(lambda: load_cifar10(tiny_dir))
    assert str(path) in message and "0..9" in message and "fresh copy" in message


def test_explicit_data_dir_beats_the_environment_variable(tiny_dir, tmp_path, monkeypatch):
    """resolve_data_dir: --data-dir beats CIFAR10_DIR, which is used without it; errors name their source."""
    other = tmp_path / "other"
    other.mkdir()
    (other / TEST_FILE).write_bytes(b"")
    monkeypatch.setenv(ENV_VAR, str(other))
    assert resolve_data_dir(tiny_dir) == tiny_dir
    assert resolve_data_dir(str(tiny_dir)) == tiny_dir
    assert resolve_data_dir(None) == other
    # An explicit folder that is missing is an error, not a fall-back to the environment.
    message = error_message(lambda: resolve_data_dir(tmp_path / "absent"))
    assert "(from --data-dir)" in message
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "absent-too"))
    assert resolve_data_dir(tiny_dir) == tiny_dir
    message = error_message(lambda: resolve_data_dir(None))
    assert str(tmp_path / "absent-too") in message and f"(from {ENV_VAR})" in message


# --- the download, without the internet --------------------------------------------------------

@pytest.fixture
def served_archive(tmp_path) -> tuple[str, str, bytes]:
    """A small tar.gz holding cifar-10-batches-py/test_batch, as a file:// URL, its MD5 and its bytes."""
    source = tmp_path / "source" / "cifar-10-batches-py"
    source.mkdir(parents=True)
    write_batch(source / TEST_FILE, nhwc_images(0, 2), np.array([4, 2]))
    archive = tmp_path / "served" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname="cifar-10-batches-py")
    content = archive.read_bytes()
    return archive.as_uri(), hashlib.md5(content).hexdigest(), content


def test_download_with_the_right_md5_keeps_and_unpacks_the_archive(served_archive, tmp_path):
    """A matching MD5: the archive is kept and unpacked to cifar-10-batches-py, no .part file left."""
    url, md5, content = served_archive
    cache = tmp_path / "cache"
    folder = download_archive(cache, url=url, md5=md5)
    assert folder == cache / "cifar-10-batches-py"
    images, labels = read_batch(folder / TEST_FILE)
    np.testing.assert_array_equal(images, nhwc_images(0, 2))
    assert labels.tolist() == [4, 2]
    assert (cache / "cifar-10-python.tar.gz").read_bytes() == content
    assert sorted(p.name for p in cache.iterdir()) == ["cifar-10-batches-py", "cifar-10-python.tar.gz"]


def test_download_with_a_wrong_md5_fails_and_leaves_nothing_behind(served_archive, tmp_path):
    """A wrong MD5: UserError naming both sums, and no archive and no .part file left in the cache."""
    url, md5, _ = served_archive
    cache = tmp_path / "cache"
    wrong = "0" * 32
    message = error_message(lambda: download_archive(cache, url=url, md5=wrong))
    assert md5 in message and wrong in message and "--data-dir" in message
    assert list(cache.iterdir()) == []


def test_download_from_an_unreachable_url_fails_and_leaves_nothing_behind(tmp_path):
    """An unreadable URL: UserError pointing to --data-dir and CIFAR10_DIR, nothing left in the cache."""
    cache = tmp_path / "cache"
    url = (tmp_path / "nowhere.tar.gz").as_uri()
    message = error_message(lambda: download_archive(cache, url=url, md5="0" * 32))
    assert url in message and "--data-dir" in message and ENV_VAR in message
    assert list(cache.iterdir()) == []
