"""Video-text retrieval (CLIP4Clip, meanP): mean of L2-normalised frames, InfoNCE on CLIP's frozen scale."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from unipt.outputs import AdaptedOutput, masked_mean
from unipt.tasks.base import Task
from unipt.tasks.contrastive import info_nce_loss, positive_mask
from unipt.tasks.features import pooled_vector
from unipt.tasks.gather import gather_rows, world_size
from unipt.tasks.ranking import retrieval_metrics_from_samples


def mean_pool_frames(frames: torch.Tensor, frame_mask: torch.Tensor | None) -> torch.Tensor:
    """CLIP4Clip's meanP: ``[B, T, D]`` -> L2-normalise frames -> masked mean -> L2-normalise -> ``[B, D]``.

    Normalising frames first makes every frame count equally whatever its norm; padded frames
    (``frame_mask`` 0, for videos shorter than T) are left out of the mean.
    """
    frames = F.normalize(frames, dim=-1)
    return F.normalize(masked_mean(frames, frame_mask), dim=-1)


class VideoTextRetrieval(Task):
    """Parameter-free CLIP4Clip head over the ``video`` and ``text`` streams.

    Streams: ``video.last_hidden_state`` is ``[B, T, D]``, one adapted CLIP embedding per frame,
    with ``video.attention_mask`` ``[B, T]`` (or ``batch["video_mask"]``) marking real frames;
    ``text.pooled`` is ``[B, D]`` (the adapted EOT embedding; the masked token mean is the fallback
    when ``pooled`` is ``None``). Optional ``batch["video_index"]`` ``[B]`` gives the video id of
    each caption (several captions per video, e.g. MSVD).

    Args:
        logit_scale: CLIP's multiplicative logit scale, kept frozen as in CLIP4Clip. Pre-trained
            CLIP ViT-B/32 stores ``log(100)`` (its training starts from ``log(1 / 0.07)``, i.e.
            14.3, and is clamped at 100), hence the default 100; pass ``clip.logit_scale.exp()``.
        video_tower / text_tower: names of the two streams in ``features``.
    """

    name = "video_retrieval"
    primary_metric = "t2v_r1"

    def __init__(
        self, logit_scale: float = 100.0, video_tower: str = "video", text_tower: str = "text"
    ) -> None:
        super().__init__()
        self.towers = (video_tower, text_tower)
        # A buffer, not a parameter: it moves with .to() and is saved, but no optimiser sees it.
        self.register_buffer("logit_scale", torch.tensor(float(logit_scale)))

    def _embed_both(
        self, features: dict[str, AdaptedOutput], batch: dict[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        video_out = self.stream(features, self.towers[0])
        frame_mask = video_out.attention_mask
        if frame_mask is None:
            frame_mask = batch.get("video_mask")
        video = mean_pool_frames(video_out.last_hidden_state, frame_mask)
        text = F.normalize(pooled_vector(self.stream(features, self.towers[1]), "auto"), dim=-1)
        return video, text

    def forward(self, features: dict[str, AdaptedOutput], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Returns ``loss``, ``sim`` ``[N, N]`` (rows videos), ``video_emb`` and ``text_emb`` ``[N, D]``.

        In training under ``torch.distributed`` the embeddings of every process are gathered first (as
        CLIP4Clip does), so ``N = world x B`` and the loss is the one-process loss of the global batch.
        """
        video, text = self._embed_both(features, batch)
        index = batch.get("video_index")
        if self.training and world_size() > 1:
            video, text = gather_rows(video), gather_rows(text)
            index = gather_rows(torch.as_tensor(index, device=video.device)) if index is not None else None
        sim = video @ text.t()
        positives = positive_mask(index, sim.shape[0], sim.device)
        loss = info_nce_loss(sim, self.logit_scale, positives)
        return {"loss": loss, "sim": sim, "video_emb": video, "text_emb": text}

    @torch.no_grad()
    def predict(self, features: dict[str, AdaptedOutput], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """``video_emb`` / ``text_emb`` ``[B, D]`` and ``video_index`` ``[B]`` when the batch has it."""
        video, text = self._embed_both(features, batch)
        out = {"video_emb": video, "text_emb": text}
        if "video_index" in batch:
            out["video_index"] = torch.as_tensor(batch["video_index"], device=video.device)
        return out

    def metrics(self, gathered: dict[str, torch.Tensor]) -> dict[str, float]:
        """``t2v_r{1,5,10}``, ``v2t_r{1,5,10}`` (percent), ``*_medr``, ``*_meanr`` and ``rsum``."""
        return retrieval_metrics_from_samples(
            gathered["video_emb"], gathered["text_emb"], gathered.get("video_index"), "v", "t"
        )
