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

# pyiqa's rgb2yiq matrix (float32, applied by torch.matmul to [N,H,W,3]); its first column is FULL_Y_WEIGHTS
PYIQA_YIQ = ((0.299, 0.587, 0.114), (0.5959, -0.2746, -0.3213), (0.2115, -0.5227, 0.3112))

CHANNELS = ("rgb", "y", "y_full", "y_full_f32")


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


def rgb_to_y_full_float32(rgb255: torch.Tensor, round_y: bool = False) -> torch.Tensor:
    """Full-range luma as pyiqa computes it: float32 [0,1] RGB through its YIQ matmul, x255 in float32 (then
    rounded with round_y). A few pixels per image round differently from the float64 luma; this reproduces them."""
    unit = rgb255.to(torch.float32) / 255.0  # the loader's float32 k/255
    weights = torch.tensor(PYIQA_YIQ, dtype=torch.float32, device=rgb255.device).t()
    y = torch.matmul(unit.permute(0, 2, 3, 1), weights).permute(0, 3, 1, 2)[:, [0]] * 255.0
    return (torch.round(y) if round_y else y).to(torch.float64)


def select_channels(rgb255: torch.Tensor, channel: str, round_y: bool = False) -> torch.Tensor:
    """The planes a metric is computed on: 'rgb' (unchanged), 'y' (BT.601 studio), 'y_full' or 'y_full_f32'."""
    if channel == "rgb":
        return rgb255
    if channel == "y":
        return rgb_to_y_studio(rgb255, round_y)
    if channel == "y_full":
        return rgb_to_y_full(rgb255, round_y)
    if channel == "y_full_f32":
        return rgb_to_y_full_float32(rgb255, round_y)
    raise MetricError(f"channel must be one of {', '.join(CHANNELS)}, got '{channel}'")


def check_channel(channel: str) -> str:
    if channel not in CHANNELS:
        raise MetricError(f"channel must be one of {', '.join(CHANNELS)}, got '{channel}'")
    return channel
