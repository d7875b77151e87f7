"""Optuna searches: spaces, pruning, study storage and outcomes."""
