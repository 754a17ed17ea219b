"""Hardening of the command line: usage errors, bad model options and internal errors are one line, never a traceback.

Usage errors run through a real subprocess (the installed console script), as a user meets them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from test_evaluate import SMALL_CROPS, build_tiny, offline_weights  # noqa: F401  (fixture)

from cirbench.cli import main

CIRBENCH = Path(sys.executable).with_name("cirbench")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(CIRBENCH), *args], capture_output=True, text=True, timeout=120, cwd=REPO)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("cli"), SMALL_CROPS[:1])


def test_no_arguments_prints_the_help_and_exits_0() -> None:
    result = _run()
    assert result.returncode == 0 and "Usage" in result.stdout and "build" in result.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["evalute"], "No such command 'evalute'"),
        (["build", "--bogus"], "No such option: --bogus"),
        (["build"], "Missing argument"),
        (["evaluate", "x"], "Missing option '--model'"),
        (["build", "a", "b", "--jobs", "0"], "--jobs"),
        (["evaluate", "x", "--model", "identity", "--batch", "0"], "--batch"),
        (["build", "a", "b", "--tasks", "moe-diffir-21"], "Use --task-set moe-diffir-21"),
        (["build", "a", "b", "--name", "../escape"], "must be one folder name"),
        (["build", "a", "b", "--scheduler", "notaurl"], "not a Dask scheduler address (tcp://HOST:PORT"),
        (["evaluate", "x", "--model", "identity", "--scheduler", "notaurl"], "not a Dask scheduler address"),
        (["evaluate", "x", "--model", "identity", "--device", "banana"], "device 'banana' is not one of cpu, cuda, cuda:N or mps"),
        (["score", "a", "b", "--device", "banana"], "is not one of cpu, cuda, cuda:N or mps"),
        (["train", "promptcir-s", "--data", "x", "--device", "banana"], "is not one of cpu, cuda, cuda:N or mps"),
        (["rescore", "x", "--device", "cuda:x"], "device 'cuda:x' is not one of"),
    ],
)
def test_usage_errors_print_the_short_usage_and_exit_2(args: list[str], fragment: str) -> None:
    result = _run(*args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "Usage:" in result.stderr
    assert fragment in " ".join(result.stderr.split())
    assert len(result.stderr.strip().splitlines()) <= 8


def test_device_and_scheduler_forms_are_checked_in_the_library_too(dataset: Path) -> None:
    from cirbench.build.runner import check_scheduler
    from cirbench.errors import ConfigError
    from cirbench.evaluation.evaluate import EvaluationSettings, evaluate
    from cirbench.models import check_device

    for good in ("cpu", "cuda", "cuda:1", "mps"):
        assert check_device(good) == good
    for good in ("tcp://10.0.0.5:8786", "127.0.0.1:8786", "inproc://10.0.0.5/1234/1", "tls://sched:8786"):
        assert check_scheduler(good) == good
    for bad in ("banana", "cuda:", "CPU", "gpu0"):
        with pytest.raises(ConfigError, match="is not one of"):
            evaluate(dataset, EvaluationSettings(model="identity", device=bad))
    for bad in ("notaurl", "http://x:1", "tcp://", "host:port", "a b:1"):
        with pytest.raises(ConfigError, match="not a Dask scheduler address"):
            check_scheduler(bad)


def test_bad_model_option_and_non_factory_callables_are_one_line(dataset: Path, capsys) -> None:
    for args, fragment in (
        (["--model", "tv-chambolle", "-O", "weight=abc"], "option weight='abc': expected float"),
        (["--model", "os:system"], "'os:system' is not a model factory"),
    ):
        assert main(["evaluate", str(dataset), *args]) == 1
        err = capsys.readouterr().err
        assert fragment in " ".join(err.split()) and "Traceback" not in err
        assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(dataset: Path, monkeypatch, capsys) -> None:
    import cirbench.dataset.summary as summary

    def broken(*_args, **_kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(summary, "summarise_dataset", broken)
    assert main(["info", str(dataset)]) == 1
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: boom" in err and "--debug" in err and "Traceback" not in err
    assert main(["--debug", "info", str(dataset)]) == 1
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_no_torchscript_warning_and_unwrapped_weight_names() -> None:
    result = subprocess.run([str(CIRBENCH), "weights", "list"], capture_output=True, text=True, timeout=120,
                            cwd=REPO, env={**__import__("os").environ, "COLUMNS": "80"})  # fmt: skip
    assert result.returncode == 0 and "torch.jit.script" not in result.stderr
    assert "cheng2020_anchor-ms-ssim-1-20f521db.pth.tar" in result.stdout  # one line, even in 80 columns
