"""Worker of the CLIP4Clip gather test: ``torchrun --nproc_per_node 2 gather_run.py OUT``.

Every rank takes its half of one fixed batch of 8 video-caption pairs, runs a tiny pair of towers under
DDP, computes :class:`~unipt.tasks.video_retrieval.VideoTextRetrieval`'s training loss (embeddings
gathered across ranks) and backpropagates; rank 0 writes the loss and the averaged gradients to
``OUT/grads.safetensors``. ``reference()`` computes the same on the whole batch in one process.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from torch import nn

from unipt.outputs import AdaptedOutput
from unipt.tasks.video_retrieval import VideoTextRetrieval

BATCH, FRAMES = 8, 3
VIDEO_INDEX = [0, 1, 2, 3, 0, 5, 6, 7]  # pairs 0 and 4 show one video and sit on different ranks


class Towers(nn.Module):
    """Per-frame and caption projections: ``frames [N, T, 8]``, ``text [N, 5]`` -> feature streams."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.video = nn.Linear(8, 6)
        self.text = nn.Linear(5, 6)

    def forward(self, frames: torch.Tensor, frame_mask: torch.Tensor, text: torch.Tensor) -> dict[str, AdaptedOutput]:
        captions = self.text(text)
        return {"video": AdaptedOutput(self.video(frames), frame_mask),
                "text": AdaptedOutput(captions.unsqueeze(1), None, captions)}


def inputs() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    mask = torch.ones(BATCH, FRAMES)
    mask[1, 2:] = 0
    mask[6, 1:] = 0
    return {"frames": torch.randn(BATCH, FRAMES, 8, generator=gen), "frame_mask": mask,
            "text": torch.randn(BATCH, 5, generator=gen), "video_index": torch.tensor(VIDEO_INDEX)}


def step(model: nn.Module, towers: Towers,
         part: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One loss + backward; returns the loss and the gradients of ``towers``."""
    task = VideoTextRetrieval(logit_scale=10.0).train()
    features = model(part["frames"], part["frame_mask"], part["text"])
    out = task(features, {"video_index": part["video_index"]})
    out["loss"].backward()
    return out["loss"].detach(), {n: p.grad.detach().clone() for n, p in towers.named_parameters()}


def reference() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    towers = Towers()
    return step(towers, towers, inputs())


def main(out: Path) -> None:
    from safetensors.torch import save_file

    torch.distributed.init_process_group("gloo")
    rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    rows = BATCH // world
    part = {k: v[rank * rows:(rank + 1) * rows] for k, v in inputs().items()}
    towers = Towers()
    model = nn.parallel.DistributedDataParallel(towers)
    loss, grads = step(model, towers, part)
    if rank == 0:
        save_file({"loss": loss.reshape(1), **grads}, str(out / "grads.safetensors"))
    del model  # DDP's reducer goes before the process group: a live one made the exit hang now and then
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main(Path(sys.argv[1]))
