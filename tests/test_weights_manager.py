"""The shared weights manager: files without a published checksum import as 'unverified', never as corrupt.

Files with a canonical sha256 prefix are verified on import and on every use (tamper tests live in test_weights_cli).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cirbench.cli import main
from cirbench.weights.importer import import_weight
from cirbench.weights.manager import WeightsCorrupt, catalogue, ensure_weight, get_weight, weight_status


def test_catalogue_holds_metric_codec_and_model_files() -> None:
    names = set(catalogue())
    assert {"pt_inception-2015-12-05-6726825d.pth", "alexnet-owt-7be5be79.pth", "vgg16-397923af.pth"} <= names
    assert {"cheng2020-anchor-1-dad2ebff.pth.tar", "hific_low.pt", "hific_med.pt", "hific_hi.pt"} <= names
    assert any(name.startswith("promptcir") for name in names)


def meta_hific_file(path: Path) -> Path:
    """A port-style HiFiC checkpoint with the exact layout and no data (meta tensors: a few kB)."""
    import torch

    from cirbench.codecs._hific_model import HificNetwork

    with torch.device("meta"):
        network = HificNetwork()
    torch.save({"model_state_dict": network.state_dict(), "args": {"n_residual_blocks": 9}}, path)
    return path


def test_a_file_without_published_checksum_imports_as_unverified(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("CIRBENCH_OFFLINE", "1")
    spec = get_weight("hific_low.pt")
    assert not spec.has_checksum
    assert weight_status(spec) == "missing"
    downloaded = meta_hific_file(tmp_path / "hific_low.pt")  # the right layout, no data: a stand-in
    target = import_weight(downloaded)
    assert target.read_bytes() == downloaded.read_bytes()
    assert weight_status(spec) == "unverified"
    assert ensure_weight("hific_low.pt") == target
    capsys.readouterr()
    assert main(["weights", "download"]) == 1  # offline: the missing checksummed files fail ...
    text = " ".join(capsys.readouterr().out.split())
    assert "no published checksum" in text and "hific_med.pt" in text  # ... and HiFiC is not fetched unasked
    assert "hific_low.pt" not in text.split("no published checksum")[1]  # already present: not listed


def test_a_checksummed_file_with_the_wrong_bytes_is_rejected(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    fake = tmp_path / "alexnet-owt-7be5be79.pth"
    fake.write_bytes(b"not alexnet")
    with pytest.raises(WeightsCorrupt, match="expected a digest starting with 7be5be79"):
        import_weight(fake)
    assert weight_status(get_weight("alexnet-owt-7be5be79.pth")) == "missing"
