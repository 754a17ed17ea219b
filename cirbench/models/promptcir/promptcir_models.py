"""PromptCIR's registered models (`promptcir`, `promptcir-s`, `promptcir-s-diffloss`): official-checkpoint
loading with strict key matching, the packaged small weights and the official test protocol.
"""

from __future__ import annotations

from pathlib import Path

import torch

from cirbench.fileio import sha256_file
from cirbench.models import ModelError, ModelInfo, register_model
from cirbench.models.blocks.mirror_tiling import MirrorTiling, ensemble
from cirbench.models.checkpoints import StrictLoadError, load_state_dict, load_strict
from cirbench.models.promptcir.promptcir_net import OFFICIAL_CONFIG, SMALL_CONFIG, PromptCIRConfig, PromptCIRNet
from cirbench.tasks import Task
from cirbench.weights.layouts import module_layout, register_layout
from cirbench.weights.manager import WeightFile, WeightsCorrupt, WeightsUnavailable, ensure_weight, register_weight

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
