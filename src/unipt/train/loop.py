"""The training loop: Accelerate for devices / DDP / bf16, per-epoch evaluation, best + last
checkpoints, exact resume, JSONL metrics and a final summary with cost measurements."""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from unipt.batch import Batch
from unipt.model_card import run_facts, write_card
from unipt.parameters import count_parameters
from unipt.process import needs_cpu_flag, peak_memory_mb, reset_peak_memory
from unipt.train.augment import augmented_collators
from unipt.train.batching import Collator
from unipt.train.caching import use_cache
from unipt.train.checkpoint import load_checkpoint, recover_checkpoint, save_checkpoint
from unipt.train.config import RunConfig
from unipt.train.data import RunData, load_run_data
from unipt.train.ema import WeightAverage
from unipt.train.labels import save_vocabulary
from unipt.train.metrics_log import metrics_line, rebuild_metrics_log
from unipt.train.nonfinite import NonFiniteGuard, nonfinite_records, raise_on_nonfinite_evaluation
from unipt.train.optim import build_optimizer, build_scheduler, restore_optimizer
from unipt.train.plots import plot_history
from unipt.train.preflight import check_output_dir, check_weights_finite
from unipt.train.step import training_step
from unipt.train.system import AdaptedSystem, build_system
from unipt.train.tracking import RunTracker


@dataclass
class FitResult:
    """What a finished run reports (also written to ``summary.json``)."""

    best_metrics: dict[str, float]
    test_metrics: dict[str, float] | None
    trainable_parameters: int
    total_parameters: int
    saved_bytes: int
    peak_memory_mb: float
    memory_kind: str
    step_time_ms: float
    train_time_s: float
    history: list[dict[str, Any]] = field(default_factory=list)
    shared_backbone: dict[str, float] | None = None  # several tasks: what one backbone pass for all saved

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "history" and not (k == "shared_backbone" and v is None)}


