"""Bad flags, configs and data folders: refused before any work, exit status 2, one clear line.

`lightning_impl.fit.main` runs in-process with `train` replaced by a function that fails the test, so
no case here can start training; `--out` points at a folder that must never be created.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from cifar_common.data import ENV_VAR
from lightning_impl import fit as lightning_fit


@pytest.fixture
def no_training(cifar_dir, monkeypatch, tmp_path):
    """`train` fails the test if reached; CIFAR10_DIR is set; returns the --out folder (must stay absent)."""
    def train(*args, **kwargs):
        pytest.fail("bad input reached training", pytrace=False)

    monkeypatch.setattr(lightning_fit, "train", train)
    return tmp_path / "runs"


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "error" in line.lower()]


@pytest.mark.parametrize("flag, value, reason", [
    ("--epochs", "0", "must be a positive integer, got 0"),
    ("--batch-size", "0", "must be a positive integer, got 0"),
    ("--learning-rate", "-1", "must be a positive finite number, got -1.0"),
    ("--learning-rate", "nan", "must be a positive finite number, got nan"),
    ("--learning-rate", "inf", "must be a positive finite number, got inf"),
    ("--seed", "-3", "must be zero or positive, got -3"),
    ("--epochs", "three", "invalid positive_int value: 'three'"),
    ("--data-order", "random", "invalid choice: 'random' (choose from 'reshuffle', 'fixed')"),
])
def test_bad_flag_values_exit_2_naming_the_flag(no_training, capsys, flag, value, reason):
    """An out-of-range or malformed flag: argparse exits 2 with one error line naming the flag, no traceback."""
    with pytest.raises(SystemExit) as exited:
        lightning_fit.main([flag, value, "--out", str(no_training)])
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert error_lines(captured.err) == [f"python -m lightning_impl.fit: error: argument {flag}: {reason}"]
    assert "Traceback" not in captured.err and captured.out == ""
    assert not no_training.exists()


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    return path


def config_case(text: str, *expected: str):
    """A case given as a config file's text: the file's path and `expected` must be in the message."""
    def make(tmp_path: Path) -> tuple[list[str], list[str]]:
        path = write_config(tmp_path, text)
        return ["--config", str(path)], [str(path), *expected]
    return make


# case -> (tmp_path -> (argv, fragments the one error line must hold)); a misspelt case is a KeyError.
BAD_INPUT = {
    "subset-larger-than-test-set": lambda tmp: (["--subset", "20000"], ["--subset", "between 1 and 10000", "got 20000"]),
    "missing-data-dir": lambda tmp: (["--data-dir", str(tmp / "no-cifar-here")],
                                     [str(tmp / "no-cifar-here"), "--data-dir", ENV_VAR, "does not exist"]),
    "unknown-key": config_case("training:\n  epoks: 3\n", "unknown setting 'training.epoks'", "epochs"),
    "wrong-type": config_case('training:\n  batch_size: "big"\n', "'training.batch_size' must be int", "'big'"),
    "missing-config": lambda tmp: (["--config", str(tmp / "absent.yaml")], [str(tmp / "absent.yaml"), "does not exist"]),
    "split-out-of-range": config_case("training:\n  validation_split: 1.0\n",
                                      "'training.validation_split' must be in (0, 1)"),
    "nan-learning-rate": config_case("training:\n  learning_rate: .nan\n",
                                     "'training.learning_rate' must be positive and finite"),
    "bad-data-order": config_case("training:\n  data_order: shuffled\n",
                                  "'training.data_order' must be reshuffle or fixed", "'shuffled'"),
    "not-a-mapping": config_case("- just\n- a list\n", "'dataset' and 'training'"),
    "more-devices-than-cores": lambda tmp: (["--devices", "999"], ["--devices 999", "CPU cores"]),
    "no-such-accelerator-devices": lambda tmp: (["--accelerator", "gpu", "--devices", "999"],
                                                ["--accelerator gpu", "--devices 999"]),
    "bad-precision": lambda tmp: (["--precision", "bf17"], ["--precision bf17", "invalid"]),
    "bad-strategy": lambda tmp: (["--strategy", "dpp"], ["--strategy dpp", "invalid strategy"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_returns_2_with_one_line_naming_the_setting(no_training, tmp_path, capsys, case):
    """Bad data folder, subset or config: main returns 2 and prints one 'error:' line naming it, no run folder."""
    argv, expected = BAD_INPUT[case](tmp_path)
    status = lightning_fit.main([*argv, "--out", str(no_training)])
    captured = capsys.readouterr()
    assert status == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert all(fragment in lines[0] for fragment in expected), lines[0]
    assert "Traceback" not in captured.err and captured.out == ""
    assert not no_training.exists()


@pytest.mark.parametrize("argv, expected", [
    (["--data-order", "random"], "python -m keras_reference.fit: error: argument --data-order: invalid choice: "
                                 "'random' (choose from 'reshuffle', 'fixed')"),
    (["--config", "{tmp}/absent.yaml"], "error: config file {tmp}/absent.yaml does not exist"),
], ids=["argparse-data-order", "missing-config"])
def test_keras_cli_refuses_bad_input_the_same_way(run_cli, tmp_path, argv, expected):
    """python -m keras_reference.fit exits 2 with the same one error line, no traceback, no run folder."""
    out = tmp_path / "runs"
    argv = [arg.format(tmp=tmp_path) for arg in argv]
    result = run_cli("-m", "keras_reference.fit", *argv, "--out", str(out), timeout=180)
    assert result.returncode == 2, result.stderr
    errors = error_lines(result.stderr)  # TensorFlow's start-up log lines aside
    assert len(errors) == 1 and errors[0].startswith(expected.format(tmp=tmp_path)), result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not out.exists()
