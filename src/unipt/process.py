"""Process-level helpers shared by training, the cache build and the CLI: the distributed setup and
this process's peak memory."""

from __future__ import annotations

import os
import resource

import torch


def needs_cpu_flag() -> bool:
    """Whether Accelerate must be created with ``cpu=True``: under ``torchrun`` / ``accelerate launch``
    (several processes) on a machine without an accelerator (else every process silently trains alone
    instead of joining a gloo process group), or when ``accelerate launch --cpu`` asked for it."""
    if os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes"):
        return True
    available = torch.accelerator.is_available() if hasattr(torch, "accelerator") else torch.cuda.is_available()
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not available


def end_distributed() -> None:
    """Wait for every rank, then tear the process group down, so gloo/NCCL threads stop before exit
    (without it a rank can abort with "terminate called without an active exception")."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def reset_peak_memory() -> None:
    """Start a new CUDA peak-memory window (the CPU peak RSS cannot be reset)."""
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_memory_mb() -> tuple[float, str]:
    """Peak memory of this process: CUDA allocator peak, else the process's peak resident set."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20, "cuda_max_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "cpu_peak_rss"
