"""DISTS and NIQE against their reference packages (DISTS_pytorch, BasicSR, pyiqa) under identical weights, the
no-reference path through evaluate and the leaderboard, and the pyiqa profile against pyiqa 0.1.16 itself.
"""

from __future__ import annotations

import io
import sys
import types
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
import torchvision
from conftest import load_rgb, shared
from PIL import Image
from test_evaluate import build_tiny

from cirbench.metrics import create_metric, metric_info
from cirbench.metrics.profiles import get_profile
from cirbench.weights.catalogue import DISTS_ALPHA_BETA, NIQE_PRISTINE
from cirbench.weights.manager import ensure_weight, packaged_copy, verify_file

# images nobody tuned for: odd sizes, portrait and landscape, a grayscale one
IMAGES = [("live1", "carnivaldolls.bmp"), ("live1", "dancers.bmp"), ("cbsd68", "101085.png"), ("cbsd68", "103070.png"),
          ("classic5", "barbara.bmp")]  # fmt: skip


def _tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255.0


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    return [load_rgb(shared(folder, name)) for folder, name in IMAGES]


@pytest.fixture(scope="module")
def basicsr_niqe():
    """BasicSR 1.4.2's calculate_niqe; its package imports torchvision.transforms.functional_tensor, which current
    torchvision no longer has: a shim module with the one function it uses makes it import."""
    import torchvision.transforms.functional as functional

    shim = types.ModuleType("torchvision.transforms.functional_tensor")
    shim.rgb_to_grayscale = functional.rgb_to_grayscale
    with mock.patch.dict(sys.modules, {"torchvision.transforms.functional_tensor": shim}):
        from basicsr.metrics import niqe as module

        yield module


@pytest.fixture(scope="module")
def random_vgg() -> torchvision.models.VGG:
    torch.manual_seed(0)
    return torchvision.models.vgg16(weights=None).eval()


@pytest.fixture(scope="module")
def alpha_beta() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return {k: torch.rand(1, 1475, 1, 1, generator=generator) * 0.2 for k in ("alpha", "beta")}


def test_dists_equals_dists_pytorch_and_pyiqa_under_identical_weights(random_vgg, alpha_beta) -> None:
    import DISTS_pytorch.DISTS_pt as reference
    from pyiqa.archs.dists_arch import DISTS as PyiqaDISTS

    with mock.patch.object(torchvision.models, "vgg16", lambda *a, **k: random_vgg):  # the packages download it
        theirs = reference.DISTS(load_weights=False)
        pyiqa_net = PyiqaDISTS(pretrained=False)
    for net in (theirs, pyiqa_net):
        net.alpha.data, net.beta.data = alpha_beta["alpha"].clone(), alpha_beta["beta"].clone()
    ours = create_metric("dists", weights=random_vgg.state_dict(), alpha_beta=alpha_beta)
    rgb = load_rgb(shared("live1", "dancers.bmp"))[:131, :97]  # odd sides through every L2 pool
    ref, test = _tensor(rgb), _tensor(_jpeg(rgb, 10))
    value = ours(ref, test)
    assert float((value - theirs(ref, test).double()).abs().max()) < 1e-6
    assert float((value - pyiqa_net(test, ref).reshape(-1).double()).abs().max()) < 1e-6
    assert float(ours(ref, ref)) < 1e-6 < float(value)  # a distance: zero for identical images
    assert metric_info("dists").higher_better is False


