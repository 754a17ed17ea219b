"""cirbench: build, evaluate and compare universal compressed-image-restoration benchmarks.

The data path reads like the pipeline: sources -> codecs -> build -> dataset -> models -> evaluate -> metrics -> report.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
