"""CLLM4Rec (arXiv 2311.01343): user/item ID tokens with their own embeddings on a frozen LLM, collaborative and
content LMs tied by mutual regularisation, a multinomial item head for recommendation (see recipe.py)."""
from llmrec.methods.cllm4rec.config import CLLM4RecConfig
from llmrec.methods.cllm4rec.model import CLLM4RecModel
from llmrec.methods.cllm4rec.recipe import train_cllm4rec
from llmrec.methods.cllm4rec.recommend import CLLM4Rec
from llmrec.methods.cllm4rec.tokens import IdVocab

__all__ = ["CLLM4RecConfig", "CLLM4RecModel", "CLLM4Rec", "IdVocab", "train_cllm4rec"]
