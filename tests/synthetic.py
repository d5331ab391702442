"""Synthetic data with a planted signal, shared by tests (a plain module: `conftest` names clash across folders)."""
from llmrec.data.synthetic import synthetic_dataset

__all__ = ["synthetic_dataset"]
