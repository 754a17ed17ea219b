"""Training behind `cirbench train`: the trainer loop, its configuration, paired crops, losses and resumable state.

trainer (loop, checkpoints) uses config, data (crops, validation split), losses (registry) and state (history, resume).
"""
