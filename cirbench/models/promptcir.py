"""PromptCIR (Li et al., NTIRE 2024 blind compressed image enhancement winner): network, official-checkpoint
loading with strict key matching, the official test protocol, and the `promptcir` / `promptcir-s` models.

State-dict names, shapes and dtypes equal those of the official ``model.py`` (``MyModel(decoder=True)``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from cirbench.fileio import sha256_file
from cirbench.models import ModelError, ModelInfo, register_model
from cirbench.models.blocks.mirror_tiling import MirrorTiling, ensemble
from cirbench.models.blocks.prompts import BasisPrompt
from cirbench.models.blocks.restormer import ConvEmbed, Downsample, RestormerBlock, Upsample, restormer_stage
from cirbench.models.blocks.window_attention import (
    ResidualHybridAttentionGroup,
    overlap_attention_index,
    self_attention_index,
)
from cirbench.models.checkpoints import StrictLoadError, load_state_dict, load_strict
from cirbench.tasks import Task
from cirbench.weights.layouts import module_layout, register_layout
from cirbench.weights.manager import WeightFile, WeightsCorrupt, WeightsUnavailable, ensure_weight, register_weight


@dataclass(frozen=True)
class PromptCIRConfig:
    """Hyperparameters; the defaults are the official ones (34,754,927 parameters)."""

    dim: int = 48
    num_blocks: tuple[int, int, int, int] = (4, 6, 6, 8)
    num_refinement_blocks: int = 4
    heads: tuple[int, int, int, int] = (1, 2, 4, 8)
    ffn_expansion_factor: float = 2.66
    bias: bool = False
    window_size: int = 16
    overlap_ratio: float = 0.5
    compress_ratio: int = 3
    squeeze_factor: int = 16
    num_task: int = 7
    prompt_basis: tuple[int, int, int] = (64, 32, 16)  # prompt1 (1/2 res), prompt2 (1/4), prompt3 (1/8)
    prompt_dims: tuple[int, int, int] = (64, 128, 320)

    @property
    def size_multiple(self) -> int:
        """H and W must be multiples of this: windows of level 2 (half resolution) and three downsamplings."""
        return math.lcm(2 * self.window_size, 8)

    def as_record(self) -> dict[str, object]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


OFFICIAL_CONFIG = PromptCIRConfig()


class PromptCIRNet(nn.Module):
    """4-level U-net of Restormer blocks with HAT groups at full and half resolution and prompt blocks in the
    decoder; output = conv(features) + input (unclamped). H, W must be multiples of ``size_multiple``."""

    def __init__(self, config: PromptCIRConfig = OFFICIAL_CONFIG) -> None:
        super().__init__()
        self.config = config
        c, ws = config, config.window_size
        overlap_window = int(ws * c.overlap_ratio) + ws
        self.register_buffer("relative_position_index_SA", self_attention_index(ws))
        self.register_buffer("relative_position_index_OCA", overlap_attention_index(ws, overlap_window))
        self.patch_embed_input = ConvEmbed(3, c.dim)
        for level, (basis, prompt_dim) in enumerate(zip(c.prompt_basis, c.prompt_dims, strict=True), start=1):
            setattr(self, f"prompt{level}", BasisPrompt(c.dim * 2**level, c.num_task, basis, prompt_dim))
        self._build_encoder()
        self._build_decoder()
        self.apply(_init_weights)

    def _group(self, dim: int, heads: int, depth: int) -> ResidualHybridAttentionGroup:
        c = self.config
        return ResidualHybridAttentionGroup(
            dim,
            heads,
            depth,
            c.window_size,
            c.compress_ratio,
            c.squeeze_factor,
            c.ffn_expansion_factor,
            c.overlap_ratio,
        )

    def _stage(self, dim: int, heads: int, depth: int) -> nn.Sequential:
        c = self.config
        return restormer_stage(dim, heads, depth, c.ffn_expansion_factor, c.bias)

    def _build_encoder(self) -> None:
        c, d = self.config, self.config.dim
        self.encoder_level1 = self._group(d, c.heads[0], c.num_blocks[0])
        self.down1_2 = Downsample(d)
        self.encoder_level2 = self._group(d * 2, c.heads[1], c.num_blocks[1])
        self.down2_3 = Downsample(d * 2)
        self.encoder_level3 = self._stage(d * 4, c.heads[2], c.num_blocks[2])
        self.down3_4 = Downsample(d * 4)
        self.latent = self._stage(d * 8, c.heads[3], c.num_blocks[3])

    def _build_decoder(self) -> None:
        c, d, p = self.config, self.config.dim, self.config.prompt_dims
        block = RestormerBlock
        self.up4_3 = Upsample(d * 4)
        self.reduce_chan_level3 = nn.Conv2d(d * 2 + d * 4, d * 4, kernel_size=1, bias=c.bias)
        self.noise_level3 = block(d * 8 + p[2], c.heads[2], c.ffn_expansion_factor, c.bias)
        self.reduce_noise_level3 = nn.Conv2d(d * 8 + p[2], d * 4, kernel_size=1, bias=c.bias)
        self.decoder_level3 = self._stage(d * 4, c.heads[2], c.num_blocks[2])
        self.up3_2 = Upsample(d * 4)
        self.reduce_chan_level2 = nn.Conv2d(d * 4, d * 2, kernel_size=1, bias=c.bias)
        self.noise_level2 = block(d * 4 + p[1], c.heads[2], c.ffn_expansion_factor, c.bias)
        self.reduce_noise_level2 = nn.Conv2d(d * 4 + p[1], d * 4, kernel_size=1, bias=c.bias)
        self.decoder_level2 = self._group(d * 2, c.heads[1], c.num_blocks[1])
        self.up2_1 = Upsample(d * 2)
        self.noise_level1 = block(d * 2 + p[0], c.heads[2], c.ffn_expansion_factor, c.bias)
        self.reduce_noise_level1 = nn.Conv2d(d * 2 + p[0], d * 2, kernel_size=1, bias=c.bias)
        self.decoder_level1 = self._group(d * 2, c.heads[0], c.num_blocks[0])
        self.refinement = self._stage(d * 2, c.heads[0], c.num_refinement_blocks)
        self.output = nn.Conv2d(d * 2, 3, kernel_size=3, padding=1, bias=c.bias)

    @property
    def size_multiple(self) -> int:
        return self.config.size_multiple

    def _prompted(self, level: int, features: torch.Tensor) -> torch.Tensor:
        """Concatenate the level's prompt map, one Restormer block, 1x1 conv (the prompt interaction)."""
        prompt = getattr(self, f"prompt{level}")(features)
        mixed = getattr(self, f"noise_level{level}")(torch.cat([features, prompt], dim=1))
        return getattr(self, f"reduce_noise_level{level}")(mixed)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        m = self.size_multiple
        if image.shape[-1] % m or image.shape[-2] % m:
            raise ValueError(f"PromptCIRNet needs H and W multiples of {m}, got {tuple(image.shape[-2:])}")
        sa, oca = self.relative_position_index_SA, self.relative_position_index_OCA
        enc1 = self.encoder_level1(self.patch_embed_input(image), sa, oca)
        enc2 = self.encoder_level2(self.down1_2(enc1), sa, oca)
        enc3 = self.encoder_level3(self.down2_3(enc2))
        latent = self._prompted(3, self.latent(self.down3_4(enc3)))
        dec3 = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(latent), enc3], dim=1)))
        dec3 = self._prompted(2, dec3)
        dec2 = self.reduce_chan_level2(torch.cat([self.up3_2(dec3), enc2], dim=1))
        dec2 = self._prompted(1, self.decoder_level2(dec2, sa, oca))
        dec1 = self.decoder_level1(torch.cat([self.up2_1(dec2), enc1], dim=1), sa, oca)
        return self.output(self.refinement(dec1)) + image


