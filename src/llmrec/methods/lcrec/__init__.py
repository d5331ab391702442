"""LC-Rec (arXiv 2311.09049): items spelled in learned index tokens, alignment tuning, constrained beam search.

Modules: config (`LCRecConfig`, `RQVAEConfig`: torch-free settings), embeddings (item text vectors), rqvae (the
indexer), vocab (index tokens, JSON, vocabulary extension), trie (valid indices as tensors), generate (constrained
beam search), templates + tasks (alignment samples and the training / evaluation Tasks), recipe (`train_lcrec`, and
`train` for `llmrec train lcrec`), recommend (`LCRecRecommender` and `load_recommender`: a finished run's top-k and
evaluation).

The names below load on first use, so importing `llmrec.methods.lcrec.config` (the typed experiment config does)
does not import torch.
"""
import importlib

_WHERE = {"BeamResult": "generate", "constrained_beam_search": "generate", "hf_constrained_generate": "generate",
          "score_all_items": "generate", "LCRecConfig": "config", "RQVAEConfig": "config",
          "train_lcrec": "recipe", "RQVAE": "rqvae", "RQVAEResult": "rqvae",
          "build_index": "rqvae", "random_index": "rqvae", "TASKS": "config", "UserText": "tasks",
          "build_samples": "tasks", "IndexTrie": "trie", "ItemIndex": "vocab", "add_index_tokens": "vocab"}

__all__ = list(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
