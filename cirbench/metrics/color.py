"""Colour conversions used by the metrics: RGB to BT.601 luma (studio swing, as MATLAB rgb2ycbcr) and full range.

Inputs and outputs are on the 0..255 scale, shape [B,3,H,W] -> [B,1,H,W], float64.
"""

from __future__ import annotations

import torch

from cirbench.metrics._base import MetricError

# MATLAB rgb2ycbcr / ITU-R BT.601 studio swing: Y = 16 + (65.481 R + 128.553 G + 24.966 B) for R,G,B in [0,1].
STUDIO_Y_WEIGHTS = (65.481, 128.553, 24.966)
STUDIO_Y_OFFSET = 16.0
# Full-range luma (JPEG/JFIF, pyiqa's default 'yiq' Y): Y = 0.299 R + 0.587 G + 0.114 B.
FULL_Y_WEIGHTS = (0.299, 0.587, 0.114)

CHANNELS = ("rgb", "y", "y_full")


def rgb_to_y_studio(rgb255: torch.Tensor, round_y: bool = False) -> torch.Tensor:
    """BT.601 studio-swing Y in [16,235] from 0..255 RGB; round_y=True gives MATLAB's uint8 result."""
    weights = torch.tensor(STUDIO_Y_WEIGHTS, dtype=torch.float64, device=rgb255.device) / 255.0
    y = STUDIO_Y_OFFSET + torch.einsum("bchw,c->bhw", rgb255.to(torch.float64), weights).unsqueeze(1)
    return torch.round(y) if round_y else y


def rgb_to_y_full(rgb255: torch.Tensor, round_y: bool = False) -> torch.Tensor:
    """Full-range luma in [0,255] from 0..255 RGB (no offset, no 219/255 scaling); round_y: whole values (pyiqa)."""
    weights = torch.tensor(FULL_Y_WEIGHTS, dtype=torch.float64, device=rgb255.device)
    y = torch.einsum("bchw,c->bhw", rgb255.to(torch.float64), weights).unsqueeze(1)
    return torch.round(y) if round_y else y


def select_channels(rgb255: torch.Tensor, channel: str, round_y: bool = False) -> torch.Tensor:
    """The planes a metric is computed on: 'rgb' (unchanged), 'y' (BT.601 studio) or 'y_full'."""
    if channel == "rgb":
        return rgb255
    if channel == "y":
        return rgb_to_y_studio(rgb255, round_y)
    if channel == "y_full":
        return rgb_to_y_full(rgb255, round_y)
    raise MetricError(f"channel must be one of {', '.join(CHANNELS)}, got '{channel}'")


def check_channel(channel: str) -> str:
    if channel not in CHANNELS:
        raise MetricError(f"channel must be one of {', '.join(CHANNELS)}, got '{channel}'")
    return channel
