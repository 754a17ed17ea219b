"""The frozen parts SSP-IR borrows: SD-1.5's VAE, text encoder, tokenizer and scheduler config, and CLIP ViT-L/14's
vision tower; their catalogue entries, key layouts and strict loaders (diffusers / transformers classes).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from cirbench.errors import CirbenchError
from cirbench.models import ModelError
from cirbench.models.checkpoints import load_state_dict, load_strict
from cirbench.weights.layouts import Layout, module_layout, register_layout
from cirbench.weights.manager import WeightFile, WeightsUnavailable, ensure_weight, register_weight

EXTRA = "pip install 'cirbench[sspir]'"
SD15_HUB = "https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5/resolve/main"
CLIP_HUB = "https://huggingface.co/openai/clip-vit-large-patch14/resolve/main"
SD15_LICENCE, CLIP_LICENCE = "CreativeML OpenRAIL-M", "MIT"
VAE_FILE, TEXT_FILE = "sd15-vae.safetensors", "sd15-text-encoder.safetensors"
CLIP_FILE = "clip-vit-large-patch14.safetensors"
UNET_FILE = "sd15-unet.safetensors"  # only to start training (the stock part of the SSP-IR U-Net)
for _name, _path, _what in ((VAE_FILE, "vae/diffusion_pytorch_model.safetensors", "VAE"),
                            (TEXT_FILE, "text_encoder/model.safetensors", "text encoder (CLIP ViT-L/14 text)"),
                            (UNET_FILE, "unet/diffusion_pytorch_model.safetensors", "U-Net (training init)"),
                            ):  # fmt: skip
    register_weight(WeightFile(_name, f"{SD15_HUB}/{_path}", "", f"SD-1.5 {_what}, used by sspir", SD15_LICENCE))
register_weight(WeightFile(CLIP_FILE, f"{CLIP_HUB}/model.safetensors", "",
                           "CLIP ViT-L/14 (openai), its vision tower feeds sspir's TPBNet", CLIP_LICENCE))  # fmt: skip

# SD-1.5's published configs (runwayml/stable-diffusion-v1-5), used when the files come from the weights cache
SD15_VAE_CONFIG = {"act_fn": "silu", "block_out_channels": [128, 256, 512, 512], "down_block_types":
                   ["DownEncoderBlock2D"] * 4, "in_channels": 3, "latent_channels": 4, "layers_per_block": 2,
                   "norm_num_groups": 32, "out_channels": 3, "sample_size": 512, "up_block_types":
                   ["UpDecoderBlock2D"] * 4}  # fmt: skip
SD15_TEXT_CONFIG = {"vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072, "projection_dim": 768,
                    "num_hidden_layers": 12, "num_attention_heads": 12, "max_position_embeddings": 77,
                    "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "bos_token_id": 0, "eos_token_id": 2,
                    "pad_token_id": 1}  # fmt: skip
CLIP_VISION_CONFIG = {"hidden_size": 1024, "intermediate_size": 4096, "projection_dim": 768, "num_hidden_layers": 24,
                      "num_attention_heads": 16, "image_size": 224, "patch_size": 14, "hidden_act": "quick_gelu",
                      "layer_norm_eps": 1e-5}  # fmt: skip
SD15_SCHEDULER = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "clip_sample": False,
                  "num_train_timesteps": 1000, "prediction_type": "epsilon", "set_alpha_to_one": False,
                  "steps_offset": 1, "trained_betas": None, "timestep_spacing": "leading",
                  "variance_type": "fixed_small"}  # fmt: skip
SCALING = 0.18215
POSITION_IDS = ("text_model.embeddings.position_ids", "vision_model.embeddings.position_ids")
CLIP_OTHER = ("text_model.", "text_projection.", "visual_projection.", "logit_scale")  # the rest of CLIPModel's file


def requires_extra(what: str) -> None:
    """ModelError in one line when diffusers / transformers (the ``sspir`` extra) are not installed."""
    import importlib.util

    missing = [m for m in ("diffusers", "transformers") if importlib.util.find_spec(m) is None]
    if missing:
        raise ModelError(f"{what} needs {' and '.join(missing)}: {EXTRA}")


def make_vae(config: dict[str, Any] | None = None) -> torch.nn.Module:
    requires_extra("SD-1.5's VAE")
    from diffusers import AutoencoderKL

    keys = ("act_fn", "block_out_channels", "down_block_types", "in_channels", "latent_channels", "layers_per_block",
            "norm_num_groups", "out_channels", "sample_size", "up_block_types")  # fmt: skip
    return AutoencoderKL(**{k: v for k, v in (config or SD15_VAE_CONFIG).items() if k in keys})


def make_text_encoder(config: dict[str, Any] | None = None) -> torch.nn.Module:
    from cirbench.models.sspir.clip_hf import CLIPTextTower, CLIPTowerConfig

    return CLIPTextTower(CLIPTowerConfig.from_json(config or SD15_TEXT_CONFIG))


def make_vision_tower(config: dict[str, Any] | None = None) -> torch.nn.Module:
    from cirbench.models.sspir.clip_hf import CLIPTowerConfig, CLIPVisionTower

    config = dict(config or CLIP_VISION_CONFIG)
    config = config.get("vision_config", config)  # a CLIPModel config.json nests the vision part
    return CLIPVisionTower(CLIPTowerConfig.from_json(config))


def _layout(module: torch.nn.Module, **options: Any) -> Layout:
    """Older files hold ``position_ids``, newer ones do not: either is accepted (and checked to be an arange)."""
    return module_layout(module, optional=frozenset(POSITION_IDS), any_float=True, **options)


register_layout(VAE_FILE, lambda: _layout(make_vae()))
register_layout(TEXT_FILE, lambda: _layout(make_text_encoder()))
register_layout(CLIP_FILE, lambda: _layout(make_vision_tower(), optional_prefixes=CLIP_OTHER))


def weights_in(folder: Path, names: tuple[str, ...], what: str) -> Path:
    """The first of ``names`` present in ``folder`` (a diffusers / transformers folder's weights file)."""
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise ModelError(f"{folder}: no {what} weights ({' or '.join(names)})")


def read_config(folder: Path, name: str = "config.json") -> dict[str, Any]:
    """A hub folder's JSON config; ModelError in one line when it is absent or unreadable."""
    path = folder / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{folder}: no {name} (a diffusers / transformers folder has it beside its weights)") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path}: not JSON ({exc.msg}, line {exc.lineno})") from exc


