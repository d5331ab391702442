"""TALLRec (LoRA on the text-only prompt) and ICL (the same prompt, zero-shot)."""
