"""One save format: a tower trained with ``unipt train`` is a ``save_pretrained`` folder that
``UniPTModel.from_pretrained`` loads; unipt-0.1 run folders still load and convert."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import unipt
from unipt.backbones import PACKAGED
from unipt.cli import main as cli_main
from unipt.train.checkpoint import checkpoint_state
from unipt.train.convert import convert_run
from unipt.train.inference import load_run

_spec = importlib.util.spec_from_file_location("tiny_for_save", Path(__file__).parents[1] / "cache" / "tiny.py")
tiny = sys.modules.setdefault("tiny_for_save", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(tiny)

LEGACY = Path(__file__).parent / "fixtures" / "run_v1"


@pytest.fixture(autouse=True)
def tiny_bert_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(PACKAGED, tiny.NAME, tiny.tiny_backbone)


def test_cli_trained_tower_loads_with_from_pretrained(tmp_path, capsys):
    data = tiny.write_data(tmp_path / "data", {"train": 32, "val": 16, "test": 16})
    run = tmp_path / "run"
    config = tmp_path / "run.yaml"
    config.write_text(f"towers:\n  text: {{backbone: {tiny.NAME}, method: unipt}}\n")
    args = [f"--set={item}" for item in tiny.overrides(data, run, **{"train.epochs": 1})]
    assert cli_main(["train", str(config), *args]) == 0
    capsys.readouterr()
    best = run / "checkpoints" / "best"
    assert sorted(p.name for p in (best / "text").iterdir()) == ["unipt_config.json", "unipt_side.safetensors"]

    backbone = tiny.tiny_backbone().model  # the same weights as the run's (seeded)
    model = unipt.UniPTModel.from_pretrained(backbone, best / "text").eval()
    trainer = load_run(run)
    inputs = tiny.HashTokenizer()(["a great and moving film", "dull"])
    with torch.no_grad():
        expected = trainer.system.towers["text"](**inputs)
        got = model(**inputs)
    torch.testing.assert_close(got.last_hidden_state, expected.last_hidden_state, rtol=0, atol=0)
    # the head and the run config sit beside the towers; together they are the whole trained state
    head = load_file(str(best / "head.safetensors"))
    assert head and all(k.startswith("task.") for k in head)
    assert set(checkpoint_state(best)) == set(trainer.system.trainable_state_dict())
    assert (best / "run_config.yaml").is_file() and (best / "trainer_state.pt").is_file()


def legacy_copy(tmp_path: Path) -> tuple[Path, list[str]]:
    run = tmp_path / "legacy"
    shutil.copytree(LEGACY / "run", run)
    return run, [f"data.options.root={LEGACY / 'data'}"]


def test_a_unipt_01_run_folder_still_evaluates_identically(tmp_path):
    run, overrides = legacy_copy(tmp_path)
    trainer = load_run(run, overrides=overrides)
    expected = json.loads((LEGACY / "expected_test.json").read_text())
    assert trainer.evaluate(trainer.data.test) == pytest.approx(expected, abs=1e-9)
    with pytest.raises(FileNotFoundError, match="python -m unipt.train.convert"):
        unipt.UniPTModel.from_pretrained(tiny.tiny_backbone().model, run / "checkpoints" / "best")


def test_converting_an_old_run_gives_save_pretrained_folders(tmp_path):
    run, overrides = legacy_copy(tmp_path)
    old = {k: v.clone() for k, v in load_run(run, overrides=overrides).system.trainable_state_dict().items()}
    assert [p.name for p in convert_run(run, overrides)] == ["best", "last"]
    assert convert_run(run, overrides) == []  # already converted
    best = run / "checkpoints" / "best"
    assert not (best / "trainable.safetensors").exists() and (best / "text" / "unipt_config.json").is_file()
    new = checkpoint_state(best)
    assert set(new) == set(old) and all(torch.equal(new[k], old[k]) for k in old)
    trainer = load_run(run, overrides=overrides)
    expected = json.loads((LEGACY / "expected_test.json").read_text())
    assert trainer.evaluate(trainer.data.test) == pytest.approx(expected, abs=1e-9)
    unipt.UniPTModel.from_pretrained(tiny.tiny_backbone().model, best / "text")
