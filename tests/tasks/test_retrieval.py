import pytest
import torch

from unipt.outputs import AdaptedOutput
from unipt.tasks import build_task
from unipt.tasks.retrieval import ImageTextRetrieval, random_token_drop


def streams(batch: int = 6, image_dim: int = 8, text_dim: int = 6) -> dict[str, AdaptedOutput]:
    text_mask = torch.ones(batch, 5, dtype=torch.long)
    text_mask[::2, 3:] = 0  # every other caption is 3 tokens long
    return {
        "image": AdaptedOutput(torch.randn(batch, 4, image_dim)),
        "text": AdaptedOutput(torch.randn(batch, 5, text_dim), attention_mask=text_mask),
    }


def test_gpo_head_has_two_poolers_and_projects_only_the_odd_tower() -> None:
    task = ImageTextRetrieval(image_dim=8, text_dim=6)
    assert task.embed_dim == 8
    assert set(task.projections) == {"text"}
    assert sum(p.numel() for p in task.poolers.parameters()) == 2 * 12_704
    assert set(ImageTextRetrieval(image_dim=8, text_dim=8, project=True).projections) == {"image", "text"}
    assert len(ImageTextRetrieval().projections) == 0


def test_forward_shapes_and_unit_norm() -> None:
    task = ImageTextRetrieval(image_dim=8, text_dim=6, embed_dim=10)
    out = task(streams(), {})
    assert out["sim"].shape == (6, 6)
    assert out["image_emb"].shape == out["text_emb"].shape == (6, 10)
    torch.testing.assert_close(out["text_emb"].norm(dim=-1), torch.ones(6))
    assert out["loss"].dim() == 0


def test_padded_text_tokens_do_not_change_embeddings() -> None:
    task = ImageTextRetrieval(image_dim=8, text_dim=6).eval()
    features = streams()
    before = task.predict(features, {})["text_emb"]
    text = features["text"]
    noisy = text.last_hidden_state.masked_fill(~text.attention_mask.bool().unsqueeze(-1), 50.0)
    features["text"] = AdaptedOutput(noisy, attention_mask=text.attention_mask)
    torch.testing.assert_close(task.predict(features, {})["text_emb"], before)


@pytest.mark.parametrize(
    "options",
    [
        {"loss": "triplet"},
        {"loss": "triplet", "max_violation": True, "hard_negatives_from_epoch": None},
        {"loss": "infonce", "learn_temperature": True},
        {"loss": "infonce", "pooling": "mean", "image_token_drop": 0.2},
    ],
)
def test_loss_falls(loss_falls, options: dict) -> None:
    task = ImageTextRetrieval(image_dim=8, text_dim=6, embed_dim=16, **options)
    loss_falls(task, streams(), {"image_index": torch.tensor([0, 0, 1, 2, 3, 4])})


def test_epoch_hook_switches_to_hardest_negatives() -> None:
    task = build_task("retrieval")
    task.on_epoch_start(0)
    assert task.max_violation is False
    task.on_epoch_start(1)
    assert task.max_violation is True
    fixed = build_task("retrieval", max_violation=True, hard_negatives_from_epoch=None)
    fixed.on_epoch_start(0)
    assert fixed.max_violation is True


def test_token_drop_keeps_at_least_one_real_token() -> None:
    mask = torch.tensor([[1, 0, 0], [1, 1, 1]], dtype=torch.bool)
    dropped = random_token_drop(mask, 0.99)
    assert bool(dropped.any(1).all()) and not bool((dropped & ~mask).any())


def test_predict_and_metrics_with_five_captions_per_image() -> None:
    task = ImageTextRetrieval(pooling="pooled").eval()
    n_images, k = 4, 5
    image = torch.nn.functional.one_hot(torch.arange(n_images), 8).float()
    image_rows = image.repeat_interleave(k, 0)  # the loader repeats each image for its captions
    text = image_rows + 0.1 * torch.randn(n_images * k, 8)  # captions near their image
    batch = {"image_index": torch.arange(n_images).repeat_interleave(k) + 100}
    gathered = task.predict(
        {
            "image": AdaptedOutput(image_rows[:, None], pooled=image_rows),
            "text": AdaptedOutput(text[:, None], pooled=text),
        },
        batch,
    )
    assert set(gathered) == {"image_emb", "text_emb", "image_index"}
    scores = task.metrics(gathered)
    assert scores["i2t_r1"] == scores["t2i_r1"] == 100.0
    assert scores["rsum"] == 600.0
    assert scores["i2t_medr"] == 1.0


def test_option_errors() -> None:
    with pytest.raises(ValueError, match="loss"):
        ImageTextRetrieval(loss="cosine")
    with pytest.raises(ValueError, match="pooling"):
        ImageTextRetrieval(pooling="max")
    with pytest.raises(ValueError, match="width"):
        ImageTextRetrieval(image_dim=4, project=True)