def _init_weights(module: nn.Module) -> None:
    """Linear: truncated normal (std 0.02), zero bias; LayerNorm: ones and zeros (the official init)."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


SMALL_CONFIG = PromptCIRConfig(
    dim=24,
    num_blocks=(2, 2, 3, 3),
    num_refinement_blocks=2,
    window_size=8,
    prompt_basis=(32, 16, 8),
    prompt_dims=(24, 48, 96),
)  # 4,576,005 parameters: the float16 file stays under 10 MB

OFFICIAL_DRIVE = "https://drive.google.com/drive/folders/1oxOVDK845rikuwWiMICHUv5nFGJjA7pV"
OFFICIAL_WEIGHTS = tuple(
    register_weight(
        WeightFile(
            filename=f"promptcir_{name}",
            url=OFFICIAL_DRIVE,
            sha256_prefix="",  # no published digest: the cached copy is used unverified
            purpose=f"PromptCIR official weights '{name}' (NTIRE 2024), from the authors' Google Drive folder",
            licence="Apache-2.0",
        )
    )
    for name in ("model_best.pth", "model_best2.pth")
)
for _name in ("model_best.pth", "model_best2.pth"):
    register_layout(f"promptcir_{_name}", lambda: module_layout(PromptCIRNet(OFFICIAL_CONFIG)))
PACKAGED_DIR = Path(__file__).resolve().parent / "_weights"
SMALL_WEIGHTS = PACKAGED_DIR / "promptcir-s.safetensors"
SMALL_RECIPE = PACKAGED_DIR / "promptcir-s.train.toml"
# sha256 of the packaged promptcir-s.safetensors; None until weights that meet the bar (every traditional task
# above the input on LIVE1) are trained and shipped
SMALL_WEIGHTS_SHA256: str | None = None


class WeightsNotShipped(ModelError):
    """A bundled model's weights file is not part of this installation."""