def test_dists_alpha_beta_come_verified_from_the_installed_wheel(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("CIRBENCH_OFFLINE", "1")
    path = ensure_weight(DISTS_ALPHA_BETA.filename, download=False)  # no cache, no download: the wheel's copy
    assert path == packaged_copy(DISTS_ALPHA_BETA) and path.name == "weights.pt"
    assert verify_file(DISTS_ALPHA_BETA, path).startswith("f5e65c96")
    state = torch.load(path, weights_only=True)
    assert set(state) == {"alpha", "beta"} and state["alpha"].shape == (1, 1475, 1, 1)


@pytest.mark.parametrize("border", [0, 4])
def test_niqe_equals_basicsr_calculate_niqe(images, basicsr_niqe, border: int) -> None:
    ours = create_metric("niqe", crop_border=border)
    assert ours.options()["precision"] == "float32" and ours.options()["y_path"] == "basicsr"
    rng = np.random.default_rng(5)
    noise = np.clip(images[2].astype(int) + rng.normal(0, 12, images[2].shape).round(), 0, 255).astype(np.uint8)
    gaps = []
    for rgb in [*images, noise, _jpeg(images[1], 10)]:
        expected = basicsr_niqe.calculate_niqe(rgb[..., ::-1].copy(), border)  # BasicSR reads BGR
        gaps.append(abs(float(ours.score(_tensor(rgb))[0]) - expected))
    assert max(gaps) < 1e-6, gaps


def test_niqe_float64_is_basicsr_niqe_in_double_and_batches(images, basicsr_niqe) -> None:
    """The float64 path equals BasicSR's niqe() fed float64 planes (its resize replaced by our MATLAB resize,
    itself checked against BasicSR's to float32 precision); batched images equal one-by-one; images under one
    96x96 block are refused in one line."""
    from basicsr.utils.matlab_functions import imresize as basicsr_resize

    from cirbench.metrics._matlab_resize import imresize
    from cirbench.metrics.niqe import basicsr_y

    plane = np.random.default_rng(2).random((45, 61)).astype(np.float32)
    ours_resize = imresize(torch.from_numpy(plane.astype(np.float64)), 0.5).numpy()
    assert np.abs(ours_resize - basicsr_resize(plane, 0.5)).max() < 1e-6
    params = np.load(packaged_copy(NIQE_PRISTINE))
    double = create_metric("niqe", precision="float64")
    rgb = images[2]
    y = basicsr_y(torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].double())[0, 0].numpy()
    double_resize = lambda img, scale, antialiasing=True: imresize(torch.from_numpy(np.asarray(img, np.float64)), scale).numpy()  # noqa: E731
    with mock.patch.object(basicsr_niqe, "imresize", double_resize):
        expected = basicsr_niqe.niqe(y, params["mu_pris_param"], params["cov_pris_param"], params["gaussian_window"])
    assert abs(float(double.score(_tensor(rgb))[0]) - expected) < 1e-9
    pair = torch.cat([_tensor(rgb), _tensor(_jpeg(rgb, 20))])
    batched = double.score(pair)
    assert torch.allclose(batched, torch.cat([double.score(pair[:1]), double.score(pair[1:])]), atol=1e-12)
    with pytest.raises(Exception, match="at least 96x96"):
        double.score(pair[..., :90, :])


def test_a_no_reference_metric_is_stored_and_ranked_lower_is_better(tmp_path: Path, monkeypatch) -> None:
    from cirbench.cli import main
    from cirbench.compare.leaderboard import build_leaderboard
    from cirbench.dataset.reader import BuiltDataset
    from cirbench.evaluation.evaluate import EvaluationSettings, evaluate
    from cirbench.evaluation.results import ResultsStore

    monkeypatch.setenv("CIRBENCH_OFFLINE", "1")
    crops = [("kodak", "kodim01.png", (0, 0, 200, 200)), ("live1", "bikes.bmp", (100, 100, 300, 297))]
    root = build_tiny(tmp_path, crops, tasks=[{"name": "JPEG_10", "codec": "jpeg", "family": "JPEG", "level": 10,
                                                "id": 0, "params": {"quality": 10}}])  # fmt: skip
    ds = BuiltDataset.open(root)
    for model in ("identity", "tv-chambolle"):
        evaluate(ds, EvaluationSettings(model=model, metrics=("psnr", "niqe")))
    records = [record for _, record in ResultsStore(ds.results_dir()).runs()]
    assert all(r["metrics"]["niqe"]["higher_better"] is False and r["metrics"]["niqe"]["reference"] == "none"
               for r in records)  # fmt: skip
    board = build_leaderboard([ds])
    assert board.higher_better["niqe"] is False and board.higher_better["psnr"] is True
    table = board.table.set_index("method")
    means = table["overall/niqe"].astype(float)
    assert means["identity"] != means["tv-chambolle"]
    assert main(["leaderboard", str(root), "--sort", "niqe"]) == 0
    from cirbench.compare.terminal import to_terminal

    ranked = [line.split()[1] for line in to_terminal(board, sort="niqe").splitlines() if line[:1].isdigit()]
    assert ranked[0] == means.idxmin()  # lower NIQE ranks first
    assert "niqe↓" in to_terminal(board, sort="niqe")


