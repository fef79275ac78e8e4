"""Shared helpers for the data-layer tests: tiny real images and files in the real formats."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image


def _write_image(
    path: Path, size: tuple[int, int] = (4, 3), color: Any = (255, 0, 0), mode: str = "RGB"
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)
    return path


def _write_json(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def _write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def write_image() -> Callable[..., Path]:
    """``write_image(path, size=(4, 3), color=(255, 0, 0), mode="RGB")`` saves a real PNG/JPEG."""
    return _write_image


@pytest.fixture
def write_json() -> Callable[[Path, Any], Path]:
    """``write_json(path, obj)``."""
    return _write_json


@pytest.fixture
def write_text() -> Callable[[Path, str], Path]:
    """``write_text(path, text)``."""
    return _write_text
