import pytest
import torch

from unipt.tasks.ranking import (
    bidirectional_retrieval_metrics,
    first_occurrence,
    rank_summary,
    ranks_from_embeddings,
    ranks_from_similarity,
    retrieval_metrics_from_samples,
)

# 3 images (rows) x 3 captions (columns), caption j belongs to image j.
SIM = torch.tensor([[0.9, 0.1, 0.3], [0.8, 0.2, 0.7], [0.4, 0.6, 0.5]])
IDS = torch.arange(3)


def test_ranks_on_a_3x3_matrix_by_hand() -> None:
    # image0: 0.9 is the row max -> 0; image1: 0.8 and 0.7 beat 0.2 -> 2; image2: 0.6 beats 0.5 -> 1.
    assert ranks_from_similarity(SIM, IDS, IDS).tolist() == [0, 2, 1]
    # caption0: 0.9 wins -> 0; caption1: 0.6 beats 0.2 -> 1; caption2: 0.7 beats 0.5 -> 1.
    assert ranks_from_similarity(SIM.t(), IDS, IDS).tolist() == [0, 1, 1]


def test_recall_and_ranks_on_a_3x3_matrix_by_hand() -> None:
    i2t = rank_summary(torch.tensor([0, 2, 1]), "i2t", ks=(1, 2, 5))
    assert i2t["i2t_r1"] == pytest.approx(100 / 3)
    assert i2t["i2t_r2"] == pytest.approx(200 / 3)
    assert i2t["i2t_r5"] == pytest.approx(100.0)
    assert i2t["i2t_medr"] == 2.0
    assert i2t["i2t_meanr"] == pytest.approx(2.0)
    t2i = rank_summary(torch.tensor([0, 1, 1]), "t2i", ks=(1, 2))
    assert t2i["t2i_r2"] == pytest.approx(100.0)
    assert t2i["t2i_meanr"] == pytest.approx(5 / 3)


def test_median_rank_of_an_even_count_uses_numpy_median() -> None:
    # ranks 0,1,2,3 -> median 1.5 -> floor 1 -> 1-based 2
    assert rank_summary(torch.tensor([3, 0, 2, 1]), "x")["x_medr"] == 2.0


def test_best_positive_counts_with_several_captions_per_image() -> None:
    sim = torch.tensor([[0.2, 0.9, 0.5, 0.1], [0.3, 0.4, 0.8, 0.6]])  # 2 images x 4 captions
    cap2img = torch.tensor([0, 0, 1, 1])
    assert ranks_from_similarity(sim, torch.arange(2), cap2img).tolist() == [0, 0]
    assert ranks_from_similarity(sim.t(), cap2img, torch.arange(2)).tolist() == [1, 0, 0, 0]


def test_ties_count_in_the_querys_favour() -> None:
    assert ranks_from_similarity(
        torch.tensor([[0.5, 0.5, 0.1]]), torch.tensor([1]), torch.arange(3)
    ).tolist() == [0]


def test_chunked_ranks_equal_unchunked() -> None:
    q, g = torch.randn(7, 4), torch.randn(9, 4)
    ql, gl = torch.randint(0, 3, (7,)), torch.arange(9) % 3
    expected = ranks_from_similarity(q @ g.t(), ql, gl)
    assert torch.equal(ranks_from_embeddings(q, g, ql, gl, chunk=2), expected)


def test_first_occurrence() -> None:
    first, inverse = first_occurrence(torch.tensor([5, 9, 5, 2, 9]))
    assert first.tolist() == [3, 0, 1]  # ids sorted: 2, 5, 9
    assert inverse.tolist() == [1, 2, 1, 0, 2]


def test_rsum_and_per_sample_rows_are_deduplicated() -> None:
    images, captions = torch.randn(3, 8), torch.randn(6, 8)
    cap2img = torch.tensor([0, 0, 1, 1, 2, 2])
    expected = bidirectional_retrieval_metrics(images, captions, cap2img)
    assert expected["rsum"] == pytest.approx(
        sum(expected[f"{d}_r{k}"] for d in ("i2t", "t2i") for k in (1, 5, 10))
    )
    # An eval loader yields each image once per caption, ids arbitrary and rows in any order.
    perm = torch.tensor([4, 1, 5, 0, 3, 2])
    ids = torch.tensor([40, 40, 10, 10, 70, 70])
    got = retrieval_metrics_from_samples(images[cap2img][perm], captions[perm], ids[perm])
    assert got == pytest.approx(expected)


def test_query_without_positive_is_an_error() -> None:
    with pytest.raises(ValueError, match="positive"):
        ranks_from_similarity(torch.zeros(1, 2), torch.tensor([5]), torch.tensor([0, 1]))
