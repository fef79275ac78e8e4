"""UniPTModel: a frozen backbone plus a trainable parallel side network, PEFT-style.

The backbone runs under ``torch.no_grad()`` (no autograd graph, no saved activations) and stays in
eval mode unless ``keep_backbone_dropout``; only the side network has ``requires_grad``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from unipt.config import UniPTConfig
from unipt.errors import DamagedFileError, MissingToolchainError
from unipt.files import atomic_write, read_safetensors, remove_stray_temp_files
from unipt.fingerprint import architecture_fingerprint, architecture_hash, fingerprint, same_architecture, same_dtype
from unipt.nn import build_side_network
from unipt.outputs import AdaptedOutput
from unipt.taps import BackboneTapper, Taps, cast_taps, discover_widths, fill_config_widths

CONFIG_NAME = "unipt_config.json"
WEIGHTS_NAME = "unipt_side.safetensors"
FORMAT_VERSION = 1


class UniPTModel(nn.Module):
    """Frozen ``backbone`` + UniPT side network. ``forward(**inputs) -> AdaptedOutput``."""

    def __init__(
        self,
        backbone: nn.Module,
        config: UniPTConfig,
        example_inputs: dict[str, torch.Tensor] | None = None,
    ):
        super().__init__()
        precision = {"backbone_dtype": config.backbone_dtype, "backbone_quantization": config.backbone_quantization,
                     "side_dtype": config.side_dtype}
        if precision != {"backbone_dtype": None, "backbone_quantization": "none", "side_dtype": "float32"}:
            raise ValueError(
                f"{precision} are implemented for causal LMs (task_type='causal_lm') only; for this backbone cast "
                "or quantise it yourself before get_unipt_model, or train with bf16 autocast (train.bf16)"
            )
        self.backbone = backbone
        self.config = config
        for p in backbone.parameters():
            p.requires_grad_(False)
        backbone.train(config.keep_backbone_dropout)
        self.tapper = BackboneTapper(backbone, config)
        fill_config_widths(config, discover_widths(self.tapper, example_inputs))
        self.side = build_side_network(config)
        if config.compile:
            require_compiler()
            self.side.compile()  # compiles forward in place: parameter names and checkpoints stay the same
        self.backbone_fingerprint = fingerprint(backbone)

    # ------------------------------------------------------------------------------- running
    def train(self, mode: bool = True) -> UniPTModel:
        """Train the side network; the backbone stays in eval mode unless ``keep_backbone_dropout``."""
        super().train(mode)
        self.backbone.train(mode and self.config.keep_backbone_dropout)
        return self

    def tap(self, **inputs: torch.Tensor) -> Taps:
        """Run only the frozen backbone (no autograd graph) and return its taps."""
        return self.tapper(inputs)

    def adapt(self, taps: Taps, consume: bool = False) -> AdaptedOutput:
        """Run only the side network on taps (from :meth:`tap` or an activation cache).

        With ``consume=True`` the side network drops its references to ``taps.hidden`` as it goes, so
        each tapped layer can be freed as soon as it is used; otherwise ``taps`` is left intact.
        """
        taps = cast_taps(taps, self.side_dtype)  # a half-precision backbone feeds an fp32 side network
        hidden = taps.hidden if consume else list(taps.hidden)
        if self.config.input_kind == "cross_stream":
            out = self.side(hidden, list(taps.decoder_hidden), taps.mask)
        else:
            out = self.side(hidden, taps.mask, taps.final, taps.class_index)
        out.head_inputs = getattr(taps, "head_inputs", None)
        return out

    @property
    def side_dtype(self) -> torch.dtype:
        """The side network computes in its own dtype (that of its parameters), whatever the backbone's."""
        return next((p.dtype for p in self.side.parameters() if p.is_floating_point()), torch.float32)

    def forward(self, *args: torch.Tensor, **inputs: torch.Tensor) -> AdaptedOutput:
        if args:  # model(images) for plain CNNs, like the backbone itself
            if len(args) != 1 or inputs:
                raise TypeError("pass the backbone's inputs as keywords, or one positional image tensor")
            inputs = {"pixel_values": args[0]}
        return self.adapt(self.tap(**inputs), consume=True)

    # ------------------------------------------------------------------------------- parameters
    def trainable_parameters(self) -> tuple[int, int]:
        """(trainable, total) parameter counts."""
        total = sum(p.numel() for p in self.parameters())
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return trainable, total

    @property
    def variant(self) -> str:
        """One line for reports: which UniPT variant this is."""
        cfg = self.config
        return f"UniPT (preset {cfg.preset}, {cfg.input_kind}, side width {cfg.resolved_side_width})"

    def saved_state_dict(self) -> dict[str, torch.Tensor]:
        """Exactly what :meth:`save_pretrained` writes: the side network's tensors."""
        return {k: v.detach() for k, v in self.side.state_dict().items()}

    def print_trainable_parameters(self) -> None:
        trainable, total = self.trainable_parameters()
        print(f"trainable params: {trainable:,} || all params: {total:,} || trainable%: {100 * trainable / total:.4f}")

    # ------------------------------------------------------------------------------- save / load
    def save_pretrained(self, directory: str | os.PathLike[str], model_card: bool = True, **card: Any) -> None:
        """Write the side network (safetensors) and the config (JSON), each atomically, and a model card
        ``README.md`` (``model_card=False``: none). ``card`` adds measured facts to the card:
        ``datasets``, ``metrics`` (``{split: {name: value}}``), ``peak_memory_mb``, ``step_time_ms``,
        ``backbone_name`` (see :func:`unipt.model_card.model_facts`)."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        remove_stray_temp_files(out, (WEIGHTS_NAME, CONFIG_NAME))  # left by a save that was killed
        state = {k: v.detach().contiguous().cpu() for k, v in self.side.state_dict().items()}
        meta = {
            "format_version": FORMAT_VERSION,
            "unipt_version": _version(),
            "config": self.config.to_dict(),
            "backbone": {**self.backbone_fingerprint, **architecture_fingerprint(self.backbone)},
        }
        atomic_write(out / WEIGHTS_NAME, lambda path: save_file(state, str(path), metadata={"format": "pt"}))
        atomic_write(out / CONFIG_NAME, lambda path: path.write_text(json.dumps(meta, indent=2)))
        if model_card:
            from unipt.model_card import model_facts, write_card

            write_card(out, model_facts(self, **card))

    def push_to_hub(self, repo_id: str, *, private: bool | None = None, token: str | None = None,
                    **card: Any) -> Any:
        """``save_pretrained`` into a temporary folder (model card included), then upload it to the
        Hugging Face Hub as ``repo_id`` (needs the network and a token; see :mod:`unipt.hub`)."""
        from unipt.hub import push_to_hub

        with tempfile.TemporaryDirectory() as folder:
            self.save_pretrained(folder, **card)
            return push_to_hub(folder, repo_id, private=private, token=token)

    @classmethod
    def from_pretrained(
        cls, backbone: nn.Module, directory: str | os.PathLike[str], is_trainable: bool = False
    ) -> UniPTModel:
        """Rebuild the side network saved by :meth:`save_pretrained` on ``backbone``."""
        src = Path(directory)
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            if not (src / name).is_file():
                raise FileNotFoundError(
                    f"{src / name} not found: {src} is not a saved UniPT model "
                    f"(save_pretrained writes {CONFIG_NAME} and {WEIGHTS_NAME})"
                )
        try:
            meta = json.loads((src / CONFIG_NAME).read_text())
        except (ValueError, UnicodeDecodeError) as err:
            raise DamagedFileError(f"{src / CONFIG_NAME} is damaged ({err}); {_GOOD_COPY}") from err
        if meta.get("config", {}).get("task_type") == "causal_lm":
            from unipt.lm import UniPTForCausalLM

            return UniPTForCausalLM.from_pretrained(backbone, src, is_trainable)  # type: ignore[return-value]
        if meta.get("format_version", 0) > FORMAT_VERSION:
            raise ValueError(
                f"{src} was saved by a newer unipt (format {meta['format_version']}); upgrade unipt to load it"
            )
        saved = meta.get("backbone", {})
        if not same_architecture(saved, backbone):
            raise ValueError(
                f"{src} holds a side network trained on a different backbone ({saved.get('class')}, "
                f"structure {saved.get('architecture') or saved['structure']}); this backbone is "
                f"{type(backbone).__name__} ({architecture_hash(backbone)}). Load it onto the backbone it was "
                "trained with."
            )
        weights = read_safetensors(src / WEIGHTS_NAME, _GOOD_COPY)
        model = cls(backbone, UniPTConfig.from_dict(meta["config"]))
        # Weights stored in another dtype (an fp32 run loaded onto the bf16 backbone) cannot be compared exactly.
        if same_dtype(saved, backbone) and saved.get("weights") \
                and saved["weights"] != model.backbone_fingerprint["weights"]:
            warnings.warn(
                f"{src} was trained on the same architecture with other weights; outputs will differ "
                "from the saved run", stacklevel=2,
            )
        model.side.load_state_dict(weights)
        model.side.requires_grad_(is_trainable)
        return model


def get_unipt_model(
    backbone: nn.Module,
    config: UniPTConfig | None = None,
    example_inputs: dict[str, torch.Tensor] | None = None,
) -> UniPTModel:
    """Freeze ``backbone`` and attach a UniPT side network (widths discovered from the backbone).

    Args:
        backbone: any ``nn.Module``: a Hugging Face model, a torchvision/timm CNN, your own network.
        config: :class:`UniPTConfig` (default: the ``auto`` preset with automatic taps).
        example_inputs: one batch of the backbone's keyword inputs used to discover the tap shapes;
            by default a dummy batch is made from the backbone's config.

    A Hugging Face causal LM (``*ForCausalLM``) with ``task_type`` unset or ``"causal_lm"`` gets a
    :class:`unipt.lm.UniPTForCausalLM` (causal side network feeding the frozen LM head).
    """
    from unipt.lm.backbone import is_causal_lm

    task = config.task_type if config is not None else None
    if task == "causal_lm" or (task is None and is_causal_lm(backbone)):
        from unipt.lm import UniPTForCausalLM

        return UniPTForCausalLM(backbone, config)  # type: ignore[return-value]
    return UniPTModel(backbone, config or UniPTConfig(), example_inputs)


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


_GOOD_COPY = ("the side network was not saved completely or the file was changed since; save it again with "
              "save_pretrained, or copy the folder again from where it was trained")


def _version() -> str:
    from unipt import __version__

    return __version__
