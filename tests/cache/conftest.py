"""Fixtures: the tiny BERT registered as ``tiny-bert`` and a small synthetic text dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

from unipt.backbones import PACKAGED

from . import tiny


@pytest.fixture(autouse=True)
def tiny_bert_name(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(PACKAGED, tiny.NAME, tiny.tiny_backbone)
    return tiny.NAME


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny.write_data(tmp_path_factory.mktemp("tiny_text"))


@pytest.fixture
def config(data_root: Path, tmp_path: Path):
    return tiny.config(data_root, tmp_path / "run")
