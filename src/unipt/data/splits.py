"""Fixed, seeded train/val/test splits.

Records are first gathered into *units* (groups that must stay together, e.g. every caption of an
image, or identical texts), units are put into one seeded *stratified order* (every prefix of it has
roughly the class proportions of the whole), and the order is cut into consecutive chunks in the order
the splits are listed. Listing ``test`` first means that changing the validation size never moves a
test example. The result depends only on the records, the labels, the groups, the sizes and the seed.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np

__all__ = ["resolve_sizes", "select_split", "split_indices", "stratified_order"]


def stratified_order(labels: Sequence[Hashable] | None, n: int, seed: int) -> list[int]:
    """A seeded permutation of ``range(n)`` whose every prefix is (about) class-balanced.

    Each class is shuffled on its own; member ``r`` of a class of size ``m`` gets the key
    ``(r + u) / m`` with ``u`` uniform in [0, 1), and all members are sorted by key.
    """
    rng = np.random.default_rng(seed)
    if labels is None:
        return [int(i) for i in rng.permutation(n)]
    if len(labels) != n:
        raise ValueError(f"got {len(labels)} labels for {n} units")
    by_class: dict[Hashable, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    units: list[int] = []
    keys: list[float] = []
    for label in sorted(by_class, key=repr):
        members = by_class[label]
        perm = rng.permutation(len(members))
        jitter = rng.random(len(members))
        units.extend(members[p] for p in perm)
        keys.extend((r + jitter[r]) / len(members) for r in range(len(members)))
    order = np.argsort(np.asarray(keys), kind="stable")
    return [units[int(k)] for k in order]


def resolve_sizes(sizes: Mapping[str, float | int | None], n: int) -> dict[str, int]:
    """Turn fractions (float in [0, 1]) / counts (int) / ``None`` (= the rest) into unit counts."""
    counts: dict[str, int] = {}
    rest: str | None = None
    for name, size in sizes.items():
        if size is None:
            if rest is not None:
                raise ValueError(f"only one split may take the rest, got {rest!r} and {name!r}")
            rest = name
        elif isinstance(size, bool) or size < 0:
            raise ValueError(f"split {name!r}: size must be a fraction, a count or None, got {size!r}")
        elif isinstance(size, float):
            if size > 1.0:
                raise ValueError(f"split {name!r}: fraction {size} is above 1")
            counts[name] = int(round(size * n))
        else:
            counts[name] = int(size)
    used = sum(counts.values())
    if used > n:
        raise ValueError(f"split sizes {dict(sizes)} need {used} units, only {n} available")
    if rest is not None:
        counts[rest] = n - used
    return {name: counts[name] for name in sizes}


def split_indices(
    n: int,
    sizes: Mapping[str, float | int | None],
    *,
    seed: int = 0,
    labels: Sequence[Hashable] | None = None,
    groups: Sequence[Hashable] | None = None,
    limit: int | None = None,
) -> dict[str, list[int]]:
    """Assign record indices ``0..n-1`` to splits.

    Args:
        n: number of records.
        sizes: ordered ``{split: size}``; a float is a fraction of the units, an int a number of units,
            ``None`` takes all remaining units. Chunks are cut in this order.
        seed: the only source of randomness.
        labels: per-record class label for stratification (a unit takes its first record's label).
        groups: per-record group key; records sharing a key always land in the same split.
        limit: keep at most this many records per split (a class-balanced prefix of the split).

    Returns:
        ``{split: sorted record indices}``; the lists are pairwise disjoint.
    """
    if groups is None:
        unit_members = [[i] for i in range(n)]
    else:
        if len(groups) != n:
            raise ValueError(f"got {len(groups)} group keys for {n} records")
        index: dict[Hashable, int] = {}
        unit_members = []
        for i, key in enumerate(groups):
            if key not in index:
                index[key] = len(unit_members)
                unit_members.append([])
            unit_members[index[key]].append(i)
    unit_labels = None if labels is None else [labels[members[0]] for members in unit_members]
    order = stratified_order(unit_labels, len(unit_members), seed)
    counts = resolve_sizes(sizes, len(unit_members))
    out: dict[str, list[int]] = {}
    start = 0
    for name, count in counts.items():
        chosen: list[int] = []
        for unit in order[start : start + count]:
            chosen.extend(unit_members[unit])
        if limit is not None:
            chosen = chosen[:limit]
        out[name] = sorted(chosen)
        start += count
    return out


def select_split(
    n: int,
    split: str,
    sizes: Mapping[str, float | int | None],
    *,
    seed: int = 0,
    labels: Sequence[Hashable] | None = None,
    groups: Sequence[Hashable] | None = None,
    limit: int | None = None,
) -> list[int]:
    """Record indices of one split (see :func:`split_indices`); ``"all"`` selects every record."""
    if split == "all":
        return split_indices(n, {"all": None}, seed=seed, labels=labels, groups=groups, limit=limit)["all"]
    if split not in sizes:
        raise ValueError(f"unknown split {split!r}; expected one of {[*sizes, 'all']}")
    return split_indices(n, sizes, seed=seed, labels=labels, groups=groups, limit=limit)[split]
