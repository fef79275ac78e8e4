"""Generation: the side cache beside the backbone's KV cache gives the same logits as recomputing
everything; greedy decoding of the untrained model is the backbone's own; EOS and padding."""

import pytest
import torch

from unipt.lm import UniPTForCausalLM

from .conftest import randomise_up_projection


@pytest.fixture
def adapted(tiny_lm):
    model = UniPTForCausalLM(tiny_lm("llama"))
    randomise_up_projection(model)
    return model


def test_cached_and_full_recompute_generation_agree(adapted, tokens):
    cached = adapted.generate(**tokens, max_new_tokens=5, eos_token_id=[], output_scores=True)
    full = adapted.generate(**tokens, max_new_tokens=5, eos_token_id=[], output_scores=True, use_cache=False)
    assert torch.equal(cached.sequences, full.sequences)
    assert len(cached.scores) == len(full.scores) == 5
    for fast, slow in zip(cached.scores, full.scores, strict=True):
        assert torch.allclose(fast, slow, atol=1e-4)


def test_sampling_is_reproducible_and_cache_independent(adapted, tokens):
    runs = [adapted.generate(**tokens, max_new_tokens=4, do_sample=True, temperature=0.8, top_k=50, top_p=0.95,
                             eos_token_id=[], generator=torch.Generator().manual_seed(5), use_cache=use_cache)
            for use_cache in (True, False, True)]
    assert torch.equal(runs[0].sequences, runs[1].sequences) and torch.equal(runs[0].sequences, runs[2].sequences)
    greedy = adapted.generate(**tokens, max_new_tokens=4, eos_token_id=[])
    assert not torch.equal(runs[0].new_tokens, greedy.new_tokens)


def test_untrained_model_decodes_exactly_like_the_backbone(tiny_lm, tokens):
    backbone = tiny_lm("qwen2")
    expected = backbone.generate(**tokens, max_new_tokens=6, do_sample=False, pad_token_id=256, eos_token_id=258)
    ours = UniPTForCausalLM(backbone).generate(**tokens, max_new_tokens=6, pad_token_id=256, eos_token_id=258)
    assert torch.equal(ours.sequences, expected[:, :ours.sequences.shape[1]])


def test_eos_stops_a_sequence_and_pads_the_rest(adapted, tokens):
    free = adapted.generate(**tokens, max_new_tokens=6, eos_token_id=[])
    eos = int(free.new_tokens[0, 1])  # what the first sequence says second
    stopped = adapted.generate(**tokens, max_new_tokens=6, eos_token_id=eos, pad_token_id=256)
    row = stopped.new_tokens[0]
    first = int((row == eos).nonzero()[0])
    assert torch.equal(row[:first + 1], free.new_tokens[0, :first + 1])
    assert torch.all(row[first + 1:] == 256)
    assert stopped.new_tokens.shape[1] <= 6
    assert torch.equal(stopped.sequences[:, :tokens["input_ids"].shape[1]], tokens["input_ids"])


def test_generation_refuses_right_padding_and_bad_settings(adapted, tokens):
    right = tokens["attention_mask"].flip(-1)
    with pytest.raises(ValueError, match="left-padded"):
        adapted.generate(tokens["input_ids"], right)
    with pytest.raises(ValueError, match="max_new_tokens"):
        adapted.generate(**tokens, max_new_tokens=0)
    with pytest.raises(ValueError, match="temperature"):
        adapted.generate(**tokens, do_sample=True, temperature=0.0)


def test_generate_keeps_the_training_mode(adapted, tokens):
    adapted.train()
    adapted.generate(**tokens, max_new_tokens=2)
    assert adapted.training and adapted.side.training