def load_into(module: torch.nn.Module, path: Path, drop: tuple[str, ...] = (),
              state: dict[str, torch.Tensor] | None = None) -> None:  # fmt: skip
    """Strict load of ``path`` (or its already read ``state``) naming every key, floats cast to the module's dtype;
    a ``position_ids`` buffer may be absent, and if present must be the arange."""
    state = {k: v for k, v in (load_state_dict(path) if state is None else state).items() if not k.startswith(drop)}
    expected = module.state_dict()
    for key in POSITION_IDS:
        if key in expected:
            value = state.setdefault(key, expected[key])
            if not torch.equal(value.reshape(-1).long(), torch.arange(value.numel())):
                raise ModelError(f"{path}: {key} is not 0..{value.numel() - 1}")
            state[key] = value.long()
    state = {k: v.to(expected[k].dtype) if k in expected and v.is_floating_point() else v for k, v in state.items()}
    try:
        load_strict(module, state)
    except CirbenchError as exc:  # a StrictLoadError names the keys; say which file
        raise ModelError(f"{path}: {exc}") from exc


def _stock_unet_layout() -> Layout:
    from cirbench.models.sspir.sspir_unet import SSPIRUNet, is_addition

    layout = _layout(SSPIRUNet())
    stock = {k: v for k, v in layout.tensors.items() if not is_addition(k)}
    return Layout(stock, any_float=True)


register_layout(UNET_FILE, _stock_unet_layout)