def load_promptcir_weights(network: PromptCIRNet, path: str | Path) -> str:
    """Load a raw PromptCIR state dict (official ``model_best.pth`` layout, or our safetensors) strictly.

    Tolerated: a ``module.`` prefix on every key, a wrapper container, missing relative-position-index buffers
    (rebuilt), float16/float64 weights (cast to float32). Anything else missing, unexpected, mis-shaped or of
    the wrong kind (integer vs floating point) raises StrictLoadError naming the keys. Returns the file's sha256.
    """
    state = load_state_dict(path)
    if state and all(key.startswith("module.") for key in state):
        state = {key[len("module.") :]: value for key, value in state.items()}
    for name, buffer in network.named_buffers():
        state.setdefault(name, buffer)
    expected = network.state_dict()
    wrong_kind = sorted(
        f"{k} ({state[k].dtype})"
        for k in expected.keys() & state.keys()
        if state[k].is_floating_point() != expected[k].is_floating_point()
    )
    if wrong_kind:
        raise StrictLoadError(f"{path}: tensors of the wrong dtype kind: {', '.join(wrong_kind[:8])}")
    load_strict(network, {k: v.to(torch.float32) if v.is_floating_point() else v for k, v in state.items()})
    return sha256_file(path)


# promptcir-s-diffloss: the same network and recipe, trained with the diffloss loss (its recipe beside this one)
DIFFLOSS_WEIGHTS = PACKAGED_DIR / "promptcir-s-diffloss.safetensors"
DIFFLOSS_RECIPE = PACKAGED_DIR / "promptcir-s-diffloss.train.toml"
DIFFLOSS_WEIGHTS_SHA256: str | None = None


