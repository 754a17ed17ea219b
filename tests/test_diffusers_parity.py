"""Our ldm-named SD U-Net and KL autoencoder against diffusers' models after diffusers' own ldm-key conversion."""

from __future__ import annotations

import pytest
import torch

from cirbench.diffusion.kl_autoencoder import AutoencoderConfig, KLAutoencoder
from cirbench.diffusion.ldm_unet import LDMUNet, UNetConfig

diffusers = pytest.importorskip("diffusers", reason="diffusers (the reference package, in the dev extra) is not installed")
single_file = pytest.importorskip("diffusers.loaders.single_file_utils")

UNET = UNetConfig(model_channels=64, channel_mult=(1, 2, 2), num_res_blocks=1, attention_resolutions=(1, 2),
                  num_head_channels=32, context_dim=48)  # fmt: skip
VAE = AutoencoderConfig(ch=32, ch_mult=(1, 2, 2), num_res_blocks=1)
ORIGINAL = {"model": {"params": {
    "unet_config": {"params": {
        "image_size": 16, "in_channels": 4, "out_channels": 4, "model_channels": 64, "attention_resolutions": [1, 2],
        "num_res_blocks": 1, "channel_mult": [1, 2, 2], "num_head_channels": 32, "use_spatial_transformer": True,
        "use_linear_in_transformer": True, "transformer_depth": 1, "context_dim": 48, "legacy": False}},
    "first_stage_config": {"params": {"embed_dim": 4, "ddconfig": {
        "double_z": True, "z_channels": 4, "resolution": 64, "in_channels": 3, "out_ch": 3, "ch": 32,
        "ch_mult": [1, 2, 2], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0}}},
    "scale_factor": 0.18215}}}  # fmt: skip


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    unet, vae = LDMUNet(UNET).eval(), KLAutoencoder(VAE).eval()
    for module in (unet, vae):
        for param in module.parameters():
            torch.nn.init.normal_(param, std=0.05)  # no zero-initialised layer may hide a difference
    checkpoint = {f"model.diffusion_model.{k}": v for k, v in unet.state_dict().items()}
    checkpoint |= {f"first_stage_model.{k}": v for k, v in vae.state_dict().items()}
    unet_config = single_file.create_unet_diffusers_config_from_ldm(ORIGINAL, checkpoint)
    reference_unet = diffusers.UNet2DConditionModel(**unet_config)
    reference_unet.load_state_dict(single_file.convert_ldm_unet_checkpoint(checkpoint, unet_config), strict=True)
    vae_config = single_file.create_vae_diffusers_config_from_ldm(ORIGINAL, checkpoint)
    reference_vae = diffusers.AutoencoderKL(**vae_config)
    reference_vae.load_state_dict(single_file.convert_ldm_vae_checkpoint(checkpoint, vae_config), strict=True)
    return unet, vae, reference_unet.eval(), reference_vae.eval()


@torch.no_grad()
def test_unet_equals_diffusers_unet2dconditionmodel(pair, torch_one_thread) -> None:
    unet, _, reference, _ = pair
    x, t, context = torch.randn(2, 4, 16, 16), torch.tensor([10, 700]), torch.randn(2, 7, 48)
    difference = (unet(x, t, context) - reference(x, t, encoder_hidden_states=context).sample).abs().max()
    assert float(difference) <= 1e-5


@torch.no_grad()
def test_autoencoder_equals_diffusers_autoencoderkl(pair, torch_one_thread) -> None:
    _, vae, _, reference = pair
    image = torch.rand(2, 3, 64, 64) * 2 - 1
    mean, logvar, _ = vae.encode(image)
    posterior = reference.encode(image).latent_dist
    assert float((mean - posterior.mean).abs().max()) <= 1e-5
    assert float((logvar - posterior.logvar).abs().max()) <= 1e-5
    assert float((vae.decode(mean) - reference.decode(mean).sample).abs().max()) <= 1e-5
