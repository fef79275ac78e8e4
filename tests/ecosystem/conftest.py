"""Fixtures: the tokenizer-free tiny BERT of the cache tests (``tiny-bert``) and its synthetic text data."""

from __future__ import annotations

from pathlib import Path

import pytest

from cache import tiny  # tests/ is on sys.path (rootdir of the test packages)
from unipt.backbones import PACKAGED


@pytest.fixture(autouse=True)
def tiny_bert_name(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(PACKAGED, tiny.NAME, tiny.tiny_backbone)
    return tiny.NAME


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny.write_data(tmp_path_factory.mktemp("tiny_text"))
