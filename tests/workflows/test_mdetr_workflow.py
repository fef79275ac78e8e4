"""Workflow 4: MDETR + UniPT on RefCOCO, end to end through ``configs/paper/mdetr_refcoco.yaml``.

The paper config is read as ``unipt train`` reads it, with ``--set`` overrides that point it at a tiny
random MDETR written to disk in the released checkpoint layout (width 256 and 6 + 6 layers, so UniPT's
``mdetr`` preset is built at the paper's widths; a small image body, text encoder and FFN) and at tiny
RefCOCO files in the real formats (MDETR's ``finetune_refcoco_<split>.json`` and REFER's pickle).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from unipt.train import Trainer
from unipt.train.config import RunConfig, load_run_config
from unipt.train.inference import load_run

from . import fixtures
from .test_paper_workflows import PAPER, check_run, fit

pytestmark = pytest.mark.slow

_spec = importlib.util.spec_from_file_location(
    "mdetr_release_for_workflows", Path(__file__).parents[1] / "models" / "mdetr_release.py")
release = sys.modules.setdefault("mdetr_release_for_workflows", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(release)

COUNTS = {"train": 4, "val": 2, "testA": 2}
# The paper's transformer (width 256, 8 heads, 6 + 6 layers) with a narrow FFN, 10 queries, a tiny
# ResNet body and a tiny RoBERTa, so the run takes seconds.
SIZES = release.TinySizes(hidden=256, heads=8, enc_layers=6, dec_layers=6, ffn=32, queries=10, align=64)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("mdetr_checkpoint")
    release.write_release(folder, SIZES)
    return folder


def mdetr_config(checkpoint: Path, data: dict[str, str], out: Path, *extra: str) -> RunConfig:
    """``configs/paper/mdetr_refcoco.yaml`` with command-line style ``--set`` overrides."""
    overrides = [
        f"towers.mdetr.backbone=mdetr:{checkpoint}",
        "towers.mdetr.image_size=64",
        f"data.options={{root: {data['root']}, image_root: {data['image_root']}}}",
        "optim.lr=5e-3", "optim.head_lr=5e-3",
        "train.epochs=4", "train.batch_size=16", f"train.output_dir={out}",
        *extra,
    ]
    return load_run_config(PAPER / "mdetr_refcoco.yaml", overrides)


def test_mdetr_refcoco_trains_with_the_mdetr_preset(tmp_path: Path, checkpoint: Path) -> None:
    data = fixtures.write_mdetr_refcoco(tmp_path / "mdetr_annotations", tmp_path / "coco" / "train2014", COUNTS)
    config = mdetr_config(checkpoint, data, tmp_path / "run", "train.ema_decay=0.5")
    assert config.task.name == "mdetr_grounding" and config.towers["mdetr"].options["preset"] == "mdetr"
    trainer, result, before = fit(config)

    # UniPT's mdetr preset at the paper's widths, reading MDETR's 7 encoder and 7 decoder states.
    adapted = trainer.system.towers["mdetr"]
    assert adapted.config.preset == "mdetr" and adapted.resolved.input_kind == "cross_stream"
    assert adapted.resolved.in_widths == [256] * 7 and adapted.resolved.decoder_widths == [256] * 7
    assert adapted.config.target_layers == [1, 3, 5] and adapted.config.keep_backbone_dropout
    assert sum(p.numel() for p in adapted.side.parameters()) == 481_666
    heads = sum(p.numel() for p in trainer.system.task.parameters())
    assert result.trainable_parameters == 481_666 + heads

    # Records and batches: MDETR's spans name the referred box's tokens; boxes are normalised cxcywh.
    record = trainer.data.train[0]
    assert record["text"] == "the red square" and record["tokens_positive"] == [[4, 14]]
    batch = trainer.collate([record])
    assert batch.targets["boxes"][0].tolist() == pytest.approx([14 / 64, 15 / 48, 20 / 64, 18 / 48])
    inputs = batch.towers["mdetr"].inputs
    tokens = trainer.system.tower_info["mdetr"][1].preprocess.tokenizer.convert_ids_to_tokens(inputs["input_ids"][0])
    assert [t for t, m in zip(tokens, batch.targets["token_map"][0].tolist(), strict=True) if m] == ["Ġred", "Ġsquare"]
    assert set(inputs) == {"pixel_values", "pixel_mask", "input_ids", "attention_mask"}

    ranges = {"acc@0.5": (0.0, 100.0), "acc@0.5_giou": (0.0, 100.0), "mean_iou": (0.0, 100.0)}
    check_run(trainer, result, before, ranges, test=True)
    assert result.best_metrics["acc@0.5_giou"] <= result.best_metrics["acc@0.5"]

    # Evaluation uses the EMA of the trained weights (MDETR's protocol), and `unipt eval` reloads it.
    ema, system = trainer.ema, trainer.system
    assert ema is not None
    live = system.state_dict()
    assert any(not torch.equal(live[k], v) for k, v in ema.shadow.items())
    with_ema = trainer.evaluate(trainer.data.test)
    assert with_ema == pytest.approx(result.test_metrics)
    test_batch = trainer.collate([trainer.data.test[i] for i in range(4)])
    system.eval()
    live_boxes = system.predict(test_batch)["box"]
    trainer.ema = None
    with ema.swapped(system):
        assert trainer.evaluate(trainer.data.test) == with_ema
        ema_boxes = system.predict(test_batch)["box"]
    assert not torch.allclose(live_boxes, ema_boxes)  # the averaged weights are really different ones
    torch.testing.assert_close(system.predict(test_batch)["box"], live_boxes)  # and the live ones come back
    assert load_run(config.train.output_dir).evaluate(trainer.data.test) == pytest.approx(result.test_metrics)


def test_refer_layout_feeds_the_same_images_boxes_and_tokens(tmp_path: Path, checkpoint: Path) -> None:
    """REFER's ``refs(unc).p`` + ``instances.json`` of the same scenes give the same inputs and boxes through
    the same config; without MDETR's spans the whole caption names the box."""
    coco = tmp_path / "coco" / "train2014"
    refer = fixtures.write_refcoco(tmp_path / "refer", coco, COUNTS)
    mdetr = fixtures.write_mdetr_refcoco(tmp_path / "mdetr", coco, COUNTS)
    trainers = [Trainer(mdetr_config(checkpoint, options, tmp_path / name))
                for name, options in (("refer_run", refer), ("mdetr_run", mdetr))]
    assert trainers[1].data.train.meta["source"].endswith("finetune_refcoco_train.json")
    keys = ("image_path", "text", "box", "width", "height")
    for split in ("train", "eval", "test"):
        a, b = (getattr(t.data, split) for t in trainers)
        assert [[r[k] for k in keys] for r in a.records] == [[r[k] for k in keys] for r in b.records], split
    refer_batch, mdetr_batch = (t.collate([t.data.train[i] for i in range(4)]) for t in trainers)
    refer_inputs, mdetr_inputs = refer_batch.towers["mdetr"].inputs, mdetr_batch.towers["mdetr"].inputs
    refer_map, mdetr_map = refer_batch.targets["token_map"], mdetr_batch.targets["token_map"]
    assert torch.equal(refer_batch.targets["boxes"], mdetr_batch.targets["boxes"])
    for key, value in refer_inputs.items():
        assert torch.equal(value, mdetr_inputs[key]), key
    real = refer_inputs["attention_mask"].bool()
    special = torch.isin(refer_inputs["input_ids"], torch.tensor([0, 2]))
    assert torch.equal(refer_map.bool(), real & ~special)  # every caption token
    assert bool((mdetr_map <= refer_map).all())
    assert mdetr_map.sum() < refer_map.sum()
