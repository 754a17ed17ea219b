"""Packaged promptcir-s weights are used only when their sha256 is the one recorded in the module; a changed,
missing or not-yet-recorded file is refused with a message saying what to do.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cirbench.fileio import sha256_file
from cirbench.models.checkpoints import save_state_dict
from cirbench.models.promptcir import SMALL_CONFIG, PromptCIRNet, WeightsNotShipped, packaged_small_weights
from cirbench.weights.manager import WeightsCorrupt


@pytest.fixture(scope="module")
def packaged(tmp_path_factory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("weights") / "promptcir-s.safetensors"
    state = {k: v.half() if v.is_floating_point() else v for k, v in PromptCIRNet(SMALL_CONFIG).state_dict().items()}
    save_state_dict(state, path)
    return path, sha256_file(path)


def test_the_recorded_file_is_accepted(packaged) -> None:
    path, digest = packaged
    assert packaged_small_weights(path, digest) == path


def test_a_changed_file_is_refused(packaged, tmp_path: Path) -> None:
    path, digest = packaged
    changed = tmp_path / path.name
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    changed.write_bytes(bytes(data))
    with pytest.raises(WeightsCorrupt, match="not the recorded"):
        packaged_small_weights(changed, digest)


def test_missing_or_unrecorded_weights_say_how_to_train_them(packaged, tmp_path: Path) -> None:
    path, digest = packaged
    with pytest.raises(WeightsNotShipped, match="missing from this installation.*cirbench train promptcir-s"):
        packaged_small_weights(tmp_path / "absent.safetensors", digest)
    with pytest.raises(WeightsNotShipped, match="not shipped yet.*cirbench train promptcir-s"):
        packaged_small_weights(path, None)
