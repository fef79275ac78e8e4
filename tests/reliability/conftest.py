"""Register the tiny backbones of the reliability suite under packaged names for every test."""

from __future__ import annotations

from functools import partial

import pytest

from unipt.backbones import PACKAGED

from . import helpers


@pytest.fixture(autouse=True)
def tiny_backbones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(PACKAGED, helpers.BACKBONE, helpers.tiny_bert)
    monkeypatch.setitem(PACKAGED, helpers.POISONED, partial(helpers.tiny_bert, poisoned=True))
