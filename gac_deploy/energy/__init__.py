"""Energy per inference: the accounting in the paper's Eq. 11 and the complete convention,
with per-operation profiles (accounting.py, pure functions), ``gac-deploy energy``'s
report from a bundle, a checkpoint or assumed rates (report.py), and its chart (plot.py)."""
