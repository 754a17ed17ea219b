"""SSP-IR (TCSVT 2025; semantic and structure priors on SD-1.5), a bundled baseline: networks, loading, inference
and training. Importing the package registers ``sspir`` (``sspir_models``); diffusers/transformers load lazily.
"""

from cirbench.models.sspir import sspir_models  # noqa: F401  (registers the model)
