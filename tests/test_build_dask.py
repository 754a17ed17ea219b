"""Multi-machine builds: the same jobs sent to a Dask scheduler give the same bytes as a local build."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_build import _build, _stable

distributed = pytest.importorskip("distributed", reason="Dask distributed (the [dist] extra) is not installed")


def test_build_through_a_dask_scheduler_matches_the_local_build(small_sources: Path, tmp_path: Path, five_codec_taskset: Path) -> None:
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        report = _build(small_sources, tmp_path / "dask", five_codec_taskset, scheduler=cluster.scheduler_address)
    assert report.ok and report.built == 15
    _build(small_sources, tmp_path / "local", five_codec_taskset)
    assert _stable(tmp_path / "dask" / "set").equals(_stable(tmp_path / "local" / "set"))
