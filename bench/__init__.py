"""llmrec's benchmark suite: speed and memory of the library on this machine, written to BENCHMARKS.md.

    python -m bench.run                 # the full suite (`make bench`), about 20 minutes on 2 CPU cores
    python -m bench.run --smoke         # every section on the tiny backbone and synthetic data, in seconds
    python -m bench.run --full-demo     # also the peak memory of the full `llmrec demo`

One module per measured thing (matmul peak, LLM scoring, LoRA training, prompt lengths, candidate ranking,
LC-Rec decoding, CLLM4Rec ranking, collaborative models, profiler, demo memory); `flops.py` holds the FLOP
formulas, `common.py` timing and the shared fixtures, `report.py` the markdown writer, `run.py` the entry point.
"""
