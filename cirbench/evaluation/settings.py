"""What `cirbench evaluate` takes besides the dataset: one frozen dataclass, shared by the local and Dask runners.

Fields that decide which run a call resumes are copied into the run identity by run_record.run_identity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cirbench.models import RestorationModel


@dataclass(frozen=True)
class EvaluationSettings:
    """Everything `cirbench evaluate` takes besides the dataset."""

    model: str | RestorationModel  # registry name, module:factory, or a model object (from Python)
    checkpoint: str | None = None
    model_options: dict[str, Any] = field(default_factory=dict)
    tasks: tuple[str, ...] = ()
    device: str = "cpu"
    protocol: str = "full"
    batch: int = 1
    tile: int | None = None  # None: the model's preferred tile size (info.tile_size), if any; 0: whole image
    overlap: int | None = None  # None: DEFAULT_OVERLAP, at most a quarter of the tile
    save_images: bool = False
    profile: str = "cirbench"
    method: str | None = None  # leaderboard label; default: model name (+ @sha8 of the checkpoint)
    force: bool = False
    preview_images: int = 8  # first N images of each task get a centre-crop preview (the report's crop candidates)
    metrics: tuple[str, ...] = ()  # only these of the profile's metrics (result or metric names); () = all
    rescored_from: str | None = None  # run id whose saved images are scored again (cirbench rescore)
    scheduler: str | None = None  # Dask scheduler address: work units go to its workers (not part of the identity)
