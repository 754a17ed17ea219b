"""Evaluate with metric profiles: whole-set metrics per task, resume of set metrics, metrics skipped offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from test_evaluate import offline_weights, tiny, tiny_master  # noqa: F401  (fixtures shared with test_evaluate)

import cirbench.metrics
import cirbench.metrics.profiles as profiles
from cirbench.compare.leaderboard import build_leaderboard
from cirbench.dataset.reader import BuiltDataset, read_rgb
from cirbench.evaluation.evaluate import EvaluationSettings, evaluate
from cirbench.evaluation.results import SET_LEVEL_IMAGE
from cirbench.metrics import DistributionMetric, MetricInfo
from cirbench.models import ModelInfo


class MeanGap(DistributionMetric):
    """Test-only set metric: mean over images of the mean absolute difference (0..255 scale)."""

    info = MetricInfo("toy-gap", False, (0.0, 255.0), False, "distribution", "test metric")

    def __init__(self, device: str = "cpu") -> None:
        super().__init__(device)
        self.reset()

    def update(self, ref: torch.Tensor, test: torch.Tensor) -> None:
        self.values += (ref - test).abs().mul(255).flatten(1).mean(1).tolist()

    def compute(self) -> dict[str, Any]:
        return {"toy-gap": sum(self.values) / len(self.values), "n_images": len(self.values)}

    def reset(self) -> None:
        self.values: list[float] = []


def _profile(*specs: tuple[str, str]) -> Any:
    return profiles.Profile("test", "test profile", tuple(profiles.MetricSpec(r, m, {}) for r, m in specs))


@pytest.fixture()
def gap_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    real_create = cirbench.metrics.create_metric
    monkeypatch.setattr(profiles, "get_profile", lambda name: _profile(("psnr", "psnr"), ("gap", "toy-gap")))
    monkeypatch.setattr(
        cirbench.metrics, "create_metric", lambda name, device="cpu", **o: MeanGap(device) if name == "toy-gap" else real_create(name, device, **o)
    )



FLAKY = {"fail_on_call": None, "calls": 0}


class _FlakyIdentity:
    info = ModelInfo(name="flaky", version="1", needs_task_label=False)

    def restore(self, lq, task):
        FLAKY["calls"] += 1
        if FLAKY["calls"] == FLAKY["fail_on_call"]:
            raise KeyboardInterrupt  # what Ctrl-C raises in the middle of a run
        return lq

    def to(self, device):
        return self


def make_flaky(checkpoint=None, device="cpu"):
    return _FlakyIdentity()


def test_set_metrics_are_stored_per_task_and_rerun_whole_after_an_interruption(tiny: Path, gap_profile: None) -> None:
    settings = EvaluationSettings(model=f"{__name__}:make_flaky", profile="test")
    FLAKY.update(fail_on_call=2, calls=0)
    with pytest.raises(KeyboardInterrupt):
        evaluate(tiny, settings)
    FLAKY.update(fail_on_call=None, calls=0)
    outcome = evaluate(tiny, settings)
    assert FLAKY["calls"] == 9  # the interrupted task had no set value yet, so all its images ran again
    sets = outcome.scores[outcome.scores["image"] == SET_LEVEL_IMAGE]
    assert sorted(sets["metric"].unique()) == ["gap", "gap_n_images"]
    ds = BuiltDataset.open(tiny)
    task = ds.task("WEBP_5")
    gaps = [abs(read_rgb(ds.hr_path(s)).astype(float) - read_rgb(ds.lq_path(task, s))).mean() for s in ds.images]
    value = sets[(sets["task"] == "WEBP_5") & (sets["metric"] == "gap")]["value"].item()
    assert value == pytest.approx(sum(gaps) / len(gaps), rel=1e-6)
    assert sets[(sets["task"] == "WEBP_5") & (sets["metric"] == "gap_n_images")]["value"].item() == 3
    board = build_leaderboard([ds], profile="test", ensure_identity=False)
    assert "WEBP_5/gap" in board.table.columns and not any("n_images" in c for c in board.table.columns)
    assert board.table["WEBP_5/gap"].item() == pytest.approx(value)


def test_metric_without_weights_is_skipped_once_and_the_rest_is_scored(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    monkeypatch.setenv("CIRBENCH_OFFLINE", "1")
    specs = (("psnr", "psnr"), ("lpips", "lpips"), ("patch_fid", "patch_fid"), ("kid", "kid"))
    monkeypatch.setattr(profiles, "get_profile", lambda name: _profile(*specs))
    warnings: list[str] = []
    outcome = evaluate(tiny, EvaluationSettings(model="identity", profile="test"), warn=warnings.append)
    assert len(warnings) == 2  # one per missing file: LPIPS's AlexNet, and the Inception shared by FID and KID
    assert "'lpips'" in warnings[0] and "alexnet" in warnings[0] and "cirbench weights import" in warnings[0]
    assert "'patch_fid', 'kid'" in warnings[1] and "pt_inception" in warnings[1]
    assert set(outcome.skipped_metrics) == {"lpips", "patch_fid", "kid"}
    assert outcome.record["skipped_metrics"] == outcome.skipped_metrics
    assert set(outcome.scores["metric"]) == {"psnr"} and len(outcome.scores) == 9
