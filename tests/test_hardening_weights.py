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
    printed = {entry["key"]: entry for entry in [json.loads(line) for line in capsys.readouterr().out.splitlines()]}
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


# --- issue 22, item 9: weights, exact ---------------------------------------------------------------------------


def test_the_allow_list_matches_whole_names(tmp_path: Path) -> None:
    from cirbench.weights.lightning import UnsafeCheckpoint, allowed, safe_load

    assert allowed("builtins.set") and allowed("pytorch_lightning.callbacks.ModelCheckpoint")
    for name in ("builtins.setattr", "builtins.set_trace", "numpy.dtypex", "typing.Anything", "omegaconfx.Y"):
        assert not allowed(name), name
    torch.save({"state_dict": {"w": torch.zeros(2)}, "hook": setattr}, tmp_path / "setattr.ckpt")
    with pytest.raises(UnsafeCheckpoint, match="builtins.setattr"):
        safe_load(tmp_path / "setattr.ckpt")
    torch.save({"state_dict": {"w": torch.zeros(2)}, "seen": {1, 2}}, tmp_path / "set.ckpt")
    assert torch.equal(safe_load(tmp_path / "set.ckpt")["state_dict"]["w"], torch.zeros(2))


_FAMILIES = ("cheng2020-anchor-1-", "cheng2020_attn-mse-1-")  # one CompressAI file of each architecture is enough


def test_every_key_of_every_canonical_layout_has_a_shape() -> None:
    from cirbench.weights.layouts import _BUILDERS, has_layout

    has_layout("none")  # registers every provider's layouts
    names = [n for n in sorted(_BUILDERS) if not n.startswith("cheng2020") or n.startswith(_FAMILIES)]
    assert len(names) >= 10
    for name in names:
        for key, spec in expected_layout(name).tensors.items():
            assert isinstance(spec.shape, tuple) and all(isinstance(d, int) for d in spec.shape), (name, key)
            wildcard = -1 in spec.shape  # only CompressAI's update()-sized coding tables, and only some dimensions
            assert not wildcard or key.rpartition(".")[2] in ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")


def test_a_compressai_file_after_update_matches_and_a_wrong_table_does_not(tmp_path: Path) -> None:
    from compressai.zoo import image_models

    name = "cheng2020-anchor-1-dad2ebff.pth.tar"
    network = image_models["cheng2020-anchor"](quality=1, metric="mse", pretrained=False)
    network.update(force=True)  # the coding tables as a trained model saves them
    torch.save(network.state_dict(), tmp_path / name)
    assert check_file(tmp_path / name).ok
    state = network.state_dict()
    state["entropy_bottleneck._offset"] = torch.zeros(7, dtype=state["entropy_bottleneck._offset"].dtype)
    torch.save(state, tmp_path / "bad.pth.tar")
    report = check_file(tmp_path / "bad.pth.tar", name)
    assert report.mismatched == ["entropy_bottleneck._offset [7] int32 (expected [128] int32)"]


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "it is a PNG image"),
        (b"<!DOCTYPE html><html><body>Not Found</body></html>", "it is an HTML page"),
        (b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 12\n", "it is a Git LFS pointer"),
        (b"", "it is an empty file"),
        (b"just some notes\n", "it is a text file"),
        (b"\x1f\x8b\x08\x00" + b"\0" * 20, "it is a gzip archive"),
    ],
)
def test_weights_check_and_loading_say_what_a_non_checkpoint_is(tmp_path: Path, content: bytes, kind: str, capsys) -> None:
    from cirbench.models.checkpoints import CheckpointError, load_state_dict

    path = tmp_path / "model_best.pth"
    path.write_bytes(content)
    assert main(["weights", "check", str(path), "--as", "promptcir_model_best.pth"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert f"not a torch checkpoint or safetensors file: {kind}" in err and "(101)" not in err
    with pytest.raises(CheckpointError, match=f"not a torch checkpoint or safetensors file: {kind}"):
        load_state_dict(path)


@pytest.fixture(scope="module")
def one_image_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from test_evaluate import SMALL_CROPS, build_tiny

    return build_tiny(tmp_path_factory.mktemp("one"), SMALL_CROPS[:1])


@pytest.mark.parametrize("wrapper", ["params", "params_ema", "state_dict", "model"])
def test_weights_check_and_evaluate_checkpoint_unwrap_alike_and_word_mismatches_alike(
    tmp_path: Path, wrapper: str, capsys, torch_one_thread, one_image_dataset: Path
) -> None:
    from cirbench.models.checkpoints import load_state_dict
    from cirbench.weights.layouts import state_at

    layout = expected_layout("promptcir_model_best.pth")
    state = {key: torch.zeros(spec.shape, dtype=getattr(torch, spec.dtype)) for key, spec in layout.tensors.items()}
    state["output.weight"] = torch.zeros(3, 48, 3, 3)
    path = tmp_path / "model_best.pth"
    torch.save({wrapper: state, "iter": 5}, path)
    assert set(state_at(torch.load(path, weights_only=True), (), path)) == set(load_state_dict(path)) == set(state)
    assert main(["weights", "check", str(path), "--as", "promptcir_model_best.pth"]) == 1
    checked = " ".join(capsys.readouterr().err.split())
    assert main(["evaluate", str(one_image_dataset), "--model", "promptcir", "--checkpoint", str(path)]) == 1
    loaded = " ".join(capsys.readouterr().err.split())
    words = "mis-shaped keys (1): output.weight [3, 48, 3, 3] float32 (expected [3, 96, 3, 3] float32)"
    assert words in checked and words in loaded
