"""The official PromptCIR test protocol as cirbench runs it: symmetric mirror padding (strictly greater multiple
of 32), square 384/96 tiles averaged without blending, and the two fixed small-image failures.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cirbench.errors import ConfigError
from cirbench.models.blocks.mirror_tiling import (
    MirrorTiling,
    mirror_pad,
    padded_size,
    tile_origins,
    tile_shape,
    tiled_average,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def official_pad(image: torch.Tensor, multiple: int = 32) -> torch.Tensor:
    """The script's padding, restated: concatenate the flipped image, crop (valid while pad <= side)."""
    h, w = image.shape[-2:]
    ph, pw = (h // multiple + 1) * multiple, (w // multiple + 1) * multiple
    image = torch.cat([image, image.flip(-2)], -2)[..., :ph, :]
    return torch.cat([image, image.flip(-1)], -1)[..., :pw]


@pytest.mark.parametrize("size", [(20, 30), (32, 64), (100, 129)])
def test_mirror_pad_matches_the_script_where_it_works(size: tuple[int, int]) -> None:
    image = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(0))
    assert torch.equal(mirror_pad(image, 32), official_pad(image))


@pytest.mark.parametrize("size", [(1, 1), (5, 3), (15, 40)])
def test_mirror_pad_reflects_again_when_the_image_is_smaller_than_the_pad(size: tuple[int, int]) -> None:
    image = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(0))
    out = mirror_pad(image, 32)
    h, w = out.shape[-2:]
    expected = np.pad(image.numpy(), ((0, 0), (0, 0), (0, h - size[0]), (0, w - size[1])), mode="symmetric")
    assert torch.equal(out, torch.from_numpy(expected))


def test_padding_is_strictly_greater_like_the_script() -> None:
    assert [padded_size(n, 32, True) for n in (1, 31, 32, 33, 64)] == [32, 32, 64, 64, 96]
    assert [padded_size(n, 32, False) for n in (1, 31, 32, 33, 64)] == [32, 32, 32, 64, 64]


def test_tiles_follow_the_script_for_benchmark_sizes() -> None:
    assert tile_shape(448, 704, 384, 96) == (384, 384)
    assert tile_origins(448, 384, 288) == [0, 64]
    assert tile_origins(704, 384, 288) == [0, 288, 320]
    assert tile_shape(288, 544, 384, 96) == (288, 288)  # the script's square min(384, H, W) tile
    assert tile_origins(544, 288, 192) == [0, 192, 256]


@pytest.mark.parametrize("shape", [(96, 224), (32, 64), (64, 800), (96, 96)])
def test_short_sides_up_to_the_overlap_are_covered(shape: tuple[int, int]) -> None:
    # the script crashes (stride 0) or leaves NaN pixels (negative stride) on these padded sizes
    image = torch.rand(1, 3, *shape, generator=torch.Generator().manual_seed(0))
    calls = []

    def halve(x: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(x.shape[-2:]))
        return x * 0.5

    out = tiled_average(halve, image, 384, 96)
    torch.testing.assert_close(out, image * 0.5, rtol=0, atol=1e-7)
    assert all(h <= 384 and w <= 384 for h, w in calls)


def test_tiled_average_of_a_pointwise_network_equals_the_whole_image() -> None:
    image = torch.rand(1, 3, 416, 800, generator=torch.Generator().manual_seed(0))
    out = tiled_average(lambda x: x * 1.5 - 0.2, image, 384, 96)
    torch.testing.assert_close(out, (image * 1.5 - 0.2).clamp(0, 1), rtol=0, atol=1e-6)


def test_invalid_protocols_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="multiple of 32"):
        MirrorTiling(tile=100)
    with pytest.raises(ConfigError, match="overlap"):
        MirrorTiling(tile=64, overlap=64)
