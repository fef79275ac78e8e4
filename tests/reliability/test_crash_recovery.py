"""Silent failure 5: a kill at the wrong instant of a checkpoint swap or of the epoch's log line loses no
work, and a killed ``save_pretrained`` leaves no stray file behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import unipt
from unipt.train import Trainer
from unipt.train.checkpoint import HEAD, META, STATE, checkpoint_state, recover_checkpoint

from . import helpers


class Killed(BaseException):
    """Stands for the process dying at that instant (BaseException: nothing may catch it)."""


def config(tmp_path: Path, epochs: int):
    options = helpers.write_text_splits(tmp_path / "data", {"train": helpers.sentiment_rows(8),
                                                            "val": helpers.sentiment_rows(4)})
    return helpers.run_config(helpers.text_config(options, tmp_path / "run", epochs=epochs, test_split=None))


def test_a_kill_between_the_two_renames_of_a_swap_resumes_from_the_complete_newer_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    real_rename = Path.rename
    swaps = []

    def rename(self: Path, target: Path) -> Path:  # dies when epoch 2's new `last` would be renamed into place
        if self.name == ".last.tmp":
            swaps.append(self)
            if len(swaps) == 2:
                raise Killed
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(Killed):
        Trainer(config(tmp_path, epochs=2)).fit()
    monkeypatch.setattr(Path, "rename", real_rename)
    checkpoints = tmp_path / "run" / "checkpoints"
    assert not (checkpoints / "last").exists()
    assert (checkpoints / ".last.old").is_dir() and (checkpoints / ".last.tmp").is_dir()
    newer = checkpoint_state(checkpoints / ".last.tmp")
    capsys.readouterr()

    resumed = Trainer(config(tmp_path, epochs=2))
    result = resumed.fit()
    out, err = capsys.readouterr()
    assert "recovered" in err and "(epoch 2) from .last.tmp" in err
    assert "after epoch 2" in out  # epoch 2 is not trained again
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best", "last"]  # leftovers gone
    kept = checkpoint_state(checkpoints / "last")
    assert all(torch.equal(kept[k], newer[k]) for k in newer)
    # the kill also came before epoch 2's metrics line: rebuilt from the checkpoint's history
    assert [json.loads(line)["epoch"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()] \
        == [1, 2]


def write_checkpoint(folder: Path, head: dict[str, torch.Tensor], epoch: int) -> None:
    """A checkpoint folder as save_checkpoint lays it out (head weights, loop state, meta; no towers)."""
    folder.mkdir(parents=True)
    save_file(head, str(folder / HEAD))
    torch.save({"epoch": epoch}, folder / STATE)
    (folder / META).write_text(json.dumps({"epoch": epoch}))


def test_the_older_copy_wins_when_the_newer_one_is_incomplete(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    weights = {"task.w": torch.arange(4.0)}
    write_checkpoint(folder / ".last.old", weights, 1)
    write_checkpoint(folder / ".last.tmp", {"task.w": torch.ones(4)}, 2)
    (folder / ".last.tmp" / HEAD).write_bytes(b"\x00" * 10)  # killed mid-write
    note = recover_checkpoint(folder / "last")
    assert note is not None and "(epoch 1) from .last.old" in note and "newer one was incomplete" in note
    assert torch.equal(checkpoint_state(folder / "last")["task.w"], weights["task.w"])
    assert not (folder / ".last.tmp").exists() and not (folder / ".last.old").exists()


def test_a_kill_between_the_checkpoint_and_the_metrics_line_is_repaired_on_resume(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_log = Trainer._log

    def log(self: Trainer, record: dict) -> None:
        if record["epoch"] == 2:
            raise Killed
        real_log(self, record)

    monkeypatch.setattr(Trainer, "_log", log)
    with pytest.raises(Killed):
        Trainer(config(tmp_path, epochs=2)).fit()
    monkeypatch.setattr(Trainer, "_log", real_log)
    metrics = tmp_path / "run" / "metrics.jsonl"
    assert [json.loads(line)["epoch"] for line in metrics.read_text().splitlines()] == [1]

    result = Trainer(config(tmp_path, epochs=3)).fit()
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2, 3]
    assert lines[1]["eval"] == result.history[1]["eval"]  # the lost line, from the checkpoint's history


KILLED_SAVE = textwrap.dedent("""
    import os, signal, sys
    import torch
    import safetensors.torch
    from transformers import BertConfig, BertModel
    import unipt

    torch.manual_seed(0)
    backbone = BertModel(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                    intermediate_size=64, vocab_size=64), add_pooling_layer=False)
    model = unipt.get_unipt_model(backbone)

    def dying_save(tensors, path, metadata=None):  # half the file is on disk, then kill -9
        with open(path, "wb") as handle:
            handle.write(b"\\x00" * 100)
            handle.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    import unipt.pretrained
    unipt.pretrained.save_file = dying_save
    model.save_pretrained(sys.argv[1])
""")


def test_stray_temporary_files_of_a_killed_save_pretrained_are_cleaned_up(tmp_path: Path) -> None:
    out = tmp_path / "side"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", KILLED_SAVE, str(out)], env=env, capture_output=True, timeout=300)
    assert done.returncode == -9, done.stderr.decode()[-2000:]
    strays = [p.name for p in out.iterdir()]
    assert len(strays) == 1 and strays[0].startswith(".unipt_side.safetensors.pid") and strays[0].endswith(".tmp")

    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    backbone = BertModel(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                    intermediate_size=64, vocab_size=64), add_pooling_layer=False)
    model = unipt.get_unipt_model(backbone)
    model.save_pretrained(out)
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "unipt_config.json", "unipt_side.safetensors"]
    again = unipt.UniPTModel.from_pretrained(backbone, out)
    assert all(torch.equal(a, b) for a, b in zip(model.side.state_dict().values(),
                                                 again.side.state_dict().values(), strict=True))
