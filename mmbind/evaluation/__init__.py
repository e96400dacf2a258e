"""Evaluation: metrics, zero-shot, supervised baselines, the run's eval.json and its report."""
