"""The release's ``checkpoint-N/`` folder (``unet/`` and ``controlnet/`` diffusers folders, ``refine/refine.pt``):
strict loading that names every key, the broken final save recognised, saving in the same layout, key layouts.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cirbench.fileio import sha256_file, write_text_atomic, write_with_atomic
from cirbench.models import ModelError
from cirbench.models.checkpoints import load_state_dict, save_state_dict
from cirbench.models.sspir import sspir_towers as towers
from cirbench.weights.layouts import module_layout, register_layout

UNET_LAYOUT, CONTROLNET_LAYOUT, REFINE_LAYOUT = "sspir-unet", "sspir-controlnet", "sspir-refine.pt"
WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


def _unet_layout():
    from cirbench.models.sspir.sspir_unet import SSPIRUNet

    return module_layout(SSPIRUNet(), any_float=True)


def _controlnet_layout():
    from cirbench.models.sspir.sspir_controlnet import SSPIRControlNet

    return module_layout(SSPIRControlNet(), any_float=True)


def _refine_layout():
    from cirbench.models.sspir.tpbnet import TPBNet

    return module_layout(TPBNet(), any_float=True)


register_layout(UNET_LAYOUT, _unet_layout)
register_layout(CONTROLNET_LAYOUT, _controlnet_layout)
register_layout(REFINE_LAYOUT, _refine_layout)

FINAL_SAVE = ("the release's final save (train.py:1083-1087) wrote the ControlNet and then the U-Net into one folder, "
              "so the U-Net overwrote the ControlNet and TPBNet was never saved; pass one of its checkpoint-N folders "
              "(unet/, controlnet/, refine/refine.pt) instead")  # fmt: skip


@dataclass
class SSPIRNetworks:
    unet: torch.nn.Module
    controlnet: torch.nn.Module
    refine: torch.nn.Module
    record: dict[str, Any]


def _refuse_final_save(root: Path) -> None:
    config = root / "config.json"
    if config.is_file() and not (root / "controlnet").is_dir():
        kind = towers.read_config(root).get("_class_name", "?")
        raise ModelError(f"{root} holds one {kind} config.json and no controlnet/: {FINAL_SAVE}")


def _load_part(module: torch.nn.Module, path: Path, what: str) -> str:
    state = load_state_dict(path)
    if what == "controlnet" and any(k.startswith("up_blocks.") for k in state) and not any(
        k.startswith("controlnet_cond_embedding.") for k in state
    ):
        raise ModelError(f"{path} holds a U-Net, not a ControlNet: {FINAL_SAVE}")
    towers.load_into(module, path, state=state)
    return sha256_file(path)


def _check_folder(root: Path) -> None:
    if not root.is_dir():
        raise ModelError(f"checkpoint {root}: not a folder (expected checkpoint-N/ with unet/, controlnet/, refine/)")
    _refuse_final_save(root)
    missing = [p for p in ("unet", "controlnet", "refine/refine.pt") if not (root / p).exists()]
    if missing:
        raise ModelError(f"checkpoint {root}: missing {', '.join(missing)} (a checkpoint-N folder of the release "
                         "or of `cirbench train sspir`)")  # fmt: skip


def _load_parts(root: Path, unet: torch.nn.Module, controlnet: torch.nn.Module, refine: torch.nn.Module) -> dict:
    return {
        "unet": _load_part(unet, towers.weights_in(root / "unet", WEIGHT_NAMES, "U-Net"), "unet"),
        "controlnet": _load_part(controlnet, towers.weights_in(root / "controlnet", WEIGHT_NAMES, "ControlNet"), "controlnet"),
        "refine": _load_part(refine, root / "refine" / "refine.pt", "refine"),
    }


def load_weights_into(folder: str | Path, unet: torch.nn.Module, controlnet: torch.nn.Module,
                      refine: torch.nn.Module) -> dict[str, str]:  # fmt: skip
    """A ``checkpoint-N`` folder's weights into existing networks (on any device), every key checked; sha256s."""
    root = Path(folder)
    _check_folder(root)
    return _load_parts(root, unet, controlnet, refine)


def load_checkpoint(folder: str | Path, device: str = "cpu") -> SSPIRNetworks:
    """U-Net, ControlNet and TPBNet from a release ``checkpoint-N`` folder (or ours), every key checked."""
    from cirbench.models.sspir.sspir_controlnet import SSPIRControlNet, SSPIRControlNetConfig
    from cirbench.models.sspir.sspir_unet import SSPIRUNet, SSPIRUNetConfig
    from cirbench.models.sspir.tpbnet import TPBNet

    root = Path(folder)
    _check_folder(root)
    ucfg = SSPIRUNetConfig.from_diffusers(towers.read_config(root / "unet"), str(root / "unet" / "config.json"))
    ccfg = SSPIRControlNetConfig.from_diffusers(towers.read_config(root / "controlnet"), str(root / "controlnet" / "config.json"))
    with torch.device("meta"):
        unet, controlnet, refine = SSPIRUNet(ucfg), SSPIRControlNet(ccfg), TPBNet()
    unet, controlnet, refine = (m.to_empty(device="cpu") for m in (unet, controlnet, refine))
    digests = _load_parts(root, unet, controlnet, refine)
    record = {"checkpoint": str(root.resolve()), "sha256": digests, "unet_config": ucfg.to_diffusers()}
    return SSPIRNetworks(unet.to(device).eval(), controlnet.to(device).eval(), refine.to(device).eval(), record)


def save_checkpoint(folder: str | Path, unet: torch.nn.Module, controlnet: torch.nn.Module,
                    refine: torch.nn.Module) -> Path:  # fmt: skip
    """The release's layout: ``unet/`` and ``controlnet/`` (config.json + safetensors), ``refine/refine.pt``."""
    root = Path(folder)
    for name, module in (("unet", unet), ("controlnet", controlnet)):
        os.makedirs(root / name, exist_ok=True)
        save_state_dict(module.state_dict(), root / name / WEIGHT_NAMES[0], metadata={"format": "pt"})
        write_text_atomic(root / name / "config.json", json.dumps(module.config.to_diffusers(), indent=2, sort_keys=True) + "\n")
    os.makedirs(root / "refine", exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in refine.state_dict().items()}
    write_with_atomic(root / "refine" / "refine.pt", lambda tmp: torch.save(state, tmp))
    return root
