import math

import pytest
import torch
from torch import nn

from unipt.outputs import AdaptedOutput
from unipt.tasks import build_task
from unipt.tasks.vqa import AnswerPrediction, vqa_soft_scores

# 3 questions x 4 answers: how many of the 10 annotators gave each answer.
COUNTS = torch.tensor([[3, 1, 0, 0], [0, 2, 1, 0], [0, 0, 0, 10]])
# Logits whose argmax is answer 1, answer 1, answer 0.
LOGITS = torch.tensor([[0.0, 2.0, 1.0, 0.0], [0.0, 3.0, 0.0, 1.0], [5.0, 0.0, 0.0, 4.0]])


def fixed_logit_task(mode: str) -> AnswerPrediction:
    """A task whose logits are exactly the pooled vector, to test predict/metrics by hand."""
    task = build_task(mode, hidden_dim=4, num_answers=4)
    task.head = nn.Identity()
    return task


def joint(pooled: torch.Tensor) -> dict[str, AdaptedOutput]:
    return {"joint": AdaptedOutput(torch.randn(pooled.shape[0], 2, pooled.shape[1]), pooled=pooled)}


def test_soft_scores_by_hand() -> None:
    expected = torch.tensor([[1.0, 1 / 3, 0, 0], [0, 2 / 3, 1 / 3, 0], [0, 0, 0, 1.0]])
    torch.testing.assert_close(vqa_soft_scores(COUNTS), expected)


def test_vqa_soft_accuracy_by_hand() -> None:
    task = fixed_logit_task("vqa")
    out = task.predict(joint(LOGITS), {"answer_scores": vqa_soft_scores(COUNTS)})
    assert out["answer"].tolist() == [1, 1, 0]
    torch.testing.assert_close(out["score"], torch.tensor([1 / 3, 2 / 3, 0.0]))
    assert task.metrics(out)["accuracy"] == pytest.approx(100 / 3)  # (1/3 + 2/3 + 0) / 3


def test_gqa_exact_match_by_hand() -> None:
    task = fixed_logit_task("gqa")
    out = task.predict(joint(LOGITS), {"label": torch.tensor([1, 2, 0])})
    assert out["score"].tolist() == [1.0, 0.0, 1.0]
    assert task.metrics(out)["accuracy"] == pytest.approx(200 / 3)


def test_loss_value_by_hand_and_scales() -> None:
    # Zero logits: BCE is log 2 for every entry whatever the target.
    zeros = joint(torch.zeros(3, 4))
    batch = {"answer_scores": vqa_soft_scores(COUNTS)}
    assert float(fixed_logit_task("vqa")(zeros, batch)["loss"]) == pytest.approx(math.log(2))
    task = AnswerPrediction(4, 4, loss_scale=500.0)
    task.head = nn.Identity()
    assert float(task(zeros, batch)["loss"]) == pytest.approx(500 * math.log(2))
    lxmert = AnswerPrediction(4, 4, loss_scale=None)  # LXMERT: mean x number of answers
    lxmert.head = nn.Identity()
    assert float(lxmert(zeros, batch)["loss"]) == pytest.approx(4 * math.log(2))


def test_head_shape_and_param_count() -> None:
    task = AnswerPrediction(hidden_dim=8, num_answers=5)
    # Linear(8,16) + LayerNorm(16) + Linear(16,5)
    assert sum(p.numel() for p in task.parameters()) == (8 * 16 + 16) + 32 + (16 * 5 + 5)
    out = task(
        {"joint": AdaptedOutput(torch.randn(3, 4, 8))},
        {"label": torch.tensor([0, 1, 2]), "answer_scores": torch.zeros(3, 5)},
    )
    assert out["logits"].shape == (3, 5)


@pytest.mark.parametrize("mode", ["vqa", "gqa"])
def test_loss_falls(loss_falls, mode: str) -> None:
    mask = torch.ones(6, 4)
    mask[:, 3] = 0
    features = {"joint": AdaptedOutput(torch.randn(6, 4, 8), attention_mask=mask)}
    label = torch.tensor([0, 1, 2, 3, 4, 0])
    batch = (
        {"label": label}
        if mode == "gqa"
        else {"answer_scores": nn.functional.one_hot(label, 5).float() * 0.9}
    )
    loss_falls(AnswerPrediction(8, 5, mode=mode, pooling="first"), features, batch, lr=0.01)


def test_errors() -> None:
    with pytest.raises(ValueError, match="mode"):
        AnswerPrediction(4, 4, mode="okvqa")
    with pytest.raises(KeyError, match="answer_scores"):
        AnswerPrediction(4, 4)(joint(torch.zeros(1, 4)), {"label": torch.tensor([0])})


def _bce(x: float, y: float) -> float:
    """One entry of BCE-with-logits, written out: -(y log s(x) + (1 - y) log(1 - s(x)))."""
    s = 1.0 / (1.0 + math.exp(-x))
    return -(y * math.log(s) + (1.0 - y) * math.log(1.0 - s))


def test_released_loss_scales_by_hand() -> None:
    """CLIP-ViL's loss: mean BCE over B x A entries on soft scores, times the number of answers when no
    scale is given (``loss * logit.size(1)``) or times ``--loss_scale`` (500, VQA and GQA UniPT scripts);
    GQA's target is the one-hot of its single answer."""
    logits = torch.tensor([[1.5, -0.5, 0.25], [-2.0, 0.75, 3.0]])
    scores = torch.tensor([[1.0, 1 / 3, 0.0], [0.0, 2 / 3, 1.0]])
    mean = sum(_bce(float(x), float(y)) for x, y in zip(logits.flatten(), scores.flatten(), strict=True)) / 6
    features = joint(logits)
    by_answers = AnswerPrediction(3, 3, loss_scale=None)
    by_answers.head = nn.Identity()
    assert float(by_answers(features, {"answer_scores": scores})["loss"]) == pytest.approx(3 * mean, rel=1e-6)
    released = AnswerPrediction(3, 3, loss_scale=500)
    released.head = nn.Identity()
    assert float(released(features, {"answer_scores": scores})["loss"]) == pytest.approx(500 * mean, rel=1e-6)
    gqa = AnswerPrediction(3, 3, mode="gqa", loss_scale=500)
    gqa.head = nn.Identity()
    one_hot = [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    gqa_mean = sum(_bce(float(logits[i, j]), one_hot[i][j]) for i in range(2) for j in range(3)) / 6
    assert float(gqa(features, {"label": torch.tensor([0, 2])})["loss"]) == pytest.approx(500 * gqa_mean, rel=1e-6)


def test_head_init_needs_answers(tmp_path) -> None:
    with pytest.raises(ValueError, match="head_init needs the answers"):
        AnswerPrediction(4, 4, head_init={"checkpoint": str(tmp_path / "x.pth"), "answer_table": "t.json"})
    with pytest.raises(ValueError, match="3 answers for num_answers=4"):
        AnswerPrediction(4, 4, answers=["a", "b", "c"])
