"""`cirbench weights` tests: list, import, verify, download (through a local file:// URL), tampering, offline.

Canonical files cannot be fetched here, so each test makes a small file and registers a spec whose hash matches.
"""

from __future__ import annotations

import pytest
import torch

import cirbench.weights.manager as weights_module
from cirbench.cli import main
from cirbench.fileio import sha256_file
from cirbench.weights.manager import WeightFile, WeightsCorrupt, catalogue, ensure_weight

ALEX_FILE = "alexnet-owt-7be5be79.pth"


@pytest.fixture
def cache(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("CIRBENCH_OFFLINE", raising=False)
    return tmp_path / "torch" / "hub" / "checkpoints"


def _made_file(monkeypatch, folder, seed: int = 0, url: str | None = None):
    """A small state_dict saved under the canonical AlexNet name; the catalogue entry is patched to its hash."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ALEX_FILE
    torch.manual_seed(seed)
    torch.save({"features.0.weight": torch.randn(4, 3, 3, 3)}, path)
    original = catalogue()[ALEX_FILE]
    spec = WeightFile(ALEX_FILE, url or original.url, sha256_file(path)[:8], original.purpose, original.licence)
    monkeypatch.setitem(weights_module._CATALOGUE, ALEX_FILE, spec)
    return path


def test_list_shows_canonical_metric_files_and_status(cache, capsys):
    assert main(["weights", "list", "--plain"]) == 0
    rows = {line.split("\t")[0]: line.split("\t") for line in capsys.readouterr().out.splitlines()}
    for name in ("pt_inception-2015-12-05-6726825d.pth", "alexnet-owt-7be5be79.pth"):  # what the defaults need
        assert rows[name][1] == "missing" and rows[name][2] == "-" and rows[name][4].startswith("https://")
    assert "metric lpips" in rows["alexnet-owt-7be5be79.pth"][3] and "task HIFI_1" in rows["hific_low.pt"][3]
    assert "model promptcir" in rows["promptcir_model_best.pth"][3]
    assert "vgg16-397923af.pth" not in rows  # nothing needs it by default
    assert main(["weights", "list", "--plain", "--all"]) == 0
    assert "vgg16-397923af.pth" in capsys.readouterr().out
    assert main(["weights", "list"]) == 0
    assert "weights cache" in capsys.readouterr().out


def test_download_offline_is_one_line_per_file(cache, capsys, monkeypatch):
    monkeypatch.setenv("CIRBENCH_OFFLINE", "1")
    assert main(["weights", "download", "alexnet-owt-7be5be79.pth", "vgg16-397923af.pth"]) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 3 and all("downloads are off" in line for line in lines[:2]), err
    assert "2 file(s) not downloaded" in lines[2]


def test_import_then_verify_then_tamper(monkeypatch, cache, tmp_path, capsys):
    source = _made_file(monkeypatch, tmp_path / "elsewhere")
    assert main(["weights", "import", str(source)]) == 0
    assert (cache / ALEX_FILE).read_bytes() == source.read_bytes()
    assert main(["weights", "verify", ALEX_FILE]) == 0
    with open(cache / ALEX_FILE, "r+b") as handle:
        handle.seek(10)
        handle.write(b"XX")
    capsys.readouterr()
    assert main(["weights", "verify", ALEX_FILE]) == 1
    assert "corrupt" in capsys.readouterr().err
    with pytest.raises(WeightsCorrupt):
        ensure_weight(ALEX_FILE)


def test_import_rejects_a_file_with_the_wrong_hash(monkeypatch, cache, tmp_path, capsys):
    _made_file(monkeypatch, tmp_path / "made")
    impostor = tmp_path / "impostor" / ALEX_FILE
    impostor.parent.mkdir()
    impostor.write_bytes(b"not the canonical weights")
    assert main(["weights", "import", str(impostor)]) == 1
    assert "sha256" in capsys.readouterr().err
    assert not (cache / ALEX_FILE).exists()


def test_download_verifies_and_renames_atomically(monkeypatch, cache, tmp_path, capsys):
    source = _made_file(monkeypatch, tmp_path / "host")
    original = weights_module._CATALOGUE[ALEX_FILE]
    spec = WeightFile(ALEX_FILE, source.as_uri(), original.sha256_prefix, original.purpose, original.licence)
    monkeypatch.setitem(weights_module._CATALOGUE, ALEX_FILE, spec)
    assert main(["weights", "download", ALEX_FILE]) == 0
    assert sha256_file(cache / ALEX_FILE) == sha256_file(source)
    assert not [p for p in cache.iterdir() if p.name.endswith(".part")]


def test_download_of_a_tampered_host_file_leaves_nothing(monkeypatch, cache, tmp_path, capsys):
    source = _made_file(monkeypatch, tmp_path / "host")
    original = weights_module._CATALOGUE[ALEX_FILE]
    monkeypatch.setitem(
        weights_module._CATALOGUE,
        ALEX_FILE,
        WeightFile(ALEX_FILE, source.as_uri(), original.sha256_prefix, original.purpose),
    )
    source.write_bytes(source.read_bytes() + b"tampered")
    assert main(["weights", "download", ALEX_FILE]) == 1
    assert "expected a digest starting with" in capsys.readouterr().err
    assert not cache.exists() or not list(cache.iterdir())


def test_offline_download_names_file_url_and_import_command(monkeypatch, cache, capsys):
    monkeypatch.setenv("CIRBENCH_OFFLINE", "1")
    assert main(["weights", "download", "pt_inception-2015-12-05-6726825d.pth"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "pt_inception-2015-12-05-6726825d.pth" in err
    assert "github.com/mseitzer/pytorch-fid/releases" in err.replace(" ", "")
    assert "cirbench weights import" in err