class Trainer:
    """Train / evaluate one run config. ``Trainer(config).fit()`` does the whole job."""

    def __init__(self, config: RunConfig, system: AdaptedSystem | None = None, data: RunData | None = None,
                 accelerator: Accelerator | None = None):
        self.config = config
        self.accelerator = accelerator or Accelerator(mixed_precision="bf16" if config.train.bf16 else "no",
                                                      cpu=needs_cpu_flag())
        set_seed(config.train.seed)
        self.out = Path(config.train.output_dir)
        self.tracker = RunTracker(config.train.report_to, self.out, self.accelerator.is_main_process)
        self.data = data or load_run_data(config)
        self.system = system or build_system(config, task_options=self.data.task_options)
        self.collate = Collator(self.system.tower_info, self.data.answer_index, self.data.task_labels)
        self.train_collate = self.collate
        if self.data.augment:  # training-time augmentation (VSE-infinity's recipe); eval keeps its resize
            self.train_collate, self.collate = augmented_collators(self.system.tower_info, self.data.answer_index,
                                                                   self.data.augment, self.data.task_labels)
        if config.train.cache_dir:  # cached taps: the cached towers' backbones never run
            # every shard the run will read is checked now, not when an epoch first reaches it
            self.data, self.collate = use_cache(config, self.system, self.data, verify="full")
            self.train_collate = self.collate
        self.main = self.accelerator.is_main_process
        self.ema: WeightAverage | None = None  # set up by fit() when train.ema_decay is given

    # ----------------------------------------------------------------------------------- loaders
    def _loader(self, dataset: Dataset, shuffle: bool, epoch: int = 0) -> DataLoader:
        cfg = self.config.train
        size = cfg.batch_size if shuffle else (cfg.eval_batch_size or cfg.batch_size)
        generator = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
        collate = self.train_collate if shuffle else self.collate
        loader = DataLoader(_Indexed(dataset), batch_size=size, shuffle=shuffle, collate_fn=_WithIds(collate),
                            num_workers=cfg.num_workers, generator=generator, drop_last=shuffle and len(dataset) > size)
        return self.accelerator.prepare_data_loader(loader)

    # ----------------------------------------------------------------------------------- train
    def fit(self) -> FitResult:
        cfg, acc = self.config, self.accelerator
        check_output_dir(self.out)
        steps_per_epoch = self._steps_per_epoch()
        accum = cfg.train.grad_accum_steps
        optimizer = build_optimizer(self.system, cfg.optim)
        scheduler = build_scheduler(optimizer, cfg.optim, math.ceil(steps_per_epoch / accum), cfg.train.epochs)
        system, optimizer = acc.prepare(self.system, optimizer)
        if cfg.train.ema_decay:
            self.ema = WeightAverage(self.system, list(self.system.trainable_state_dict()), cfg.train.ema_decay)
        start_epoch, best, history = self._maybe_resume(optimizer, scheduler)
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "run_config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
            if self.data.labels is not None:
                save_vocabulary(self.out, self.data.labels)
        guard = NonFiniteGuard(cfg.train.max_consecutive_nonfinite, self.data.train, verbose=self.main)
        self.tracker.start(acc, cfg.to_dict(), count_parameters(self.system))
        step_times: list[float] = []
        clip = (lambda: acc.clip_grad_norm_(system.parameters(), cfg.optim.grad_clip)) if cfg.optim.grad_clip else None
        after_step = (lambda: self.ema.update(self.system)) if self.ema is not None else None
        started = time.perf_counter()
        backbone_start = self.system.backbone_seconds
        reset_peak_memory()
        for epoch in range(start_epoch, cfg.train.epochs):
            set_seed(cfg.train.seed + epoch)  # every epoch's randomness depends only on (seed, epoch)
            self.system.task.on_epoch_start(epoch)
            system.train()
            losses = []
            guard.start_epoch()
            loader = self._loader(self.data.train, shuffle=True, epoch=epoch)
            bar = tqdm(loader, total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.train.epochs}",
                       disable=not self.main, leave=False)
            for step, batch in enumerate(bar):
                if step >= steps_per_epoch:
                    break
                tick = time.perf_counter()
                # ``accum`` batches make one optimiser step (the epoch's last group may be shorter); each
                # batch's loss is divided by its group's size, so the step follows the group's mean loss.
                group = min(accum, steps_per_epoch - step // accum * accum)
                boundary = (step + 1) % accum == 0 or step + 1 == steps_per_epoch
                weight = self.system.task.loss_weight(epoch, step, steps_per_epoch)

                def may_step(loss: torch.Tensor, norm: float, epoch: int = epoch, step: int = step,
                             batch: Batch = batch) -> bool:
                    # one rank's NaN loss makes the mean NaN everywhere, so every rank skips the same steps
                    value = (acc.reduce(loss, "mean") if acc.num_processes > 1 else loss).item()
                    return guard.step_ok(value, norm, epoch, step, batch.record_ids)

                with nullcontext() if boundary else acc.no_sync(system):
                    loss = training_step(lambda batch=batch: system(batch)["loss"], optimizer, backward=acc.backward,
                                         loss_scale=weight / group, forward_context=acc.autocast(), step=boundary,
                                         clip=clip, may_step=may_step, after_step=after_step,
                                         scheduler=scheduler).loss
                if math.isfinite(loss.item()):
                    losses.append(loss.item())
                step_times.append(time.perf_counter() - tick)
                if losses:
                    bar.set_postfix(loss=f"{losses[-1]:.4f}")
                self.tracker.log_step(epoch * steps_per_epoch + step + 1, loss.item(), scheduler.get_last_lr(),
                                      1000 * step_times[-1], peak_memory_mb()[0])
            record: dict[str, Any] = {"epoch": epoch + 1, "train_loss": statistics.fmean(losses) if losses else None,
                                      "lr": scheduler.get_last_lr()[0], "skipped_steps": guard.skipped_in_epoch,
                                      "losses": losses}
            if (epoch + 1) % cfg.train.eval_every == 0 or epoch + 1 == cfg.train.epochs:
                record["eval"] = self.evaluate(self.data.eval)
                primary = record["eval"][self.system.task.primary_metric]
                if best is None or primary > best[self.system.task.primary_metric]:
                    best = record["eval"]
                    self._save("best", optimizer, scheduler, epoch + 1, best, history + [record])
            history.append(record)
            self._save("last", optimizer, scheduler, epoch + 1, best, history)
            self._log(record)
            self.tracker.log_epoch((epoch + 1) * steps_per_epoch, record)
        seconds = time.perf_counter() - started
        self._backbone_s = self.system.backbone_seconds - backbone_start
        result = self._finish(best, history, step_times, seconds)
        self.tracker.finish(cfg.train.epochs * steps_per_epoch, result.to_dict())
        return result

    def _shared_backbone(self, seconds: float) -> dict[str, float] | None:
        """With several tasks: the measured backbone time of this run (training and evaluation) and the
        estimated time of one separate run per task, each paying that backbone time again."""
        tasks = len(self.config.tasks)
        if tasks < 2:
            return None
        separate = seconds + (tasks - 1) * self._backbone_s
        return {"tasks": tasks, "backbone_s": round(self._backbone_s, 3),
                "separate_runs_estimate_s": round(separate, 3),
                "time_saved_estimate": round(1 - seconds / separate, 4) if separate else 0.0}

    def _steps_per_epoch(self) -> int:
        n = len(self.data.train) // (self.config.train.batch_size * self.accelerator.num_processes)
        n = max(1, n)
        cap = self.config.train.max_steps_per_epoch
        return min(n, cap) if cap else n

    # ----------------------------------------------------------------------------------- eval
    @torch.no_grad()
    def evaluate(self, dataset: Dataset, split: str = "eval") -> dict[str, float]:
        """Metrics of the task over ``dataset`` (gathered across processes), with the EMA weights if kept.

        Raises:
            NonFiniteEvaluationError: some predictions are NaN / inf (the records are named).
        """
        if self.ema is not None:
            with self.ema.swapped(self.system):
                return self._evaluate(dataset, split)
        return self._evaluate(dataset, split)

    def _evaluate(self, dataset: Dataset, split: str) -> dict[str, float]:
        self.system.eval()
        parts: dict[str, list[torch.Tensor]] = {}
        bad: list[int] = []
        loader = self._loader(dataset, shuffle=False)
        for batch in tqdm(loader, desc="eval", disable=not self.main, leave=False):
            with self.accelerator.autocast():
                features = self.system.features(batch)
                out = self.system.task.predict(features, batch.targets)
            bad += nonfinite_records(features, batch.record_ids)
            for key, value in self.accelerator.gather_for_metrics(out).items():
                parts.setdefault(key, []).append(value.float().cpu() if value.is_floating_point() else value.cpu())
        total_bad = len(bad)
        if self.accelerator.num_processes > 1:  # every process must stop, not only the one that saw them
            total_bad = int(self.accelerator.reduce(torch.tensor(len(bad), device=self.accelerator.device), "sum"))
        raise_on_nonfinite_evaluation(bad, total_bad, dataset, split)
        gathered = {k: torch.cat(v) for k, v in parts.items()}
        return {k: float(v) for k, v in self.system.task.metrics(gathered).items()}

    # ----------------------------------------------------------------------------------- state
    def _save(self, tag: str, optimizer: Any, scheduler: Any, epoch: int, best: dict | None,
              history: list[dict]) -> None:
        self.accelerator.wait_for_everyone()
        if not self.main:
            return
        state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "epoch": epoch}
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        meta = {"epoch": epoch, "best": best, "history": history, "config": self.config.to_dict()}
        system = self.accelerator.unwrap_model(self.system)
        check_weights_finite(system.trainable_state_dict(), f"checkpoint {tag!r} of epoch {epoch}")
        save_checkpoint(self.out / "checkpoints" / tag, system, state, meta)

    def _maybe_resume(self, optimizer: Any, scheduler: Any) -> tuple[int, dict | None, list[dict]]:
        last = self.out / "checkpoints" / "last"
        if not self.config.train.resume:
            return 0, None, []
        if self.main:  # finish or undo a checkpoint swap that a crash interrupted
            for tag in ("last", "best"):
                note = recover_checkpoint(self.out / "checkpoints" / tag)
                if note:
                    print(f"resume: {note}", file=sys.stderr)
        self.accelerator.wait_for_everyone()
        if not last.is_dir():
            return 0, None, []
        state, meta = load_checkpoint(last, self.accelerator.unwrap_model(self.system))
        restore_optimizer(optimizer, scheduler, state)
        if self.ema is not None and "ema" in state:
            self.ema.load_state_dict(state["ema"])
        elif self.ema is not None:  # a run started without EMA: average from the restored weights on
            self.ema = WeightAverage(self.system, list(self.ema.shadow), self.ema.decay)
            if self.main:
                print(f"resume: {last} has no EMA of the weights (train.ema_decay was off); "
                      "the average starts from the resumed weights", file=sys.stderr)
        history = meta.get("history", [])
        if self.main:
            print(f"resuming from {last} after epoch {state['epoch']}")
            note = rebuild_metrics_log(self.out / "metrics.jsonl", history)
            if note:
                print(f"resume: {note}", file=sys.stderr)
        return int(state["epoch"]), meta.get("best"), history

    def _log(self, record: dict[str, Any]) -> None:
        if not self.main:
            return
        with open(self.out / "metrics.jsonl", "a") as handle:
            handle.write(metrics_line(record))
        skipped = f" skipped_steps={record['skipped_steps']}" if record.get("skipped_steps") else ""
        loss = record["train_loss"]
        shown = {k: round(v, 3) for k, v in (record.get("eval") or {}).items() if not k.endswith("meanr")}
        loss_text = f"{loss:.4f}" if loss is not None else "none (every step skipped)"
        print(f"epoch {record['epoch']}: train_loss={loss_text}{skipped} eval={shown}")

    def _finish(self, best: dict | None, history: list[dict], step_times: list[float], seconds: float) -> FitResult:
        test = None
        if self.data.test is not None and (self.out / "checkpoints" / "best").is_dir():
            state, _ = load_checkpoint(self.out / "checkpoints" / "best", self.accelerator.unwrap_model(self.system))
            if self.ema is not None and "ema" in state:
                self.ema.load_state_dict(state["ema"])
            elif self.ema is not None:  # the best epoch predates the EMA (a resumed run): test its own weights
                self.ema = None
            test = self.evaluate(self.data.test, "test")
        trainable, total = count_parameters(self.system)
        saved = sum(v.numel() * v.element_size() for v in self.system.trainable_state_dict().values())
        peak, kind = peak_memory_mb()
        result = FitResult(best or {}, test, trainable, total, saved, peak, kind,
                           1000 * statistics.median(step_times[1:] or step_times) if step_times else float("nan"),
                           seconds, history, self._shared_backbone(seconds))
        if self.main:
            (self.out / "summary.json").write_text(json.dumps(result.to_dict(), indent=2))
            plot_history(history, self.out / "training_curve.png", self.system.task.primary_metric)
            write_card(self.out, run_facts(self.config, self.system, result.to_dict(), self.out))
        return result


class _Indexed(Dataset):
    """``(index, record)`` pairs, so a batch knows which records it holds (to name them in errors)."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[int, Any]:
        return index, self.dataset[index]


class _WithIds:
    """Collate the records, then add their dataset indices (``Batch.record_ids``)."""

    def __init__(self, collate: Any):
        self.collate = collate

    def __call__(self, items: list[tuple[int, Any]]) -> Batch:
        batch = self.collate([record for _, record in items])
        batch.record_ids = [index for index, _ in items]
        return batch

