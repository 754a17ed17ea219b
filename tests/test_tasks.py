"""Task sets: MoE-DiffIR names, ids and folders exactly as the authors' code; clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_taskset

from cirbench.errors import ConfigError
from cirbench.tasks import load_taskset

# MoE-DiffIR basicsr/data/CIR_dataset.py de_dict and test.py folder list, in order.
DE_DICT = {
    "JPEG_10": 0, "JPEG_15": 1, "JPEG_20": 2, "VVC_47": 3, "VVC_42": 4, "VVC_37": 5, "HEVC_47": 6, "HEVC_42": 7,
    "HEVC_37": 8, "WEBP_1": 9, "WEBP_5": 10, "WEBP_10": 11, "PSNR_1": 12, "PSNR_2": 13, "PSNR_3": 14, "SSIM_1": 15,
    "SSIM_2": 16, "SSIM_3": 17, "HIFI_1": 18, "HIFI_2": 19, "HIFI_3": 20,
}  # fmt: skip
TEST_FOLDERS = [
    "JPEG_10", "JPEG_15", "JPEG_20", "VTM_47", "VTM_42", "VTM_37", "HM_47", "HM_42", "HM_37", "WEBP_1", "WEBP_5",
    "WEBP_10", "PSNR_1", "PSNR_2", "PSNR_3", "SSIM_1", "SSIM_2", "SSIM_3", "HIFIC_1", "HIFIC_2", "HIFIC_3",
]  # fmt: skip


def test_moe_diffir_21_names_ids_and_folders() -> None:
    taskset = load_taskset("moe-diffir-21")
    assert {t.name: t.id for t in taskset.tasks} == DE_DICT
    assert [t.folder for t in sorted(taskset.tasks, key=lambda t: t.id)] == TEST_FOLDERS
    assert [t.id for t in taskset.tasks] == list(range(21))


def test_moe_diffir_21_levels_and_codecs() -> None:
    tasks = {t.name: t for t in load_taskset("moe-diffir-21").tasks}
    assert tasks["JPEG_15"].params["quality"] == 15 and tasks["JPEG_15"].codec == "jpeg"
    assert tasks["VVC_42"].params == {**tasks["VVC_42"].params, "qp": 42, "bit_depth": 10, "chroma": "420"}
    assert tasks["HEVC_37"].params["qp"] == 37 and tasks["HEVC_37"].params["bit_depth"] == 8
    assert tasks["WEBP_10"].params == {"quality": 10, "method": 4}
    assert tasks["PSNR_2"].params["metric"] == "mse" and tasks["SSIM_3"].params["metric"] == "ms-ssim"
    assert [tasks[f"HIFI_{i}"].params["level"] for i in (1, 2, 3)] == ["low", "med", "high"]
    assert sum(t.kind == "learned" for t in tasks.values()) == 9


def test_unseen_tasks() -> None:
    tasks = load_taskset("unseen").tasks
    assert [t.name for t in tasks] == ["JPEG_5", "JPEG_25", "AVC_47", "AVC_42", "AVC_37"]
    assert all(t.id is None for t in tasks)
    assert [t.params["qp"] for t in tasks if t.codec == "avc"] == [47, 42, 37]


def test_a_copied_and_edited_file_loads(tmp_path: Path) -> None:
    path = write_taskset(tmp_path / "mine.toml", [{"name": "JPEG_30", "codec": "jpeg", "family": "JPEG", "level": 30, "params": {"quality": 30}}], {"jpeg": {"subsampling": "4:4:4"}})
    taskset = load_taskset(str(path))
    assert taskset.tasks[0].params == {"subsampling": "4:4:4", "quality": 30} and len(taskset.sha256) == 64


@pytest.mark.parametrize(
    ("tasks", "message"),
    [
        ([{"name": "A", "codec": "jpeg", "family": "JPEG"}], "missing level"),
        ([{"name": "A", "codec": "jpeg", "family": "J", "level": 1, "qualty": 3}], "unknown keys"),
        ([{"name": "A", "codec": "jpeg", "family": "J", "level": 1, "folder": "../x"}], "invalid folder"),
        ([{"name": "A", "codec": "jpeg", "family": "J", "level": 1, "folder": "HR"}], "invalid folder"),
        ([{"name": "A", "codec": "jpeg", "family": "J", "level": 1}, {"name": "a", "codec": "jpeg", "family": "J", "level": 2}], "duplicate task name"),
        ([{"name": "A", "codec": "jpeg", "family": "J", "level": 1, "id": -1}], "non-negative"),
    ],
)
def test_bad_task_sets_name_the_problem(tmp_path: Path, tasks: list[dict], message: str) -> None:
    path = write_taskset(tmp_path / "bad.toml", tasks)
    with pytest.raises(ConfigError, match=message):
        load_taskset(str(path))


def test_unknown_names_and_broken_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown task set"):
        load_taskset("moe-diffir-22")
    broken = tmp_path / "broken.toml"
    broken.write_text("[[task]\nname=", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_taskset(str(broken))
