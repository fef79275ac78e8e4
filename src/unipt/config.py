"""UniPTConfig: one typed dataclass whose fields express every difference between the paper's variants.

Fields left as ``None`` are filled first from the named preset, then from the ``auto`` defaults, so
``UniPTConfig(preset="clipvil", reduction=4)`` means "CLIP-ViL's variant, but a narrower side network".
A config is what the user asks for and is never changed by unipt: what a backbone determines (module
names a glob matches, widths, the input kind) is resolved into a separate
:class:`~unipt.taps.ResolvedTaps`, so one config can be reused on several backbones. Widths
(``in_widths``, ``final_width``, ``decoder_widths``) are normally discovered from the backbone; give
them to build a side network standalone (see :meth:`UniPTConfig.for_paper`), or to insist on them.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from typing import Any, Literal

InputKind = Literal["sequence", "spatial", "single_query", "cross_stream"]
TaskType = Literal["features", "causal_lm"]

# Each preset is data: the field values that reproduce one code variant of the paper.
PRESETS: dict[str, dict[str, Any]] = {
    # Default for any backbone: canonical Transformer form, side width = backbone width / 2.
    "auto": dict(
        width_base="input", reduction=2.0, down_proj="linear_norm", fusion="linear_norm",
        up_proj="relu_linear", output_mode="replace", skip="identity", eps=1e-6, eps_mode="add",
        init="default",
    ),
    # VSE-infinity text tower (BERT-base): d = 1024 / 2, U = ReLU -> Linear(512 -> 1024).
    "vse_text": dict(
        input_kind="sequence", width_base="output", reduction=2.0, down_proj="linear_norm",
        fusion="linear_norm", up_proj="relu_linear", output_mode="replace", skip="identity",
        eps=1e-8, eps_mode="add", init="default",
    ),
    # VSE-infinity image tower (ResNeXt stages): guided window pooling, conv1x1 + BN projections.
    "vse_cnn": dict(
        input_kind="spatial", width_base="output", reduction=2.0, down_proj="linear_norm", norm="batch",
        fusion="linear_norm", up_proj="relu_linear", output_mode="replace", skip="identity",
        eps=1e-8, eps_mode="add", init="default",
    ),
    # CLIP4Clip: one query (projected CLIP embedding), class-token skip, output added to the embedding.
    "clip4clip": dict(
        input_kind="single_query", width_base="output", reduction=1.0, down_proj="relu_linear",
        fusion="none", guide_residual=False, up_proj="relu_linear", output_mode="residual",
        skip="class_token", eps=1e-6, eps_mode="clamp", init="default",
    ),
    # CLIP-ViL: d = 768 / r, MLP fusion, plain Linear up-projection that replaces the encoder output.
    "clipvil": dict(
        input_kind="sequence", width_base="input", reduction=2.0, down_proj="linear_norm",
        fusion="mlp_norm", up_proj="linear", output_mode="replace", skip="identity",
        eps=1e-6, eps_mode="add", init="bert",
    ),
    # MDETR: encoder + decoder taps [1, 3, 5], decoder taps first attend to the side encoder memory.
    "mdetr": dict(
        input_kind="cross_stream", width_base="input", reduction=2.0, down_proj="linear_norm",
        fusion="mlp_norm", up_proj="relu_linear_norm", output_mode="replace", skip="identity",
        eps=1e-7, eps_mode="add", init="xavier", target_layers=[1, 3, 5],
    ),
}

# The widths the paper's backbones tap, so each preset can be built standalone and its parameter
# count checked against the reference implementation.
PAPER_WIDTHS: dict[str, dict[str, Any]] = {
    "vse_text": dict(in_widths=[768] * 13, out_width=1024),
    "vse_cnn": dict(in_widths=[256, 512, 1024, 2048], out_width=1024),
    "clip4clip": dict(in_widths=[768] * 13, final_width=512),  # image tower; text tower: [512] * 13
    "clipvil": dict(in_widths=[768] * 13),
    "mdetr": dict(in_widths=[256] * 7, decoder_widths=[256] * 7),
}


def list_presets() -> list[str]:
    """Names of the built-in presets."""
    return sorted(PRESETS)


@dataclass
class UniPTConfig:
    """Everything that defines a UniPT side network and how it reads the backbone.

    Method fields (``None`` = take it from the preset):
        input_kind: ``sequence`` (token states ``[B, L, D]``), ``spatial`` (CNN maps ``[B, C, H, W]``),
            ``single_query`` (one-token guide from the frozen final embedding), ``cross_stream``
            (encoder + decoder taps, MDETR).
        width_base / reduction / side_width: side width ``d`` = ``side_width`` if given, else the
            backbone (``input``: guide width) or output (``output``: ``out_width``) width / ``reduction``.
        out_width: width of the output (default: the guide's width, so the output can replace it).
        target_layers: indices of the taps that the guide re-weights (default: every tap but the
            guide; all taps for ``single_query``).
        down_proj: ``linear_norm`` (Linear -> Norm) or ``relu_linear`` (ReLU -> Linear, no norm).
        norm: ``layer`` or ``batch`` (batch statistics over tokens, as the CNN variant's BatchNorm).
        fusion: P in ``G + P(M)``: ``linear_norm``, ``mlp_norm`` or ``none``.
        guide_residual: keep the ``G +`` term of the fusion.
        up_proj: U: ``relu_linear``, ``linear`` or ``relu_linear_norm``.
        output_mode: ``replace`` the frozen output, or ``residual`` (add to the frozen final output).
        skip: ``identity`` (each token keeps itself) or ``class_token`` (add the layer's class token).
        class_token: where the class token sits for ``class_token`` skip: ``first`` or ``last_valid``.
        eps / eps_mode: L1 row normalisation ``x / (sum + eps)`` (``add``) or ``x / max(sum, eps)``.
        init: ``default`` (PyTorch), ``bert`` (N(0, 0.02)) or ``xavier``.
        interaction / aggregation / guided_pooling: ablation switches of the paper's modules.
        zero_init_up: start U's last Linear at zero. With ``output_mode="residual"`` the model then starts
            exactly at the frozen backbone's output (not in the paper's code, which never zero-inits;
            useful on small data, like LoRA's zero-initialised B).

    Execution fields (how the same function is computed; outputs do not change):
        kernel: ``fused`` (default): interaction + aggregation in one autograd function that streams
            over layers and query blocks and recomputes the ``[B, L, L]`` maps in backward, so saved
            memory is linear in sequence length; ``reference``: the plain modules, the readable
            statement of the method (and the test oracle).
        memory: ``default``, or ``min``: keep each tap in half precision for the down-projection's
            weight gradient and recompute the down-projections in backward (gradients within bf16
            rounding of the default; forward outputs unchanged). Needs ``kernel="fused"``.
        query_block: query rows per block in the fused kernel (``None``: sized so one block's map
            holds about 4M elements).
        compile: wrap the side network in ``torch.compile`` (needs a working compiler toolchain).

    Backbone fields:
        taps: module names, glob patterns or ``re:`` regexes to tap; ``None`` picks them automatically.
        decoder_taps: the decoder's taps for ``cross_stream`` backbones tapped by module name.
        tap_source: ``hidden_states`` (Hugging Face ``output_hidden_states``) or ``modules`` (hooks);
            discovered from the backbone when ``None``.
        max_stages: how many CNN stages automatic tap selection keeps (deepest last).
        keep_backbone_dropout: run the frozen backbone in train mode (dropout on) as the paper's code.
        final_output: attribute of the backbone output used as the frozen final embedding.
        probe_size: image side used to probe CNN shapes when no example input is given.

    Task and precision fields:
        task_type: ``features`` (adapted features for a task head: :class:`~unipt.model.UniPTModel`) or
            ``causal_lm`` (a decoder language model whose frozen LM head reads the adapted final state:
            :class:`~unipt.lm.UniPTForCausalLM`; every part of the side network is causal). ``None``
            picks ``causal_lm`` for Hugging Face causal LMs (``*ForCausalLM``, ``GPT2LMHeadModel``...)
            and ``features`` otherwise. For ``causal_lm`` the side output is always added to the
            frozen final state (``output_mode="residual"``) and U starts at zero.
        backbone_dtype: cast the frozen backbone to ``float32``, ``bfloat16`` or ``float16``
            (``None``: leave it as loaded). Causal LMs only.
        backbone_quantization: ``none``; ``int8`` (weight-only int8 of the decoder blocks' Linear
            layers, per-output-channel scales, de-quantised on the fly: any device); ``int8-dynamic``
            (``torch.ao`` dynamic quantisation: int8 GEMMs on CPU, activations quantised per batch);
            ``bnb-8bit`` / ``bnb-4bit`` (bitsandbytes on CUDA, optional extra ``unipt[gpu]``).
            No gradient ever flows through a quantised weight. Causal LMs only.
        side_dtype: ``float32`` or ``bfloat16`` parameters for the side network (causal LMs).
    """

    preset: str = "auto"
    input_kind: InputKind | None = None
    in_widths: list[int] | None = None
    final_width: int | None = None
    decoder_widths: list[int] | None = None
    width_base: Literal["input", "output"] | None = None
    reduction: float | None = None
    side_width: int | None = None
    out_width: int | None = None
    target_layers: list[int] | None = None
    down_proj: Literal["linear_norm", "relu_linear"] | None = None
    norm: Literal["layer", "batch"] | None = None
    fusion: Literal["linear_norm", "mlp_norm", "none"] | None = None
    guide_residual: bool | None = None
    up_proj: Literal["relu_linear", "linear", "relu_linear_norm"] | None = None
    output_mode: Literal["replace", "residual"] | None = None
    skip: Literal["identity", "class_token"] | None = None
    class_token: Literal["first", "last_valid"] | None = None
    eps: float | None = None
    eps_mode: Literal["add", "clamp"] | None = None
    init: Literal["default", "bert", "xavier"] | None = None
    interaction: Literal["guided", "none"] | None = None
    aggregation: Literal["confidence", "uniform"] | None = None
    guided_pooling: bool | None = None
    zero_init_up: bool = False
    kernel: Literal["fused", "reference"] = "fused"
    memory: Literal["default", "min"] = "default"
    query_block: int | None = None
    compile: bool = False
    taps: list[str] | None = None
    decoder_taps: list[str] | None = None
    tap_source: Literal["hidden_states", "modules"] | None = None
    max_stages: int = 4
    keep_backbone_dropout: bool = False
    final_output: str | None = None
    probe_size: int = 224
    task_type: TaskType | None = None
    backbone_dtype: Literal["float32", "bfloat16", "float16"] | None = None
    backbone_quantization: Literal["none", "int8", "int8-dynamic", "bnb-8bit", "bnb-4bit"] = "none"
    side_dtype: Literal["float32", "bfloat16"] = "float32"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            close = difflib.get_close_matches(self.preset, PRESETS, n=3)
            raise ValueError(
                f"Unknown UniPT preset {self.preset!r}. Known presets: {list_presets()}"
                + (f"; did you mean {close}?" if close else "")
            )
        for name, allowed in (("task_type", (None, "features", "causal_lm")),
                              ("backbone_dtype", (None, "float32", "bfloat16", "float16")),
                              ("backbone_quantization", ("none", "int8", "int8-dynamic", "bnb-8bit", "bnb-4bit")),
                              ("side_dtype", ("float32", "bfloat16"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"UniPTConfig.{name}={getattr(self, name)!r}; use one of {list(allowed)}")
        if self.task_type == "causal_lm":
            check_causal_lm_fields(self)
        for source in (PRESETS[self.preset], _FALLBACKS):
            for key, value in source.items():
                if getattr(self, key) is None:
                    setattr(self, key, list(value) if isinstance(value, list) else value)
        if self.norm is None:
            self.norm = "batch" if self.input_kind == "spatial" else "layer"
        if self.class_token is None:
            self.class_token = "first"
        for name, allowed in (("kernel", ("fused", "reference")), ("memory", ("default", "min"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"UniPTConfig.{name}={getattr(self, name)!r}; use one of {list(allowed)}")
        if self.query_block is not None and self.query_block < 1:
            raise ValueError(f"UniPTConfig.query_block={self.query_block}; use a positive number of rows or None")
        if isinstance(self.taps, str):
            self.taps = [self.taps]
        if isinstance(self.decoder_taps, str):
            self.decoder_taps = [self.decoder_taps]
        _validate(self)

    @classmethod
    def for_paper(cls, preset: str, **overrides: Any) -> UniPTConfig:
        """The preset with the paper backbone's widths filled in (buildable with no backbone)."""
        values = {**PAPER_WIDTHS.get(preset, {}), **overrides}
        return cls(preset=preset, **values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UniPTConfig:
        """Build from plain data (JSON, a run config's tower ``options``); an unknown field is named with
        the closest real one."""
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key, known, n=1)
                hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise ValueError(f"Unknown UniPTConfig field{'s' if len(unknown) > 1 else ''} {', '.join(hints)}; "
                             f"known fields: {sorted(known)}")
        return cls(**data)


def _validate(config: UniPTConfig) -> None:
    """Refuse values that would silently misbehave later (checked when the config is made)."""
    if config.reduction is not None and not float(config.reduction) > 0:
        raise ValueError(f"UniPTConfig.reduction={config.reduction!r} must be > 0: side width = backbone width / "
                         "reduction (e.g. 2 halves it; 1 keeps the width); or set side_width=<int> directly")
    if config.side_width is not None and config.side_width < 1:
        raise ValueError(f"UniPTConfig.side_width={config.side_width!r} must be a positive integer, or None to "
                         "derive it from reduction")
    for name in ("taps", "decoder_taps"):
        value = getattr(config, name)
        if value is not None and len(value) == 0:
            raise ValueError(f"UniPTConfig.{name}=[] selects no layer; list module names or globs "
                             f"(e.g. ['encoder.layer.*']), or leave {name}=None to pick them automatically")


def check_causal_lm_fields(config: UniPTConfig) -> None:
    """Refuse settings that would break causality or the frozen-backbone start, and fill the causal
    defaults (residual output). Runs before the preset fills the remaining ``None`` fields."""
    rules = {
        "output_mode": ("replace", "the side output is added to the frozen final state (residual); "
                        "replacing it would discard the language model"),
        "norm": ("batch", "BatchNorm pools statistics over every token, so position t would see later tokens; "
                 "use norm='layer'"),
        "skip": ("class_token", "a class-token skip makes every position read one fixed token; use skip='identity'"),
    }
    for name, (bad, why) in rules.items():
        if getattr(config, name) == bad:
            raise ValueError(f"task_type='causal_lm' cannot use {name}={bad!r}: {why}")
    if config.input_kind not in (None, "sequence"):
        raise ValueError(f"task_type='causal_lm' reads token sequences; input_kind={config.input_kind!r} is not one")
    config.output_mode = "residual"
    config.input_kind = "sequence"


_FALLBACKS: dict[str, Any] = dict(
    PRESETS["auto"], input_kind=None, guide_residual=True, interaction="guided",
    aggregation="confidence", guided_pooling=True,
)
