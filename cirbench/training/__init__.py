"""Training helpers behind `cirbench train`: configuration, paired random crops, losses and resumable state.

The loop itself lives in cirbench/train.py; these modules keep it short and testable.
"""
