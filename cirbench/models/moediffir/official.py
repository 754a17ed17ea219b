"""The official MoE-DiffIR and SD 2.1 files: catalogue entries, expected layouts, strict loading and conversion.

A file is read tensors-only (Lightning objects as inert placeholders), checked key by key against the layout of
its configuration, its schedule buffers checked against our schedule, and DA-CLIP's aliased tower checked equal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cirbench.diffusion.kl_autoencoder import FUSION_AUTOENCODER, KLAutoencoder
from cirbench.diffusion.samplers import SamplerSettings, ldm_buffers
from cirbench.errors import CirbenchError
from cirbench.fileio import sha256_file
from cirbench.models.moediffir.network import MoEDiffIRConfig, MoEDiffIRNet, StableDiffusion2Net, official_config
from cirbench.weights.convert import register_converter
from cirbench.weights.layouts import Layout, compare, module_layout, register_layout, specs_of, state_at
from cirbench.weights.manager import WeightFile, register_weight

RELEASE_URL = "https://rec.ustc.edu.cn/share/84315560-c692-11ef-81e4-a301640e2c6f"
LICENCE = "no licence file (StableSR-derived: NTU S-Lab 1.0, non-commercial)"
DACLIP_FILE, PROMPT_FILE, DECODER_FILE = "MoE-DiffIR_DACLIP.ckpt", "N7_K3.ckpt", "Decoder_Finetuned.ckpt"
SD21_FILE = "v2-1_512-ema-pruned.ckpt"
SCHEDULE_KEYS = tuple(ldm_buffers(SamplerSettings().base_schedule()))
# in the released DA-CLIP file but in no published code (MoE-DiffIR issue #7): tolerated, reported, never loaded
RELEASED_EXTRA_KEYS = (
    "cond_stage_model.adapter2.fc.0.weight",
    "cond_stage_model.adapter2.fc.2.weight",
    "structcond_stage_model.task_embedding",
    "structcond_stage_model.conv_middle.0.weight",
    "structcond_stage_model.conv_middle.0.bias",
)
EMA_KEYS = ("model_ema.decay", "model_ema.num_updates")
ALIAS, ALIASED = "structcond_stage_model.DACLIP_model.visual.", "structcond_stage_model.DACLIP_model.clip.visual."
FILES = {
    DACLIP_FILE: WeightFile(DACLIP_FILE, RELEASE_URL, "", "MoE-DiffIR, DA-CLIP prior + V2T (model moe-diffir)", LICENCE),
    PROMPT_FILE: WeightFile(PROMPT_FILE, RELEASE_URL, "", "MoE-DiffIR, MoE-Prompt only (model moe-diffir-prompt)", LICENCE),
    DECODER_FILE: WeightFile(DECODER_FILE, RELEASE_URL, "", "MoE-DiffIR stage II fusion decoder (both models)", LICENCE),
    SD21_FILE: WeightFile(SD21_FILE, "https://huggingface.co/stabilityai/stable-diffusion-2-1-base/resolve/main/"
                          "v2-1_512-ema-pruned.ckpt", "", "Stable Diffusion 2.1 base (MoE-DiffIR's initialisation)",
                          "CreativeML Open RAIL++-M"),
}  # fmt: skip
for _spec in FILES.values():
    register_weight(_spec)


class OfficialWeightsError(CirbenchError):
    """An official MoE-DiffIR/SD file does not match the expected layout or its recorded values."""


def main_layout(cfg: MoEDiffIRConfig, net: nn.Module | None = None) -> Layout:
    """What MoE-DiffIR_DACLIP.ckpt / N7_K3.ckpt hold under ``state_dict`` (schedule buffers and known extras optional)."""
    optional = set(SCHEDULE_KEYS) | (set(RELEASED_EXTRA_KEYS) if cfg.variant == "daclip" else set())
    return module_layout(net or MoEDiffIRNet(cfg), container=("state_dict",), optional=frozenset(optional), any_float=True,
                         note="schedule buffers are checked against cirbench's schedule, not loaded")  # fmt: skip


def decoder_layout(cfg: MoEDiffIRConfig, net: nn.Module | None = None) -> Layout:
    return module_layout(net or KLAutoencoder(cfg.fusion_vae), container=("state_dict",), optional_prefixes=("loss.",),
                         any_float=True, note="a Lightning file's loss.* (LPIPS, discriminator) is tolerated and dropped")  # fmt: skip


def _sd21_layout() -> Layout:
    return module_layout(StableDiffusion2Net(), container=("state_dict",), optional=frozenset(SCHEDULE_KEYS + EMA_KEYS),
                         any_float=True)  # fmt: skip


register_layout(DACLIP_FILE, lambda: main_layout(official_config("daclip")))
register_layout(PROMPT_FILE, lambda: main_layout(official_config("prompt")))
register_layout(DECODER_FILE, lambda: decoder_layout(official_config("prompt")))
register_layout(SD21_FILE, _sd21_layout)
assert FUSION_AUTOENCODER == official_config("prompt").fusion_vae


def read_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of a .ckpt (under ``state_dict`` if there is one) or of a converted .safetensors file."""
    from cirbench.models.checkpoints import load_state_dict
    from cirbench.weights.lightning import safe_load

    path = Path(path)
    if not path.is_file():
        raise OfficialWeightsError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        return load_state_dict(path)
    return state_at(safe_load(path), ("state_dict",), path)


