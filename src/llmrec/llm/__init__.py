"""The LLM layer: backbones by name, prompts with slot positions, Yes/No scoring (see each module's docstring)."""
from llmrec.llm.backbones import BACKBONES, DEFAULT_BACKBONE, cached_backbone_dir, load_backbone
from llmrec.llm.prompts import EMBED, Prompt, PromptBuilder, Template, build_prompt, load_template, template_for
from llmrec.llm.scoring import (AnswerTokens, Batch, ScoringConfig, YesScorer, length_grouped_batches,
                                rank_candidates, resolve_answer_tokens, token_embeddings)

__all__ = ["BACKBONES", "DEFAULT_BACKBONE", "cached_backbone_dir", "load_backbone", "EMBED", "Prompt",
           "PromptBuilder", "Template", "build_prompt", "load_template", "template_for", "AnswerTokens", "Batch",
           "ScoringConfig", "YesScorer", "length_grouped_batches", "rank_candidates", "resolve_answer_tokens",
           "token_embeddings"]