def packaged_small_weights(path: Path = SMALL_WEIGHTS, sha256: str | None = SMALL_WEIGHTS_SHA256,
                           name: str = "promptcir-s", recipe: Path = SMALL_RECIPE) -> Path:  # fmt: skip
    """The packaged weights of ``name``, after checking their sha256 against the one recorded in this module."""
    command = f"cirbench train promptcir-s --data BUILT_DATASET --config {recipe} --out runs/{name}"
    if sha256 is None:
        raise WeightsNotShipped(
            f"the {name} weights are not shipped yet. Train them with: {command}, "
            f"then pass --checkpoint runs/{name}/final.safetensors"
        )
    if not path.is_file():
        raise WeightsNotShipped(
            f"the {name} weights are missing from this installation ({path}); reinstall cirbench, or train "
            f"them with: {command}"
        )
    digest = sha256_file(path)
    if digest != sha256:
        raise WeightsCorrupt(
            f"{path} has sha256 {digest}, not the recorded {sha256}: the packaged {name} weights were changed "
            "or damaged; reinstall cirbench (or pass your own file with --checkpoint)"
        )
    return path


class PromptCIRModel:
    """RestorationModel around one or two PromptCIR networks run with the mirror-tiling protocol."""

    def __init__(self, info: ModelInfo, networks: list[PromptCIRNet], protocol: MirrorTiling) -> None:
        self.info = info
        self.networks = networks
        self.protocol = protocol

    @property
    def network(self) -> PromptCIRNet:
        """The (first) network: the one `cirbench train` optimises."""
        return self.networks[0]

    def restore(self, lq: torch.Tensor, task: Task | None = None) -> torch.Tensor:
        for network in self.networks:
            network.eval()
        with torch.no_grad():
            return ensemble(self.networks, lq, self.protocol)

    def to(self, device: str) -> PromptCIRModel:
        for network in self.networks:
            network.to(device)
        return self


