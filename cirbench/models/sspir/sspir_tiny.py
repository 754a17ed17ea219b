"""A tiny SSP-IR with the release's key patterns and seeded random weights: every network, a byte-level tokenizer,
for tests and CPU smoke runs (``-O config=tiny``); never a result.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from cirbench.models.sspir.sspir_checkpoint import SSPIRNetworks
from cirbench.models.sspir.sspir_controlnet import SSPIRControlNet
from cirbench.models.sspir.sspir_towers import SCALING, SD15_SCHEDULER, make_text_encoder, make_vae, make_vision_tower
from cirbench.models.sspir.sspir_unet import TINY_UNET, SSPIRUNet

TINY_VAE = {"block_out_channels": [32, 32, 32, 32], "down_block_types": ["DownEncoderBlock2D"] * 4,
            "up_block_types": ["UpDecoderBlock2D"] * 4, "latent_channels": 4, "layers_per_block": 1,
            "norm_num_groups": 32, "in_channels": 3, "out_channels": 3, "sample_size": 64}  # fmt: skip
TINY_VISION = {"hidden_size": 1024, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 16,
               "image_size": 224, "patch_size": 14, "hidden_act": "quick_gelu", "projection_dim": 32}  # fmt: skip


def byte_vocabulary() -> tuple[dict[str, int], str]:
    """CLIP's byte-level base vocabulary (each byte symbol, alone and word-final) and an empty merge list."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = iter(range(256, 512))  # the byte-level BPE convention: unprintable bytes map past 255, in order
    symbols = [chr(b) if b in printable else chr(next(extra)) for b in range(256)]
    tokens = symbols + [s + "</w>" for s in symbols] + ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, "#version: 0.2\n"


def tiny_tokenizer():
    from transformers import CLIPTokenizer

    vocab, merges = byte_vocabulary()
    folder = Path(tempfile.mkdtemp(prefix="cirbench-sspir-tokenizer-"))
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text(merges, encoding="utf-8")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), pad_token="<|endoftext|>", model_max_length=77)


def tiny_parts(seed: int = 0) -> tuple[SSPIRNetworks, dict, torch.nn.Module]:
    """Seeded tiny networks, towers (VAE, text encoder, tokenizer, scheduler) and CLIP vision tower."""
    from cirbench.models.sspir.tpbnet import TPBNet

    torch.manual_seed(seed)
    unet = SSPIRUNet(TINY_UNET)
    nets = SSPIRNetworks(unet.eval(), SSPIRControlNet.from_unet(unet).eval(), TPBNet().eval(),
                         {"checkpoint": None, "config": "tiny", "seed": seed})  # fmt: skip
    tokenizer = tiny_tokenizer()
    text = make_text_encoder({"vocab_size": len(tokenizer), "hidden_size": TINY_UNET.cross_attention_dim,
                              "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                              "max_position_embeddings": 77, "hidden_act": "quick_gelu", "projection_dim": 32,
                              "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
                              "pad_token_id": tokenizer.pad_token_id})  # fmt: skip
    towers = {"vae": make_vae(TINY_VAE).eval(), "text_encoder": text.eval(), "tokenizer": tokenizer,
              "scheduler": SD15_SCHEDULER, "scaling_factor": SCALING}  # fmt: skip
    return nets, towers, make_vision_tower(TINY_VISION).eval()
