"""SSP-IR's conditioning inputs: long prompts as the release tokenises and encodes them (up to 4 x 75 tokens in
77-token chunks), captions read from a folder, and the CLIP vision input as training or the release's test makes it.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from cirbench.models import ModelError

CHUNKS = 4  # the release's max_embeddings_multiples: prompts up to 4 x 75 tokens (302 with bos/eos)
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.275777)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CLIP_NORMS = ("train", "release-test")


def prompt_ids(tokenizer, prompts: list[str], chunks: int = CHUNKS) -> torch.Tensor:
    """``[bos] + tokens + [pad]* + [eos]``, padded to the longest prompt rounded up to k x 75 tokens, k <= ``chunks``."""
    width = tokenizer.model_max_length - 2
    tokens = [ids[1:-1] for ids in tokenizer(prompts, max_length=width * chunks + 2, truncation=True).input_ids]
    k = max(1, min(chunks, (max(len(t) for t in tokens) - 1) // width + 1))
    length = width * k + 2
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    rows = [[tokenizer.bos_token_id, *t, *[pad] * (length - 2 - len(t)), tokenizer.eos_token_id] for t in tokens]
    return torch.tensor(rows, dtype=torch.long)


def negative_ids(tokenizer, prompts: list[str], length: int) -> torch.Tensor:
    """The negative prompt as the release's pipeline tokenises it: standard padding to the prompt's length."""
    out = tokenizer(prompts, padding="max_length", max_length=length, truncation=True, return_tensors="pt")
    return out.input_ids


def encode_ids(text_encoder, ids: torch.Tensor, chunk: int = 77) -> torch.Tensor:
    """Encode 77-token chunks (each given the row's first and last token) and join them without the middle bos/eos."""
    k = (ids.shape[1] - 2) // (chunk - 2)
    device = next(text_encoder.parameters()).device
    if k <= 1:
        return text_encoder(ids.to(device))[0]
    parts = []
    for i in range(k):
        piece = ids[:, i * (chunk - 2) : (i + 1) * (chunk - 2) + 2].clone()
        piece[:, 0], piece[:, -1] = ids[0, 0], ids[0, -1]  # the release takes them from the first row
        hidden = text_encoder(piece.to(device))[0]
        parts.append(hidden[:, :-1] if i == 0 else hidden[:, 1:] if i == k - 1 else hidden[:, 1:-1])
    return torch.cat(parts, dim=1)


def read_captions(folder: str) -> dict[str, str]:
    """``stem -> caption`` for every .txt file of ``folder`` (newlines become spaces, as the release does)."""
    root = Path(folder)
    if not root.is_dir():
        raise ModelError(f"captions={folder}: not a folder of .txt files (one per image stem)")
    captions = {}
    for path in sorted(root.glob("*.txt")):
        try:
            captions[path.stem] = " ".join(path.read_text(encoding="utf-8").split())
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelError(f"{path}: unreadable caption ({exc})") from exc
    if not captions:
        raise ModelError(f"captions={folder}: no .txt files")
    return captions


def clip_input(lq: torch.Tensor, norm: str = "train") -> torch.Tensor:
    """The 224 x 224 CLIP input of LQ in [0, 1]: ``train`` = bicubic, clamp, CLIP mean/std (the release's training);
    ``release-test`` = bilinear without antialias and ImageNet mean/std (the release's test.py)."""
    if norm == "train":
        x = F.interpolate(lq, size=(224, 224), mode="bicubic").clamp(0.0, 1.0)
        mean, std = CLIP_MEAN, CLIP_STD
    elif norm == "release-test":
        x = F.interpolate(lq, size=(224, 224), mode="bilinear", antialias=False)
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    else:
        raise ModelError(f"clip_norm must be one of {', '.join(CLIP_NORMS)}, got '{norm}'")
    shape = (1, 3, 1, 1)
    return (x - torch.tensor(mean, device=x.device).view(shape)) / torch.tensor(std, device=x.device).view(shape)
