"""CoLLM: collaborative embeddings mapped by an MLP into the LLM's token-embedding space (arXiv 2310.19488)."""
