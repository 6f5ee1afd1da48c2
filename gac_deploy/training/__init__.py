"""Training: the loop (trainer.py), the run directory and its training state (run_dir.py),
settings from presets, YAML and flags (settings.py), each step's batch with augmentation
and CutMix (batches.py), multi-process training (distributed.py), evaluation and firing
rates (evaluate.py), and quantisation-aware fine-tuning (qat.py)."""
