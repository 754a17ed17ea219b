"""Canonical pretrained files: the weights manager (cache, download, sha256, import) and the catalogue of known files.

Codecs, metrics and models register their files here; providers are found through the entry-point group cirbench.weights.
"""
