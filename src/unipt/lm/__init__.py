"""UniPT for decoder language models: a causal side network, generation with a side cache, any precision.

    from unipt.lm import UniPTForCausalLM, load_causal_lm
    lm = load_causal_lm("smollm2-135m")                      # or any *ForCausalLM
    model = UniPTForCausalLM(lm.model, UniPTConfig(task_type="causal_lm", backbone_quantization="int8"))
    out = model(input_ids, attention_mask, labels=labels)    # out.loss, out.logits
    result = model.generate(input_ids, max_new_tokens=20)    # result.sequences, result.new_tokens

``unipt.get_unipt_model`` returns a :class:`UniPTForCausalLM` for causal LMs automatically. Names are
imported on first use, so ``unipt`` commands that never touch a language model stay fast to start.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CausalLMBackbone": "unipt.lm.backbone",
    "is_causal_lm": "unipt.lm.backbone",
    "load_causal_lm": "unipt.lm.backbone",
    "GenerationResult": "unipt.lm.generation",
    "generate": "unipt.lm.generation",
    "UniPTCausalLMOutput": "unipt.lm.model",
    "UniPTForCausalLM": "unipt.lm.model",
    "build_causal_method": "unipt.lm.methods",
    "Int8Linear": "unipt.lm.quantize",
    "apply_backbone_precision": "unipt.lm.quantize",
    "frozen_weight_bytes": "unipt.lm.quantize",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'unipt.lm' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
