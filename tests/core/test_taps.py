"""Taps on any backbone: Hugging Face hidden states, CNN stages, names / globs / regexes."""

import pytest
import torch

import unipt
from unipt.taps import TapNotFoundError, find_cnn_stages, resolve_module_names


def test_bert_hidden_states_are_all_tapped(tiny_bert, tiny_batch):
    model = unipt.get_unipt_model(tiny_bert)
    assert model.resolved.tap_source == "hidden_states"
    assert model.resolved.in_widths == [32] * 4  # embeddings + 3 layers
    out = model(**tiny_batch)
    assert out.last_hidden_state.shape == (3, 9, 32)
    assert torch.equal(out.attention_mask, tiny_batch["attention_mask"])


def test_padding_without_mask_is_refused(tiny_bert, tiny_batch):
    model = unipt.get_unipt_model(tiny_bert)
    with pytest.raises(ValueError, match="attention_mask"):
        model(input_ids=tiny_batch["input_ids"])


def test_padded_tokens_do_not_change_real_token_outputs(tiny_bert, tiny_batch):
    model = unipt.get_unipt_model(tiny_bert).eval()
    ids, mask = tiny_batch["input_ids"][2:], tiny_batch["attention_mask"][2:]
    padded = model(input_ids=ids, attention_mask=mask)
    short = model(input_ids=ids[:, :4], attention_mask=mask[:, :4])
    assert torch.allclose(padded.last_hidden_state[:, :4], short.last_hidden_state, atol=1e-5)
    assert torch.allclose(padded.pooled, short.pooled, atol=1e-5)


def test_module_names_globs_and_regexes(tiny_bert, tiny_batch):
    assert resolve_module_names(tiny_bert, ["encoder.layer.*"]) == [f"encoder.layer.{i}" for i in range(3)]
    assert resolve_module_names(tiny_bert, ["re:layer\\.[02]$"]) == ["encoder.layer.0", "encoder.layer.2"]
    model = unipt.get_unipt_model(tiny_bert, unipt.UniPTConfig(taps=["embeddings", "encoder.layer.*"]))
    assert model.resolved.tap_source == "modules" and len(model.resolved.in_widths) == 4
    assert model(**tiny_batch).last_hidden_state.shape == (3, 9, 32)


def test_unknown_layer_lists_close_matches(tiny_bert):
    with pytest.raises(TapNotFoundError, match="encoder.layer.1"):
        resolve_module_names(tiny_bert, ["encoder.layers.1"])


def test_vit_and_clip_towers_random_init():
    from transformers import (
        CLIPTextConfig,
        CLIPTextModelWithProjection,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
        ViTConfig,
        ViTModel,
    )

    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    vit = ViTModel(ViTConfig(**small, image_size=32, patch_size=8))
    assert unipt.get_unipt_model(vit)(pixel_values=torch.randn(2, 3, 32, 32)).last_hidden_state.shape == (2, 17, 32)
    vision = CLIPVisionModelWithProjection(CLIPVisionConfig(**small, image_size=32, patch_size=8, projection_dim=24))
    model = unipt.get_unipt_model(vision, unipt.UniPTConfig(preset="clip4clip"))
    assert model.resolved.final_width == 24 and model.resolved.in_widths == [32] * 3
    assert model(pixel_values=torch.randn(2, 3, 32, 32)).pooled.shape == (2, 24)
    text = CLIPTextModelWithProjection(CLIPTextConfig(**small, projection_dim=24, vocab_size=100,
                                                      bos_token_id=1, eos_token_id=2, pad_token_id=0))
    model = unipt.get_unipt_model(text, unipt.UniPTConfig(preset="clip4clip", class_token="last_valid"))
    ids = torch.tensor([[1, 5, 6, 2, 0], [1, 7, 2, 0, 0]])
    assert model(input_ids=ids, attention_mask=(ids != 0).long()).pooled.shape == (2, 24)


def test_hf_resnet_stages_are_spatial():
    from transformers import ResNetConfig, ResNetModel

    resnet = ResNetModel(ResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1]))
    model = unipt.get_unipt_model(resnet, unipt.UniPTConfig(preset="vse_cnn", out_width=48))
    assert model.resolved.input_kind == "spatial" and model.resolved.in_widths == [8, 16, 32, 64]
    assert model(pixel_values=torch.randn(2, 3, 64, 64)).last_hidden_state.shape == (2, 4, 48)


def test_efficientnet_stages_any_input_size(efficientnet):
    stages = find_cnn_stages(efficientnet, {"pixel_values": torch.zeros(1, 3, 224, 224)})
    assert stages == ["_blocks.2", "_blocks.4", "_blocks.10", "_swish"]
    model = unipt.get_unipt_model(efficientnet)
    assert model.resolved.in_widths == [24, 40, 112, 1280]
    assert model(torch.randn(1, 3, 224, 224)).last_hidden_state.shape == (1, 49, 1280)
    assert model(torch.randn(1, 3, 200, 260)).last_hidden_state.shape[0] == 1  # grid from the stage shapes


def test_packaged_minilm_wraps(minilm):
    backbone, tokenizer = minilm
    model = unipt.get_unipt_model(backbone)
    assert model.resolved.in_widths == [384] * 7
    enc = tokenizer(["a small cat", "a red bus on a very long road"], padding=True, return_tensors="pt")
    out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
    assert out.pooled.shape == (2, 384)


def test_encoder_decoder_cross_stream():
    from transformers import T5Config, T5Model

    t5 = T5Model(T5Config(d_model=32, d_ff=64, num_layers=2, num_heads=2, d_kv=16, vocab_size=100))
    model = unipt.get_unipt_model(t5, unipt.UniPTConfig(preset="mdetr", target_layers=[0, 1]))
    ids = torch.randint(1, 99, (2, 6))
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), decoder_input_ids=ids[:, :3])
    assert out.last_hidden_state.shape == (2, 3, 32) and out.aux_hidden_states.shape == (2, 2, 3, 32)


def test_preset_for_the_wrong_kind_of_backbone_is_refused(tiny_bert):
    with pytest.raises(ValueError, match="expects spatial"):
        unipt.get_unipt_model(tiny_bert, unipt.UniPTConfig(preset="vse_cnn"))
    with pytest.raises(ValueError, match="does not match the backbone"):
        unipt.get_unipt_model(tiny_bert, unipt.UniPTConfig.for_paper("vse_text"))
