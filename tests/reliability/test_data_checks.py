"""Silent failure 6 and the empty table: data that cannot train a classifier is refused before training."""

from __future__ import annotations

from pathlib import Path

import pytest

from unipt.train import RunConfig, Trainer

from . import helpers


def test_a_one_class_image_folder_is_refused(tmp_path: Path) -> None:
    root = helpers.write_image_folder(tmp_path / "shapes", {"blue": 4})
    config = RunConfig.from_dict({
        "towers": {"image": {"backbone": "random:tiny-resnet", "image_size": 32}},
        "task": {"name": "classification"},
        "data": {"dataset": "imagefolder", "options": {"root": str(root)}, "eval_split": "train", "test_split": None},
        "train": {"epochs": 1, "batch_size": 2, "output_dir": str(tmp_path / "run")},
    })
    with pytest.raises(ValueError, match=r"has only the class 'blue'; a classifier needs at least two classes"):
        Trainer(config)
    assert not (tmp_path / "run").exists()


def test_two_classes_train(tmp_path: Path) -> None:
    """The same folder with a second class is accepted (the check is not over-eager)."""
    root = helpers.write_image_folder(tmp_path / "shapes", {"blue": 2, "red": 2})
    config = RunConfig.from_dict({
        "towers": {"image": {"backbone": "random:tiny-resnet", "image_size": 32}},
        "task": {"name": "classification"},
        "data": {"dataset": "imagefolder", "options": {"root": str(root)}, "eval_split": "train", "test_split": None},
        "train": {"epochs": 1, "batch_size": 2, "output_dir": str(tmp_path / "run")},
    })
    assert Trainer(config).data.labels.class_names == ("blue", "red")


def test_a_header_only_csv_names_the_file(tmp_path: Path) -> None:
    options = helpers.write_text_splits(tmp_path / "data", {"train": [], "val": helpers.sentiment_rows(4)})
    config = helpers.run_config(helpers.text_config(options, tmp_path / "run", test_split=None))
    with pytest.raises(ValueError) as caught:
        Trainer(config)
    message = str(caught.value)
    assert f"the train split ('train', {tmp_path / 'data' / 'train.csv'}) has no records" in message
    assert "add records" in message
