"""HiFiC entropy coding pieces: latent tables like the port's, lossless hyperlatent coding incl. overflow values."""

from __future__ import annotations

import math

import pytest
import torch

from cirbench.codecs._hific_coding import channel_indexes, hyperlatent_tables, latent_conditional
from cirbench.codecs._hific_model import HyperlatentDensity, round_half_up


def density(seed: int) -> HyperlatentDensity:
    torch.manual_seed(seed)
    model = HyperlatentDensity()
    with torch.no_grad():
        for k, width in enumerate((3, 3, 3, 1)):
            getattr(model, f"H_{k}").normal_(math.log(math.expm1(1 / 10 ** 0.25 / width)), 0.3)
            getattr(model, f"a_{k}").normal_(0.0, 0.5)
            getattr(model, f"b_{k}").uniform_(-0.5, 0.5)
    return model


@pytest.mark.parametrize("likelihood,width", [("gaussian", 1481), ("logistic", 3197)])
def test_latent_tables_have_the_port_widths(likelihood: str, width: int) -> None:
    # HIFIC_NOTES.md: prior CDF tables are 64x1481 (Gaussian) and 64x3197 (logistic) for tail mass 2**-8
    conditional = latent_conditional(likelihood)
    assert tuple(conditional.quantized_cdf.shape) == (64, width)
    assert conditional.scale_table[0].item() == pytest.approx(0.11) and conditional.scale_table[-1].item() == pytest.approx(256)


@pytest.mark.parametrize("likelihood", ["gaussian", "logistic"])
def test_latent_symbols_roundtrip_losslessly(likelihood: str) -> None:
    conditional = latent_conditional(likelihood)
    generator = torch.Generator().manual_seed(3)
    scales = torch.rand(1, 8, 5, 7, generator=generator) * 20 + 0.05
    symbols = round_half_up(torch.randn(1, 8, 5, 7, generator=generator) * scales * 3)  # includes tail values
    indexes = conditional.build_indexes(scales)
    strings = conditional.compress(symbols, indexes)
    decoded = conditional.decompress(strings, indexes)
    assert torch.equal(decoded, symbols)


def test_hyperlatent_tables_cover_the_density_and_code_losslessly() -> None:
    model = density(5)
    coder = hyperlatent_tables(model)
    offsets, lengths = coder.offset, coder.cdf_length
    assert coder.quantized_cdf.shape[0] == 320 and (offsets <= 0).all() and (offsets + lengths - 3 >= 0).all()
    # the coded support holds all but ~tail_mass of each channel's probability
    points = torch.arange(-1024, 1025, dtype=torch.float32).view(1, 1, -1).expand(320, 1, -1).contiguous()
    with torch.no_grad():
        pmf = model.likelihood(points)[:, 0, :]
    for c in (0, 100, 319):
        first = int(offsets[c]) + 1024
        covered = pmf[c, first : first + int(lengths[c]) - 2].sum().item()
        assert covered > 1 - 2.0**-7
    z = torch.randint(-6, 7, (1, 320, 3, 4)).float()
    z[0, 0, 0, 0] = 5000.0  # far outside every table: sent through the overflow code
    z[0, 1, 0, 0] = -777.0
    strings = coder.compress(z, channel_indexes(z.shape))
    assert torch.equal(coder.decompress(strings, channel_indexes(z.shape)), z)


def test_round_half_up_differs_from_torch_round_only_on_ties() -> None:
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, 0.49, -0.51])
    assert round_half_up(x).tolist() == [1.0, 2.0, 3.0, 0.0, -1.0, 0.0, -1.0]
