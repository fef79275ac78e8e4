"""Training: run configs, the trained system (towers + task), the loop with checkpoints and resume."""

from unipt.train.config import RunConfig, load_run_config
from unipt.train.loop import FitResult, Trainer
from unipt.train.system import AdaptedSystem, build_system

__all__ = ["AdaptedSystem", "FitResult", "RunConfig", "Trainer", "build_system", "load_run_config"]
