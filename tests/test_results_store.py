"""The results store under one bad run: failed, interrupted, corrupt and junk runs are listed, isolated, never silent.

Also: every model error is one line naming the model, the task and the image; outputs far outside [0, 1] are refused.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO
from test_evaluate import offline_weights, tiny, tiny_master  # noqa: F401  (fixtures)

from cirbench.cli import main
from cirbench.compare.leaderboard import build_leaderboard
from cirbench.compare.report import write_report
from cirbench.dataset.reader import BuiltDataset
from cirbench.evaluation.evaluate import EvaluationSettings, evaluate
from cirbench.evaluation.protocols import ProtocolError
from cirbench.evaluation.results import ResultsStore
from cirbench.evaluation.runs import list_runs, prunable, remove_runs, show_run
from cirbench.models import ModelError, ModelInfo

CIRBENCH = Path(sys.executable).with_name("cirbench")
EXAMPLE = REPO / "examples" / "example_model"


@pytest.fixture(autouse=True)
def example_on_path(monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLE))  # `example_model:create`, as `PYTHONPATH=examples/example_model`


class Scripted:
    """A blind model whose output per call is decided by ``reply(lq, call_index, task_of_call)``."""

    def __init__(self, name: str, reply, version: str = "1", not_a_result: str = "") -> None:
        self.info = ModelInfo(name=name, version=version, needs_task_label=True, not_a_result=not_a_result)
        self.reply, self.calls = reply, 0

    def restore(self, lq: torch.Tensor, task):
        self.calls += 1
        return self.reply(lq, self.calls, task)

    def to(self, device: str) -> Scripted:
        return self


def _fail_on(task_name: str):
    def reply(lq, _call, task):
        if task.name == task_name:
            raise RuntimeError("boom")
        return lq

    return reply


def _statuses(dataset: Path) -> dict[str, str]:
    return {s.label: s.status for s in list_runs(dataset)}


def test_a_failed_run_keeps_its_finished_tasks_is_named_and_resumes(tiny: Path) -> None:
    flaky = Scripted("flaky", _fail_on("JPEG_30"))
    with pytest.raises(ModelError, match=r"model 'flaky' raised RuntimeError on tiny/img\d \(JPEG_30\): boom"):
        evaluate(tiny, EvaluationSettings(model=flaky))
    (summary,) = list_runs(tiny)
    assert summary.status == "failed" and summary.tasks_done == 1 and summary.tasks_total == 3
    assert re.search(r"raised RuntimeError on tiny/img\d \(JPEG_30\): boom", summary.reason) and summary.pairs == 3
    board = build_leaderboard([BuiltDataset.open(tiny)])
    assert board.table.set_index("method").loc["flaky", "tasks"] == "1/3"  # its finished task is in the table
    assert any("run flaky (full, cirbench) is failed" in note and "1/3 tasks" in note for note in board.notes)
    fixed = Scripted("flaky", lambda lq, _c, _t: lq)  # same name and version: the same run, resumed
    outcome = evaluate(tiny, EvaluationSettings(model=fixed))
    assert outcome.evaluated == 6 and outcome.reused == 3 and fixed.calls == 6  # JPEG_10 was not run again
    assert outcome.record["status"] == "complete" and outcome.record["failure"] is None
    assert _statuses(tiny) == {"flaky": "complete", "identity": "complete"}


def test_a_run_that_fails_before_its_first_pair_leaves_no_folder_and_poisons_nothing(tiny: Path) -> None:
    evaluate(tiny, EvaluationSettings(model="tv-chambolle"))
    with pytest.raises(ProtocolError, match="crop256 needs both sides >= 256"):
        evaluate(tiny, EvaluationSettings(model="tv-chambolle", protocol="crop256"))
    assert [s.protocol for s in list_runs(tiny)] == ["full"]
    # a later leaderboard and report (the CLI, as a user runs them) make the identity row of the full protocol only
    result = subprocess.run([str(CIRBENCH), "leaderboard", str(tiny), "--summary"], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "CIRBENCH_OFFLINE": "1"})  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines()]
    assert {"identity", "tv-chambolle"} <= {words[1] for words in lines if words and words[0].isdigit()}
    assert "crop256" not in result.stderr
    assert sorted(s.protocol for s in list_runs(tiny)) == ["full", "full"]
    # a group whose identity row cannot be made says so in one line, and the rest is produced
    with pytest.raises(ProtocolError):
        evaluate(tiny, EvaluationSettings(model="identity", protocol="crop256"))
    flaky = Scripted("partial", _fail_on("JPEG_30"))
    with pytest.raises(ModelError):
        evaluate(tiny, EvaluationSettings(model=flaky, protocol="resize256"))
    board = build_leaderboard([BuiltDataset.open(tiny)])
    assert set(board.table["protocol"]) == {"full", "resize256"}
    assert not any("crop256" in note for note in board.notes)  # no run of crop256: nothing is attempted there
    assert len(write_report(tiny, tiny.parent / "report").plots) > 0


def test_a_corrupt_score_file_isolates_its_run_and_everything_else_works(tiny: Path, tmp_path: Path, capsys) -> None:
    evaluate(tiny, EvaluationSettings(model="identity"))
    broken = evaluate(tiny, EvaluationSettings(model="tv-chambolle")).run_dir
    evaluate(tiny, EvaluationSettings(model="tv-chambolle", model_options={"weight": 0.05}))
    scores = broken / "scores.parquet"
    scores.write_bytes(scores.read_bytes()[: scores.stat().st_size // 2])  # truncated
    status = {s.path.name: (s.status, s.reason) for s in list_runs(tiny)}
    assert status[broken.name][0] == "unreadable" and "scores.parquet: unreadable score file" in status[broken.name][1]
    assert "--force" in status[broken.name][1] and f"cirbench runs rm {broken}" in status[broken.name][1]
    assert sum(state == "complete" for state, _ in status.values()) == 2
    board = build_leaderboard([BuiltDataset.open(tiny)])
    assert sorted(board.table["method"]) == ["identity", "tv-chambolle[weight=0.05]"]
    assert any("is unreadable and left out" in note and broken.name in note for note in board.notes)
    assert main(["compare", "tv-chambolle[weight=0.05]", "identity", str(tiny)]) == 0
    write_report(tiny, tmp_path / "report")
    assert broken.name in (tmp_path / "report" / "index.html").read_text()
    evaluate(tiny, EvaluationSettings(model="example_model:create", metrics=("psnr",)))  # another method still runs
    capsys.readouterr()
    assert main(["evaluate", str(tiny), "--model", "tv-chambolle"]) == 1  # the broken run itself: how to repair it
    err = " ".join(capsys.readouterr().err.split())
    assert "unreadable score file" in err and "--force" in err and "Traceback" not in err
    assert main(["evaluate", str(tiny), "--model", "tv-chambolle", "--force"]) == 0
    (broken / "record.json").write_text("{ not json")
    assert _statuses(tiny)[broken.name] == "unreadable" and len(list_runs(tiny)) == 4


def test_runs_lists_shows_removes_and_prunes(tiny: Path, capsys) -> None:
    evaluate(tiny, EvaluationSettings(model="identity", tasks=("JPEG_10",)))  # partial
    evaluate(tiny, EvaluationSettings(model="example_model:create", metrics=("psnr",)))  # untrained: not a result
    with pytest.raises(ModelError):
        evaluate(tiny, EvaluationSettings(model=Scripted("flaky", _fail_on("JPEG_30"))))
    killed = evaluate(tiny, EvaluationSettings(model="tv-chambolle")).run_dir
    record = json.loads((killed / "record.json").read_text())
    (killed / "record.json").write_text(json.dumps({**record, "status": "running"}))  # as kill -9 leaves it
    (tiny / "results" / "runs" / "leftover").mkdir()
    by_model = {s.model or s.path.name: s for s in list_runs(tiny)}
    assert {k: s.status for k, s in by_model.items()} == {
        "identity": "partial", "example-residual": "complete", "flaky": "failed", "tv-chambolle": "interrupted",
        "leftover": "empty",
    }  # fmt: skip
    assert not by_model["example-residual"].is_result and by_model["example-residual"].not_a_result == "untrained example weights"
    assert by_model["identity"].is_result and by_model["identity"].tasks_done == 1 and by_model["identity"].pairs == 3
    assert by_model["tv-chambolle"].size_bytes > 0 and by_model["tv-chambolle"].created
    assert main(["runs", str(tiny)]) == 0
    listing = capsys.readouterr().out
    for fragment in ("partial", "failed", "interrupted", "empty", "no: untrained example weights", "1/3", "flaky"):
        assert fragment in listing, fragment
    assert main(["runs", str(tiny), "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 5
    shown = show_run(killed)
    assert shown["summary"]["status"] == "interrupted" and shown["record"]["model"]["name"] == "tv-chambolle"
    assert main(["runs", "show", str(killed)]) == 0 and '"clamped_pixels"' in capsys.readouterr().out
    assert sorted(s.status for s in prunable(tiny)) == ["empty", "failed"]
    assert main(["runs", "prune", str(tiny), "--yes"]) == 0
    assert sorted(s.status for s in list_runs(tiny)) == ["complete", "interrupted", "partial"]
    assert main(["runs", "rm", str(killed), "--yes"]) == 0 and not killed.exists()
    with pytest.raises(Exception, match="is not a run folder"):
        remove_runs([tiny / "HR"])
    assert main(["runs", "rm", str(tiny / "HR"), "--yes"]) == 1
    assert "is not a run folder" in capsys.readouterr().err


def _returns(value_of):
    return Scripted("x", lambda lq, _c, _t: value_of(lq))


@pytest.mark.parametrize(
    ("value_of", "message"),
    [
        (lambda lq: lq.numpy(), r"model 'x' returned a numpy\.ndarray on tiny/img\d \(JPEG_10\); return a torch\.Tensor"),
        (lambda lq: (lq * 255).to(torch.uint8), r"returned dtype uint8 on tiny/img\d \(JPEG_10\); return float values in \[0, 1\]"),
        (lambda lq: lq.to(torch.int64), r"returned dtype int64 on .*; return float values in \[0, 1\]"),
        (lambda lq: None, r"model 'x' returned None on tiny/img\d \(JPEG_10\)"),
        (lambda lq: torch.empty(lq.shape, device="meta"), r"returned a tensor on device meta on tiny/img\d \(JPEG_10\)"),
        (lambda lq: lq[..., :8, :8], r"returned shape \[1, 3, 8, 8\] for an input of \[1, 3, \d+, \d+\]"),
        (lambda lq: lq * 255.0, r"outside \[0, 1\] on tiny/img\d \(JPEG_10\) .*: max 25\d[.\d]*: did you return 0\.\.255\?"),
        (lambda lq: lq * 2 - 1, r"min -\d[.\d]*: did you return -1\.\.1\?"),
        (lambda lq: lq / 0, r"model 'x' returned NaN or inf on tiny/img\d \(JPEG_10\)"),
    ],
)
def test_every_model_error_names_the_model_the_task_and_the_image(tiny: Path, value_of, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        evaluate(tiny, EvaluationSettings(model=_returns(value_of)))
    assert not list_runs(tiny)  # nothing was scored: nothing is left behind


def test_small_excursions_are_clamped_and_counted(tiny: Path, capsys) -> None:
    def nudge(lq):
        out = lq.clone()
        out[..., 0, :4] = 1.0 + 0.5 / 255  # 4 pixels per image just above 1
        out[..., 1, :2] = -0.5 / 255
        return out

    outcome = evaluate(tiny, EvaluationSettings(model=_returns(nudge)))
    assert outcome.record["status"] == "complete" and outcome.record["clamped_pixels"] == 9 * 6
    assert main(["runs", "show", str(outcome.run_dir)]) == 0 and '"clamped_pixels": 54' in capsys.readouterr().out


def test_the_cli_names_the_model_for_a_raising_factory_and_a_bad_output(tiny: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    (tmp_path / "mymodels.py").write_text(
        "import numpy as np\n"
        "from cirbench.models import ModelInfo\n"
        "class Numpy:\n"
        "    info = ModelInfo(name='numpy-model', version='1', needs_task_label=False)\n"
        "    def restore(self, lq, task):\n"
        "        return np.zeros(tuple(lq.shape), np.float32)\n"
        "    def to(self, device):\n"
        "        return self\n"
        "def good(checkpoint=None, device='cpu'):\n"
        "    return Numpy()\n"
        "def broken(checkpoint=None, device='cpu'):\n"
        "    raise RuntimeError('no GPU here')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["evaluate", str(tiny), "--model", "mymodels:broken"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "error: model factory 'mymodels:broken' raised RuntimeError: no GPU here" in err and "internal" not in err
    assert main(["evaluate", str(tiny), "--model", "mymodels:good"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert re.search(r"model 'numpy-model' returned a numpy\.ndarray on tiny/img\d \(JPEG_10\); return a torch\.Tensor", err)
    assert "internal error" not in err and not list_runs(tiny)


def test_an_interrupted_evaluation_is_marked_and_resumes(tiny: Path) -> None:
    def reply(lq, call, _task):
        if call == 4:
            raise KeyboardInterrupt
        return lq

    with pytest.raises(KeyboardInterrupt):
        evaluate(tiny, EvaluationSettings(model=Scripted("ctrl-c", reply)))
    (summary,) = list_runs(tiny)
    assert summary.status == "interrupted" and summary.tasks_done == 1 and summary.reason == "interrupted (Ctrl-C)"
    outcome = evaluate(tiny, EvaluationSettings(model=Scripted("ctrl-c", lambda lq, _c, _t: lq)))
    assert outcome.reused == 3 and outcome.record["status"] == "complete"


def test_non_results_carry_is_result_false(tiny: Path) -> None:
    evaluate(tiny, EvaluationSettings(model=Scripted("random", lambda lq, _c, _t: lq, not_a_result="seeded random weights")))
    (record,) = [r for _, r in ResultsStore(tiny / "results").runs()]
    assert record["is_result"] is False and record["not_a_result"] == "seeded random weights"
    (summary,) = list_runs(tiny)
    assert not summary.is_result


def _read_only_runner(dataset: Path):
    """Run the CLI on ``dataset`` made read-only: a read-only bind mount in a private mount namespace for root
    (who writes through permission bits), else permission bits."""
    env = {**os.environ, "CIRBENCH_OFFLINE": "1"}
    if os.geteuid() != 0:
        for folder, _, files in os.walk(dataset):
            for name in files:
                os.chmod(os.path.join(folder, name), 0o444)
            os.chmod(folder, 0o555)
        return lambda *args: subprocess.run([str(CIRBENCH), *args], capture_output=True, text=True, timeout=300, env=env)
    unshare = shutil.which("unshare")
    probe = subprocess.run([unshare or "unshare", "-m", "true"], capture_output=True) if unshare else None
    if probe is None or probe.returncode != 0:
        pytest.skip("a read-only dataset for root needs util-linux `unshare -m` (mount namespaces)")

    def run(*args: str) -> subprocess.CompletedProcess:
        inner = (f"mount --bind {dataset} {dataset} && mount -o remount,ro,bind {dataset} && exec "
                 + " ".join([str(CIRBENCH), *args]))  # fmt: skip
        return subprocess.run([unshare, "-m", "sh", "-c", inner], capture_output=True, text=True, timeout=300, env=env)

    return run


def test_a_read_only_dataset_prints_a_complete_run_and_refuses_a_new_one(tiny: Path) -> None:
    evaluate(tiny, EvaluationSettings(model="identity"))
    cli = _read_only_runner(tiny)
    done = cli("evaluate", str(tiny), "--model", "identity")
    assert done.returncode == 0, done.stderr
    assert "0 pairs restored, 9 reused" in " ".join(done.stdout.split()) and "JPEG_10" in done.stdout
    new = cli("evaluate", str(tiny), "--model", "tv-chambolle")
    assert new.returncode == 1 and "Traceback" not in new.stderr
    assert f"the dataset folder {tiny} is read-only" in " ".join(new.stderr.split())
    assert len([s for s in list_runs(tiny)]) == 1


def test_clamped_pixel_count_is_exact_against_numpy(tiny: Path) -> None:
    rng, outputs = np.random.default_rng(0), []

    def noisy(lq):
        out = lq + torch.from_numpy(rng.uniform(-0.003, 0.003, tuple(lq.shape)).astype(np.float32))
        outputs.append(out.numpy().copy())
        return out

    outcome = evaluate(tiny, EvaluationSettings(model=_returns(noisy), tasks=("JPEG_10",)))
    expected = sum(int(((o < 0) | (o > 1)).any(axis=1).sum()) for o in outputs)
    assert expected > 0 and outcome.record["clamped_pixels"] == expected
