"""LC-Rec (arXiv 2311.09049): items spelled in learned index tokens, alignment tuning, constrained beam search.

Modules: embeddings (item text vectors), rqvae (the indexer), vocab (index tokens, JSON, vocabulary extension),
trie (valid indices as tensors), generate (constrained beam search), templates + tasks (alignment samples and
the training / evaluation Tasks), recipe (`train_lcrec`, and `train` for `llmrec train lcrec`), recommend
(`LCRecRecommender` and `load_recommender`: a finished run's top-k and evaluation).
"""
from llmrec.methods.lcrec.generate import (BeamResult, constrained_beam_search, hf_constrained_generate,
                                           score_all_items)
from llmrec.methods.lcrec.recipe import LCRecConfig, train_lcrec
from llmrec.methods.lcrec.rqvae import RQVAE, RQVAEConfig, RQVAEResult, build_index, random_index
from llmrec.methods.lcrec.tasks import TASKS, UserText, build_samples
from llmrec.methods.lcrec.trie import IndexTrie
from llmrec.methods.lcrec.vocab import ItemIndex, add_index_tokens

__all__ = ["BeamResult", "constrained_beam_search", "hf_constrained_generate", "score_all_items", "LCRecConfig",
           "train_lcrec", "RQVAE", "RQVAEConfig", "RQVAEResult", "build_index", "random_index",
           "TASKS", "UserText", "build_samples", "IndexTrie", "ItemIndex", "add_index_tokens"]
