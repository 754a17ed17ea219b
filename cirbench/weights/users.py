"""Who needs each canonical weight file: the tasks of the shipped task sets, the registered models, the metrics of
the default profile and the registered losses; `cirbench weights list` shows only what these need by default.
"""

from __future__ import annotations

from collections import defaultdict

DEFAULT_TASKSETS = ("moe-diffir-21", "unseen")
DEFAULT_PROFILE = "cirbench"


def _task_users(users: dict[str, list[str]]) -> None:
    from cirbench.errors import CirbenchError
    from cirbench.tasks import load_taskset

    for name in DEFAULT_TASKSETS:
        for task in load_taskset(name).tasks:
            try:
                files = task.create_codec().weight_files()
            except CirbenchError:  # a codec that is not installed needs nothing from the cache
                continue
            for filename in files:
                users[filename].append(f"task {task.name}")


def needed_by() -> dict[str, list[str]]:
    """filename -> the components that load it by default ("task C_PSNR_1", "model promptcir", "metric lpips")."""
    from cirbench.metrics import METRICS
    from cirbench.metrics.profiles import get_profile
    from cirbench.models import MODEL_CARDS, MODELS

    users: dict[str, list[str]] = defaultdict(list)
    _task_users(users)
    MODELS.names()  # loads every model module, which registers its card
    for name, card in sorted(MODEL_CARDS.items()):
        for filename in card.weights:
            users[filename].append(f"model {name}")
    for spec in get_profile(DEFAULT_PROFILE).metrics:
        for filename in METRICS.get(spec.metric).info.weight_files:
            if f"metric {spec.result_name}" not in users[filename]:
                users[filename].append(f"metric {spec.result_name}")
    return dict(users)
