"""Stage 3, evaluation: a restoration model over every (image, task) of a built dataset, scored under one protocol.

evaluate (settings, resume) -> loading (batches) -> session (restore + score) -> scorer -> results store + run record.
"""
