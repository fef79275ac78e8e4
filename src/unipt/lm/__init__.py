"""UniPT for decoder language models: a causal side network, generation with a side cache, any precision.

    from unipt.lm import UniPTForCausalLM, load_causal_lm
    lm = load_causal_lm("smollm2-135m")                      # or any *ForCausalLM
    model = UniPTForCausalLM(lm.model, UniPTConfig(task_type="causal_lm", backbone_quantization="int8"))
    out = model(input_ids, attention_mask, labels=labels)    # out.loss, out.logits
    text = model.generate(input_ids, max_new_tokens=20)

``unipt.get_unipt_model`` returns a :class:`UniPTForCausalLM` for causal LMs automatically.
"""

from unipt.lm.backbone import CausalLMBackbone, is_causal_lm, load_causal_lm
from unipt.lm.generation import GenerationResult, generate
from unipt.lm.model import UniPTCausalLMOutput, UniPTForCausalLM
from unipt.lm.quantize import Int8Linear, apply_backbone_precision, frozen_weight_bytes

__all__ = [
    "CausalLMBackbone",
    "GenerationResult",
    "Int8Linear",
    "UniPTCausalLMOutput",
    "UniPTForCausalLM",
    "apply_backbone_precision",
    "frozen_weight_bytes",
    "generate",
    "is_causal_lm",
    "load_causal_lm",
]
