"""Fetching Debian data packages into the cache: atomic, idempotent, retried after apt-get update."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from unipt.data.errors import DataFileNotFoundError, DatasetFetchError
from unipt.data.packaged import cache
from unipt.data.packaged.__main__ import main

pytestmark = pytest.mark.skipif(
    shutil.which("dpkg-deb") is None, reason="needs dpkg-deb to build a test .deb"
)


@pytest.fixture
def fake_deb(tmp_path: Path) -> Path:
    """A real (tiny) .deb holding usr/share/demo/{a.txt, noise.ogg}."""
    pkg = tmp_path / "build"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "DEBIAN" / "control").write_text(
        "Package: demo-data\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@t>\nDescription: demo\n"
    )
    (pkg / "usr" / "share" / "demo").mkdir(parents=True)
    (pkg / "usr" / "share" / "demo" / "a.txt").write_text("hello")
    (pkg / "usr" / "share" / "demo" / "noise.ogg").write_bytes(b"OggS")
    deb = tmp_path / "demo-data_1.0_all.deb"
    subprocess.run(["dpkg-deb", "--build", str(pkg), str(deb)], check=True, capture_output=True)
    return deb


def _fake_run(deb: Path, calls: list[str], fail_first_download: bool):
    real_run = cache._run

    def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
        calls.append(" ".join(cmd[:2]))
        if cmd[:2] == ["apt-get", "download"]:
            if fail_first_download and calls.count("apt-get download") == 1:
                return subprocess.CompletedProcess(cmd, 100, "", "E: Unable to locate package")
            shutil.copy(deb, cwd / deb.name)
            return subprocess.CompletedProcess(cmd, 0, "", "")
        if cmd[:2] == ["apt-get", "update"]:
            return subprocess.CompletedProcess(cmd, 0, "", "")
        return real_run(cmd, cwd)  # dpkg -x for real

    return run


def test_fetch_retries_after_update_prunes_and_is_idempotent(
    tmp_path: Path, fake_deb: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UNIPT_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(cache.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    calls: list[str] = []
    monkeypatch.setattr(cache, "_run", _fake_run(fake_deb, calls, fail_first_download=True))
    keep = lambda p: p.suffix != ".ogg"  # noqa: E731
    got = cache.ensure_deb_path("demo-data", "usr/share/demo", system_root=tmp_path / "sys", keep=keep)
    assert got == tmp_path / "cache" / "debs" / "demo-data" / "usr" / "share" / "demo"
    assert (got / "a.txt").read_text() == "hello" and not (got / "noise.ogg").exists()
    assert calls == ["apt-get download", "apt-get update", "apt-get download", "dpkg -x"]
    assert [p.name for p in (tmp_path / "cache" / "debs").iterdir()] == ["demo-data"]  # no temp leftovers
    cache.ensure_deb_path("demo-data", "usr/share/demo", system_root=tmp_path / "sys")
    assert len(calls) == 4  # cached: no second download
    (tmp_path / "sys" / "usr" / "share" / "other").mkdir(parents=True)
    assert (
        cache.ensure_deb_path("other", "usr/share/other", system_root=tmp_path / "sys").parent.name == "share"
    )


def test_failed_fetch_leaves_no_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNIPT_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(cache.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    monkeypatch.setattr(
        cache, "_run", lambda cmd, cwd: subprocess.CompletedProcess(cmd, 100, "", "E: no net")
    )
    with pytest.raises(DatasetFetchError, match="apt-get download demo-data failed: E: no net"):
        cache.ensure_deb_path("demo-data", "usr/share/demo", system_root=tmp_path / "sys")
    assert list((tmp_path / "cache" / "debs").iterdir()) == []
    with pytest.raises(DataFileNotFoundError, match="data of Debian package demo-data not found"):
        cache.ensure_deb_path("demo-data", "usr/share/demo", system_root=tmp_path / "sys", fetch=False)


def test_cli_where_and_fetch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("UNIPT_DATA_DIR", str(tmp_path / "c"))
    assert main(["where"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "c")
    assert main(["fetch", "rotten_tomatoes"]) == 0
    assert "rotten_tomatoes_corpus_full.csv.bz2" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["fetch", "mnist"])
