"""Evaluation over a Dask cluster (a 2-worker LocalCluster on CPU): one resumable run, the same scores as a local one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from test_evaluate import SMALL_CROPS, build_tiny, offline_weights  # noqa: F401  (fixture)

from cirbench.evaluation.evaluate import EvaluationSettings, evaluate

distributed = pytest.importorskip("distributed", reason="Dask's distributed package (pip install 'cirbench[dist]')")


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["task", "image", "metric"]).reset_index(drop=True)


def test_a_dask_run_scores_like_a_local_run_and_resumes(tmp_path: Path) -> None:
    local_ds = build_tiny(tmp_path / "local", SMALL_CROPS)
    remote_ds = Path(shutil.copytree(local_ds, tmp_path / "remote" / "tiny"))
    local = evaluate(local_ds, EvaluationSettings(model="tv-chambolle", profile="basicsr-y"))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        settings = EvaluationSettings(model="tv-chambolle", profile="basicsr-y", scheduler=cluster.scheduler_address,
                                      tasks=("JPEG_10",))  # fmt: skip
        first = evaluate(remote_ds, settings)
        assert first.record["tasks_complete"] == ["JPEG_10"] and first.evaluated == 3
        rest = evaluate(remote_ds, EvaluationSettings(model="tv-chambolle", profile="basicsr-y",
                                                      scheduler=cluster.scheduler_address))  # fmt: skip
    assert rest.evaluated == 6 and rest.reused == 3 and rest.run_dir.name == first.run_dir.name  # resumed
    pd.testing.assert_frame_equal(_sorted(rest.scores), _sorted(local.scores))
    assert rest.record["identity"] == local.record["identity"]  # the same run, wherever it ran
