"""Silent failure 1: every split is numbered with the training split's classes, saved with the run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from unipt.data.errors import DataFormatError
from unipt.train import Trainer
from unipt.train.data import load_run_data
from unipt.train.inference import load_run, predict

from . import helpers


def test_a_test_split_with_a_subset_of_the_classes_is_scored_with_the_training_ids(tmp_path: Path) -> None:
    """The test file holds only "pos" rows: on its own it would number "pos" as 0 (training's "neg").
    Its accuracy must equal what ``predict`` says about the same texts."""
    pos_only = [row for row in helpers.sentiment_rows(8) if row[1] == "pos"]
    options = helpers.write_text_splits(tmp_path / "data", {
        "train": helpers.sentiment_rows(16), "val": helpers.sentiment_rows(4, offset=3), "test": pos_only})
    config = helpers.run_config(helpers.text_config(options, tmp_path / "run", epochs=2))
    trainer = Trainer(config)
    assert trainer.data.labels.class_names == ("neg", "pos")
    assert {r["label"] for r in trainer.data.test.records} == {1}  # "pos" is class 1 of training
    result = trainer.fit()

    saved = json.loads((tmp_path / "run" / "labels.json").read_text())
    assert saved == {"num_classes": 2, "class_names": ["neg", "pos"]}
    run = load_run(tmp_path / "run")
    predictions = predict(run, texts=[text for text, _ in pos_only], top_k=1)
    said_pos = sum(p["top"][0]["label"] == "pos" for p in predictions)
    assert result.test_metrics["accuracy"] == pytest.approx(100.0 * said_pos / len(pos_only))


def test_a_label_unseen_in_training_fails_before_training_naming_file_row_and_label(tmp_path: Path) -> None:
    val = helpers.sentiment_rows(4) + [("an odd film", "neutral")]
    options = helpers.write_text_splits(tmp_path / "data", {"train": helpers.sentiment_rows(8), "val": val})
    config = helpers.run_config(helpers.text_config(options, tmp_path / "run", test_split=None))
    with pytest.raises(DataFormatError) as caught:
        Trainer(config)
    message = str(caught.value)
    assert "val.csv: record line 6: field 'label': label 'neutral' does not occur in the training split" in message
    assert "add it to the training data" in message
    assert not (tmp_path / "run").exists()  # nothing was trained or written


def test_integer_labels_outside_the_training_range_are_refused(tmp_path: Path) -> None:
    train = [(text, int(label == "pos")) for text, label in helpers.sentiment_rows(8)]
    options = helpers.write_text_splits(tmp_path / "data", {"train": train, "val": train[:3] + [("odd", 2)]})
    config = helpers.run_config(helpers.text_config(options, tmp_path / "run", test_split=None))
    with pytest.raises(DataFormatError, match=r"val.csv: record 3: field 'label': label 2 does not occur"):
        load_run_data(config)


def test_predict_and_eval_use_the_saved_vocabulary_not_a_rebuilt_one(tmp_path: Path) -> None:
    """A run's ``labels.json`` decides the classes at eval / predict time, even if its training file is
    later replaced by one whose own sorted vocabulary would number the classes differently."""
    labels = ("b-neg", "c-pos")
    options = helpers.write_text_splits(tmp_path / "data", {"train": helpers.sentiment_rows(8, labels=labels),
                                                            "val": helpers.sentiment_rows(4, labels=labels)})
    config = helpers.run_config(helpers.text_config(options, tmp_path / "run", test_split=None))
    Trainer(config).fit()
    # only positive rows now: rebuilt from this file, "c-pos" would be class 0
    helpers.write_csv(tmp_path / "data" / "train.csv",
                      [row for row in helpers.sentiment_rows(8, labels=labels) if row[1] == "c-pos"])
    run = load_run(tmp_path / "run")
    assert run.data.labels.class_names == ("b-neg", "c-pos")
    assert {r["label"] for r in run.data.train.records} == {1}
    top = predict(run, texts=["a good film"], top_k=2)[0]["top"]
    assert {t["label"] for t in top} == {"b-neg", "c-pos"}
