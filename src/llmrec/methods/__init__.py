"""One folder per LLM method: binllm/, collm/, tallrec/ (text prompts and ICL), later lcrec/ and cllm4rec/."""
