"""Training data from a built dataset: a held-out validation split, paired random crops drawn across all tasks,
for `cirbench train`. Sample ``g`` depends only on (seed, g), so resuming at any step replays the same batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cirbench.dataset.reader import BuiltDataset, DatasetError, read_rgb
from cirbench.errors import ConfigError


@dataclass(frozen=True)
class Pair:
    """One (HR, LQ) training example: an image under one task."""

    stem: str
    task: str
    hr: Path
    lq: Path


@dataclass(frozen=True)
class Split:
    train: list[Pair]
    val: list[Pair]
    val_stems: list[str]


def _image_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.height, image.width


def split_pairs(dataset: BuiltDataset, tasks: list[str] | None, val_images: int, seed: int, crop: int) -> Split:
    """Hold ``val_images`` images (with all their tasks) out; train on every pair of the others."""
    pairs = [Pair(stem, task.name, hr, lq) for stem, task, hr, lq in dataset.pairs(tasks)]
    if not pairs:
        raise DatasetError(f"{dataset.root} has no (HR, LQ) pairs for the selected tasks")
    stems = sorted({p.stem for p in pairs})
    if len(stems) <= val_images:
        raise ConfigError(f"val_images={val_images} leaves no training image ({len(stems)} image(s) in the data)")
    order = np.random.default_rng(seed).permutation(len(stems))
    val_stems = sorted(stems[i] for i in order[:val_images])
    big_enough = {s for s in stems if min(_image_size(dataset.hr_path(s))) >= crop}
    train = [p for p in pairs if p.stem not in val_stems and p.stem in big_enough]
    if not train:
        raise ConfigError(f"no training image is at least crop_size={crop} pixels on each side")
    return Split(train=train, val=[p for p in pairs if p.stem in val_stems], val_stems=val_stems)


@lru_cache(maxsize=64)
def _cached_rgb(path: Path) -> np.ndarray:
    return read_rgb(path)


def _augment(arrays: tuple[np.ndarray, np.ndarray], code: int) -> tuple[np.ndarray, np.ndarray]:
    """One of the 8 dihedral transforms (code 0 = identity), applied to both images."""
    out = []
    for array in arrays:
        if code & 1:
            array = array[:, ::-1]
        if code & 2:
            array = array[::-1]
        if code & 4:
            array = array.transpose(1, 0, 2)
        out.append(np.ascontiguousarray(array))
    return out[0], out[1]


class PairedCrops(torch.utils.data.Dataset):
    """Item ``g`` (a global sample number) -> (lq, hr) float32 [3,crop,crop] crops at the same place."""

    def __init__(self, pairs: list[Pair], crop: int, seed: int, augment: bool, length: int) -> None:
        self.pairs, self.crop, self.seed, self.augment, self.length = pairs, crop, seed, augment, length

    def __len__(self) -> int:
        return self.length

    def pair_at(self, index: int) -> tuple[Pair, np.random.Generator]:
        """The pair sample ``index`` draws, and the generator that then places its crop."""
        rng = np.random.default_rng([self.seed, int(index)])
        return self.pairs[int(rng.integers(len(self.pairs)))], rng

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        pair, rng = self.pair_at(index)
        hr, lq = _cached_rgb(pair.hr), _cached_rgb(pair.lq)
        if hr.shape != lq.shape:
            raise DatasetError(f"{pair.lq} is {lq.shape[:2]} but its HR image is {hr.shape[:2]}")
        top = int(rng.integers(hr.shape[0] - self.crop + 1))
        left = int(rng.integers(hr.shape[1] - self.crop + 1))
        window = (slice(top, top + self.crop), slice(left, left + self.crop))
        code = int(rng.integers(8)) if self.augment else 0
        lq_crop, hr_crop = _augment((lq[window], hr[window]), code)
        return _chw(lq_crop), _chw(hr_crop)


def _chw(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb).permute(2, 0, 1).to(torch.float32).div_(255.0)


def centre_crop(rgb: np.ndarray, size: int, multiple: int) -> np.ndarray:
    """The centred size x size crop, shrunk to the image and rounded down to ``multiple``."""
    h = min(size, rgb.shape[0]) // multiple * multiple
    w = min(size, rgb.shape[1]) // multiple * multiple
    if h == 0 or w == 0:
        raise ConfigError(f"validation image {rgb.shape[:2]} is smaller than the model's size multiple {multiple}")
    top, left = (rgb.shape[0] - h) // 2, (rgb.shape[1] - w) // 2
    return rgb[top : top + h, left : left + w]


def validation_tensors(pairs: list[Pair], crop: int, multiple: int) -> list[tuple[Pair, torch.Tensor, torch.Tensor]]:
    """(pair, lq [1,3,h,w], hr [1,3,h,w]) for each validation pair; crop 0 keeps whole images."""
    items = []
    for pair in pairs:
        hr, lq = read_rgb(pair.hr), read_rgb(pair.lq)
        if crop:
            hr, lq = centre_crop(hr, crop, multiple), centre_crop(lq, crop, multiple)
        items.append((pair, _chw(lq).unsqueeze(0), _chw(hr).unsqueeze(0)))
    return items