def test_the_pyiqa_profile_equals_pyiqa_itself(images) -> None:
    import pyiqa

    profile = {s.result_name: s for s in get_profile("pyiqa").metrics}
    # the float64 luma and exact float64 PSNR (the profile before) are what pyiqa's float32 arithmetic is checked against
    older = {"psnr": create_metric("psnr", mse_epsilon=1e-8),
             "ssim": create_metric("ssim", channel="y_full", round_y=True, clip_cs_map=True)}  # fmt: skip
    gaps, older_gaps = {}, {name: 0.0 for name in older}
    for name in ("psnr", "ssim", "ms_ssim"):
        ours = create_metric(profile[name].metric, **profile[name].options)
        theirs = pyiqa.create_metric(name, device="cpu")
        worst = 0.0
        for rgb in images[:4]:
            for quality in (5, 50, 95):
                ref, test = _tensor(rgb), _tensor(_jpeg(rgb, quality))
                expected = float(theirs(test, ref).reshape(-1)[0])
                worst = max(worst, abs(float(ours(ref, test)[0]) - expected))
                if name in older:
                    older_gaps[name] = max(older_gaps[name], abs(float(older[name](ref, test)[0]) - expected))
        gaps[name] = worst
    assert max(gaps.values()) < 1e-6, gaps
    assert pyiqa.__version__.startswith("0.1.16")
    assert min(older_gaps.values()) > 1e-6, older_gaps  # the conventions matter at this precision


