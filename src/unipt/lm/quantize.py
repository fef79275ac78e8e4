"""The frozen backbone in any precision: cast, int8 weight-only, torch.ao dynamic int8, bitsandbytes.

A side network never back-propagates through the backbone, so its weights can be stored in whatever
form is cheapest to *run forward*: no gradient ever flows through a quantised weight. Only the
decoder blocks' Linear layers are quantised; embeddings, norms and the LM head keep the backbone's
float dtype (the head must pass gradients to the side output, and it is usually tied to the
embedding table).

Modes (``UniPTConfig.backbone_quantization``):
    * ``int8``: :class:`Int8Linear`, symmetric per-output-channel int8 weights, de-quantised to the
      input's dtype inside ``forward`` (one layer at a time). Portable (CPU, CUDA), 4x smaller than fp32.
    * ``int8-dynamic``: ``torch.ao`` dynamic quantisation (int8 GEMMs on CPU, activations quantised
      per batch; CPU only; the API is deprecated in recent torch but still shipped).
    * ``bnb-8bit`` / ``bnb-4bit``: bitsandbytes ``Linear8bitLt`` / ``Linear4bit`` (NF4, bf16 compute) on
      CUDA (optional extra ``unipt[gpu]``); the whole backbone moves to the current CUDA device.
      ``tests/lm/test_bitsandbytes.py`` runs only on a CUDA machine.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class Int8Linear(nn.Module):
    """``y = x W^T + b`` with ``W`` stored as int8 ``[out, in]`` times a per-row scale ``[out]``.

    The scale is ``max |W_row| / 127``, so the largest weight of each row is exact and every other one
    is off by at most half a step. Gradients flow to ``x`` (never to the frozen weight).
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        w = weight.detach()
        low, high = torch.aminmax(w, dim=1)
        scale = (torch.maximum(-low, high).float() / 127.0).clamp(min=1e-12)
        q = w.to(torch.float32, copy=True).div_(scale[:, None]).round_().clamp_(-127, 127)  # one copy per layer
        self.register_buffer("weight_int8", q.to(torch.int8))
        self.register_buffer("weight_scale", scale)  # float32: a bf16 scale would add 0.4 % error per row
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        self.in_features, self.out_features = weight.shape[1], weight.shape[0]

    @classmethod
    def from_module(cls, module: nn.Module) -> Int8Linear:
        """From ``nn.Linear`` or transformers' ``Conv1D`` (GPT-2; weight stored ``[in, out]``)."""
        if isinstance(module, nn.Linear):
            return cls(module.weight, module.bias)
        return cls(module.weight.t(), module.bias)

    def dequantized(self, dtype: torch.dtype) -> torch.Tensor:
        return (self.weight_int8.float() * self.weight_scale[:, None]).to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return nn.functional.linear(x, self.dequantized(x.dtype), bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 weight-only"


def apply_backbone_precision(backbone: nn.Module, dtype: str | None, quantization: str) -> None:
    """Cast ``backbone`` to ``dtype`` and quantise its decoder blocks' Linear layers, in place."""
    if dtype is not None:
        if dtype not in DTYPES:
            raise ValueError(f"backbone_dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        backbone.to(DTYPES[dtype])
    if quantization in (None, "none"):
        return
    targets = _block_linears(backbone)
    if quantization == "int8":
        for parent, name, module in targets:
            setattr(parent, name, Int8Linear.from_module(module))
    elif quantization == "int8-dynamic":
        _dynamic_int8(backbone, targets)
    elif quantization in ("bnb-8bit", "bnb-4bit"):
        _bitsandbytes(backbone, targets, bits=8 if quantization == "bnb-8bit" else 4)
    else:
        raise ValueError(
            f"unknown backbone_quantization {quantization!r}; use none, int8, int8-dynamic, bnb-8bit or bnb-4bit"
        )


def _block_linears(backbone: nn.Module) -> list[tuple[nn.Module, str, nn.Module]]:
    """(parent, attribute, module) of every Linear / Conv1D except the LM head and the embeddings."""
    from transformers.pytorch_utils import Conv1D

    head = backbone.get_output_embeddings() if hasattr(backbone, "get_output_embeddings") else None
    found = []
    for parent in backbone.modules():
        for name, child in parent.named_children():
            if child is not head and isinstance(child, (nn.Linear, Conv1D)):
                found.append((parent, name, child))
    if not found:
        raise ValueError(f"{type(backbone).__name__} has no Linear layers to quantise")
    return found


def _dynamic_int8(backbone: nn.Module, targets: list[tuple[nn.Module, str, nn.Module]]) -> None:
    if next(backbone.parameters()).device.type != "cpu":
        raise ValueError("backbone_quantization='int8-dynamic' runs on CPU only; use 'int8' or 'bnb-8bit' on a GPU")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notice; the kernels are what we want
        try:
            from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
        except ImportError as err:
            raise ImportError("this torch no longer ships torch.ao dynamic quantisation; use 'int8'") from err
        for parent, name, module in targets:
            weight = module.weight if isinstance(module, nn.Linear) else module.weight.t()
            linear = nn.Linear(weight.shape[1], weight.shape[0], bias=module.bias is not None)
            linear.weight.data = weight.detach().float().contiguous()
            if module.bias is not None:
                linear.bias.data = module.bias.detach().float()
            linear.qconfig = torch.ao.quantization.default_dynamic_qconfig
            setattr(parent, name, _FloatBoundary(DynamicLinear.from_float(linear)))


class _FloatBoundary(nn.Module):
    """Runs a dynamic int8 Linear in float32 and returns the input's dtype (for bf16 backbones)."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.float()).to(x.dtype)


def _bitsandbytes(backbone: nn.Module, targets: list[tuple[nn.Module, str, nn.Module]], bits: int) -> None:
    try:
        import bitsandbytes as bnb
    except ImportError as err:
        raise ImportError(
            f"backbone_quantization='bnb-{bits}bit' needs bitsandbytes: pip install 'unipt[gpu]'"
        ) from err
    if not torch.cuda.is_available():
        raise ValueError(f"bnb-{bits}bit quantisation needs a CUDA GPU; on CPU use 'int8' or 'int8-dynamic'")
    device = torch.device("cuda", torch.cuda.current_device())
    for parent, name, module in targets:
        weight = (module.weight if isinstance(module, nn.Linear) else module.weight.t()).detach()
        has_bias = module.bias is not None
        if bits == 8:
            layer = bnb.nn.Linear8bitLt(weight.shape[1], weight.shape[0], bias=has_bias, has_fp16_weights=False)
            layer.weight = bnb.nn.Int8Params(weight.to(torch.float16).cpu(), requires_grad=False,
                                             has_fp16_weights=False)
        else:
            layer = bnb.nn.Linear4bit(weight.shape[1], weight.shape[0], bias=has_bias, quant_type="nf4",
                                      compute_dtype=torch.bfloat16)
            layer.weight = bnb.nn.Params4bit(weight.to(torch.float16).cpu(), requires_grad=False, quant_type="nf4")
        if has_bias:
            layer.bias = nn.Parameter(module.bias.detach().to(torch.float16).cpu(), requires_grad=False)
        setattr(parent, name, layer.to(device))  # bitsandbytes quantises when the weight moves to CUDA
    # The rest (embeddings, norms, head) joins them: a bitsandbytes backbone only runs on its GPU.
    backbone.to(device)


def frozen_weight_bytes(module: nn.Module) -> int:
    """Bytes of every parameter, buffer and packed int8 weight of ``module``, each storage counted once."""
    seen: dict[tuple[str, int], int] = {}

    def add(t: object) -> None:
        if isinstance(t, torch.Tensor):
            if t.is_quantized:
                seen[("q", id(t))] = t.numel() * t.element_size()
            else:
                seen.setdefault((str(t.device), t.data_ptr()), t.numel() * t.element_size())
        elif isinstance(t, (tuple, list)):
            for item in t:
                add(item)

    for tensor in module.state_dict(keep_vars=True).values():
        add(tensor)
    return sum(seen.values())
