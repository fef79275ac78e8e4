import math

import pytest
import torch

from unipt.outputs import AdaptedOutput
from unipt.tasks import build_task
from unipt.tasks.video_retrieval import VideoTextRetrieval, mean_pool_frames


def streams(batch: int = 5, frames: int = 4, dim: int = 6) -> dict[str, AdaptedOutput]:
    frame_mask = torch.ones(batch, frames)
    frame_mask[0, 2:] = 0
    frame_mask[3, 1:] = 0
    return {
        "video": AdaptedOutput(torch.randn(batch, frames, dim), attention_mask=frame_mask),
        "text": AdaptedOutput(torch.randn(batch, 3, dim), pooled=torch.randn(batch, dim)),
    }


def test_logit_scale_is_a_frozen_buffer() -> None:
    task = VideoTextRetrieval()
    assert float(task.logit_scale) == pytest.approx(100.0)
    assert list(task.parameters()) == []
    assert "logit_scale" in task.state_dict()
    assert float(VideoTextRetrieval(logit_scale=math.exp(math.log(1 / 0.07))).logit_scale) == pytest.approx(
        1 / 0.07
    )


def test_mean_pool_by_hand_and_padding_ignored() -> None:
    frames = torch.tensor([[[3.0, 4.0], [0.0, 2.0], [9.0, 9.0]]])  # unit frames (0.6, 0.8) and (0, 1)
    pooled = mean_pool_frames(frames, torch.tensor([[1, 1, 0]]))
    expected = torch.tensor([[0.3, 0.9]]) / math.hypot(0.3, 0.9)
    torch.testing.assert_close(pooled, expected)


def test_padded_frames_from_batch_mask_too() -> None:
    task = VideoTextRetrieval()
    features = streams()
    mask = features["video"].attention_mask
    moved = {"video": AdaptedOutput(features["video"].last_hidden_state), "text": features["text"]}
    a = task.predict(features, {})["video_emb"]
    b = task.predict(moved, {"video_mask": mask})["video_emb"]
    torch.testing.assert_close(a, b)
    noisy = features["video"].last_hidden_state.masked_fill(~mask.bool().unsqueeze(-1), 7.0)
    c = task.predict({"video": AdaptedOutput(noisy, attention_mask=mask), "text": features["text"]}, {})
    torch.testing.assert_close(c["video_emb"], a)


def test_forward_shapes_and_loss_falls(loss_falls) -> None:
    task = build_task("video_retrieval")
    out = task(streams(), {})
    assert out["sim"].shape == (5, 5) and out["video_emb"].shape == (5, 6)
    loss_falls(task, streams(), {}, lr=0.05)


def test_metrics_perfect_and_reversed() -> None:
    task = VideoTextRetrieval()
    emb = torch.eye(4)
    perfect = task.metrics({"video_emb": emb, "text_emb": emb})
    assert perfect["t2v_r1"] == perfect["v2t_r1"] == 100.0
    assert perfect["t2v_medr"] == perfect["t2v_meanr"] == 1.0
    # Text i closest to video 3 - i, and its own video has score 0 like the other two: ties favour
    # the query, so each true pair ranks 2nd (1 strictly better).
    shuffled = task.metrics({"video_emb": emb, "text_emb": emb.flip(0)})
    assert shuffled["t2v_r1"] == 0.0 and shuffled["t2v_r5"] == 100.0
    assert shuffled["t2v_medr"] == 2.0 and shuffled["v2t_meanr"] == 2.0
