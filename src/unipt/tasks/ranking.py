"""Retrieval ranking metrics: R@K, median and mean rank, in both directions.

Every item carries a label (the id of the image / video it shows); a query's positives are the
gallery items with the same label. A query's rank is the 0-based position of its *best-ranked*
positive, which is how VSE∞ scores image->text with 5 captions per image. Ties count in the
query's favour (only strictly higher scores push it down), as in VSE∞ and CLIP4Clip.
"""

from __future__ import annotations

import torch

DEFAULT_KS: tuple[int, ...] = (1, 5, 10)


def ranks_from_similarity(
    sim: torch.Tensor, query_labels: torch.Tensor, gallery_labels: torch.Tensor
) -> torch.Tensor:
    """``[Q]`` 0-based rank of each query's best positive.

    Args:
        sim: ``[Q, G]`` scores, higher = more similar.
        query_labels: ``[Q]`` item id of each query.
        gallery_labels: ``[G]`` item id of each gallery entry; every query needs >= 1 positive.
    """
    positives = query_labels.unsqueeze(1) == gallery_labels.unsqueeze(0)
    if not bool(positives.any(1).all()):
        raise ValueError("every query needs at least one positive in the gallery")
    best = sim.masked_fill(~positives, float("-inf")).amax(dim=1, keepdim=True)
    return (sim > best).sum(dim=1)


def ranks_from_embeddings(
    queries: torch.Tensor,
    gallery: torch.Tensor,
    query_labels: torch.Tensor,
    gallery_labels: torch.Tensor,
    chunk: int = 1024,
) -> torch.Tensor:
    """:func:`ranks_from_similarity` for ``sim = queries @ gallery.T``, built ``chunk`` rows at a time.

    Chunking keeps memory at ``chunk x G`` (a 5K-image x 25K-caption matrix would be 500 MB).

    Args:
        queries: ``[Q, D]``; gallery: ``[G, D]``; labels ``[Q]`` and ``[G]``.
    """
    parts = [
        ranks_from_similarity(
            queries[i : i + chunk] @ gallery.t(), query_labels[i : i + chunk], gallery_labels
        )
        for i in range(0, queries.shape[0], chunk)
    ]
    return torch.cat(parts)


def rank_summary(ranks: torch.Tensor, prefix: str, ks: tuple[int, ...] = DEFAULT_KS) -> dict[str, float]:
    """R@K in percent, median rank and mean rank (both 1-based) of 0-based ``ranks`` ``[Q]``.

    Keys: ``{prefix}_r{k}`` for each k, ``{prefix}_medr``, ``{prefix}_meanr``. The median rank is
    ``floor(median) + 1`` with numpy's median (average of the middle two), as VSE∞ reports it.
    """
    r = ranks.double()
    out = {f"{prefix}_r{k}": 100.0 * float((r < k).double().mean()) for k in ks}
    out[f"{prefix}_medr"] = float(torch.floor(torch.quantile(r, 0.5))) + 1.0
    out[f"{prefix}_meanr"] = float(r.mean()) + 1.0
    return out


def first_occurrence(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each distinct id first appears, and which distinct id each row has.

    Returns ``(first_row [U], inverse [M])`` for ``labels`` ``[M]`` with U distinct ids (in sorted
    order): ``x[first_row]`` keeps one row per item, e.g. one image embedding when an eval loader
    yields the image once per caption, and ``inverse`` maps every row to its item's position.
    """
    unique, inverse = torch.unique(labels, return_inverse=True)
    rows = torch.arange(labels.shape[0], device=labels.device)
    first = torch.full((unique.shape[0],), labels.shape[0], dtype=torch.long, device=labels.device)
    first = first.scatter_reduce(0, inverse, rows, reduce="amin")
    return first, inverse


def bidirectional_retrieval_metrics(
    visual: torch.Tensor,
    text: torch.Tensor,
    text_to_visual: torch.Tensor | None = None,
    visual_name: str = "i",
    text_name: str = "t",
    ks: tuple[int, ...] = DEFAULT_KS,
    chunk: int = 1024,
) -> dict[str, float]:
    """Visual->text and text->visual metrics plus ``rsum`` (sum of all R@K).

    Args:
        visual: ``[N, D]`` one embedding per visual item (deduplicated).
        text: ``[M, D]`` one embedding per caption.
        text_to_visual: ``[M]`` row of ``visual`` each caption belongs to; ``None`` means caption
            j belongs to item j (requires ``M == N``).
        visual_name / text_name: key prefixes, giving e.g. ``i2t_r1`` and ``t2i_r1``.
    """
    n_visual = visual.shape[0]
    visual_ids = torch.arange(n_visual, device=visual.device)
    if text_to_visual is None:
        if text.shape[0] != n_visual:
            raise ValueError(
                f"without text_to_visual need as many captions as items: {text.shape[0]} vs {n_visual}"
            )
        text_to_visual = visual_ids
    text_to_visual = text_to_visual.to(visual.device)
    v2t = ranks_from_embeddings(visual, text, visual_ids, text_to_visual, chunk)
    t2v = ranks_from_embeddings(text, visual, text_to_visual, visual_ids, chunk)
    prefixes = (f"{visual_name}2{text_name}", f"{text_name}2{visual_name}")
    out = {**rank_summary(v2t, prefixes[0], ks), **rank_summary(t2v, prefixes[1], ks)}
    out["rsum"] = sum(out[f"{p}_r{k}"] for p in prefixes for k in ks)
    return out


def retrieval_metrics_from_samples(
    visual: torch.Tensor,
    text: torch.Tensor,
    visual_index: torch.Tensor | None,
    visual_name: str = "i",
    text_name: str = "t",
    ks: tuple[int, ...] = DEFAULT_KS,
) -> dict[str, float]:
    """Metrics from per-sample (visual, caption) rows as an eval loader yields them.

    Args:
        visual: ``[M, D]`` the visual embedding of each row (repeated for every caption of an item).
        text: ``[M, D]`` the caption embedding of each row.
        visual_index: ``[M]`` item id of each row; ``None`` means every row is its own item.
    """
    if visual_index is None:
        return bidirectional_retrieval_metrics(visual, text, None, visual_name, text_name, ks)
    first, caption_to_item = first_occurrence(torch.as_tensor(visual_index, device=visual.device))
    return bidirectional_retrieval_metrics(visual[first], text, caption_to_item, visual_name, text_name, ks)


def fold_averaged_metrics(
    visual: torch.Tensor,
    text: torch.Tensor,
    visual_index: torch.Tensor,
    folds: int,
    visual_name: str = "i",
    text_name: str = "t",
    ks: tuple[int, ...] = DEFAULT_KS,
) -> dict[str, float]:
    """COCO's "5-fold 1K" protocol: split the items (in id order) into ``folds`` equal consecutive folds,
    score each fold's items against their own captions, and average every metric over the folds.

    Args as :func:`retrieval_metrics_from_samples`; keys get the prefix ``"{folds}fold_"``.
    """
    index = torch.as_tensor(visual_index, device=visual.device)
    items = torch.unique(index)
    if items.numel() % folds:
        raise ValueError(f"{items.numel()} items do not split into {folds} equal folds (COCO 5K test: 5 x 1,000)")
    size = items.numel() // folds
    runs = []
    for f in range(folds):
        rows = torch.isin(index, items[f * size:(f + 1) * size])
        runs.append(retrieval_metrics_from_samples(visual[rows], text[rows], index[rows], visual_name, text_name, ks))
    return {f"{folds}fold_{k}": sum(r[k] for r in runs) / folds for k in runs[0]}
