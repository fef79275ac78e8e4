"""The causal_lm task from the command line: JSONL prompt/response and plain text, perplexity, answer
accuracy, `unipt eval`, `unipt generate`, clear errors for bad data."""

import json
import math

import pytest
import yaml

from unipt.cli import main


def write_run_config(tmp_path, data, method="unipt", task_options=None, epochs=1):
    config = {
        "towers": {"lm": {"backbone": "random:tiny-llama", "method": method, "max_length": 48}},
        "task": {"name": "causal_lm", "options": task_options or {}},
        "data": data,
        "optim": {"lr": 3.0e-3, "warmup_ratio": 0.0},
        "train": {"epochs": epochs, "batch_size": 4, "output_dir": str(tmp_path / "run")},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def jsonl_root(tmp_path):
    rows = [{"prompt": f"Is {i} even? Say yes or no.", "response": "yes" if i % 2 == 0 else "no"} for i in range(20)]
    for split, part in (("train", rows[:12]), ("val", rows[12:16]), ("test", rows[16:])):
        (tmp_path / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in part) + "\n")
    return tmp_path


def test_train_eval_generate_on_prompt_response_jsonl(jsonl_root, tmp_path, capsys):
    config = write_run_config(tmp_path, {"dataset": "lm_jsonl", "options": {"root": str(jsonl_root)}},
                              task_options={"answer_accuracy": True, "max_new_tokens": 2}, epochs=2)
    assert main(["train", str(config)]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["test_metrics"]["perplexity"] > 1 and 0 <= summary["test_metrics"]["accuracy"] <= 1
    assert summary["trainable_parameters"] > 0 and summary["frozen_weight_bytes"] > 0
    # only the response ("yes"/"no" + EOS) is scored: 4 test prompts x (1 + 2 or 3 bytes)
    assert summary["test_metrics"]["tokens"] == sum(len(r) + 1 for r in ["yes", "no", "yes", "no"])
    history = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2]
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "run"), "--split", "test"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["perplexity"] == pytest.approx(summary["test_metrics"]["perplexity"], rel=1e-5)
    assert main(["generate", str(tmp_path / "run"), "--prompt", "Is 4 even?", "--prompt", "Is 5 even?",
                 "--max-new-tokens", "3", "--sample", "--seed", "1"]) == 0
    replies = json.loads(capsys.readouterr().out)
    assert [r["prompt"] for r in replies] == ["Is 4 even?", "Is 5 even?"]


