"""Error types and the strict readers that produce them."""

from __future__ import annotations

from pathlib import Path

import pytest

from unipt.data import DataFormatError
from unipt.data.errors import DataFileNotFoundError
from unipt.data.io import get_field, read_csv_rows, read_json, read_jsonl, require_file


def test_data_format_error_message_names_file_record_field_and_hint() -> None:
    err = DataFormatError(
        "/d/x.json",
        record="images[3]",
        field="split",
        problem="field missing",
        expected="a string",
        hint="add it",
    )
    assert isinstance(err, ValueError)
    assert (
        str(err)
        == "/d/x.json: record images[3]: field 'split': field missing (expected a string). Hint: add it"
    )
    assert (err.path, err.record, err.field) == ("/d/x.json", "images[3]", "split")


def test_missing_file_is_file_not_found_naming_path_and_purpose(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        require_file(tmp_path / "nope.json", "VQA questions JSON", "download it")
    assert isinstance(info.value, DataFileNotFoundError)
    assert str(tmp_path / "nope.json") in str(info.value)
    assert "VQA questions JSON" in str(info.value) and "download it" in str(info.value)


def test_bad_json_reports_line(tmp_path: Path) -> None:
    p = tmp_path / "a.json"
    p.write_text('{"a": 1,\n "b": }')
    with pytest.raises(DataFormatError, match=r"a\.json: record line 2 column"):
        read_json(p, "thing", "an object")


def test_jsonl_reports_line_of_bad_record(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    p.write_text('{"x": 1}\n\n[1, 2]\n')
    it = read_jsonl(p, "thing", "objects")
    assert next(it) == (1, {"x": 1})
    with pytest.raises(DataFormatError, match="record line 3"):
        next(it)


def test_csv_missing_column_names_column(tmp_path: Path) -> None:
    p = tmp_path / "a.csv"
    p.write_text("sentence,label\nhi,1\n")
    with pytest.raises(DataFormatError, match="field 'text': column missing"):
        list(read_csv_rows(p, "csv", ["text", "label"]))


def test_get_field_type_and_presence() -> None:
    assert get_field({"a": 3}, "a", "f", "r", int) == 3
    with pytest.raises(DataFormatError, match="record r: field 'b': field missing"):
        get_field({"a": 3}, "b", "f", "r")
    with pytest.raises(DataFormatError, match="expected an integer"):
        get_field({"a": True}, "a", "f", "r", int)
    with pytest.raises(DataFormatError, match="not an object"):
        get_field([1], "a", "f", "r")
