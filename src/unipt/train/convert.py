"""Rewrite the checkpoints of a run made by unipt 0.1 in the current layout (one ``save_pretrained`` folder
per tower, the head, the run config; see :mod:`unipt.train.checkpoint`).

    python -m unipt.train.convert RUN_DIR [--set data.options.root=...]

Old checkpoints are read as they are by ``unipt eval`` / ``predict`` and by resuming; converting is needed
only to load a tower with ``UniPTModel.from_pretrained``. The backbones are loaded (their fingerprints go
into the new files) and so is the data (the task's size, e.g. the number of classes, comes from it).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from unipt.train.causal_guard import is_causal_lm_run
from unipt.train.checkpoint import is_legacy, load_checkpoint, save_checkpoint
from unipt.train.config import load_run_config
from unipt.train.inference import run_trainer


def convert_run(run_dir: str | Path, overrides: list[str] | None = None) -> list[Path]:
    """Convert every unipt-0.1 checkpoint of ``run_dir`` in place; returns the converted folders."""
    folders = [f for f in sorted((Path(run_dir) / "checkpoints").glob("*")) if f.is_dir() and is_legacy(f)]
    if not folders:
        return []
    config_file = Path(run_dir) / "run_config.yaml"
    if config_file.is_file() and is_causal_lm_run(load_run_config(config_file, overrides)):
        raise ValueError(
            f"{run_dir} is a causal_lm run: `unipt eval` and `unipt generate` read its one-file checkpoints as they "
            "are; for a save_pretrained folder, load it with unipt.lm.train.load_lm_run(RUN) and call "
            ".model.save_pretrained(FOLDER)"
        )
    trainer = run_trainer(run_dir, overrides)
    for folder in folders:
        state, meta = load_checkpoint(folder, trainer.system)
        save_checkpoint(folder, trainer.system, state, meta)
    return folders


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unipt.train.convert", description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a run folder made by `unipt train`")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override the saved run config, e.g. data.options.root=... if the data moved")
    args = parser.parse_args(argv)
    converted = convert_run(args.run, args.set)
    print("\n".join(f"converted {f}" for f in converted) if converted else f"{args.run}: nothing to convert")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
