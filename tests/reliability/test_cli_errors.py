"""Unclear errors: each bad input gives one line that names the problem and the fix, exit code 2, and no
traceback (unless ``--debug`` or ``UNIPT_DEBUG=1``)."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest

from . import helpers
from .helpers import assert_one_line_error, write_config


def test_a_value_of_the_wrong_type_names_the_key_and_the_type(tmp_path: Path) -> None:
    result = helpers.run_cli(["train", str(write_config(tmp_path)), "--set", "train.epochs=abc"])
    assert_one_line_error(result, "train", "train.epochs must be an integer, got 'abc'", "--set train.epochs=3")
    assert not (tmp_path / "run").exists()


def test_an_unknown_backbone_name(tmp_path: Path) -> None:
    result = helpers.run_cli(["train", str(write_config(tmp_path)), "--set", "towers.text.backbone=minilmm"])
    assert_one_line_error(result, "train", "could not load backbone 'minilmm'", "did you mean ['minilm']")


def test_a_typo_in_tower_options(tmp_path: Path) -> None:
    result = helpers.run_cli(["train", str(write_config(tmp_path)), "--set", "towers.text.options.reduktion=4"])
    assert_one_line_error(result, "train", "towers.text.options.reduktion is not an option of method 'unipt'",
                          "did you mean ['reduction'")


def test_an_unknown_method(tmp_path: Path) -> None:
    result = helpers.run_cli(["train", str(write_config(tmp_path)), "--set", "towers.text.method=lorra"])
    line = assert_one_line_error(result, "train", "unknown method 'lorra'; known:")
    assert "\"" not in line  # a KeyError's message, without the quotes str(KeyError) adds


def test_output_dir_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("not a folder")
    result = helpers.run_cli(["train", str(write_config(tmp_path)), "--output-dir", str(tmp_path / "taken")])
    assert_one_line_error(result, "train", f"train.output_dir {tmp_path / 'taken'} is a file, not a folder",
                          "--output-dir DIR")
    assert (tmp_path / "taken").read_text() == "not a folder"


def test_output_dir_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("not a folder")
    target = tmp_path / "taken" / "runs" / "one"
    result = helpers.run_cli(["train", str(write_config(tmp_path)), "--output-dir", str(target)])
    assert_one_line_error(result, "train", f"cannot be created because {tmp_path / 'taken'} is a file")


def read_only_folder(tmp_path: Path) -> Path:
    """A folder this process cannot write: chmod 555, or (as root, which ignores modes) a sysfs path."""
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    try:
        tempfile.NamedTemporaryFile(dir=folder).close()
    except OSError:
        return folder
    folder.chmod(0o755)
    if Path("/sys/kernel").is_dir():
        return Path("/sys/kernel/unipt-reliability")
    pytest.skip("no unwritable folder available to this user")


def test_output_dir_read_only(tmp_path: Path) -> None:
    target = read_only_folder(tmp_path) / "run"
    try:
        result = helpers.run_cli(["train", str(write_config(tmp_path)), "--output-dir", str(target)])
    finally:
        (tmp_path / "locked").chmod(0o755)
    assert_one_line_error(result, "train", f"train.output_dir {target} is not writable", "--output-dir DIR")


def test_predict_with_neither_text_nor_image(tmp_path: Path) -> None:
    result = helpers.run_cli(["predict", str(tmp_path)])
    assert_one_line_error(result, "predict", "nothing to predict", "--text TEXT or --image PATH")


def test_a_header_only_csv(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    helpers.write_csv(tmp_path / "data" / "train.csv", [])
    result = helpers.run_cli(["train", str(config)])
    assert_one_line_error(result, "train", "train.csv) has no records", "CSV with only its header")


def test_debug_flag_and_variable_show_the_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = str(write_config(tmp_path))
    result = helpers.run_cli(["train", config, "--set", "train.epochs=abc", "--debug"])
    assert result.code == 2 and "Traceback" in result.stderr and "ConfigError" in result.stderr
    monkeypatch.setenv("UNIPT_DEBUG", "1")
    result = helpers.run_cli(["train", config, "--set", "train.epochs=abc"])
    assert result.code == 2 and "Traceback" in result.stderr
    monkeypatch.setenv("UNIPT_DEBUG", "0")
    assert "Traceback" not in helpers.run_cli(["train", config, "--set", "train.epochs=abc"]).stderr


def test_an_unexpected_failure_is_one_line_with_exit_code_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug (not a bad input) is not dressed up as the user's fault: exit code 1, and how to see the traceback."""
    from unipt import cli

    def broken(_: object) -> int:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cli, "_presets", broken)
    result = helpers.run_cli(["presets"])
    assert result.code == 1 and "Traceback" not in result.stderr
    assert result.error_lines == ["unipt presets: internal error: ZeroDivisionError: division by zero (rerun with "
                                  "--debug or UNIPT_DEBUG=1 for the traceback)"]
    assert os.environ.get("UNIPT_DEBUG") is None
