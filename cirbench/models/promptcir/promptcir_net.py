"""PromptCIR's network (Li et al., NTIRE 2024 winner): configuration, the Restormer/HAT hybrid and its init.

State-dict names, shapes and dtypes equal those of the official ``model.py`` (``MyModel(decoder=True)``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from cirbench.models.blocks.prompts import BasisPrompt
from cirbench.models.blocks.restormer import ConvEmbed, Downsample, RestormerBlock, Upsample, restormer_stage
from cirbench.models.blocks.window_attention import (
    ResidualHybridAttentionGroup,
    overlap_attention_index,
    self_attention_index,
)


@dataclass(frozen=True)
class PromptCIRConfig:
    """Hyperparameters; the defaults are the official ones (34,754,927 parameters)."""

    dim: int = 48
    num_blocks: tuple[int, int, int, int] = (4, 6, 6, 8)
    num_refinement_blocks: int = 4
    heads: tuple[int, int, int, int] = (1, 2, 4, 8)
    ffn_expansion_factor: float = 2.66
    bias: bool = False
    window_size: int = 16
    overlap_ratio: float = 0.5
    compress_ratio: int = 3
    squeeze_factor: int = 16
    num_task: int = 7
    prompt_basis: tuple[int, int, int] = (64, 32, 16)  # prompt1 (1/2 res), prompt2 (1/4), prompt3 (1/8)
    prompt_dims: tuple[int, int, int] = (64, 128, 320)

    @property
    def size_multiple(self) -> int:
        """H and W must be multiples of this: windows of level 2 (half resolution) and three downsamplings."""
        return math.lcm(2 * self.window_size, 8)

    def as_record(self) -> dict[str, object]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


OFFICIAL_CONFIG = PromptCIRConfig()


class PromptCIRNet(nn.Module):
    """4-level U-net of Restormer blocks with HAT groups at full and half resolution and prompt blocks in the
    decoder; output = conv(features) + input (unclamped). H, W must be multiples of ``size_multiple``."""

    def __init__(self, config: PromptCIRConfig = OFFICIAL_CONFIG) -> None:
        super().__init__()
        self.config = config
        c, ws = config, config.window_size
        overlap_window = int(ws * c.overlap_ratio) + ws
        self.register_buffer("relative_position_index_SA", self_attention_index(ws))
        self.register_buffer("relative_position_index_OCA", overlap_attention_index(ws, overlap_window))
        self.patch_embed_input = ConvEmbed(3, c.dim)
        for level, (basis, prompt_dim) in enumerate(zip(c.prompt_basis, c.prompt_dims, strict=True), start=1):
            setattr(self, f"prompt{level}", BasisPrompt(c.dim * 2**level, c.num_task, basis, prompt_dim))
        self._build_encoder()
        self._build_decoder()
        self.apply(_init_weights)

    def _group(self, dim: int, heads: int, depth: int) -> ResidualHybridAttentionGroup:
        c = self.config
        return ResidualHybridAttentionGroup(
            dim,
            heads,
            depth,
            c.window_size,
            c.compress_ratio,
            c.squeeze_factor,
            c.ffn_expansion_factor,
            c.overlap_ratio,
        )

    def _stage(self, dim: int, heads: int, depth: int) -> nn.Sequential:
        c = self.config
        return restormer_stage(dim, heads, depth, c.ffn_expansion_factor, c.bias)

    def _build_encoder(self) -> None:
        c, d = self.config, self.config.dim
        self.encoder_level1 = self._group(d, c.heads[0], c.num_blocks[0])
        self.down1_2 = Downsample(d)
        self.encoder_level2 = self._group(d * 2, c.heads[1], c.num_blocks[1])
        self.down2_3 = Downsample(d * 2)
        self.encoder_level3 = self._stage(d * 4, c.heads[2], c.num_blocks[2])
        self.down3_4 = Downsample(d * 4)
        self.latent = self._stage(d * 8, c.heads[3], c.num_blocks[3])

    def _build_decoder(self) -> None:
        c, d, p = self.config, self.config.dim, self.config.prompt_dims
        block = RestormerBlock
        self.up4_3 = Upsample(d * 4)
        self.reduce_chan_level3 = nn.Conv2d(d * 2 + d * 4, d * 4, kernel_size=1, bias=c.bias)
        self.noise_level3 = block(d * 8 + p[2], c.heads[2], c.ffn_expansion_factor, c.bias)
        self.reduce_noise_level3 = nn.Conv2d(d * 8 + p[2], d * 4, kernel_size=1, bias=c.bias)
        self.decoder_level3 = self._stage(d * 4, c.heads[2], c.num_blocks[2])
        self.up3_2 = Upsample(d * 4)
        self.reduce_chan_level2 = nn.Conv2d(d * 4, d * 2, kernel_size=1, bias=c.bias)
        self.noise_level2 = block(d * 4 + p[1], c.heads[2], c.ffn_expansion_factor, c.bias)
        self.reduce_noise_level2 = nn.Conv2d(d * 4 + p[1], d * 4, kernel_size=1, bias=c.bias)
        self.decoder_level2 = self._group(d * 2, c.heads[1], c.num_blocks[1])
        self.up2_1 = Upsample(d * 2)
        self.noise_level1 = block(d * 2 + p[0], c.heads[2], c.ffn_expansion_factor, c.bias)
        self.reduce_noise_level1 = nn.Conv2d(d * 2 + p[0], d * 2, kernel_size=1, bias=c.bias)
        self.decoder_level1 = self._group(d * 2, c.heads[0], c.num_blocks[0])
        self.refinement = self._stage(d * 2, c.heads[0], c.num_refinement_blocks)
        self.output = nn.Conv2d(d * 2, 3, kernel_size=3, padding=1, bias=c.bias)

    @property
    def size_multiple(self) -> int:
        return self.config.size_multiple

    def _prompted(self, level: int, features: torch.Tensor) -> torch.Tensor:
        """Concatenate the level's prompt map, one Restormer block, 1x1 conv (the prompt interaction)."""
        prompt = getattr(self, f"prompt{level}")(features)
        mixed = getattr(self, f"noise_level{level}")(torch.cat([features, prompt], dim=1))
        return getattr(self, f"reduce_noise_level{level}")(mixed)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        m = self.size_multiple
        if image.shape[-1] % m or image.shape[-2] % m:
            raise ValueError(f"PromptCIRNet needs H and W multiples of {m}, got {tuple(image.shape[-2:])}")
        sa, oca = self.relative_position_index_SA, self.relative_position_index_OCA
        enc1 = self.encoder_level1(self.patch_embed_input(image), sa, oca)
        enc2 = self.encoder_level2(self.down1_2(enc1), sa, oca)
        enc3 = self.encoder_level3(self.down2_3(enc2))
        latent = self._prompted(3, self.latent(self.down3_4(enc3)))
        dec3 = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(latent), enc3], dim=1)))
        dec3 = self._prompted(2, dec3)
        dec2 = self.reduce_chan_level2(torch.cat([self.up3_2(dec3), enc2], dim=1))
        dec2 = self._prompted(1, self.decoder_level2(dec2, sa, oca))
        dec1 = self.decoder_level1(torch.cat([self.up2_1(dec2), enc1], dim=1), sa, oca)
        return self.output(self.refinement(dec1)) + image


def _init_weights(module: nn.Module) -> None:
    """Linear: truncated normal (std 0.02), zero bias; LayerNorm: ones and zeros (the official init)."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


SMALL_CONFIG = PromptCIRConfig(
    dim=24,
    num_blocks=(2, 2, 3, 3),
    num_refinement_blocks=2,
    window_size=8,
    prompt_basis=(32, 16, 8),
    prompt_dims=(24, 48, 96),
)  # 4,576,005 parameters: the float16 file stays under 10 MB
