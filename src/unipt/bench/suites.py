"""The accuracy + cost suites: which backbone, data, task and methods, and how each method is configured.

Every method of a suite gets the **same** run config except the towers' ``method`` (+ its options) and
the learning rate of the adapted parameters: same split and subset, same task head (built by the
task), same epochs, batch size, schedule, head learning rate and seeds. Learning rates follow the usual
recommendation for each method family (:data:`METHOD_LR`) and are written into the report.

Sizes (:class:`SuiteSize`) are chosen so that ``unipt bench suite`` finishes within about an hour on
two CPU cores; ``--quick`` uses the tiny sizes (about five minutes).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

# Learning rate of what each method trains (backbone / adapters / side network). The task head always
# uses HEAD_LR. Full fine-tuning needs a small rate; adapters and side networks the usual 5e-4..3e-3.
METHOD_LR: dict[str, float] = {
    "frozen": 1e-3,
    "full": 5e-5,
    "bitfit": 1e-3,
    "lora": 5e-4,
    "lora_conv": 5e-4,
    "ia3": 3e-3,
    "lst": 1e-3,
    "unipt": 1e-3,
}
HEAD_LR = 1e-3
# MiniLM's sequence length in the suites: 128 tokens, where the side network's cost at realistic lengths
# shows (at 32 tokens its [B, L, L] interaction maps were negligible; issue 8).
MINILM_TOKENS = 128
SEEDS = 3  # default training runs per method (mean ± std); the quick suites use 1


@dataclass(frozen=True)
class SuiteSize:
    """How much data and training one suite gets. ``limit_eval`` caps the validation and test splits."""

    limit_train: int | None
    limit_eval: int | None
    epochs: int
    batch_size: int


@dataclass(frozen=True)
class SuiteSpec:
    """One suite: a base run config, its methods and per-method/per-tower options.

    Attributes:
        name: short key (``rotten_tomatoes``...). title: one line for the report.
        config: run-config dict without towers' ``method``/``options`` (see :mod:`unipt.train.config`).
        methods: row order; ``unipt`` is the reference row.
        options: ``method -> tower -> options`` for the tower's method constructor.
        tower_methods: ``method -> tower -> registry name`` where a tower uses another name (or ``None``
            to leave that tower frozen), e.g. IA3 on the text tower only.
        metric: the test metric reported (the task's primary metric). sizes: ``full`` / ``quick``.
        notes: set-up choices every report of this suite must state.
    """

    name: str
    title: str
    config: dict[str, Any]
    methods: tuple[str, ...]
    metric: str
    sizes: dict[str, SuiteSize]
    options: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    tower_methods: dict[str, dict[str, str | None]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def run_config(self, method: str, *, seed: int = 0, size: str = "full", output_dir: str = "runs/bench",
                   lr: dict[str, float] | None = None) -> dict[str, Any]:
        """The complete run-config dict that trains ``method`` (pass it to ``RunConfig.from_dict``)."""
        if method not in self.methods:
            raise KeyError(f"suite {self.name!r} has no method {method!r}; it has {list(self.methods)}")
        sizing = self.sizes[size]
        data = copy.deepcopy(self.config)
        for tower, spec in data["towers"].items():
            name = self.tower_methods.get(method, {}).get(tower, method)
            spec["method"] = name if name is not None else "frozen"
            spec["options"] = copy.deepcopy(self.options.get(method, {}).get(tower, {}))
        rates = {**METHOD_LR, **(lr or {})}
        data.setdefault("optim", {}).update(lr=rates[method], head_lr=HEAD_LR)
        data.setdefault("data", {}).update(limit_train=sizing.limit_train, limit_eval=sizing.limit_eval)
        data.setdefault("train", {}).update(
            epochs=sizing.epochs,
            batch_size=sizing.batch_size,
            seed=seed,
            output_dir=output_dir,
            eval_every=sizing.epochs,  # no early stopping: validate once, test that final model
            resume=False,
        )
        return data


_OPTIM = {"schedule": "cosine", "warmup_ratio": 0.1, "weight_decay": 1e-4, "grad_clip": 2.0}
_TEXT_METHODS = ("frozen", "full", "bitfit", "lora", "ia3", "lst", "unipt")
_CNN_METHODS = ("frozen", "full", "bitfit", "lora", "ia3", "lst", "unipt")
_DUAL_METHODS = ("frozen", "full", "bitfit", "lora", "lst", "unipt")
# IA3 on EfficientNet-Lite: PEFT has no default targets for it, so name the dense 1x1 convolutions
# (output rescaling, no feed-forward input scaling).
_EFFNET_IA3 = {"target_modules": ["_expand_conv", "_project_conv", "_conv_head"], "feedforward_modules": []}
# Methods that back-propagate through a CNN tower keep its BatchNorm in eval mode (running ImageNet
# statistics), like the frozen probe, LST and UniPT do: a run of a few dozen steps cannot re-estimate
# them, and updating them anyway cost every such method ~20 accuracy points on Fashion-MNIST (measured:
# LoRA 57.8 % with train-mode BatchNorm, 80.6 % with it frozen, same run otherwise).
_BN_FROZEN = {"backbone_train_mode": False}
CNN_NOTE = ("CNN towers keep BatchNorm in eval mode (running statistics) for every method, including full "
            "fine-tuning, BitFit, LoRA and IA3: too few steps to re-estimate them")

SUITES: dict[str, SuiteSpec] = {
    "rotten_tomatoes": SuiteSpec(
        name="rotten_tomatoes",
        title="MiniLM (all-MiniLM-L6-v2) on Rotten Tomatoes sentiment",
        config={
            "towers": {"text": {"backbone": "minilm", "max_length": MINILM_TOKENS}},
            "task": {"name": "classification"},
            "data": {"dataset": "rotten_tomatoes"},
            "optim": dict(_OPTIM),
        },
        methods=_TEXT_METHODS,
        metric="accuracy",
        sizes={"full": SuiteSize(1024, 640, 2, 32), "quick": SuiteSize(48, 48, 1, 16)},
        options={"unipt": {"text": {"preset": "auto", "reduction": 2}}, "lst": {"text": {"reduction": 8}}},
    ),
    "fashion_mnist": SuiteSpec(
        name="fashion_mnist",
        title="EfficientNet-Lite0 on Fashion-MNIST (64 px)",
        config={
            "towers": {"image": {"backbone": "efficientnet-lite0", "image_size": 64}},
            "task": {"name": "classification"},
            "data": {"dataset": "fashion_mnist"},
            "optim": dict(_OPTIM),
        },
        methods=_CNN_METHODS,
        metric="accuracy",
        sizes={"full": SuiteSize(1024, 640, 2, 32), "quick": SuiteSize(48, 48, 1, 16)},
        options={
            "unipt": {"image": {"preset": "auto", "reduction": 4, "probe_size": 64}},
            "lst": {"image": {"reduction": 8, "probe_size": 64}},
            "ia3": {"image": {**_EFFNET_IA3, **_BN_FROZEN}},
            **{m: {"image": dict(_BN_FROZEN)} for m in ("full", "bitfit", "lora")},
        },
        notes=(CNN_NOTE,),
    ),
    "tuxpaint": SuiteSpec(
        name="tuxpaint",
        title="EfficientNet-Lite0 + MiniLM dual encoder on Tux Paint image-text retrieval (96 px)",
        config={
            "towers": {
                "image": {"backbone": "efficientnet-lite0", "image_size": 96},
                "text": {"backbone": "minilm", "max_length": MINILM_TOKENS},
            },
            "task": {"name": "retrieval", "options": {"embed_dim": 256, "loss": "triplet", "margin": 0.2}},
            "data": {"dataset": "tuxpaint"},
            "optim": dict(_OPTIM),
        },
        methods=_DUAL_METHODS,
        metric="rsum",
        sizes={"full": SuiteSize(None, None, 6, 32), "quick": SuiteSize(48, 48, 1, 16)},
        options={
            "unipt": {
                "image": {"preset": "vse_cnn", "reduction": 4, "out_width": 512, "probe_size": 96},
                "text": {"preset": "vse_text", "reduction": 2, "out_width": 512},
            },
            "lst": {"image": {"reduction": 8, "probe_size": 96}, "text": {"reduction": 8}},
            **{m: {"image": dict(_BN_FROZEN)} for m in ("full", "bitfit", "lora")},
        },
        notes=(CNN_NOTE,),
    ),
}


def get_suite(name: str) -> SuiteSpec:
    """A suite by name (``rotten_tomatoes``, ``fashion_mnist``, ``tuxpaint``)."""
    try:
        return SUITES[name]
    except KeyError:
        raise KeyError(f"unknown suite {name!r}; known: {', '.join(SUITES)}") from None
