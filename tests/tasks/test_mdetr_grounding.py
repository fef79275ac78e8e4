"""The MDETR grounding task: heads copied from the checkpoint, MDETR's losses on every decoder output,
the RefCOCO protocol (top-scoring box; IoU and the released GIoU rule)."""

from __future__ import annotations

import pytest
import torch

from unipt.models.mdetr import MDETR, MDETRConfig, ResNetBodyConfig, TextEncoderConfig
from unipt.outputs import AdaptedOutput
from unipt.tasks import build_task
from unipt.tasks.mdetr_grounding import MDETRGrounding


def stream(batch: int = 2, queries: int = 4, width: int = 16, tokens: int = 5, aux: int = 3) -> AdaptedOutput:
    torch.manual_seed(0)
    return AdaptedOutput(torch.randn(batch, queries, width), aux_hidden_states=torch.randn(aux, batch, queries, width),
                         head_inputs={"text_memory": torch.randn(batch, tokens, width),
                                      "text_mask": torch.ones(batch, tokens)})


BATCH = {"boxes": torch.tensor([[0.5, 0.5, 0.4, 0.4], [0.3, 0.6, 0.2, 0.3]]),
         "token_map": torch.tensor([[0.0, 1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0, 0.0]])}


def test_heads_start_from_the_backbone_checkpoint() -> None:
    text = TextEncoderConfig(vocab_size=30, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=32, max_position_embeddings=20)
    config = MDETRConfig(hidden_dim=16, nheads=2, enc_layers=1, dec_layers=1, dim_feedforward=16, num_queries=4,
                         num_classes=20, contrastive_hdim=6, body_channels=32, text=text,
                         resnet=ResNetBodyConfig(depths=(1, 1, 1, 1), widths=(2, 2, 4, 8), stem=4))
    model = MDETR(config)
    task = build_task("mdetr_grounding", hidden_dim=16)
    task.init_from_backbones({"mdetr": model})
    assert task.heads.class_embed.out_features == 21 and task.heads.contrastive_align_projection_text.out_features == 6
    expected = model.head_state_dict()
    assert set(task.heads.state_dict()) == set(expected)
    assert all(torch.equal(v, expected[k]) for k, v in task.heads.state_dict().items())
    assert all(p.requires_grad for p in task.parameters())
    with pytest.raises(ValueError, match="reads the MDETR tower 'mdetr'"):
        task.init_from_backbones({"image": torch.nn.Linear(2, 2)})


def test_loss_covers_every_decoder_output_and_trains_the_heads() -> None:
    task = MDETRGrounding(hidden_dim=16, num_classes=10, contrastive_hdim=6)
    out = task({"mdetr": stream()}, BATCH)
    assert {"loss_ce", "loss_bbox", "loss_giou", "loss_contrastive_align"} <= set(out)
    assert out["boxes"].shape == (2, 4, 4)
    final = 1 * out["loss_ce"] + 5 * out["loss_bbox"] + 2 * out["loss_giou"] + out["loss_contrastive_align"]
    assert float(out["loss"].detach()) > float(final) > 0  # plus the three aux outputs
    out["loss"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in task.parameters())
    no_text = AdaptedOutput(torch.randn(2, 4, 16))
    with pytest.raises(ValueError, match="text_memory"):
        task({"mdetr": no_text}, BATCH)


def test_predict_takes_the_top_scoring_box_and_metrics_follow_the_protocol() -> None:
    task = MDETRGrounding(hidden_dim=16, num_classes=10, contrastive_hdim=6)
    features = {"mdetr": stream()}
    pred = task.predict(features, BATCH)
    with torch.no_grad():  # score = 1 - p(no object); the box of the best-scoring query
        last = features["mdetr"].last_hidden_state
        scores = 1 - task.heads.class_embed(last).softmax(-1)[..., -1]
        best = scores.argmax(1)
        boxes = task.heads.bbox_embed(last).sigmoid()[torch.arange(2), best]
    assert pred["score"].tolist() == pytest.approx(scores.max(1).values.tolist(), abs=1e-6)
    torch.testing.assert_close(pred["box"], boxes)
    assert pred["box"].shape == (2, 4) and set(pred) == {"box", "score", "iou", "giou"}
    assert bool((pred["giou"] <= pred["iou"] + 1e-6).all())

    gathered = {"iou": torch.tensor([0.9, 0.55, 0.4, 0.5]), "giou": torch.tensor([0.85, 0.45, 0.3, 0.5])}
    metrics = task.metrics(gathered)
    assert metrics["acc@0.5"] == pytest.approx(75.0)
    assert metrics["acc@0.5_giou"] == pytest.approx(50.0)  # the released evaluator's stricter rule
    assert metrics["mean_iou"] == pytest.approx(58.75)
