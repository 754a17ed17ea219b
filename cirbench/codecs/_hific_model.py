"""HiFiC (Mentzer et al. 2020) network, laid out so the Justin-Tan PyTorch-port checkpoints load strictly.

Module names, Sequential indices, padding and norms follow ../shared/reference/HIFIC_NOTES.md section 4.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LATENT_CHANNELS = 220
HYPER_CHANNELS = 320
RESIDUAL_BLOCKS = 9
ENCODER_WIDTHS = (60, 120, 240, 480, 960)
GENERATOR_WIDTHS = (960, 480, 240, 120, 60)
DENSITY_FILTERS = (3, 3, 3)
MIN_SCALE = 0.11
MIN_LIKELIHOOD = 1e-9


class ChannelNorm(nn.Module):
    """Normalise each pixel over the channel axis (unbiased variance, eps 1e-3 inside the rsqrt), then affine."""

    def __init__(self, channels: int, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(dim=1, keepdim=True)
        var = x.var(dim=1, keepdim=True)
        return self.gamma * ((x - mean) * torch.rsqrt(var + self.eps)) + self.beta


def _down_block(c_in: int, c_out: int) -> nn.Sequential:
    # asymmetric reflection pad (left 0, right 1, top 1, bottom 0), then a 3x3 stride-2 conv without padding
    return nn.Sequential(nn.ReflectionPad2d((0, 1, 1, 0)), nn.Conv2d(c_in, c_out, 3, stride=2), ChannelNorm(c_out), nn.ReLU())


class HificEncoder(nn.Module):
    """Image (3 channels) -> latents (220 channels) at 1/16 resolution."""

    def __init__(self) -> None:
        super().__init__()
        w = ENCODER_WIDTHS
        self.conv_block1 = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(3, w[0], 7), ChannelNorm(w[0]), nn.ReLU())
        self.conv_block2 = _down_block(w[0], w[1])
        self.conv_block3 = _down_block(w[1], w[2])
        self.conv_block4 = _down_block(w[2], w[3])
        self.conv_block5 = _down_block(w[3], w[4])
        self.conv_block_out = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(w[4], LATENT_CHANNELS, 3))

    def forward(self, x: Tensor) -> Tensor:
        for block in (self.conv_block1, self.conv_block2, self.conv_block3, self.conv_block4, self.conv_block5):
            x = block(x)
        return self.conv_block_out(x)


class ResidualBlock(nn.Module):
    """pad-conv-norm-ReLU-pad-conv-norm, plus the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(1)
        self.conv1 = nn.Conv2d(channels, channels, 3)
        self.conv2 = nn.Conv2d(channels, channels, 3)
        self.norm1 = ChannelNorm(channels)
        self.norm2 = ChannelNorm(channels)

    def forward(self, x: Tensor) -> Tensor:
        res = F.relu(self.norm1(self.conv1(self.pad(x))))
        res = self.norm2(self.conv2(self.pad(res)))
        return res + x


def _up_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1), ChannelNorm(c_out), nn.ReLU()
    )


class HificGenerator(nn.Module):
    """Quantised latents -> image (3 channels, before the output activation) at 16x resolution."""

    def __init__(self, n_residual_blocks: int = RESIDUAL_BLOCKS) -> None:
        super().__init__()
        w = GENERATOR_WIDTHS
        self.n_residual_blocks = n_residual_blocks
        self.conv_block_init = nn.Sequential(
            ChannelNorm(LATENT_CHANNELS), nn.ReflectionPad2d(1), nn.Conv2d(LATENT_CHANNELS, w[0], 3), ChannelNorm(w[0])
        )
        for index in range(n_residual_blocks):
            self.add_module(f"resblock_{index}", ResidualBlock(w[0]))
        self.upconv_block1 = _up_block(w[0], w[1])
        self.upconv_block2 = _up_block(w[1], w[2])
        self.upconv_block3 = _up_block(w[2], w[3])
        self.upconv_block4 = _up_block(w[3], w[4])
        self.conv_block_out = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(w[4], 3, 7))

    def forward(self, y_hat: Tensor) -> Tensor:
        head = self.conv_block_init(y_hat)
        x = head
        for index in range(self.n_residual_blocks):
            x = getattr(self, f"resblock_{index}")(x)
        x = x + head
        for block in (self.upconv_block1, self.upconv_block2, self.upconv_block3, self.upconv_block4):
            x = block(x)
        return self.conv_block_out(x)


