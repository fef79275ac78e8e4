import pytest
import torch

from unipt.outputs import AdaptedOutput
from unipt.tasks import build_task
from unipt.tasks.classification import Classification, macro_f1


def test_macro_f1_by_hand_with_an_unpredicted_and_an_absent_class() -> None:
    label = torch.tensor([0, 0, 1, 1, 2])
    pred = torch.tensor([0, 1, 1, 1, 0])
    # class 0: TP 1, FP 1, FN 1 -> 2/4 = 0.5; class 1: TP 2, FP 1 -> 4/5 = 0.8;
    # class 2: never predicted -> 0; class 3: in neither -> left out of the average.
    assert macro_f1(pred, label, num_classes=4) == pytest.approx(100 * (0.5 + 0.8 + 0.0) / 3)
    assert macro_f1(pred, label) == pytest.approx(100 * 1.3 / 3)


def test_macro_f1_predicted_but_absent_class_counts_zero() -> None:
    # class 1 is predicted once but never true: F1 0; class 0: TP 1, FN 1 -> 2/3.
    assert macro_f1(torch.tensor([0, 1]), torch.tensor([0, 0]), 3) == pytest.approx(100 * (2 / 3 + 0) / 2)
    assert macro_f1(torch.tensor([2, 2]), torch.tensor([2, 2]), 3) == pytest.approx(100.0)


def test_metrics_by_hand() -> None:
    task = Classification(hidden_dim=4, num_classes=4)
    scores = task.metrics({"pred": torch.tensor([0, 1, 1, 1, 0]), "label": torch.tensor([0, 0, 1, 1, 2])})
    assert scores["accuracy"] == pytest.approx(60.0)
    assert scores["macro_f1"] == pytest.approx(100 * 1.3 / 3)


def test_heads_and_shapes() -> None:
    linear = Classification(hidden_dim=8, num_classes=3)
    assert sum(p.numel() for p in linear.parameters()) == 8 * 3 + 3
    mlp = Classification(hidden_dim=8, num_classes=3, mlp_hidden=16)
    assert sum(p.numel() for p in mlp.parameters()) == (8 * 16 + 16) + (16 * 3 + 3)
    out = mlp({"text": AdaptedOutput(torch.randn(5, 2, 8))}, {"label": torch.zeros(5, dtype=torch.long)})
    assert out["logits"].shape == (5, 3)
    pred = mlp.predict({"text": AdaptedOutput(torch.randn(5, 2, 8))}, {"label": torch.ones(5)})
    assert pred["pred"].shape == pred["label"].shape == (5,)


def test_mean_pooling_ignores_padding() -> None:
    task = Classification(hidden_dim=4, num_classes=2, pooling="mean").eval()
    x, mask = torch.randn(2, 3, 4), torch.tensor([[1, 1, 0], [1, 0, 0]])
    a = task.logits({"text": AdaptedOutput(x, attention_mask=mask)})
    b = task.logits(
        {"text": AdaptedOutput(x.masked_fill(~mask.bool().unsqueeze(-1), 9.0), attention_mask=mask)}
    )
    torch.testing.assert_close(a, b)


def test_label_smoothing_changes_the_loss() -> None:
    features = {"text": AdaptedOutput(torch.randn(4, 2, 8))}
    batch = {"label": torch.tensor([0, 1, 2, 0])}
    plain = Classification(8, 3)
    smooth = Classification(8, 3, label_smoothing=0.1)
    smooth.load_state_dict(plain.state_dict())
    with torch.no_grad():
        assert float(plain(features, batch)["loss"]) != pytest.approx(float(smooth(features, batch)["loss"]))


@pytest.mark.parametrize("options", [{}, {"mlp_hidden": 16, "dropout": 0.1, "label_smoothing": 0.1}])
def test_loss_falls(loss_falls, options: dict) -> None:
    features = {"image": AdaptedOutput(torch.randn(8, 3, 8), pooled=torch.randn(8, 8))}
    task = build_task("classification", hidden_dim=8, num_classes=4, tower="image", **options)
    loss_falls(task, features, {"label": torch.arange(8) % 4})


def test_unknown_pooling_is_refused_early() -> None:
    with pytest.raises(ValueError, match="pooling mode"):
        Classification(4, 2, pooling="max")
