"""Measurement: exact byte accounting, isolated peak memory, interleaved timing and reports.

These are benchmarks, never timed tests: tests check the accounting numbers, not the clock.
"""

from unipt.bench.accounting import (
    SavedActivationMeter,
    gradient_bytes,
    optimizer_state_bytes,
    parameter_bytes,
    saved_state_bytes,
    saved_state_dict,
    tensor_bytes,
    trainable_count,
)
from unipt.bench.memory import PeakMemory, measure_peak_memory, measure_peak_memory_all
from unipt.bench.report import (
    format_markdown,
    load_report,
    plot_report,
    plot_scaling,
    write_json,
    write_report,
)
from unipt.bench.results import BenchmarkReport, MethodResult, ScalingPoint, ScalingReport
from unipt.bench.run import account_step, run_benchmark, run_scaling
from unipt.bench.suite_run import SuiteOptions, run_suite
from unipt.bench.suites import SUITES, SuiteSize, SuiteSpec, get_suite
from unipt.bench.targets import TargetCheck, check_targets, format_targets
from unipt.bench.timing import TimingResult, inference_forward, time_interleaved
from unipt.bench.workload import (
    MethodSpec,
    ProbeHead,
    TrainingStep,
    Workload,
    build_training_step,
    tiny_bert_workload,
)

__all__ = [
    "SUITES",
    "BenchmarkReport",
    "MethodResult",
    "MethodSpec",
    "PeakMemory",
    "ProbeHead",
    "SavedActivationMeter",
    "ScalingPoint",
    "ScalingReport",
    "SuiteOptions",
    "SuiteSize",
    "SuiteSpec",
    "TargetCheck",
    "TimingResult",
    "TrainingStep",
    "Workload",
    "account_step",
    "build_training_step",
    "check_targets",
    "format_markdown",
    "format_targets",
    "get_suite",
    "gradient_bytes",
    "inference_forward",
    "load_report",
    "measure_peak_memory",
    "measure_peak_memory_all",
    "optimizer_state_bytes",
    "parameter_bytes",
    "plot_report",
    "plot_scaling",
    "run_benchmark",
    "run_scaling",
    "run_suite",
    "saved_state_bytes",
    "saved_state_dict",
    "tensor_bytes",
    "time_interleaved",
    "tiny_bert_workload",
    "trainable_count",
    "write_json",
    "write_report",
]
