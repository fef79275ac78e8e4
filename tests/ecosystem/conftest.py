"""Fixtures: the tokenizer-free tiny BERT of the cache tests (``tiny-bert``), its synthetic text data and
one short finished run shared by the model-card and command-line tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from cache import tiny  # tests/ is on sys.path (the rootdir of the test packages)
from unipt.backbones import PACKAGED


@pytest.fixture(autouse=True)
def tiny_bert_name(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(PACKAGED, tiny.NAME, tiny.tiny_backbone)
    return tiny.NAME


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny.write_data(tmp_path_factory.mktemp("tiny_text"))


@pytest.fixture(scope="module")
def finished_run(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """(run folder, FitResult.to_dict()) of 2 epochs x 2 steps of tiny-bert classification."""
    from unipt.train import Trainer

    out = tmp_path_factory.mktemp("finished") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(PACKAGED, tiny.NAME, tiny.tiny_backbone)
        result = Trainer(tiny.config(data_root, out, **{"train.max_steps_per_epoch": 2})).fit()
    return out, result.to_dict()
