"""Stage 2, dataset: read access to a built dataset (OUT/<name>): task set, (HR, LQ) pairs, manifest summaries.

Read by evaluation, training and the comparison; written only by the build stage.
"""
