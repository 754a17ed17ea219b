"""Hardening of weights and locks: imports check safety and layout, unverified is not a failure, atomic locks.

Issue 17, items 10-12; the official layouts in ../shared/reference are the oracle for `weights keys`.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from conftest import REPO
from test_weights_manager import meta_hific_file

from cirbench.cli import main
from cirbench.weights.layouts import LayoutError, check_file, expected_layout, file_tensors

REFERENCE = REPO.parent / "shared" / "reference"


@pytest.fixture()
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("CIRBENCH_OFFLINE", "1")
    return tmp_path / "torch" / "hub" / "checkpoints"


class _Payload:
    def __reduce__(self):
        return (Path.touch, (Path("/tmp/cirbench-pwned-by-import"),))


def test_import_refuses_random_bytes_and_pickles_for_unhashed_files(cache: Path, tmp_path: Path, capsys) -> None:
    random_bytes = tmp_path / "a" / "hific_low.pt"
    random_bytes.parent.mkdir()
    random_bytes.write_bytes(bytes(range(256)) * 40)
    pickled = tmp_path / "b" / "promptcir_model_best.pth"
    pickled.parent.mkdir()
    pickled.write_bytes(pickle.dumps({"weight": _Payload()}))
    marker = Path("/tmp/cirbench-pwned-by-import")
    marker.unlink(missing_ok=True)
    for path, reason in ((random_bytes, "was not imported"), (pickled, "pickled Python objects")):
        assert main(["weights", "import", str(path)]) == 1
        err = " ".join(capsys.readouterr().err.split())
        assert "not imported" in err and reason in err and "imported " not in err.replace("not imported", "")
        assert not (cache / path.name).exists()
    assert not marker.exists()


def test_import_refuses_a_wrong_layout_and_names_the_keys(cache: Path, tmp_path: Path, capsys) -> None:
    wrong = tmp_path / "hific_med.pt"
    torch.save({"model_state_dict": {"Encoder.conv_block1.1.weight": torch.zeros(2, 2)}}, wrong)
    assert main(["weights", "import", str(wrong)]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "missing keys" in err and "mis-shaped keys" in err and "Encoder.conv_block1.1.weight" in err


def test_unverified_files_are_not_a_verify_failure(cache: Path, tmp_path: Path, capsys) -> None:
    assert main(["weights", "import", str(meta_hific_file(tmp_path / "hific_hi.pt"))]) == 0
    capsys.readouterr()
    assert main(["weights", "verify"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "unverified" in out and "download again" not in out


def _official_entries(official: dict) -> dict[str, tuple[list[int], str]]:
    """key -> (shape, dtype) of a reference manifest: its 'keys' rows plus, for HiFiC, the discriminator's."""
    rows = official["keys"] + official.get("discriminator", {}).get("keys", [])
    return {key: (list(shape), dtype) for key, shape, dtype in rows}


@pytest.mark.parametrize(
    ("filename", "manifest"),
    [("promptcir_model_best.pth", "promptcir_state_dict_keys.json"), ("hific_low.pt", "hific_state_dict_keys.json")],
)
def test_weights_keys_prints_the_official_layout(filename: str, manifest: str, capsys) -> None:
    assert main(["weights", "keys", filename]) == 0
    printed = {entry["key"]: entry for entry in json.loads(capsys.readouterr().out)}
    official = _official_entries(json.loads((REFERENCE / manifest).read_text()))
    assert set(printed) == set(official)
    for key, (shape, dtype) in official.items():  # every key has its exact shape (the discriminator's too)
        assert printed[key]["shape"] == shape and printed[key]["dtype"] == dtype, key


def test_weights_check_compares_a_local_file_without_building_the_model(tmp_path: Path, capsys) -> None:
    good = meta_hific_file(tmp_path / "mine.pt")
    assert main(["weights", "check", str(good), "--as", "hific_low.pt"]) == 0
    state = torch.load(good, map_location="meta", weights_only=True)
    state["model_state_dict"].pop("Encoder.conv_block1.1.weight")
    state["model_state_dict"]["extra.bias"] = torch.zeros(3)
    torch.save(state, tmp_path / "broken.pt")
    capsys.readouterr()
    assert main(["weights", "check", str(tmp_path / "broken.pt"), "--as", "hific_low.pt"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "missing keys (1): Encoder.conv_block1.1.weight" in err and "unexpected keys (1): extra.bias" in err
    with pytest.raises(LayoutError, match="no 'nested' entry"):
        file_tensors(tmp_path / "broken.pt", ("model_state_dict", "nested"))
    assert check_file(good, "hific_med.pt").ok and len(expected_layout("hific_med.pt").tensors) == 168
