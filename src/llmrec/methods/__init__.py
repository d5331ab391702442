"""One folder per LLM method (binllm/, collm/, tallrec/ with ICL, lcrec/, cllm4rec/), one recipe module per
collaborative or popularity baseline, and `registry.py`, which names every method and variant and finds its module."""
