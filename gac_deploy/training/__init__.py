"""Training: the loop, checkpoints and metrics."""
