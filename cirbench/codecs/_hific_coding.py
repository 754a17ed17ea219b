"""Entropy coding for HiFiC with CompressAI's rANS: mean-scale latents and the factorized hyperlatent prior.

Symbols and reconstructions match the PyTorch port; the bitstream layout is cirbench's own (see hific.py).
"""

from __future__ import annotations

import math

import torch
from compressai.entropy_models import EntropyModel, GaussianConditional
from compressai.entropy_models.entropy_models import pmf_to_quantized_cdf
from compressai.models.base import get_scale_table

from cirbench.codecs._hific_model import MIN_SCALE, HyperlatentDensity

TAIL_MASS = 2.0**-8  # the port's tail mass (src/compression/entropy_models.py)
PRECISION = 16
HYPER_SEARCH_RADIUS = 1024  # hyperlatent tables cover at most [-1024, 1024]; rarer values use the overflow code


class LogisticConditional(GaussianConditional):
    """Mean-scale conditional with a logistic instead of a Gaussian CDF (the port's med regime)."""

    def _standardized_cumulative(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(inputs)

    @staticmethod
    def _standardized_quantile(quantile):
        return math.log(quantile / (1.0 - quantile))


def latent_conditional(likelihood_type: str) -> GaussianConditional:
    """Tables for the 64 scales exp(linspace(ln 0.11, ln 256, 64)), tail mass 2**-8, as in the port."""
    kind = LogisticConditional if likelihood_type == "logistic" else GaussianConditional
    conditional = kind(None, scale_bound=MIN_SCALE, tail_mass=TAIL_MASS, entropy_coder_precision=PRECISION)
    conditional.update_scale_table(get_scale_table())
    return conditional


@torch.no_grad()
def hyperlatent_tables(density: HyperlatentDensity, tail_mass: float = TAIL_MASS) -> EntropyModel:
    """Per-channel quantised CDFs of the factorized hyperlatent prior around 0 (the port uses no median offset).

    Each channel's support runs from the integer holding its lower tail quantile (tail_mass/2) to the one holding
    its upper quantile, always including 0, capped at +-HYPER_SEARCH_RADIUS; the rest is the overflow bin.
    """
    channels = density.H_0.shape[0]
    radius = HYPER_SEARCH_RADIUS
    grid = torch.arange(-radius, radius + 1, dtype=torch.float32)
    points = grid.view(1, 1, -1).expand(channels, 1, -1).contiguous()
    cdf_upper = torch.sigmoid(density.cdf_logits(points + 0.5))[:, 0, :]  # P(X <= k + 1/2)
    cdf_lower = torch.sigmoid(density.cdf_logits(points - 0.5))[:, 0, :]  # P(X <= k - 1/2)
    pmf_all = density.likelihood(points)[:, 0, :]
    zero = radius
    offsets, lengths, rows = [], [], []
    for c in range(channels):
        above_low = torch.nonzero(cdf_upper[c] >= tail_mass / 2)
        below_high = torch.nonzero(cdf_lower[c] <= 1.0 - tail_mass / 2)
        first = min(int(above_low[0]) if len(above_low) else 0, zero)
        last = max(int(below_high[-1]) if len(below_high) else 2 * radius, zero)
        pmf = pmf_all[c, first : last + 1].double()
        overflow = torch.clamp(1.0 - pmf.sum(), min=0.0).view(1)
        rows.append(pmf_to_quantized_cdf(torch.cat((pmf, overflow)).float(), PRECISION))
        offsets.append(first - zero)
        lengths.append(last - first + 1 + 2)
    coder = EntropyModel(entropy_coder_precision=PRECISION)
    table = torch.zeros((channels, max(lengths)), dtype=torch.int32)
    for c, row in enumerate(rows):
        table[c, : row.numel()] = row
    coder._quantized_cdf = table
    coder._offset = torch.tensor(offsets, dtype=torch.int32)
    coder._cdf_length = torch.tensor(lengths, dtype=torch.int32)
    return coder


def channel_indexes(shape: torch.Size) -> torch.Tensor:
    """Index map (1, C, H, W) selecting each channel's own hyperlatent table."""
    _, channels, height, width = shape
    return torch.arange(channels, dtype=torch.int32).view(1, -1, 1, 1).expand(1, channels, height, width).contiguous()


def estimated_bits(density: HyperlatentDensity, conditional: GaussianConditional, z_hat, y_hat, means, scales) -> float:
    """Rate from the model's likelihoods, -sum log2 p (what the port reports as its theoretical bpp)."""
    z_points = z_hat[0].reshape(z_hat.shape[1], 1, -1)
    z_likelihood = density.likelihood(z_points)
    y_likelihood = conditional._likelihood(y_hat, scales, means)
    return float(-(torch.log2(z_likelihood.cpu() + 1e-9).sum() + torch.log2(y_likelihood.clamp_min(1e-9) + 1e-9).sum()))