def test_plain_text_with_lora(tmp_path):
    (tmp_path / "train.txt").write_text("the quick brown fox jumps over the lazy dog. " * 8)
    (tmp_path / "val.txt").write_text("a lazy dog sleeps. " * 4)
    config = write_run_config(tmp_path, {"dataset": "lm_text", "options": {"root": str(tmp_path)}, "test_split": None},
                              method="lora")
    assert main(["train", str(config)]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["test_metrics"] is None and summary["best_metrics"]["tokens"] > 40  # every token is scored
    assert summary["trainable_parameters"] > 0
    from unipt.lm.train import load_lm_run

    assert (tmp_path / "run" / "checkpoints" / "best" / "lm" / "method.safetensors").is_file()
    trainer = load_lm_run(tmp_path / "run")  # the adapters come back from the tower's folder
    metrics = trainer.evaluate(trainer.records("eval"))
    assert metrics["perplexity"] == pytest.approx(summary["best_metrics"]["perplexity"], rel=1e-5)


def test_bad_jsonl_names_the_line_and_field(tmp_path, capsys):
    (tmp_path / "train.jsonl").write_text('{"prompt": "a", "response": "b"}\n{"prompt": "c"}\n')
    config = write_run_config(tmp_path, {"dataset": "lm_jsonl", "options": {"root": str(tmp_path)}})
    assert main(["train", str(config)]) == 2
    err = capsys.readouterr().err
    assert "line 2" in err and "response" in err


def test_unknown_task_option_is_refused(jsonl_root, tmp_path, capsys):
    config = write_run_config(tmp_path, {"dataset": "lm_jsonl", "options": {"root": str(jsonl_root)}},
                              task_options={"chat": True})
    assert main(["train", str(config)]) == 2
    assert "chat_template" in capsys.readouterr().err


def test_accumulation_bf16_and_a_second_run_into_the_same_folder(jsonl_root, tmp_path, capsys):
    config = write_run_config(tmp_path, {"dataset": "lm_jsonl", "options": {"root": str(jsonl_root)}})
    overrides = ["--set", "train.grad_accum_steps=2", "--set", "train.bf16=true"]
    assert main(["train", str(config), *overrides]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert len(summary["best_metrics"]) >= 3 and math.isfinite(summary["best_metrics"]["nll"])
    history = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1] and math.isfinite(history[0]["train_loss"])
    assert main(["train", str(config)]) == 0  # resumes the finished run: nothing left to train
    assert "after epoch 1" in capsys.readouterr().err
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 1
    assert main(["train", str(config), "--set", "train.resume=false"]) == 0


def test_an_interrupted_run_resumes_to_the_same_weights(jsonl_root, tmp_path, monkeypatch):
    """Killed after epoch 1 of 3, the resumed run ends with the weights of an uninterrupted run."""
    import torch

    from unipt.lm.train import LMTrainer
    from unipt.train.checkpoint import checkpoint_state
    from unipt.train.config import load_run_config

    data = {"dataset": "lm_jsonl", "options": {"root": str(jsonl_root)}}
    straight = tmp_path / "straight"
    straight.mkdir()
    LMTrainer(load_run_config(write_run_config(straight, data, epochs=3))).fit()

    path = write_run_config(tmp_path, data, epochs=3)
    interrupted = LMTrainer(load_run_config(path))
    original = LMTrainer._train_epoch

    def crash_in_epoch_2(self, train, epoch, *args):
        if epoch == 1:
            raise KeyboardInterrupt
        return original(self, train, epoch, *args)

    monkeypatch.setattr(LMTrainer, "_train_epoch", crash_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit()
    monkeypatch.setattr(LMTrainer, "_train_epoch", original)
    result = LMTrainer(load_run_config(path)).fit()
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    expected = checkpoint_state(straight / "run" / "checkpoints" / "last")
    resumed = checkpoint_state(tmp_path / "run" / "checkpoints" / "last")
    assert expected and expected.keys() == resumed.keys()
    assert all(torch.equal(expected[k], resumed[k]) for k in expected)


@pytest.mark.parametrize("command", [["plan"], ["cache", "plan"], ["cache", "build", "--out", "cache-dir"]])
def test_commands_for_task_heads_refuse_a_causal_lm_run_with_what_to_use(jsonl_root, tmp_path, capsys, command):
    config = write_run_config(tmp_path, {"dataset": "lm_jsonl", "options": {"root": str(jsonl_root)}})
    args = [*command[:-2], str(config), *command[-2:]] if command[-1] == "cache-dir" else [*command, str(config)]
    assert main(args) == 2
    assert "does not cover task causal_lm" in capsys.readouterr().err


def test_a_run_written_before_format_2_still_evaluates_to_its_numbers(tmp_path, capsys):
    """A causal_lm run of commit 4131b3e: its checkpoint's side-network keys are numbered (side.guide_proj.0)."""
    import shutil
    from pathlib import Path

    shutil.copytree(Path(__file__).parent / "fixtures" / "run_v1_causal", tmp_path / "copy")
    run = tmp_path / "copy" / "run"
    config = yaml.safe_load((run / "run_config.yaml").read_text())
    config["data"]["options"]["root"] = str(tmp_path / "copy" / "data")
    (run / "run_config.yaml").write_text(yaml.safe_dump(config))
    capsys.readouterr()
    assert main(["eval", str(run), "--split", "test"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    expected = json.loads((run / "summary.json").read_text())["test_metrics"]
    assert evaluated["perplexity"] == pytest.approx(expected["perplexity"], rel=1e-6)


def test_non_finite_steps_are_skipped_then_stop_the_run(jsonl_root, tmp_path):
    import torch

    from unipt.lm.train import LMTrainer
    from unipt.train.config import load_run_config

    path = write_run_config(tmp_path, {"dataset": "lm_jsonl", "options": {"root": str(jsonl_root)}})
    trainer = LMTrainer(load_run_config(path, ["train.max_consecutive_nonfinite=2"]))
    before = {k: v.clone() for k, v in trainer.model.side.state_dict().items()}
    trainer.model.side.register_forward_hook(lambda module, args, out: (out[0] * float("nan"), *out[1:]))
    from unipt.errors import NonFiniteTrainingError

    with pytest.raises(NonFiniteTrainingError, match="2 training steps in a row had a non-finite loss"):
        trainer.fit()
    assert all(torch.equal(v, trainer.model.side.state_dict()[k]) for k, v in before.items())  # never stepped


def test_a_non_finite_evaluation_loss_is_an_error_naming_the_records(jsonl_root, tmp_path):
    from unipt.errors import NonFiniteEvaluationError
    from unipt.lm.train import LMTrainer
    from unipt.train.config import load_run_config

    path = write_run_config(tmp_path, {"dataset": "lm_jsonl", "options": {"root": str(jsonl_root)}})
    trainer = LMTrainer(load_run_config(path))
    trainer.model.side.register_forward_hook(lambda module, args, out: (out[0] * float("nan"), *out[1:]))
    with pytest.raises(NonFiniteEvaluationError, match=r"the loss over records #0\.\.#\d+ is nan"):
        trainer.evaluate(trainer.records("eval"))


def test_a_runs_checkpoint_is_a_save_pretrained_folder(jsonl_root, tmp_path):
    """One save format: checkpoints/best/<tower> of a causal_lm run is a save_pretrained folder."""
    import torch

    from unipt.lm import UniPTForCausalLM, load_causal_lm
    from unipt.lm.train import load_lm_run

    config = write_run_config(tmp_path, {"dataset": "lm_jsonl", "options": {"root": str(jsonl_root)}})
    assert main(["train", str(config)]) == 0
    trainer = load_lm_run(tmp_path / "run")
    model = UniPTForCausalLM.from_pretrained(load_causal_lm("random:tiny-llama").model,
                                             tmp_path / "run" / "checkpoints" / "best" / "lm")
    ids = torch.randint(0, 256, (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model(ids).logits, trainer.model(ids).logits)


def test_converting_a_causal_lm_run_of_one_file_checkpoints_says_what_reads_it(tmp_path):
    import shutil
    from pathlib import Path

    from unipt.train.convert import convert_run

    shutil.copytree(Path(__file__).parent / "fixtures" / "run_v1_causal", tmp_path / "copy")
    with pytest.raises(ValueError, match="unipt eval"):
        convert_run(tmp_path / "copy" / "run")
