"""The documented model API, end to end: examples/example_model evaluated from its folder (PYTHONPATH=.), through an
installed entry point, and as a Python object.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import REPO
from test_evaluate import SMALL_CROPS, build_tiny, offline_weights  # noqa: F401  (fixture)

from cirbench.evaluation.evaluate import EvaluationSettings, evaluate

EXAMPLE = REPO / "examples" / "example_model"
CIRBENCH = Path(sys.executable).with_name("cirbench")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("example"), SMALL_CROPS[:2])


def _record(dataset: Path, method: str) -> dict:
    runs = [p for p in (dataset / "results" / "runs").iterdir() if p.name.startswith(f"{method}-")]
    return json.loads(runs[-1].joinpath("record.json").read_text())


def _installed_env(tmp_path: Path) -> dict[str, str]:
    """PYTHONPATH holding the example module plus a dist-info with its entry points, as pip would install it."""
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(EXAMPLE / "example_model.py", site)
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    dist = site / f"cirbench_example_model-{project['version']}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    lines = [f"[{g}]\n" + "".join(f"{k} = {v}\n" for k, v in e.items()) for g, e in project["entry-points"].items()]
    (dist / "entry_points.txt").write_text("\n".join(lines))
    return {**os.environ, "PYTHONPATH": str(site)}


def test_example_model_runs_from_its_folder_and_as_an_entry_point(dataset: Path, tmp_path: Path) -> None:
    local = subprocess.run(
        [str(CIRBENCH), "evaluate", str(dataset), "--model", "example_model:create", "--tasks", "JPEG_10"],
        cwd=EXAMPLE, env={**os.environ, "PYTHONPATH": "."}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert local.returncode == 0, local.stderr
    assert _record(dataset, "example-residual")["mode"] == "blind"
    installed = subprocess.run(
        [str(CIRBENCH), "evaluate", str(dataset), "--model", "example-residual", "-O", "oracle=true", "--tasks",
         "WEBP_5", "--method", "example-oracle"],
        env=_installed_env(tmp_path), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    record = _record(dataset, "example-oracle")
    assert record["mode"] == "oracle" and record["identity"]["model_options"] == {"oracle": True}


def test_example_model_as_a_python_object(dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLE))
    import example_model

    outcome = evaluate(dataset, EvaluationSettings(model=example_model.create(seed=1), method="example-object"))
    assert outcome.record["tasks_complete"] == ["JPEG_10", "JPEG_30", "WEBP_5"] and not outcome.scores.empty
