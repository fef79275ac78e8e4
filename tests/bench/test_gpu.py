"""The GPU script's code path on CPU with tiny configs: every method measured, OOM kept as a row, files written."""

from __future__ import annotations

import json

import torch

from unipt import registry
from unipt.bench.gpu import GpuCase, gpu_cases, main, make_backbone, run_case
from unipt.bench.workload import MethodSpec


def test_tiny_cases_cover_the_four_backbones():
    cases = gpu_cases(tiny=True)
    assert [c.workload.name for c in cases] == ["bert", "vit", "clip", "resnet"]
    assert all([m.key for m in c.methods] == ["frozen", "full", "bitfit", "lora", "ia3", "lst", "unipt"] for c in cases)
    full = gpu_cases(tiny=False, only=["bert", "resnet"])
    assert [(c.workload.name, c.workload.batch_size) for c in full] == [("bert", 32), ("resnet", 64)]
    assert "32 x 128 tokens" in full[0].workload.description


def test_clip_tower_is_a_transformers_clip_vision_model():
    model = make_backbone("clip", tiny=True)
    assert type(model).__name__ == "CLIPVisionModelWithProjection"


def _oom(backbone, **_):
    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


def test_an_out_of_memory_method_keeps_its_row_and_the_rest_still_runs(monkeypatch):
    monkeypatch.setitem(registry._METHODS, "too_big", _oom)
    bert = gpu_cases(tiny=True, only=["bert"])[0]
    methods = [MethodSpec(m) for m in ("frozen", "too_big", "unipt", "lora")]
    case = GpuCase(bert.workload, methods)
    report = run_case(case, device="cpu", repeats=1, warmup=0, memory_steps=1, progress=False)
    rows = {r.method: r for r in report.rows}
    assert rows["too_big"].status == "OOM" and rows["too_big"].step_ms is None
    for name in ("frozen", "unipt", "lora"):
        assert rows[name].status == "ok" and rows[name].step_ms is not None
        assert rows[name].peak_bytes is not None and rows[name].parameter_bytes > 0
    assert rows["lora"].saved_activation_bytes > rows["unipt"].saved_activation_bytes
    assert report.reference_forward_ms is not None and report.reference_parameter_bytes > 0
    assert {t["name"] for t in report.targets} == {
        "unipt step / lora step", "unipt step / inference-only forward", "unipt saved activations / lora's",
        "unipt peak / inference-only peak (weights included)",
    }
    assert any("too_big: OOM" in n for n in report.notes)


def test_command_line_smoke_run_writes_the_table(tmp_path, capsys):
    code = main(["--device", "cpu", "--tiny", "--only", "resnet", "--repeats", "1", "--warmup", "0",
                 "--memory-steps", "1", "--out", str(tmp_path), "--no-progress"])
    assert code == 0
    md = (tmp_path / "gpu.md").read_text()
    assert "| lora | LoRA (PEFT)" in md and "Target checks (resnet)" in md
    data = json.loads((tmp_path / "gpu.json").read_text())
    assert [r["method"] for r in data["reports"][0]["rows"]] == ["frozen", "full", "bitfit", "lora", "ia3", "lst",
                                                                 "unipt"]
    assert (tmp_path / "gpu-resnet.png").is_file()
    length = json.loads((tmp_path / "length.json").read_text())  # the length sweep ran first, tiny
    assert [(p["model"], p["length"]) for p in length["points"]] == [("tiny", 16), ("tiny", 64)]
    assert all(r["status"] == "ok" and r["step_ms"] > 0 for p in length["points"] for r in p["report"]["rows"])
    assert (tmp_path / "length.md").is_file() and (tmp_path / "length.png").is_file()
    assert "targets, resnet" in capsys.readouterr().out


def test_cuda_request_without_cuda_fails_cleanly(tmp_path, capsys):
    if torch.cuda.is_available():
        return
    assert main(["--device", "cuda", "--out", str(tmp_path)]) == 2
    assert "CUDA is not available" in capsys.readouterr().out
