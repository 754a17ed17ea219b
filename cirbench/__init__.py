"""cirbench: build, evaluate and compare universal compressed-image-restoration benchmarks.

The tree reads as the pipeline: build (sources, codecs) -> dataset -> models -> evaluation (metrics) -> compare.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
