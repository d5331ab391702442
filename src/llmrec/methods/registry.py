"""Which methods exist, which family each belongs to, and which module trains it or loads its saved runs.

The three families each have their own split and metrics: click (CoLLM/BinLLM split; AUC, UAUC, warm/cold),
sequence (leave-one-out; full-ranking HR@K, NDCG@K) and holdout (per-user held-out items; Recall@K, NDCG@K).
Recipe modules are imported on first use, so naming a method never loads a backbone.
"""
from __future__ import annotations

import importlib

from llmrec.data.types import ClickSplit
from llmrec.errors import LlmrecError

COLLAB_METHODS = ("mf", "lightgcn", "sasrec", "din")
LLM_METHODS = ("icl", "tallrec", "binllm", "collm")
# Three families, each with its own split and metrics:
CLICK_METHODS = COLLAB_METHODS + ("binmf",) + LLM_METHODS  # click split (CoLLM/BinLLM); AUC, UAUC, warm/cold
SEQUENCE_METHODS = ("sasrec-rank", "popularity-rank", "lcrec")  # leave-one-out sequences; full-ranking HR@K, NDCG@K
# per-user held-out items; Recall@K, NDCG@K
HOLDOUT_METHODS = ("multvae", "lightgcn-bpr", "popularity-holdout", "cllm4rec")
METHODS = CLICK_METHODS + SEQUENCE_METHODS + HOLDOUT_METHODS
# Named variants for `benchmark` (ablations and code forms): name -> (method, overrides).
VARIANTS = {
    "binllm-binary": ("binllm", ["binllm.code_format=binary"]),
    "lcrec-random-index": ("lcrec", ["lcrec.index=random"]),
    "lcrec-no-sinkhorn": ("lcrec", ["lcrec.sinkhorn=false"]),
    # CLLM4Rec's tables, prompts, item head and fine-tuning with the LLM replaced by a mean of the prompt's ID rows
    "cllm4rec-no-llm": ("cllm4rec", ["cllm4rec.encoder=mean", "cllm4rec.content_epochs=0",
                                     "cllm4rec.alternate_epochs=0", "cllm4rec.lora=false"]),
}


def family(method: str) -> str:
    """'click', 'sequence' or 'holdout': which split a method trains on and which metrics it reports."""
    if method in CLICK_METHODS:
        return "click"
    if method in SEQUENCE_METHODS:
        return "sequence"
    if method in HOLDOUT_METHODS:
        return "holdout"
    raise LlmrecError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")


def split_class(method: str):
    """The split type a method's run directory saves under split/."""
    kind = family(method)
    if kind == "sequence":
        from llmrec.data.types import SequenceSplit
        return SequenceSplit
    if kind == "holdout":
        from llmrec.data.holdout import HoldoutSplit
        return HoldoutSplit
    return ClickSplit


def method_module(method: str):
    """The recipe module of a method. Every one has `train(cfg, split, run, tracker=None) -> metrics`
    (metrics["test"] holds the test metrics; `tracker`: llmrec.tracking); for the sequence and holdout methods,
    `load_recommender` below reads their saved runs."""
    if method in COLLAB_METHODS or method == "binmf":
        from llmrec.methods import collab_recipe as module
    elif method in ("icl", "tallrec"):
        from llmrec.methods.tallrec import recipe as module
    elif method == "binllm":
        from llmrec.methods.binllm import recipe as module
    elif method == "collm":
        from llmrec.methods.collm import recipe as module
    elif method == "sasrec-rank":
        from llmrec.methods import seqrank_recipe as module
    elif method == "popularity-rank":
        from llmrec.methods import poprank_recipe as module
    elif method == "lcrec":
        from llmrec.methods.lcrec import recipe as module
    elif method in ("multvae", "lightgcn-bpr", "popularity-holdout"):
        from llmrec.methods import holdout_recipe as module
    elif method == "cllm4rec":
        from llmrec.methods.cllm4rec import recipe as module
    else:
        raise LlmrecError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    return module


# Methods whose saved runs are loaded by a module of their own (recipe and recommender import each other's
# pieces otherwise); every other method's recipe module has `load_recommender`.
_RECOMMEND_MODULES = {"lcrec": "llmrec.methods.lcrec.recommend", "cllm4rec": "llmrec.methods.cllm4rec.recommend"}


def load_recommender(method: str, run, split):
    """The recommender of a finished sequence or holdout run: `recommend(user, k, candidates=None)` and
    `evaluate(part)`."""
    name = _RECOMMEND_MODULES.get(method)
    module = importlib.import_module(name) if name else method_module(method)
    return module.load_recommender(run, split)