@dataclass
class LoadReport:
    """What strict loading found besides the weights it loaded."""

    file: str
    sha256: str
    tolerated: list[str] = field(default_factory=list)
    schedule_checked: list[str] = field(default_factory=list)
    aliases_checked: int = 0
    cast_to_float32: dict[str, int] = field(default_factory=dict)  # stored dtype -> number of tensors cast

    def as_record(self) -> dict[str, object]:
        return {"file": self.file, "sha256": self.sha256, "tolerated_keys": self.tolerated,
                "schedule_buffers_checked": len(self.schedule_checked), "aliased_keys_checked_equal": self.aliases_checked,
                "cast_to_float32": self.cast_to_float32}  # fmt: skip


def _check_schedule(state: dict[str, torch.Tensor], path: Path, report: LoadReport) -> None:
    ours = ldm_buffers(SamplerSettings().base_schedule())
    for key in SCHEDULE_KEYS:
        if key not in state:
            continue
        expected = torch.from_numpy(ours[key].astype(np.float32))
        found = state[key].detach().to("cpu", torch.float32)
        if found.shape != expected.shape or not torch.allclose(found, expected, rtol=1e-4, atol=1e-6):
            raise OfficialWeightsError(f"{path}: schedule buffer '{key}' differs from SD's linear schedule (0.00085..0.012, T=1000)")
        report.schedule_checked.append(key)


def _with_aliases(state: dict[str, torch.Tensor], path: Path, report: LoadReport) -> dict[str, torch.Tensor]:
    """DA-CLIP's ``visual.*`` is ``clip.visual.*`` again: check every pair equal (or restore it in a converted file)."""
    originals = {k for k in state if k.startswith(ALIASED)}
    if not originals:
        return state
    state = dict(state)
    unequal = []
    for key in sorted(originals):
        alias = ALIAS + key[len(ALIASED):]
        if alias not in state:
            state[alias] = state[key]
        elif state[alias].shape != state[key].shape or not torch.equal(state[alias], state[key]):
            unequal.append(alias)
        report.aliases_checked += 1
    if unequal:
        raise OfficialWeightsError(f"{path}: DA-CLIP's aliased tower differs from clip.visual at {', '.join(unequal[:5])}")
    return state


def checked_state(path: str | Path, layout: Layout) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """Read ``path`` and check it strictly against ``layout``; returns the tensors to load and what was tolerated."""
    path = Path(path)
    report = LoadReport(str(path.resolve()), sha256_file(path))
    state = _with_aliases(read_state(path), path, report)
    result = compare(layout, specs_of(state))
    if not result.ok:
        raise OfficialWeightsError(f"{path} does not match the expected layout: {result.summary()}")
    _check_schedule(state, path, report)
    report.tolerated = [k for k in result.tolerated if k not in SCHEDULE_KEYS]
    keep = {}
    for key, value in state.items():
        if key in layout.tensors:
            if layout.tensors[key].dtype == "float32" and value.dtype != torch.float32:
                name = str(value.dtype).removeprefix("torch.")
                report.cast_to_float32[name] = report.cast_to_float32.get(name, 0) + 1
                value = value.float()
            keep[key] = value
    return keep, report


def load_into(module: nn.Module, path: str | Path, layout: Layout, assign: bool = False) -> LoadReport:
    """Strictly load ``path``; ``assign`` adopts the file's tensors (for a module built on the meta device)."""
    state, report = checked_state(path, layout)
    module.load_state_dict(state, strict=True, assign=assign)
    return report


def convert(path: str | Path, out: str | Path, layout: Layout) -> LoadReport:
    """Write the checked weights of an official file as safetensors (aliases and schedule buffers left out)."""
    from cirbench.models.checkpoints import save_state_dict

    state, report = checked_state(path, layout)
    state = {k: v for k, v in state.items() if not k.startswith(ALIAS)}
    save_state_dict(state, out, metadata={"cirbench_converted_from": Path(path).name, "source_sha256": report.sha256})
    return report


def layout_for(filename: str, cfg: MoEDiffIRConfig) -> Layout:
    """The layout of one of the three MoE-DiffIR files for ``cfg`` (built on the meta device)."""
    with torch.device("meta"):
        return decoder_layout(cfg) if filename == DECODER_FILE else main_layout(cfg)


def _converter(filename: str):
    def run(path: Path, out: Path) -> dict[str, object]:
        return convert(path, out, layout_for(filename, official_config("daclip" if filename == DACLIP_FILE else "prompt"))).as_record()

    return run


for _name in (DACLIP_FILE, PROMPT_FILE, DECODER_FILE):
    register_converter(_name, _converter(_name))