def _flag(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def _protocol(multiple: int, strictly_greater: bool, tile: object, overlap: object, ensemble: object) -> MirrorTiling:
    tile_size = None if tile in (None, 0, "0", "none", "None", "") else int(tile)  # type: ignore[arg-type]
    return MirrorTiling(multiple, strictly_greater, tile_size, int(overlap), _flag(ensemble))  # type: ignore[arg-type]


def _checkpoint_paths(checkpoint: str, checkpoint2: str | None) -> list[str]:
    """``checkpoint`` may also name both files as 'model_best.pth,model_best2.pth'."""
    if checkpoint2 is None and "," in checkpoint and not Path(checkpoint).exists():
        first, second = checkpoint.split(",", 1)
        return [first, second]
    return [checkpoint] + ([checkpoint2] if checkpoint2 else [])


def _packaged_status(sha256: str | None) -> str:
    return "packaged" if sha256 is not None else "not shipped yet (train them: `cirbench train`, see the README)"


def _cached_official() -> list[str]:
    """model_best.pth (and model_best2.pth) from the weights cache, where `cirbench weights import` puts them."""
    paths = []
    for spec in OFFICIAL_WEIGHTS:
        try:
            paths.append(str(ensure_weight(spec.filename, download=False)))
        except WeightsUnavailable:
            break
    if not paths:
        raise WeightsNotShipped(
            "PromptCIR's official weights are not bundled and have no published sha256: download model_best.pth "
            f"and model_best2.pth from {OFFICIAL_DRIVE} and pass --checkpoint model_best.pth "
            "(and -O checkpoint2=model_best2.pth for the official two-model ensemble), or rename them to "
            f"{OFFICIAL_WEIGHTS[0].filename} / {OFFICIAL_WEIGHTS[1].filename} and run `cirbench weights import FILE`"
        )
    return paths


def _build(config: PromptCIRConfig, paths: list[str], device: str) -> tuple[list[PromptCIRNet], str]:
    networks, digests = [], []
    for path in paths or [None]:
        network = PromptCIRNet(config)
        if path is not None:
            digests.append(load_promptcir_weights(network, path)[:12])
        networks.append(network.to(device).eval())
    return networks, "+".join(digests) or "untrained"


@register_model("promptcir", mode="blind", weights=tuple(spec.filename for spec in OFFICIAL_WEIGHTS))
def create_promptcir(
    checkpoint: str | None = None,
    device: str = "cpu",
    checkpoint2: str | None = None,
    tile: object = 384,
    overlap: object = 96,
    ensemble: object = True,
    init: str | None = None,
) -> PromptCIRModel:
    """PromptCIR (Li et al., NTIRE 2024): the official architecture and test protocol. ``checkpoint``: model_best.pth (``checkpoint2``: model_best2.pth
    for the official two-model ensemble). ``init="random"`` builds an untrained network (for `cirbench train`)."""
    if checkpoint is None and init != "random":
        paths, label = _cached_official(), "PromptCIR, the authors' weights from the cache (no published hash)"
    else:
        paths = _checkpoint_paths(checkpoint, checkpoint2) if checkpoint else []
        label = "PromptCIR, weights from --checkpoint" if paths else "PromptCIR architecture, untrained"
    networks, version = _build(OFFICIAL_CONFIG, paths, device)
    info = ModelInfo(
        name="promptcir",
        version=version,
        needs_task_label=False,
        trainable=True,
        description=f"PromptCIR (Li et al., NTIRE 2024), {len(networks)} network(s), official test protocol",
        label=label,
        not_a_result="" if paths else "untrained (random initialisation)",
    )
    return PromptCIRModel(info, networks, _protocol(32, True, tile, overlap, ensemble))


def _small_model(name: str, label: str, checkpoint: str | None, device: str, tile: object, overlap: object,
                 ensemble: object, init: str | None, packaged: tuple[Path, str | None, Path]) -> PromptCIRModel:  # fmt: skip
    """A SMALL_CONFIG network: ``checkpoint``, else the packaged weights ``packaged`` = (file, sha256, recipe)."""
    if checkpoint is None and init != "random":
        weights, sha256, recipe = packaged
        checkpoint = str(packaged_small_weights(weights, sha256, name, recipe))
    networks, version = _build(SMALL_CONFIG, [checkpoint] if checkpoint else [], device)
    info = ModelInfo(
        name=name,
        version=version,
        needs_task_label=False,
        trainable=True,
        description="PromptCIR architecture, small configuration (dim 24, window 8), blind",
        label=label if checkpoint else "PromptCIR small architecture, untrained",
        not_a_result="" if checkpoint else "untrained (random initialisation)",
    )
    return PromptCIRModel(info, networks, _protocol(SMALL_CONFIG.size_multiple, False, tile, overlap, ensemble))


@register_model("promptcir-s", mode="blind", weights_status=lambda: _packaged_status(SMALL_WEIGHTS_SHA256))
def create_promptcir_small(
    checkpoint: str | None = None,
    device: str = "cpu",
    tile: object = 0,
    overlap: object = 96,
    ensemble: object = False,
    init: str | None = None,
) -> PromptCIRModel:
    """Smaller PromptCIR (4.6 M parameters) retrained by cirbench; weights bundled in the package when shipped.

    Runs on the whole image (mirror-padded to a multiple of 16) by default; ``tile=384`` bounds memory."""
    return _small_model("promptcir-s", "cirbench retrain (not the paper's weights)", checkpoint, device, tile, overlap,
                        ensemble, init, (SMALL_WEIGHTS, SMALL_WEIGHTS_SHA256, SMALL_RECIPE))  # fmt: skip


@register_model("promptcir-s-diffloss", mode="blind",
                weights_status=lambda: _packaged_status(DIFFLOSS_WEIGHTS_SHA256))
def create_promptcir_small_diffloss(
    checkpoint: str | None = None,
    device: str = "cpu",
    tile: object = 0,
    overlap: object = 96,
    ensemble: object = False,
    init: str | None = None,
) -> PromptCIRModel:
    """promptcir-s trained with the diffloss loss (same network, data, steps and seed; only the loss differs)."""
    return _small_model("promptcir-s-diffloss", "cirbench retrain with DiffLoss (not the paper's weights)", checkpoint,
                        device, tile, overlap, ensemble, init, (DIFFLOSS_WEIGHTS, DIFFLOSS_WEIGHTS_SHA256, DIFFLOSS_RECIPE))  # fmt: skip
