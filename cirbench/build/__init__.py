"""Stage 1, build: source images -> coded (HR, LQ) pairs in the MoE-DiffIR layout, with a manifest of every byte.

sources (discovery, checks) -> builder (planning, skip/reuse) -> jobs (one source, one entry) -> runner (pool, Dask) -> manifest + provenance.
"""
