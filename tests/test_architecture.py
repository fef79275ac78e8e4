"""The package's import contracts (pyproject.toml, ``[tool.importlinter]``) hold: every module imports
only from the layers below its own (cli -> demo -> bench -> api -> lm -> train -> registry -> backbones ->
models -> baselines | cache | tasks | data -> model -> method : batch : pretrained : builder : model_card ->
nn | taps -> config and the other leaves), every module sits in a layer, no two sibling modules import each
other, directly or through others, and the method's modules (``unipt.nn``) never read a config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    pytest.importorskip("importlinter", reason="import-linter is part of the test extra: pip install -e '.[test]'")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    code = ("from importlinter.cli import lint_imports; "
            "raise SystemExit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 3 kept, 0 broken." in done.stdout
