"""Worker of the distributed tests: ``python ddp_run.py DATA OUT BATCH`` alone or under ``torchrun``.

Builds the cache of every split (shards split across ranks), trains live, then trains from the cache;
rank 0 writes ``OUT/{live,cached}.safetensors`` (trained weights) and ``OUT/result.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cache"))

import tiny  # noqa: E402
from accelerate import PartialState  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from unipt.process import end_distributed, needs_cpu_flag  # noqa: E402
from unipt.train import Trainer  # noqa: E402
from unipt.train.caching import build_cache  # noqa: E402


def main(data: Path, out: Path, batch: int) -> None:
    tiny.register()
    state = PartialState(cpu=needs_cpu_flag())  # as the Trainer and the cache build create it
    cache = out / "cache"
    cached_config = tiny.config(data, out / "run_cached", **{"train.batch_size": batch, "train.cache_dir": str(cache)})
    manifests = {split: build_cache(cached_config, cache, split, records_per_shard=16, batch_size=8, progress=False)
                 for split in ("train", "eval", "test")}
    for split, manifest in manifests.items():
        files = sorted((p.name, p.stat().st_size) for p in (cache / split).iterdir())
        assert manifest["complete"], (f"rank {state.process_index}: {split} incomplete after the build: "
                                      f"{[e['index'] for e in manifest['shards']]}, files {files}")
    live = Trainer(tiny.config(data, out / "run_live", **{"train.batch_size": batch}))
    initial = {k: v.clone() for k, v in live.system.trainable_state_dict().items()}
    prepared = _record_prepare(live)
    live_result = live.fit()
    cached = Trainer(cached_config)
    cached.system.towers["text"].backbone.forward = _refuse
    cached_result = cached.fit()
    if state.is_main_process:
        save_file(initial, str(out / "initial.safetensors"))
        save_file(live.system.trainable_state_dict(), str(out / "live.safetensors"))
        save_file(cached.system.trainable_state_dict(), str(out / "cached.safetensors"))
        result = {
            "world_size": state.num_processes,
            "distributed_type": str(state.distributed_type),
            **_ddp_report(live, prepared[0][0]),
            "shards": {s: [e["sha256"] for e in m["shards"]] for s, m in manifests.items()},
            "build_world_size": {s: m["build"]["world_size"] for s, m in manifests.items()},
            "live": {"best": live_result.best_metrics, "test": live_result.test_metrics},
            "cached": {"best": cached_result.best_metrics, "test": cached_result.test_metrics},
        }
        (out / "result.json").write_text(json.dumps(result, indent=2))


def _record_prepare(trainer: Trainer) -> list[tuple[object, ...]]:
    """Keep what ``accelerator.prepare`` returns during ``fit`` (the DDP-wrapped system)."""
    calls: list[tuple[object, ...]] = []
    prepare = trainer.accelerator.prepare

    def recording(*objects: object) -> object:
        result = prepare(*objects)
        calls.append(result if isinstance(result, tuple) else (result,))
        return result

    trainer.accelerator.prepare = recording
    return calls


def _ddp_report(trainer: Trainer, wrapped: object) -> dict[str, object]:
    """What DDP wraps and all-reduces: the parameters it registered with its reducer (private API, test only)."""
    report: dict[str, object] = {"wrapped": type(wrapped).__name__}
    if hasattr(wrapped, "_build_params_for_reducer"):
        reduced, _ = wrapped._build_params_for_reducer()
        report["reduced_numel"] = sum(p.numel() for p in reduced)
    system = trainer.system
    report["trainable_numel"] = sum(p.numel() for p in system.parameters() if p.requires_grad)
    report["frozen_numel"] = sum(p.numel() for p in system.parameters() if not p.requires_grad)
    return report


def _refuse(*args: object, **kwargs: object) -> None:
    raise AssertionError("the frozen backbone ran although its taps are cached")


if __name__ == "__main__":
    try:
        main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))
    finally:
        end_distributed()