class HyperAnalysis(nn.Module):
    """Latents -> hyperlatents at 1/4 of the latent resolution (reflect padding in the strided convs)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(LATENT_CHANNELS, HYPER_CHANNELS, 3, stride=1, padding=1)
        self.conv2 = nn.Conv2d(HYPER_CHANNELS, HYPER_CHANNELS, 5, stride=2, padding=2, padding_mode="reflect")
        self.conv3 = nn.Conv2d(HYPER_CHANNELS, HYPER_CHANNELS, 5, stride=2, padding=2, padding_mode="reflect")

    def forward(self, y: Tensor) -> Tensor:
        return self.conv3(F.relu(self.conv2(F.relu(self.conv1(y)))))


class HyperSynthesis(nn.Module):
    """Hyperlatents -> one latent-shaped parameter map (means or scales)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.ConvTranspose2d(HYPER_CHANNELS, HYPER_CHANNELS, 5, stride=2, padding=2, output_padding=1)
        self.conv2 = nn.ConvTranspose2d(HYPER_CHANNELS, HYPER_CHANNELS, 5, stride=2, padding=2, output_padding=1)
        self.conv3 = nn.ConvTranspose2d(HYPER_CHANNELS, LATENT_CHANNELS, 3, stride=1, padding=1)

    def forward(self, z_hat: Tensor) -> Tensor:
        return self.conv3(F.relu(self.conv2(F.relu(self.conv1(z_hat)))))


class HyperlatentDensity(nn.Module):
    """Per-channel factorized CDF (Balle 2018, 6.1) with the port's tanh gate on all four layers."""

    def __init__(self, channels: int = HYPER_CHANNELS, filters: tuple[int, ...] = DENSITY_FILTERS) -> None:
        super().__init__()
        widths = (1, *filters, 1)
        self.n_layers = len(widths) - 1
        for k in range(self.n_layers):
            self.register_parameter(f"H_{k}", nn.Parameter(torch.zeros(channels, widths[k + 1], widths[k])))
            self.register_parameter(f"a_{k}", nn.Parameter(torch.zeros(channels, widths[k + 1], 1)))
            self.register_parameter(f"b_{k}", nn.Parameter(torch.zeros(channels, widths[k + 1], 1)))

    def cdf_logits(self, x: Tensor) -> Tensor:
        """Logits of the CDF at ``x`` of shape (C, 1, N)."""
        logits = x
        for k in range(self.n_layers):
            logits = torch.bmm(F.softplus(getattr(self, f"H_{k}")), logits) + getattr(self, f"b_{k}")
            logits = logits + torch.tanh(getattr(self, f"a_{k}")) * torch.tanh(logits)
        return logits

    def likelihood(self, x: Tensor) -> Tensor:
        """P(x - 1/2 < X <= x + 1/2) for x of shape (C, 1, N), with the sign trick, bounded below at 1e-9."""
        upper = self.cdf_logits(x + 0.5)
        lower = self.cdf_logits(x - 0.5)
        sign = -torch.sign(upper + lower)
        return torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).clamp_min(MIN_LIKELIHOOD)


class HificHyperprior(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.analysis_net = HyperAnalysis()
        self.synthesis_mu = HyperSynthesis()
        self.synthesis_std = HyperSynthesis()
        self.hyperlatent_likelihood = HyperlatentDensity()


class HificNetwork(nn.Module):
    """Encoder + Generator + Hyperprior with the checkpoint's top-level names (148 keys)."""

    def __init__(self, n_residual_blocks: int = RESIDUAL_BLOCKS) -> None:
        super().__init__()
        self.Encoder = HificEncoder()
        self.Generator = HificGenerator(n_residual_blocks)
        self.Hyperprior = HificHyperprior()

    def hyper_parameters(self, z_hat: Tensor) -> tuple[Tensor, Tensor]:
        """(means, scales) of the latents given the quantised hyperlatents; scales bounded below at 0.11."""
        means = self.Hyperprior.synthesis_mu(z_hat)
        scales = self.Hyperprior.synthesis_std(z_hat).clamp_min(MIN_SCALE)
        return means, scales


def round_half_up(x: Tensor) -> Tensor:
    """floor(x + 0.5): the port's rounding (torch.round would break ties to even)."""
    return torch.floor(x + 0.5)
