"""MkDocs hook: the benchmark plots live in benchmarks/results/ (where `unipt bench` writes them); add
them to the site under benchmarks/ so the Benchmarks page shows the measured figures without copies."""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def on_files(files, config):  # noqa: ANN001, ANN201 - the MkDocs hook signature
    for png in sorted(RESULTS.glob("*.png")) + sorted(RESULTS.glob("gpu/*.png")):
        name = png.relative_to(RESULTS).as_posix()
        files.append(File.generated(config, f"benchmarks/{name}", abs_src_path=str(png)))
    return files