def cached(filename: str) -> Path | None:
    try:
        return ensure_weight(filename, download=False)
    except WeightsUnavailable:
        return None


def missing_sd15(sd15: str, clip: str) -> list[str]:
    """The catalogue files still missing when no folders are given."""
    names = ([] if sd15 else [VAE_FILE, TEXT_FILE]) + ([] if clip else [CLIP_FILE])
    return [n for n in names if cached(n) is None]


class EmptyPromptTokenizer:
    """SD-1.5's tokenizer for the empty prompt only (bos 49406, eos = pad 49407): what runs when no captions and no
    negative prompt are given, so the tokenizer files are needed only for real text."""

    bos_token_id, eos_token_id, pad_token_id, model_max_length = 49406, 49407, 49407, 77

    def __call__(self, prompts: list[str], max_length: int = 77, padding: str | bool = False, truncation: bool = True,
                 return_tensors: str | None = None) -> Any:  # fmt: skip
        from types import SimpleNamespace

        if any(prompts):
            raise ModelError("captions and negative prompts need SD-1.5's tokenizer: pass -O sd15=DIR (a diffusers "
                             "folder with tokenizer/vocab.json and merges.txt)")  # fmt: skip
        length = max_length if padding == "max_length" else 2
        ids = [[self.bos_token_id] + [self.eos_token_id] * (length - 1) for _ in prompts]
        return SimpleNamespace(input_ids=torch.tensor(ids) if return_tensors == "pt" else ids)


def load_sd15(folder: str = "") -> dict[str, Any]:
    """vae, text_encoder, tokenizer and scheduler config from an SD-1.5 diffusers folder, else the weights cache."""
    requires_extra("sspir")
    from transformers import CLIPTokenizer

    if folder:
        root = Path(folder)
        if not root.is_dir():
            raise ModelError(f"sd15={folder}: not a folder (expected an SD-1.5 diffusers folder with vae/, text_encoder/, tokenizer/)")
        vae = make_vae(read_config(root / "vae"))
        load_into(vae, weights_in(root / "vae", ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"), "VAE"))
        text = make_text_encoder(read_config(root / "text_encoder"))
        load_into(text, weights_in(root / "text_encoder", ("model.safetensors", "pytorch_model.bin"), "text encoder"))  # fmt: skip
        vocab, merges = root / "tokenizer" / "vocab.json", root / "tokenizer" / "merges.txt"
        scheduler_file = root / "scheduler" / "scheduler_config.json"
        scheduler = read_config(root / "scheduler", "scheduler_config.json") if scheduler_file.is_file() else SD15_SCHEDULER
    else:
        vae, text = make_vae(), make_text_encoder()
        load_into(vae, ensure_weight(VAE_FILE, download=False))
        load_into(text, ensure_weight(TEXT_FILE, download=False))
        vocab = merges = None
        scheduler = SD15_SCHEDULER
    tokenizer = EmptyPromptTokenizer()  # without the folder's tokenizer/: the empty prompt's ids are known
    if vocab is not None and Path(vocab).is_file() and Path(merges).is_file():
        tokenizer = CLIPTokenizer(str(vocab), str(merges), pad_token="<|endoftext|>", model_max_length=77)
    scaling = vae.config.get("scaling_factor", SCALING) if hasattr(vae, "config") else SCALING
    return {"vae": vae.eval(), "text_encoder": text.eval(), "tokenizer": tokenizer, "scheduler": scheduler,
            "scaling_factor": float(scaling)}  # fmt: skip


def load_vision_tower(folder: str = "") -> torch.nn.Module:
    """CLIPVisionModel from an ``openai/clip-vit-large-patch14`` folder (or a CLIPVisionModel folder), else the cache."""
    if folder:
        root = Path(folder)
        tower = make_vision_tower(read_config(root))
        path = weights_in(root, ("model.safetensors", "pytorch_model.bin"), "CLIP")
    else:
        tower, path = make_vision_tower(), ensure_weight(CLIP_FILE, download=False)
    load_into(tower, path, drop=CLIP_OTHER)
    return tower.eval()
