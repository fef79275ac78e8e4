import pytest
import torch

from unipt.outputs import AdaptedOutput
from unipt.tasks import build_task
from unipt.tasks.grounding import MLP, Grounding, target_boxes
from unipt.tasks.matcher import MatchCosts


def queries(batch: int = 4, n_queries: int = 5, dim: int = 8, aux: int = 0) -> dict[str, AdaptedOutput]:
    aux_states = torch.randn(aux, batch, n_queries, dim) if aux else None
    return {"queries": AdaptedOutput(torch.randn(batch, n_queries, dim), aux_hidden_states=aux_states)}


BOXES = torch.tensor([[0.5, 0.5, 0.4, 0.4], [0.3, 0.6, 0.2, 0.3], [0.7, 0.2, 0.3, 0.2], [0.4, 0.4, 0.6, 0.5]])


def test_heads_shapes_and_range() -> None:
    task = Grounding(hidden_dim=8)
    assert len(task.box_head.layers) == 3
    out = task(queries(), {"boxes": BOXES})
    assert out["scores"].shape == (4, 5) and out["boxes"].shape == (4, 5, 4)
    assert bool(((out["boxes"] > 0) & (out["boxes"] < 1)).all())
    assert {"loss", "loss_score", "loss_bbox", "loss_giou"} <= set(out)


def test_mlp_layers() -> None:
    mlp = MLP(8, 16, 4, num_layers=3)
    assert [tuple(layer.weight.shape) for layer in mlp.layers] == [(16, 8), (16, 16), (4, 16)]


def test_target_formats() -> None:
    device = torch.device("cpu")
    assert [t.shape for t in target_boxes(BOXES, None, device)] == [(1, 4)] * 4
    padded = torch.rand(2, 3, 4)
    got = target_boxes(padded, torch.tensor([[1, 0, 0], [1, 1, 1]]), device)
    assert [t.shape[0] for t in got] == [1, 3]
    assert [t.shape[0] for t in target_boxes([torch.rand(2, 4), torch.rand(1, 4)], None, device)] == [2, 1]


def test_loss_is_weighted_sum_and_aux_layers_add_their_own() -> None:
    task = Grounding(hidden_dim=8)
    features = queries(aux=2)
    targets = list(BOXES.unsqueeze(1))

    def weighted(hidden: torch.Tensor) -> torch.Tensor:
        parts = task.layer_losses(*task.heads(hidden), targets)
        return parts["score"] + 5 * parts["bbox"] + 2 * parts["giou"]

    out = features["queries"]
    expected = weighted(out.last_hidden_state) + sum(weighted(h) for h in out.aux_hidden_states)
    torch.testing.assert_close(task(features, {"boxes": BOXES})["loss"], expected)
    no_aux = Grounding(hidden_dim=8, aux_loss=False)
    no_aux.load_state_dict(task.state_dict())
    torch.testing.assert_close(no_aux(features, {"boxes": BOXES})["loss"], weighted(out.last_hidden_state))


def test_perfect_box_has_zero_box_losses() -> None:
    # Box costs only: at random init all query scores are alike and would sway the match.
    task = Grounding(hidden_dim=8, match_costs=MatchCosts(0.0, 5.0, 2.0))
    hidden = queries()["queries"].last_hidden_state
    with torch.no_grad():
        _, boxes = task.heads(hidden)
        # Targets equal to query 2's predictions: it is matched and its L1 and 1 - GIoU vanish.
        parts = task.layer_losses(*task.heads(hidden), list(boxes[:, 2:3]))
    assert float(parts["bbox"]) == pytest.approx(0.0, abs=1e-6)
    assert float(parts["giou"]) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("several", [False, True])
def test_loss_falls(loss_falls, several: bool) -> None:
    batch = {"boxes": BOXES}
    if several:
        pytest.importorskip("scipy")
        batch = {
            "boxes": torch.stack([BOXES, BOXES.flip(0)], 1),
            "box_mask": torch.tensor([[1, 1], [1, 0], [1, 1], [1, 0]]),
        }
    loss_falls(build_task("grounding", hidden_dim=8), queries(aux=1), batch, lr=0.01, steps=40)


def test_predict_and_acc_by_hand() -> None:
    task = Grounding(hidden_dim=8)
    out = task.predict(queries(), {"boxes": BOXES})
    assert out["box"].shape == (4, 4) and out["score"].shape == (4,) and out["iou"].shape == (4,)
    # IoU 0.6 and exactly 0.5 are hits, 0.4 and 0.0 are not.
    scores = task.metrics({"iou": torch.tensor([0.6, 0.5, 0.4, 0.0])})
    assert scores["acc@0.5"] == pytest.approx(50.0)
    assert scores["mean_iou"] == pytest.approx(37.5)


def test_top_scored_query_is_evaluated() -> None:
    task = Grounding(hidden_dim=4)
    with torch.no_grad():
        task.score_head.weight.copy_(torch.tensor([[0.0, 0.0, 0.0, 1.0]]))  # score = feature 3
        task.score_head.bias.zero_()
    hidden = torch.zeros(1, 3, 4)
    hidden[0, 1, 3] = 5.0  # query 1 has the top score
    _, boxes = task.heads(hidden)
    out = task.predict({"queries": AdaptedOutput(hidden)}, {"boxes": boxes[:, 1]})
    torch.testing.assert_close(out["box"], boxes[:, 1])
    assert float(out["iou"]) == pytest.approx(1.0)