@pytest.fixture()
def pyiqa_cache(tmp_path: Path, monkeypatch) -> Path:
    """An empty torch hub (so pyiqa's cache is empty too) with downloads off."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("CIRBENCH_OFFLINE", "1")
    return tmp_path / "torch" / "hub"


def test_pyiqa_metrics_by_name_score_through_pyiqa_with_its_metadata(images, pyiqa_cache: Path) -> None:
    import pyiqa

    rgb = images[2]
    ref, test = _tensor(rgb), _tensor(_jpeg(rgb, 10))
    for name in ("psnr", "ssim", "piqe"):
        ours = create_metric(f"pyiqa:{name}")
        theirs = pyiqa.create_metric(name, device="cpu")
        expected = theirs(test) if theirs.metric_mode == "NR" else theirs(test, ref)
        assert float(ours(ref, test)[0]) == pytest.approx(float(expected.reshape(-1)[0]), abs=1e-9)
        assert ours.options()["pyiqa_version"] == "0.1.16" and ours.info.no_reference == (name == "piqe")
    assert float(create_metric("pyiqa:piqe").score(test)[0]) == pytest.approx(float(pyiqa.create_metric("piqe")(test)))
    assert metric_info("pyiqa:niqe").higher_better is False and metric_info("pyiqa:musiq").higher_better is True
    assert metric_info("pyiqa:musiq").no_reference and not metric_info("pyiqa:lpips").no_reference
    with pytest.raises(Exception, match="did you mean pyiqa:musiq"):
        metric_info("pyiqa:musiqq")
    with pytest.raises(Exception, match="scores folders"):
        metric_info("pyiqa:fid")


def test_a_weighted_pyiqa_metric_runs_on_injected_random_weights(random_vgg, alpha_beta, pyiqa_cache: Path,
                                                                 tmp_path: Path) -> None:  # fmt: skip
    checkpoints = pyiqa_cache / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(random_vgg.state_dict(), checkpoints / "vgg16-397923af.pth")  # where torchvision looks first
    mixing = tmp_path / "alpha_beta.pth"
    torch.save(alpha_beta, mixing)
    theirs = create_metric("pyiqa:dists", pretrained_model_path=str(mixing))
    ours = create_metric("dists", weights=random_vgg.state_dict(), alpha_beta=alpha_beta)
    rgb = images_crop = load_rgb(shared("cbsd68", "101085.png"))[:100, :120]
    del images_crop
    ref, test = _tensor(rgb), _tensor(_jpeg(rgb, 15))
    assert float((theirs(ref, test) - ours(ref, test)).abs().max()) < 1e-6

    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    evil = tmp_path / "evil.pth"
    torch.save({"alpha": Payload()}, evil)
    with pytest.raises(Exception, match="pickled Python objects"):
        create_metric("pyiqa:dists", pretrained_model_path=str(evil))


def test_pyiqa_offline_and_missing_are_one_line(pyiqa_cache: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    from cirbench.cli import main
    from cirbench.metrics import MetricUnavailable, pyiqa_bridge
    from cirbench.weights.manager import WeightsUnavailable

    with pytest.raises(WeightsUnavailable) as caught:
        create_metric("pyiqa:musiq")
    message = str(caught.value)
    assert "\n" not in message and "musiq_koniq_ckpt-e95806b9.pth" in message and "huggingface.co" in message
    assert "cirbench weights import --pyiqa" in message
    ref_dir, test_dir = tmp_path / "ref", tmp_path / "test"
    ref_dir.mkdir()
    test_dir.mkdir()
    rgb = load_rgb(shared("kodak", "kodim01.png"))[:128, :160]
    Image.fromarray(rgb).save(ref_dir / "a.png")
    Image.fromarray(_jpeg(rgb, 10)).save(test_dir / "a.png")
    csv = tmp_path / "scores.csv"
    assert main(["score", str(ref_dir), str(test_dir), "--metrics", "psnr,pyiqa:piqe,niqe", "--out", str(csv)]) == 0
    assert csv.read_text().splitlines()[0] == "image,psnr,pyiqa:piqe,niqe"
    capsys.readouterr()
    assert main(["score", str(ref_dir), str(test_dir), "--metrics", "psnr,pyiqa:musiq"]) == 1  # asked for: an error
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and "musiq_koniq_ckpt-e95806b9.pth" in lines[0] and "Traceback" not in captured.err
    assert main(["score", str(ref_dir), str(test_dir), "--metrics", "pyiqa:musiqq"]) != 0
    assert "did you mean" in " ".join(capsys.readouterr().err.split())
    # pyiqa not installed: skipped beside the others, with the install line
    monkeypatch.setitem(sys.modules, "pyiqa.default_model_configs", None)
    pyiqa_bridge.pyiqa_info.cache_clear()
    with pytest.raises(MetricUnavailable, match=r"pip install 'cirbench\[iqa\]'"):
        create_metric("pyiqa:piqe")
    pyiqa_bridge.pyiqa_info.cache_clear()


def test_weights_import_into_pyiqa_cache_checks_the_hash_its_name_carries(pyiqa_cache: Path, tmp_path: Path) -> None:
    from cirbench.cli import main
    from cirbench.fileio import sha256_file

    good = tmp_path / "good.pth"
    torch.save({"w": torch.ones(2)}, good)
    named = tmp_path / f"toy-{sha256_file(good)[:8]}.pth"
    good.rename(named)
    assert main(["weights", "import", "--pyiqa", str(named)]) == 0
    assert (pyiqa_cache / "pyiqa" / named.name).read_bytes() == named.read_bytes()
    wrong = tmp_path / "toy-00000000.pth"
    wrong.write_bytes(named.read_bytes())
    assert main(["weights", "import", "--pyiqa", str(wrong)]) != 0
    assert not (pyiqa_cache / "pyiqa" / wrong.name).exists()
