"""CLLM4Rec (arXiv 2311.01343): user/item ID tokens with their own embeddings on a frozen LLM, collaborative and
content LMs tied by mutual regularisation, a multinomial item head for recommendation (see recipe.py).

The names below load on first use, so importing `llmrec.methods.cllm4rec.config` does not import torch."""
import importlib

_WHERE = {"CLLM4RecConfig": "config", "CLLM4RecModel": "model", "train_cllm4rec": "recipe", "CLLM4Rec": "recommend",
          "IdVocab": "tokens"}

__all__ = list(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
