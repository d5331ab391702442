"""BinLLM: collaborative embeddings as binary or dot-decimal text in the prompt (arXiv 2406.03210)."""
