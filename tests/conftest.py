"""Shared test fixtures: paths to the shared test images and small source folders cut from them.

Images come from ../shared/data (lossless Kodak, LIVE1, Classic5); crops keep codec runs fast on 2 cores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"shared test data missing: {path} (tests need ../shared/data beside the repository)")
    return path


def load_rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="module")
def torch_one_thread():
    """Tiny tensors on 2 shared cores: one intra-op thread avoids oversubscription (restored afterwards)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def kodim01() -> np.ndarray:
    return load_rgb(shared("kodak", "kodim01.png"))


@pytest.fixture()
def small_sources(tmp_path: Path) -> Path:
    """Three small sources: two colour crops (one with odd sides) and a grayscale Classic5 crop (palette BMP)."""
    folder = tmp_path / "src"
    folder.mkdir()
    Image.open(shared("kodak", "kodim01.png")).crop((100, 100, 196, 164)).save(folder / "kodim01.png")
    Image.open(shared("live1", "bikes.bmp")).crop((300, 200, 371, 253)).save(folder / "bikes.bmp")
    gray = Image.open(shared("classic5", "barbara.bmp"))
    gray.crop((200, 200, 264, 264)).save(folder / "barbara.bmp")
    return folder


def write_taskset(path: Path, tasks: list[dict], codec_defaults: dict | None = None) -> Path:
    """A minimal task-set TOML for tests."""
    lines = ['[taskset]', f'name = "{path.stem}"', ""]
    for codec, options in (codec_defaults or {}).items():
        lines.append(f"[codec.{codec}]")
        lines += [f"{k} = {_toml(v)}" for k, v in options.items()]
        lines.append("")
    for task in tasks:
        lines.append("[[task]]")
        for key, value in task.items():
            if key == "params":
                inner = ", ".join(f"{k} = {_toml(v)}" for k, v in value.items())
                lines.append(f"params = {{ {inner} }}")
            else:
                lines.append(f"{key} = {_toml(value)}")
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


TRADITIONAL_TASKS = [
    {"name": "JPEG_10", "codec": "jpeg", "family": "JPEG", "level": 10, "id": 0, "params": {"quality": 10}},
    {"name": "VVC_47", "folder": "VTM_47", "codec": "vvc", "family": "VVC", "level": 47, "id": 3, "params": {"qp": 47, "preset": "faster"}},
    {"name": "HEVC_42", "folder": "HM_42", "codec": "hevc", "family": "HEVC", "level": 42, "id": 7, "params": {"qp": 42}},
    {"name": "WEBP_5", "codec": "webp", "family": "WEBP", "level": 5, "id": 10, "params": {"quality": 5}},
    {"name": "AVC_37", "codec": "avc", "family": "AVC", "level": 37, "params": {"qp": 37}},
]


@pytest.fixture()
def five_codec_taskset(tmp_path: Path) -> Path:
    return write_taskset(tmp_path / "five.toml", TRADITIONAL_TASKS)
