"""DiffLoss with a tiny ADM prior (same topology pattern, seeded random weights): the loss, its gradients, the frozen
prior, shared noise, strict loading of the official layout, and `cirbench train` with it (3 steps, exact resume).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_train import SMALL, built, tiny_model  # noqa: F401  (fixture)

from cirbench.cli import main
from cirbench.diffusion.adm import TINY_ADM, ADMConfig, ADMUNet
from cirbench.models.checkpoints import StrictLoadError, load_state_dict, save_state_dict
from cirbench.training.config import TrainConfig
from cirbench.training.losses import resolve_loss
from cirbench.training.losses.diffloss import DiffLoss, load_prior
from cirbench.training.trainer import train

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
pytestmark = pytest.mark.usefixtures("torch_one_thread")
TINY_FIELDS = {"image_size": 32, "model_channels": 32, "num_res_blocks": 1, "attention_resolutions": [16],
               "channel_mult": [1, 2], "num_head_channels": 16}  # fmt: skip


def tiny_prior(seed: int = 0) -> ADMUNet:
    torch.manual_seed(seed)
    prior = ADMUNet(TINY_ADM)
    with torch.no_grad():  # ADM zero-initialises its output conv; random weights make every term non-trivial
        prior.out[-1].weight.normal_(0, 0.05)
    return prior


@pytest.fixture(scope="module")
def prior_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("prior") / "tiny-adm.safetensors"
    save_state_dict(tiny_prior().state_dict(), path)
    return path


def test_the_official_configuration_has_the_published_layout() -> None:
    official = json.loads((REFERENCE / "adm256_uncond_state_dict_keys.json").read_text())
    with torch.device("meta"):
        net = ADMUNet(ADMConfig())
    state = net.state_dict()
    assert [e["key"] for e in official["keys"]] == list(state)
    assert all(list(state[e["key"]].shape) == e["shape"] for e in official["keys"])
    assert sum(p.numel() for p in net.parameters()) == official["num_parameters"] == 552_814_086
    assert main(["weights", "keys", "256x256_diffusion_uncond.pt"]) == 0


def test_the_loss_equals_a_direct_recomputation() -> None:
    loss = DiffLoss(tiny_prior(), fidelity_weight=1.0, naturalness_weight=0.3, semantic_weight=0.2, seed=7)
    loss.set_step(4)
    torch.manual_seed(1)
    output, target = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    value = loss(output, target)
    x, y = output * 2 - 1, target * 2 - 1
    t, noise = loss._draw(x)
    abar = torch.tensor(loss.schedule.alphas_cumprod, dtype=torch.float32)[t].view(-1, 1, 1, 1)
    xt, yt = abar.sqrt() * x + (1 - abar).sqrt() * noise, abar.sqrt() * y + (1 - abar).sqrt() * noise
    (ex, hx), (ey, hy) = loss.prior(xt, t), loss.prior(yt, t)
    expected = F.mse_loss(x, y) + 0.3 * F.mse_loss(ex[:, :3], ey[:, :3]) + 0.2 * F.mse_loss(hx, hy)
    assert float(value) == pytest.approx(float(expected), rel=1e-5)
    assert loss.last["naturalness"] > 0 and loss.last["semantic"] > 0


def test_gradients_reach_the_network_through_the_diffloss_terms_alone_and_the_prior_stays_frozen() -> None:
    prior = tiny_prior()
    before = {k: v.clone() for k, v in prior.state_dict().items()}
    loss = DiffLoss(prior, fidelity_weight=0.0, naturalness_weight=1.0, semantic_weight=1.0)
    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, 3, 3, padding=1)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-2)
    target = torch.rand(2, 3, 32, 32)
    for step in range(3):
        loss.set_step(step)
        optimizer.zero_grad()
        value = loss(net(torch.rand(2, 3, 32, 32)).clamp(0, 1), target)
        value.backward()
        grad = net.weight.grad
        assert grad is not None and float(grad.abs().sum()) > 0 and math.isfinite(float(grad.abs().sum()))
        optimizer.step()
    assert all(p.grad is None and not p.requires_grad for p in prior.parameters())
    assert all(torch.equal(before[k], v) for k, v in prior.state_dict().items())  # bit-identical
    assert not prior.training


def test_both_branches_share_t_and_noise() -> None:
    loss = DiffLoss(tiny_prior(), seed=3)
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    loss.prior.register_forward_pre_hook(lambda module, args: seen.append((args[0].detach(), args[1])))
    image = torch.rand(2, 3, 32, 32)
    loss.set_step(9)
    loss(image, image.clone())
    assert len(seen) == 2 and torch.equal(seen[0][1], seen[1][1]) and torch.equal(seen[0][0], seen[1][0])
    assert loss.last["naturalness"] == 0 and loss.last["semantic"] == 0
    loss.set_step(10)
    loss(image, image)
    assert not torch.equal(seen[2][1], seen[0][1]) or not torch.equal(seen[2][0], seen[0][0])  # per-step draws


def test_inputs_are_padded_to_the_prior_multiple_and_options_are_checked(prior_file: Path) -> None:
    loss = resolve_loss("diffloss", {"prior": str(prior_file), "prior_config": TINY_FIELDS})
    assert float(loss(torch.rand(1, 3, 27, 33), torch.rand(1, 3, 27, 33))) > 0  # 27x33 -> 28x34 for a multiple of 2
    with pytest.raises(Exception, match="t_min"):
        resolve_loss("diffloss", {"prior": str(prior_file), "prior_config": TINY_FIELDS, "t_min": 5, "t_max": 2})


def test_a_tiny_state_dict_in_the_official_layout_round_trips_and_a_wrong_key_is_named(prior_file: Path, tmp_path: Path) -> None:
    loaded = load_prior(prior_file, TINY_ADM)
    original = tiny_prior().state_dict()
    assert all(torch.equal(loaded.state_dict()[k], original[k]) for k in original)
    state = load_state_dict(prior_file)
    state["middle_block.1.qkv.bias_typo"] = state.pop("middle_block.1.qkv.bias")
    save_state_dict(state, tmp_path / "broken.safetensors")
    with pytest.raises(StrictLoadError, match="middle_block.1.qkv.bias"):
        load_prior(tmp_path / "broken.safetensors", TINY_ADM)


def test_training_promptcir_with_diffloss_checkpoints_and_resumes_exactly(built: Path, tmp_path: Path, prior_file: Path) -> None:  # noqa: F811
    loss = {"prior": str(prior_file), "prior_config": TINY_FIELDS, "naturalness_weight": 0.5, "semantic_weight": 0.1}
    config = TrainConfig(**{**SMALL, "loss": "diffloss", "loss_options": loss})
    full = train(tiny_model(), built, config=config, out=tmp_path / "full")
    part = train(tiny_model(), built, config=config, out=tmp_path / "part", stop_after=2)
    resumed = train(tiny_model(seed=9), built, config=config, out=tmp_path / "part", resume=True)
    assert full.finished and resumed.finished and resumed.history.loss == full.history.loss
    record = json.loads((tmp_path / "full" / "run.json").read_text())
    assert record["loss"]["name"] == "diffloss" and "no_grad" in record["loss"]["deviation_from_released_code"]
    assert not part.finished


def test_cli_train_with_a_diffloss_config(built: Path, tmp_path: Path, prior_file: Path) -> None:  # noqa: F811
    config = tmp_path / "diffloss.toml"
    fields = ", ".join(f"{k} = {json.dumps(v)}" for k, v in TINY_FIELDS.items())
    config.write_text(
        "[train]\nsteps = 3\nbatch_size = 2\ncrop_size = 32\nwarmup_steps = 1\nval_images = 1\nval_every = 0\n"
        "val_crop = 32\ncheckpoint_every = 0\nloss = \"diffloss\"\n\n"
        f"[loss]\nprior = \"{prior_file}\"\nprior_config = {{ {fields} }}\n"
    )
    args = ["train", "promptcir-s", "--data", str(built), "--config", str(config), "--out", str(tmp_path / "run")]
    assert main([*args, "--stop-after", "2"]) == 0
    assert main([*args, "--resume"]) == 0
    assert (tmp_path / "run" / "final.safetensors").is_file()


def test_promptcir_s_diffloss_says_its_weights_are_not_shipped_and_how_to_train_them() -> None:
    from cirbench.models import load_model
    from cirbench.models.promptcir import WeightsNotShipped

    with pytest.raises(WeightsNotShipped, match="promptcir-s-diffloss.train.toml"):
        load_model("promptcir-s-diffloss")
    model = load_model("promptcir-s-diffloss", init="random")
    assert model.info.name == "promptcir-s-diffloss" and model.info.trainable
