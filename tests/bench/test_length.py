"""`unipt bench length`: a tiny sweep end to end (files, structure, measured numbers), batch rule, target checks."""

from __future__ import annotations

import pytest

from unipt.bench.cli import main
from unipt.bench.length import METHODS, LengthOptions, get_model
from unipt.bench.length_report import LengthPoint, LengthReport, length_targets, load_length_report
from unipt.bench.results import BenchmarkReport, MethodResult

MIB = 2**20


def test_tiny_sweep_writes_consistent_tables_json_and_plot(tmp_path, capsys):
    code = main(["length", "--models", "tiny", "--lengths", "16,64,256", "--batch", "4", "--tokens", "4096",
                 "--rounds", "1", "--warmup", "0", "--memory-steps", "1", "--threads", "1", "--out", str(tmp_path),
                 "--no-progress"])
    assert code == 0
    assert {p.name for p in tmp_path.iterdir()} == {"length.md", "length.json", "length.png"}
    report = load_length_report(tmp_path / "length.json")
    assert [(p.model, p.batch, p.length) for p in report.points] == [("tiny", 4, 16), ("tiny", 4, 64)]
    assert any("L=256 skipped" in n for n in report.notes)  # beyond the model's 128 positions
    assert "attention: sdpa" in report.models["tiny"]
    for point in report.points:
        assert [r.method for r in point.report.rows] == list(METHODS)
        assert point.report.reference_forward_ms > 0 and point.report.reference_peak_bytes is not None
        for row in point.report.rows:
            assert row.status == "ok", row.status
            assert row.step_ms > 0 and row.saved_activation_bytes > 0 and row.parameter_bytes > 0
            assert row.peak_bytes is not None and row.peak_bytes >= 0 and row.peak_backend.startswith("cpu")
        full, lora = point.row("full"), point.row("lora")
        assert full.saved_activation_bytes > lora.saved_activation_bytes  # full also keeps every weight's input
        assert full.trainable_params > 100 * lora.trainable_params
    short, long = (p.row("unipt-reference").saved_activation_bytes for p in report.points)
    assert long > 4 * short  # 4x the tokens, and the reference kernel keeps [B, L, L] maps: more than 4x
    names = [t["name"] for t in report.targets]
    assert names == [f"tiny 4 x {n}: {m} peak / LoRA peak (weights included)"
                     for n in (16, 64) for m in ("unipt-fused", "unipt-fused-min")]
    for target in report.targets:
        point = report.point("tiny", int(target["name"].split(" x ")[1].split(":")[0]))
        method = target["name"].split(": ")[1].split(" peak")[0]
        expected = point.row(method).peak_total_bytes / point.row("lora").peak_total_bytes
        assert target["value"] == pytest.approx(expected) and target["status"] in ("PASS", "MISS")
    md = (tmp_path / "length.md").read_text()
    for text in ("## tiny", "| 4 × 16 |", "| 4 × 64 |", "Dropout: 0 everywhere", "Saved activations, MiB",
                 "Peak memory above the loaded model", "Target checks (issue 8)", "unipt-fused / lora"):
        assert text in md
    assert "## tiny" in capsys.readouterr().out


def test_batch_keeps_tokens_per_batch_fixed_at_long_lengths():
    opts = LengthOptions(batch=32, tokens=4096)
    assert [opts.batch_at(n) for n in (32, 128, 512, 2048)] == [32, 32, 8, 2]
    assert LengthOptions(batch=4, tokens=64).batch_at(2048) == 1
    assert LengthOptions().width() == 384 and LengthOptions(device="cuda").width() == 768


def test_unknown_names_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown model 'gpt9'"):
        get_model("gpt9")
    with pytest.raises(ValueError, match="unknown length-sweep methods"):
        main(["length", "--models", "tiny", "--methods", "lora,dora", "--out", str(tmp_path)])


def _row(method: str, step_ms: float, saved_mib: float, peak_mib: float) -> MethodResult:
    return MethodResult(method, method, 1, 1, 0, int(saved_mib * MIB), 0, 0, peak_bytes=int(peak_mib * MIB),
                        step_ms=step_ms, parameter_bytes=100 * MIB)


def _point(length: int, batch: int, inference_ms: float, rows: list[MethodResult]) -> LengthPoint:
    return LengthPoint("minilm", length, batch, BenchmarkReport("minilm", "", "cpu", rows,
                                                                reference_forward_ms=inference_ms))


def test_targets_are_the_issues_thresholds_on_measured_ratios():
    at_128 = _point(128, 32, 100.0, [_row("unipt-fused", 120.0, 80.0, 50.0), _row("unipt-fused-min", 150.0, 40.0, 40.0),
                                     _row("lora", 200.0, 400.0, 300.0)])
    at_512 = _point(512, 8, 100.0, [_row("unipt-fused", 120.0, 96.0, 60.0), _row("unipt-fused-min", 150.0, 44.0, 45.0),
                                    _row("lora", 200.0, 400.0, 300.0)])
    report = LengthReport("cpu", models={"minilm": "MiniLM"}, points=[at_128, at_512])
    checks = {c.name: c for c in length_targets(report)}
    assert checks["minilm 32 x 128: unipt-fused step / inference-only forward"].value == pytest.approx(1.2)
    assert checks["minilm 32 x 128: unipt-fused step / inference-only forward"].status == "PASS"
    assert checks["minilm 32 x 128: unipt-fused step / LoRA step"].value == pytest.approx(0.6)
    assert checks["minilm 32 x 128: unipt-fused step / LoRA step"].status == "MISS"  # needs <= 0.50
    assert checks["minilm 32 x 128: unipt-fused-min step / inference-only forward"].status == "MISS"  # 1.5 > 1.4
    assert checks["minilm 32 x 128: unipt-fused saved activations / LoRA's"].value == pytest.approx(0.2)
    assert checks["minilm 8 x 512: unipt-fused-min saved activations / LoRA's"].value == pytest.approx(0.11)
    assert checks["minilm 8 x 512: unipt-fused-min saved activations / LoRA's"].status == "MISS"
    growth = checks["minilm: unipt-fused saved activations per token at 8 x 512 / at 128 tokens"]
    assert growth.value == pytest.approx(1.2) and growth.status == "MISS"  # 96 vs 80 MiB at 4096 tokens each
    peak = checks["minilm 8 x 512: unipt-fused peak / LoRA peak (weights included)"]
    assert peak.value == pytest.approx(160 / 400) and peak.status == "PASS"
    # a point that was not measured is reported, not dropped
    partial = LengthReport("cpu", models={"minilm": "MiniLM"}, points=[at_128])
    missing = [c for c in length_targets(partial) if c.status == "n/a"]
    assert missing and all("512" in c.name for c in missing)
