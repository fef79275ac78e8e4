"""UniPTModel: a frozen backbone plus a trainable parallel side network, PEFT-style.

The backbone runs under ``torch.no_grad()`` (no autograd graph, no saved activations) and stays in
eval mode unless ``keep_backbone_dropout``; only the side network has ``requires_grad``.

``model.config`` is the :class:`UniPTConfig` as given (never changed); ``model.resolved`` is what the
backbone determined (:class:`~unipt.taps.ResolvedTaps`: module names, widths, input kind).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unipt.builder import SideDims, build_side_network, side_dims
from unipt.config import UniPTConfig
from unipt.errors import MissingToolchainError
from unipt.fingerprint import fingerprint
from unipt.hub import push_to_hub
from unipt.method import FrozenTapMethod
from unipt.model_card import model_facts, write_card
from unipt.outputs import AdaptedOutput
from unipt.pretrained import (
    FORMAT_VERSION,
    backbone_fingerprint,
    check_backbone,
    incompatibilities,
    migrate_side_state,
    read_meta,
    read_side_state,
    saved_config,
    saved_sides,
    write_pretrained,
)
from unipt.taps import BackboneTapper, ResolvedTaps, Taps, cast_taps, resolve_taps

DEFAULT_SIDE = "default"


class UniPTModel(FrozenTapMethod):
    """Frozen ``backbone`` + UniPT side network(s). ``forward(**inputs) -> AdaptedOutput``.

    A model can hold several named side networks over the same taps (one per task): the backbone runs
    once per batch for all of them (:meth:`add_side`, :meth:`set_active`). With one active side the
    output is an :class:`AdaptedOutput`; with several, a dict ``{side: AdaptedOutput}``.

    Args:
        backbone: any ``nn.Module``; its parameters are frozen.
        config: what to build (never changed; reusable on other backbones).
        example_inputs: one batch of the backbone's keyword inputs to discover the tap shapes
            (default: a probe batch made from the backbone's config).
        resolved: the taps already resolved on this backbone (e.g. read from a saved model): no probe runs.
        side: the name of the first side network.
    """

    name = "unipt"

    def __init__(
        self,
        backbone: nn.Module,
        config: UniPTConfig,
        example_inputs: dict[str, torch.Tensor] | None = None,
        *,
        resolved: ResolvedTaps | None = None,
        side: str = DEFAULT_SIDE,
    ):
        check_features_precision(config)
        for p in backbone.parameters():
            p.requires_grad_(False)
        super().__init__(backbone, backbone_train_mode=config.keep_backbone_dropout)
        self.config = config
        self.resolved = resolved if resolved is not None else resolve_taps(backbone, config, example_inputs)
        self.tapper = BackboneTapper(backbone, self.resolved)
        self.sides = nn.ModuleDict()
        self.side_configs: dict[str, UniPTConfig] = {}
        self.active: list[str] = []
        self._attach(side, config)
        self.backbone_fingerprint = fingerprint(backbone)

    # ------------------------------------------------------------------------------- sides
    def add_side(self, name: str, config: UniPTConfig | None = None, *,
                 example_inputs: dict[str, torch.Tensor] | None = None, activate: bool = True) -> nn.Module:
        """Add a side network ``name`` over the same taps (``config`` defaults to the model's).

        Its config may differ in everything but what decides the taps (tap selection, input kind,
        class-token positions); ``activate`` adds it to the active sides.
        """
        config = config if config is not None else self.config
        check_features_precision(config)
        if config.keep_backbone_dropout != self.config.keep_backbone_dropout:
            raise ValueError("every side reads the same backbone run: keep_backbone_dropout must be the same")
        # The model's own config resolves to the model's taps: no probe forward needed.
        resolved = self.resolved if config == self.config else resolve_taps(self.backbone, config, example_inputs)
        if resolved != self.resolved:
            theirs, mine = resolved.to_dict(), self.resolved.to_dict()
            differ = [f"{k}={theirs[k]!r} (model: {mine[k]!r})" for k in mine if theirs[k] != mine[k]]
            raise ValueError(f"side {name!r} would read other taps than this model's: {'; '.join(differ)}. Every "
                             "side of a model reads the same backbone pass; build another model for these taps.")
        side = self._attach(name, config, activate)
        reference = next(self.sides[self.active[0] if self.active else name].parameters(), None)
        if reference is not None:
            side.to(reference.device)
        return side

    def set_active(self, names: str | Sequence[str]) -> None:
        """Run only these sides (in this order); ``model(...)`` then returns one output or a dict."""
        names = [names] if isinstance(names, str) else list(names)
        unknown = [n for n in names if n not in self.sides]
        if unknown or not names:
            raise ValueError(f"unknown side(s) {unknown}; this model has {list(self.sides)}")
        self.active = names

    @property
    def side(self) -> nn.Module:
        """The active side network (when exactly one is active)."""
        if len(self.active) != 1:
            raise ValueError(f"{len(self.active)} sides are active ({self.active}); use model.sides[name]")
        return self.sides[self.active[0]]

    def _attach(self, name: str, config: UniPTConfig, activate: bool = True) -> nn.Module:
        if not name or "." in name or "/" in name or name in self.sides:
            raise ValueError(f"side name {name!r} must be new, non-empty and without '.' or '/'; "
                             f"this model has {list(self.sides)}")
        side = build_side_network(config, self.resolved)
        if config.compile:
            require_compiler()
            side.compile()  # compiles forward in place: parameter names and checkpoints stay the same
        self.sides[name] = side
        self.side_configs[name] = config
        if activate:
            self.active.append(name)
        return side

    # ------------------------------------------------------------------------------- running
    def tap(self, **inputs: torch.Tensor) -> Taps:
        """Run only the frozen backbone (no autograd graph) and return its taps."""
        return self.tapper(inputs)

    def adapt(self, taps: Taps, consume: bool = False) -> AdaptedOutput | dict[str, AdaptedOutput]:
        """Run only the active side network(s) on taps (from :meth:`tap` or an activation cache).

        With ``consume=True`` and one active side, it drops its references to ``taps.hidden`` as it goes,
        so each tapped layer can be freed as soon as it is used; otherwise ``taps`` is left intact.
        """
        if len(self.active) == 1:
            return self._adapt(self.sides[self.active[0]], taps, consume)
        return {name: self._adapt(self.sides[name], taps, False) for name in self.active}

    def _adapt(self, side: nn.Module, taps: Taps, consume: bool) -> AdaptedOutput:
        taps = cast_taps(taps, _dtype(side))  # a half-precision backbone feeds an fp32 side network
        hidden = taps.hidden if consume else list(taps.hidden)
        if self.resolved.input_kind == "cross_stream":
            out = side(hidden, list(taps.decoder_hidden), taps.mask)
        else:
            out = side(hidden, taps.mask, taps.final, taps.class_index)
        out.head_inputs = taps.head_inputs
        return out

    @property
    def side_dtype(self) -> torch.dtype:
        """The side network computes in its own dtype (that of its parameters), whatever the backbone's."""
        return _dtype(self.sides[self.active[0]] if self.active else next(iter(self.sides.values())))

    def forward(self, *args: torch.Tensor, **inputs: torch.Tensor) -> AdaptedOutput | dict[str, AdaptedOutput]:
        if args:  # model(images) for plain CNNs, like the backbone itself
            if len(args) != 1 or inputs:
                raise TypeError("pass the backbone's inputs as keywords, or one positional image tensor")
            inputs = {"pixel_values": args[0]}
        return self.adapt(self.tap(**inputs), consume=True)

    def tap_identity(self) -> dict[str, Any]:
        """The resolved taps: an activation cache made for equal ones serves this model."""
        return self.resolved.to_dict()

    def side_dims(self, name: str | None = None) -> SideDims:
        """Guide, side and output widths of side ``name`` (default: the first active one)."""
        name = name or (self.active[0] if self.active else next(iter(self.sides)))
        return side_dims(self.side_configs[name], self.resolved)

    @property
    def dims(self) -> SideDims:
        return self.side_dims()

    @property
    def output_width(self) -> int:
        return self.dims.out_width

    # ------------------------------------------------------------------------------- parameters
    @property
    def variant(self) -> str:
        """One line for reports: which UniPT variant this is."""
        sides = f", {len(self.sides)} sides" if len(self.sides) > 1 else ""
        return (f"UniPT (preset {self.config.preset}, {self.resolved.input_kind}, "
                f"side width {self.dims.side_width}{sides})")

    def saved_state_dict(self) -> dict[str, torch.Tensor]:
        """Exactly what :meth:`save_pretrained` writes: the side networks' tensors (keys prefixed with the
        side's name when there are several)."""
        if len(self.sides) == 1:
            return {k: v.detach() for k, v in next(iter(self.sides.values())).state_dict().items()}
        return {f"{n}.{k}": v.detach() for n, side in self.sides.items() for k, v in side.state_dict().items()}

    def trained_state_dict(self) -> dict[str, torch.Tensor]:
        return {f"sides.{n}.{k}": v.detach() for n, side in self.sides.items() for k, v in side.state_dict().items()}

    def print_trainable_parameters(self) -> None:
        trainable, total = self.trainable_parameters()
        print(f"trainable params: {trainable:,} || all params: {total:,} || trainable%: {100 * trainable / total:.4f}")

    # ------------------------------------------------------------------------------- save / load
    def save_pretrained(self, directory: str | os.PathLike[str], side: str | None = None, model_card: bool = True,
                        **card: Any) -> None:
        """Write side networks (safetensors) and their config + resolved taps (JSON), each atomically, and a
        model card ``README.md`` each (``model_card=False``: none).

        ``side=None``: every side, the first in ``directory``, each other one in ``directory/<name>``.
        ``side="topic"``: that side alone in ``directory`` (loadable by itself with :meth:`from_pretrained`).
        ``card`` adds measured facts to the card: ``datasets``, ``metrics`` (``{split: {name: value}}``),
        ``peak_memory_mb``, ``step_time_ms``, ``backbone_name`` (see :func:`unipt.model_card.model_facts`).
        """
        names = [side] if side is not None else list(self.sides)
        for i, name in enumerate(names):
            if name not in self.sides:
                raise ValueError(f"unknown side {name!r}; this model has {list(self.sides)}")
            folder = Path(directory) if i == 0 else Path(directory) / name
            write_pretrained(folder, self.sides[name].state_dict(), {
                "side": name, "config": self.side_configs[name].to_dict(), "resolved": self.resolved.to_dict(),
                "backbone": backbone_fingerprint(self.backbone, self.backbone_fingerprint),
            })
            if model_card:
                write_card(folder, model_facts(self, side=self.sides[name], config=self.side_configs[name], **card))

    def push_to_hub(self, repo_id: str, *, private: bool | None = None, token: str | None = None,
                    **card: Any) -> Any:
        """``save_pretrained`` into a temporary folder (model card included), then upload it to the
        Hugging Face Hub as ``repo_id`` (needs the network and a token; see :mod:`unipt.hub`)."""
        with tempfile.TemporaryDirectory() as folder:
            self.save_pretrained(folder, **card)
            return push_to_hub(folder, repo_id, private=private, token=token)

    def load_pretrained(self, directory: str | os.PathLike[str], fix: str | None = None) -> None:
        """Load side networks saved by :meth:`save_pretrained` into this model's sides of the same names
        (same backbone and configs); ``fix`` says where a good copy of a damaged file comes from."""
        for name, folder in saved_sides(directory):
            meta = read_meta(folder)
            name = name or meta.get("side", DEFAULT_SIDE)
            if name not in self.sides:
                raise ValueError(f"{folder} holds side {name!r}; this model has {list(self.sides)}")
            check_backbone(meta, self.backbone, self.backbone_fingerprint, folder)
            differ = incompatibilities(meta, self.side_configs[name], self.resolved)
            if differ:
                raise ValueError(
                    f"{folder} was saved with another UniPT config: {'; '.join(differ)}. Load it with "
                    "UniPTModel.from_pretrained(backbone, path), which rebuilds its config."
                )
            state = read_side_state(folder, fix) if fix else read_side_state(folder)
            self.load_side_state(state, meta.get("format_version", 1), folder, side=name)

    def load_side(self, name: str, directory: str | os.PathLike[str], is_trainable: bool = False) -> nn.Module:
        """Add the side network saved in ``directory`` (by itself) as side ``name``."""
        meta = read_meta(directory)
        check_backbone(meta, self.backbone, self.backbone_fingerprint, Path(directory))
        config, _ = saved_config(meta)
        side = self.add_side(name, config)
        self.load_side_state(read_side_state(directory), meta.get("format_version", 1), directory, side=name)
        side.requires_grad_(is_trainable)
        return side

    def load_side_state(self, state: dict[str, torch.Tensor], format_version: int = FORMAT_VERSION,
                        source: str | os.PathLike[str] = "the saved state", side: str | None = None) -> None:
        """Load side-network tensors saved in ``format_version`` (older formats are converted) into
        ``side`` (default: the first side)."""
        name = side or next(iter(self.sides))
        config = self.side_configs[name]
        forms = {"down_proj": config.down_proj, "fusion": config.fusion, "up_proj": config.up_proj,
                 "input_kind": self.resolved.input_kind}
        try:
            self.sides[name].load_state_dict(migrate_side_state(state, format_version, forms))
        except RuntimeError as err:
            raise ValueError(f"{source} does not fit this side network (another config or backbone): {err}") from err

    @classmethod
    def from_pretrained(
        cls, backbone: nn.Module, directory: str | os.PathLike[str], is_trainable: bool = False
    ) -> UniPTModel:
        """Rebuild the side network(s) saved by :meth:`save_pretrained` on ``backbone``."""
        src = Path(directory)
        meta = read_meta(src)
        if meta.get("config", {}).get("task_type") == "causal_lm":
            raise ValueError(
                f"{src} holds a causal language-model side network (task_type='causal_lm'); load it with "
                "unipt.lm.UniPTForCausalLM.from_pretrained(backbone, path)"
            )
        check_backbone(meta, backbone, fingerprint(backbone), src)
        state = read_side_state(src)
        config, resolved = saved_config(meta)
        model = cls(backbone, config, resolved=resolved, side=meta.get("side", DEFAULT_SIDE))
        model.load_side_state(state, meta.get("format_version", 1), src)
        for name, folder in saved_sides(src)[1:]:
            model.load_side(name, folder)
        model.sides.requires_grad_(is_trainable)
        return model


def check_features_precision(config: UniPTConfig) -> None:
    """Backbone casting/quantisation and a bf16 side network are implemented for causal LMs only: refuse
    them here rather than ignore them."""
    precision = {"backbone_dtype": config.backbone_dtype, "backbone_quantization": config.backbone_quantization,
                 "side_dtype": config.side_dtype}
    if precision != {"backbone_dtype": None, "backbone_quantization": "none", "side_dtype": "float32"}:
        raise ValueError(
            f"{precision} are implemented for causal LMs (task_type='causal_lm', unipt.lm.UniPTForCausalLM) only; "
            "for this backbone cast or quantise it yourself before get_unipt_model, or train with bf16 autocast "
            "(train.bf16)"
        )
    if config.task_type == "causal_lm":
        raise ValueError("task_type='causal_lm' needs unipt.lm.UniPTForCausalLM (or unipt.get_unipt_model, which "
                         "picks it); UniPTModel adapts features for task heads")


def require_compiler() -> None:
    """Fail early, with the fix, where ``torch.compile`` has no backend toolchain on this machine."""
    if not (os.environ.get("CXX") or any(shutil.which(c) for c in ("g++", "c++", "clang++"))):
        raise MissingToolchainError(
            "UniPTConfig(compile=True) needs a C++ compiler for TorchInductor on CPU, and none was found "
            "(install g++, e.g. `apt-get install g++`, or set CXX); or leave compile=False"
        )
    if torch.cuda.is_available() and importlib.util.find_spec("triton") is None:
        raise MissingToolchainError(
            "UniPTConfig(compile=True) on CUDA needs Triton (`pip install triton`); or leave compile=False"
        )


def _dtype(module: nn.Module) -> torch.dtype:
    return next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.float32)
