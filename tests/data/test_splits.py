"""Seeded, stratified, grouped splits."""

from __future__ import annotations

from collections import Counter

import pytest

from unipt.data.splits import resolve_sizes, select_split, split_indices, stratified_order


def test_resolve_sizes_fractions_counts_rest() -> None:
    assert resolve_sizes({"test": 0.25, "val": 3, "train": None}, 20) == {"test": 5, "val": 3, "train": 12}
    with pytest.raises(ValueError, match="need"):
        resolve_sizes({"test": 15, "val": 10}, 20)
    with pytest.raises(ValueError, match="only one split"):
        resolve_sizes({"a": None, "b": None}, 20)


def test_split_is_deterministic_disjoint_and_complete() -> None:
    labels = [i % 3 for i in range(90)]
    a = split_indices(90, {"test": 0.2, "val": 0.1, "train": None}, seed=7, labels=labels)
    b = split_indices(90, {"test": 0.2, "val": 0.1, "train": None}, seed=7, labels=labels)
    c = split_indices(90, {"test": 0.2, "val": 0.1, "train": None}, seed=8, labels=labels)
    assert a == b
    assert a != c
    assert sorted(a["test"] + a["val"] + a["train"]) == list(range(90))
    assert [len(a[k]) for k in ("test", "val", "train")] == [18, 9, 63]
    assert Counter(labels[i] for i in a["test"]) == {0: 6, 1: 6, 2: 6}  # stratified
    assert Counter(labels[i] for i in a["val"]) == {0: 3, 1: 3, 2: 3}


def test_changing_val_size_keeps_test_fixed() -> None:
    labels = [i % 2 for i in range(50)]
    a = split_indices(50, {"test": 10, "val": 5, "train": None}, seed=0, labels=labels)
    b = split_indices(50, {"test": 10, "val": 12, "train": None}, seed=0, labels=labels)
    assert a["test"] == b["test"]


def test_groups_stay_together_and_limit() -> None:
    groups = [i // 4 for i in range(40)]  # 10 groups of 4
    out = split_indices(40, {"test": 0.3, "train": None}, seed=1, groups=groups)
    test_groups = {groups[i] for i in out["test"]}
    train_groups = {groups[i] for i in out["train"]}
    assert not test_groups & train_groups
    assert len(out["test"]) == 12 and len(test_groups) == 3
    limited = split_indices(40, {"test": 0.3, "train": None}, seed=1, groups=groups, limit=5)
    assert len(limited["train"]) == 5 and set(limited["train"]) <= set(out["train"])


def test_stratified_order_prefixes_are_balanced() -> None:
    labels = ["a"] * 50 + ["b"] * 50
    order = stratified_order(labels, 100, seed=3)
    assert sorted(order) == list(range(100))
    assert abs(sum(1 for i in order[:20] if labels[i] == "a") - 10) <= 1


def test_select_split_all_and_unknown() -> None:
    assert select_split(5, "all", {"train": None}, seed=0) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        select_split(5, "dev", {"train": None, "test": 1})
