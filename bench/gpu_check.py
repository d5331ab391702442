"""One GPU check, one markdown report: run `bash bench/gpu_check.sh` from the source tree on a CUDA machine.

    python -m bench.gpu_check --out $OUT/gpu_report.md                 # on the GPU, under 8 minutes
    python -m bench.gpu_check --device cpu --tiny --out /tmp/r.md      # every section on CPU, tiny sizes, seconds

Nothing is downloaded: the two backbones are random-weight Llama models built from their configs (SmolLM2-135M's:
hidden 576, 30 layers, 9 heads, 3 kv heads, intermediate 1536, vocab 49152; and a 7B Llama: hidden 4096, 32
layers, 32 heads, intermediate 11008, vocab 32000), the prompts random token ids (speed does not depend on the
weights or the tokens). Sections, each guarded by its own time budget within the global deadline (a section
that would not fit is reported as skipped, one that fails is reported with its error, the rest still run):
1. `pytest tests/gpu` (the CUDA tests: every LLM method trains in bf16 on CUDA and matches CPU fp32 scores; two
   processes on the one GPU evaluate an LC-Rec and a CLLM4Rec run as one process does);
2. the bf16 matmul peak, measured here (square products), which the utilisation figures divide by;
3. per backbone: LoRA (r 8, q/v) training on the Yes-logit BCE and Yes-logit scoring, tokens/s and utilisation
   (useful FLOPs from bench/flops.py over the measured peak), and LC-Rec's constrained beam search
   (src/llmrec/methods/lcrec/generate.py) over a random 4 x 256 index of ML-1M's 3,706 items, users/s;
4. peak GPU memory of each section;
5. the projected wall time of the papers' ML-1M BinLLM and CoLLM recipes on this GPU at 7B, from the measured
   tokens/s and the token counts stated in the report.
With `--tiny` the numbers mean nothing: the run only proves every section works (tests/bench/test_gpu_check.py).
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]

SMOLLM2_135M = dict(hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                    intermediate_size=1536, vocab_size=49152, tie_word_embeddings=True, rope_theta=100000.0)
"""SmolLM2-135M's architecture (its config.json; the embedded backbone of src/llmrec/llm/backbones.py)."""
LLAMA_7B = dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                intermediate_size=11008, vocab_size=32000, tie_word_embeddings=False)
"""Llama-7B / Vicuna-7B (the BinLLM / CoLLM / TALLRec papers' backbone, docs/papers.md)."""
TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=128, vocab_size=2048, tie_word_embeddings=True)
"""Stand-in for both in `--tiny` mode."""

SECTIONS = ("CUDA tests", "bf16 matmul peak", "LoRA training and Yes-logit scoring", "LC-Rec constrained beam search",
            "Peak GPU memory", "Projected ML-1M recipes at 7B")
"""Every report has these `## ` sections, in this order (tests/bench/test_gpu_check.py checks it)."""

# The papers' ML-1M recipe (docs/papers.md: "Data protocol" and "LLM training recipe") in tokens.
ML1M_TRAIN_ROWS, ML1M_VALID_SMALL_ROWS, ML1M_TEST_ROWS = 33_891, 5_200, 7_331
"""Train / valid_small / test rows of the CoLLM ML-1M split: 33,891 / 10,401 / 7,331 rows (docs/papers.md),
valid_small = a random 50% of valid (5,200 rows)."""
TEXT_PROMPT_TOKENS, CODE_PROMPT_TOKENS, SLOT_PROMPT_TOKENS = 148, 212, 150
"""Tokens per prompt: the text prompt (TALLRec, stage 1 of both) 148 (BENCHMARKS.md, LoRA training section, SmolLM2
tokenizer); titles + dot-decimal codes (BinLLM stage 2) 212 (docs/methods/binllm.md, ML-1M table); CoLLM's stage 2
the text prompt plus its two embedding slots, about 150 (assumed). Llama's tokenizer also splits digits one by one;
its counts are assumed to be close."""
BATCH, EVAL_EVERY = 16, 50
"""The papers' batch (16 per GPU) and validation interval (every 50 steps, on all of valid_small)."""


@dataclass
class Sizes:
    """What one run measures: models, batches, budgets (seconds)."""

    models: dict
    train_batch: int
    score_batch: int
    length: int
    matmul_n: int
    beam_users: int
    beam_batch: int
    prompt_len: int
    budget: dict

    @classmethod
    def full(cls) -> "Sizes":
        return cls(models={"SmolLM2-135M": SMOLLM2_135M, "Llama-7B": LLAMA_7B}, train_batch=BATCH, score_batch=32,
                   length=160, matmul_n=8192, beam_users=64, beam_batch=16, prompt_len=128,
                   budget={"CUDA tests": 200, "bf16 matmul peak": 15, "train": 30, "score": 20, "beam": 20,
                           "build": 40})

    @classmethod
    def tiny(cls) -> "Sizes":
        return cls(models={"SmolLM2-135M (tiny stand-in)": TINY, "Llama-7B (tiny stand-in)": TINY}, train_batch=2,
                   score_batch=4, length=16, matmul_n=128, beam_users=4, beam_batch=2, prompt_len=12,
                   budget={"CUDA tests": 60, "bf16 matmul peak": 2, "train": 1, "score": 1, "beam": 1, "build": 10})


class Report:
    def __init__(self, deadline: float):
        self.deadline = deadline
        self.parts: dict[str, list[str]] = {s: [] for s in SECTIONS}

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def add(self, section: str, *lines: str) -> None:
        self.parts[section].extend(lines)

    def markdown(self, header: list[str]) -> str:
        out = header[:]
        for s in SECTIONS:
            out += ["", f"## {s}", ""] + (self.parts[s] or ["(nothing measured)"])
        return "\n".join(out) + "\n"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_loop(fn, device, budget: float, min_iters: int = 2, max_iters: int = 1000) -> tuple[int, float]:
    """One untimed warm-up call, then calls until `budget` seconds (at least `min_iters`): (calls, seconds)."""
    fn()
    sync(device)
    start, n = time.perf_counter(), 0
    while n < min_iters or (time.perf_counter() - start < budget and n < max_iters):
        fn()
        n += 1
        sync(device)
    return n, time.perf_counter() - start


def reset_peak(device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None


# ---------------------------------------------------------------------------------------------------------------
# sections

def cuda_tests(rep: Report, sizes: Sizes, tiny: bool) -> None:
    s = "CUDA tests"
    budget = min(sizes.budget[s], rep.left() - 120 * (not tiny))
    if budget < 20:
        rep.add(s, f"skipped: {budget:.0f} s left in the budget")
        return
    cmd = [sys.executable, "-m", "pytest", "tests/gpu", "-q", "-p", "no:cacheprovider", "-rs"]
    if tiny:  # proves the wiring only: the CPU-only machine collects the CUDA tests
        cmd.append("--collect-only")
    else:  # their CPU twins run in the normal suite
        cmd += ["-k", "not on_the_cpu"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(["src", "tests", os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    try:
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=budget)
        tail, rc = (done.stdout + done.stderr).strip().splitlines()[-25:], done.returncode
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        tail, rc = out.strip().splitlines()[-25:] + [f"(stopped after {budget:.0f} s)"], "timeout"
    rep.add(s, f"`{' '.join(cmd[1:])}` (exit {rc}, {time.perf_counter() - start:.0f} s"
               + (", collect only: `--tiny`" if tiny else "") + "):", "", "```", *tail, "```")


def matmul_peak(rep: Report, sizes: Sizes, device, dtype) -> float | None:
    s = "bf16 matmul peak"
    n = sizes.matmul_n
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    calls, seconds = timed_loop(lambda: torch.mm(a, b), device, sizes.budget[s], min_iters=3)
    peak = 2.0 * n ** 3 * calls / seconds
    rep.add(s, f"`torch.mm` [{n}, {n}] x [{n}, {n}] in {dtype}: **{peak / 1e12:.1f} TFLOP/s** ({calls} products "
               f"in {seconds:.2f} s after a warm-up). Utilisation below = useful model FLOPs / this peak.")
    return peak


def build(config: dict, device, dtype):
    """A random-weight Llama from its config, created on `device` directly in `dtype` (no download)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(**config, max_position_embeddings=4096)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(cfg)
    finally:
        torch.set_default_dtype(previous)
    return model.eval()


def add_lora(model):
    from peft import LoraConfig, get_peft_model

    # the papers' adapters (docs/papers.md): r 8, alpha 16, dropout 0.05, q_proj and v_proj; fp32 adapter weights
    return get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05,
                                            target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))


def yes_logits(peft_model, ids: torch.Tensor, yes_id: int) -> torch.Tensor:
    """The Yes logit at the last position (llmrec.llm.scoring's last-position head): decoder + one head row."""
    base = peft_model.get_base_model()
    h = base.get_decoder()(input_ids=ids, use_cache=False).last_hidden_state[:, -1]
    return h @ base.get_output_embeddings().weight[yes_id].to(h.dtype)


def llm_sections(rep: Report, sizes: Sizes, device, dtype, peak: float | None, results: dict) -> None:
    from bench.flops import scoring_flops, shape_of, training_flops

    t_s, b_s = "LoRA training and Yes-logit scoring", "LC-Rec constrained beam search"
    rows, beam_rows = [], []
    for name, config in sizes.models.items():
        need = sizes.budget["build"] + sizes.budget["train"] + sizes.budget["score"] + sizes.budget["beam"]
        if rep.left() < need:
            rows.append([name, f"skipped: {rep.left():.0f} s left, {need} s needed"] + [""] * 5)
            continue
        reset_peak(device)
        try:
            start = time.perf_counter()
            model = add_lora(build(config, device, dtype))
            built = time.perf_counter() - start
            shape = shape_of(model)
            g = torch.Generator(device="cpu").manual_seed(0)
            vocab = config["vocab_size"]
            yes_id = 7
            autocast = torch.autocast(device.type, dtype=dtype, enabled=device.type == "cuda")

            # LoRA training on the Yes-logit BCE (the click methods' loss)
            ids = torch.randint(3, vocab, (sizes.train_batch, sizes.length), generator=g).to(device)
            labels = torch.randint(0, 2, (sizes.train_batch,), generator=g).float().to(device)
            params = [p for p in model.parameters() if p.requires_grad]
            opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=1e-3)
            model.train()

            def step():
                with autocast:
                    loss = torch.nn.functional.binary_cross_entropy_with_logits(
                        yes_logits(model, ids, yes_id).float(), labels)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)

            steps, seconds = timed_loop(step, device, sizes.budget["train"])
            train_tok = sizes.train_batch * sizes.length * steps / seconds
            train_flops = training_flops(shape, [sizes.length] * sizes.train_batch) * steps / seconds
            train_mem = peak_gib(device)

            # scoring: forward only, no gradients
            model.eval()
            reset_peak(device)
            sids = torch.randint(3, vocab, (sizes.score_batch, sizes.length), generator=g).to(device)

            def score():
                with torch.no_grad(), autocast:
                    yes_logits(model, sids, yes_id)

            calls, sseconds = timed_loop(score, device, sizes.budget["score"])
            score_tok = sizes.score_batch * sizes.length * calls / sseconds
            score_flops = scoring_flops(shape, [sizes.length] * sizes.score_batch) * calls / sseconds
            score_mem = peak_gib(device)
            results[name] = {"train_tokens_per_s": train_tok, "score_tokens_per_s": score_tok}
            util = (lambda f: f"{f / peak:.0%}") if peak else (lambda f: "-")
            rows.append([name, f"{built:.1f}", f"{train_tok:,.0f}", util(train_flops), f"{score_tok:,.0f}",
                         util(score_flops), _gib(train_mem) + " / " + _gib(score_mem)])

            # LC-Rec: constrained beam search over a random index (decoding only; the adapters stay on)
            reset_peak(device)
            beam_rows.append([name, *beam_search(model.get_base_model(), sizes, device, vocab, autocast, g),
                              _gib(peak_gib(device))])
        except Exception as e:  # noqa: BLE001 one failed size must not take the report down
            rows.append([name, f"failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}"] + [""] * 5)
            traceback.print_exc()
        finally:
            model = opt = None
            if device.type == "cuda":
                torch.cuda.empty_cache()
    rep.add(t_s, f"Batch {sizes.train_batch} (training) / {sizes.score_batch} (scoring) prompts of "
                 f"{sizes.length} random tokens, {dtype} weights"
                 + (" with bf16 autocast" if device.type == "cuda" else "")
                 + ", LoRA r 8 on q/v (fp32 adapters), AdamW; Yes logit at the last position. Useful FLOPs: "
                   "bench/flops.py (`training_flops`, `scoring_flops`).", "",
            "| backbone | build s | train tokens/s | train util. | score tokens/s | score util. | peak GiB (train / score) |",
            "|---|---|---|---|---|---|---|", *("| " + " | ".join(map(str, r)) + " |" for r in rows))
    rep.add(b_s, f"`constrained_beam_search` (src/llmrec/methods/lcrec/generate.py), 20 beams, a random 4 x 256 "
                 f"index of 3,706 items (ML-1M's count) plus EOS, {sizes.beam_users} users in batches of "
                 f"{sizes.beam_batch}, prompts of {sizes.prompt_len} random tokens.", "",
            "| backbone | users/s | ms per user | peak GiB |", "|---|---|---|---|",
            *("| " + " | ".join(map(str, r)) + " |" for r in beam_rows))
    results["_memory_rows"] = rows


def beam_search(model, sizes: Sizes, device, vocab: int, autocast, g) -> list[str]:
    from llmrec.methods.lcrec.generate import constrained_beam_search
    from llmrec.methods.lcrec.trie import IndexTrie

    n_items, levels, k = 3706, 4, 256 if vocab > 4 * 256 + 16 else 4
    rng = np.random.default_rng(0)
    codes: set[tuple] = set()
    while len(codes) < n_items:
        codes.add(tuple(rng.integers(0, k, levels)))
    base = vocab - levels * k - 1  # the index tokens: the top rows of the vocabulary, EOS just below them
    table = np.full((n_items + 1, levels), -1, dtype=np.int64)
    table[1:] = base + np.arange(levels) * k + np.array(sorted(codes))
    trie = IndexTrie(table, eos_token_id=base - 1)
    prompts = [torch.randint(3, base - 1, (sizes.prompt_len,), generator=g).tolist() for _ in range(sizes.beam_users)]

    def run():
        with autocast:
            for s in range(0, len(prompts), sizes.beam_batch):
                constrained_beam_search(model, prompts[s:s + sizes.beam_batch], trie, num_beams=20, pad_token_id=0,
                                        eos_token_id=base - 1)

    calls, seconds = timed_loop(run, device, sizes.budget["beam"], min_iters=1)
    per_user = seconds / (calls * len(prompts))
    return [f"{1 / per_user:,.1f}", f"{per_user * 1000:.1f}"]


def _gib(x: float | None) -> str:
    return f"{x:.1f}" if x is not None else "-"


def memory_section(rep: Report, device, results: dict) -> None:
    s = "Peak GPU memory"
    if device.type != "cuda":
        rep.add(s, "Not on CUDA: no GPU memory to report (the tables above show `-`).")
        return
    rows = results.get("_memory_rows", [])
    rep.add(s, f"`torch.cuda.max_memory_allocated` per section, reset before each (GiB); the device has "
               f"{torch.cuda.get_device_properties(device).total_memory / 2 ** 30:.0f} GiB.", "",
            *(f"- {r[0]}: training / scoring {r[-1]}" for r in rows if len(r) == 7 and "/" in str(r[-1])))


def projection(rep: Report, results: dict, sizes: Sizes) -> None:
    s = "Projected ML-1M recipes at 7B"
    big = next((v for k, v in results.items() if k.startswith("Llama-7B")), None)
    # (part, tokens per prompt, batch): the papers' batch is 16 per GPU, BinLLM's stage 2 uses 4 (docs/papers.md)
    stages = {"BinLLM": [("stage 1 (text, LoRA)", TEXT_PROMPT_TOKENS, BATCH),
                         ("stage 2 (codes, LoRA)", CODE_PROMPT_TOKENS, 4)],
              "CoLLM": [("stage 1 (text, LoRA)", TEXT_PROMPT_TOKENS, BATCH),
                        ("stage 2 (mapping MLP; LoRA frozen, backward through the LLM)", SLOT_PROMPT_TOKENS, BATCH)]}
    lines = [f"Assumed, per stage: one pass over the {ML1M_TRAIN_ROWS:,} ML-1M train rows (`StageConfig.epochs=1`) at "
             f"the papers' batch (16; BinLLM stage 2: 4), validation on all {ML1M_VALID_SMALL_ROWS:,} valid_small rows "
             f"every {EVAL_EVERY} steps and no early stop (the papers stop after 20 validations without gain, so this "
             f"is an upper bound), then the {ML1M_TEST_ROWS:,} test rows once (rows: docs/papers.md). Tokens per "
             "prompt: text 148 (BENCHMARKS.md), titles + codes 212 (docs/methods/binllm.md), CoLLM's slot prompt "
             "about 150 (assumed); SmolLM2's tokenizer, Llama's assumed close. BinLLM's encoder and CoLLM's MF train "
             "in minutes and are left out. Time = training tokens / measured training tokens/s + scored tokens / "
             f"measured scoring tokens/s (measured at batch {sizes.train_batch} / {sizes.score_batch}, "
             f"{sizes.length} tokens: a smaller batch runs slower per token). A projection, not a run.", ""]
    if big is None:
        rep.add(s, *lines, "No 7B measurement in this run: nothing to project.")
        return
    rows = []
    for method, parts in stages.items():
        total = 0.0
        for name, tokens, batch in parts:
            evals = math.ceil(ML1M_TRAIN_ROWS / batch) // EVAL_EVERY + 1
            train = ML1M_TRAIN_ROWS * tokens / big["train_tokens_per_s"]
            scored = evals * ML1M_VALID_SMALL_ROWS * tokens
            valid = scored / big["score_tokens_per_s"]
            total += train + valid
            rows.append([method, f"{name}, batch {batch}, {evals} validations",
                         f"{ML1M_TRAIN_ROWS * tokens / 1e6:.1f} M", f"{train / 3600:.2f} h", f"{scored / 1e6:.1f} M",
                         f"{valid / 3600:.2f} h"])
        test = ML1M_TEST_ROWS * parts[-1][1] / big["score_tokens_per_s"]
        total += test
        rows.append([method, "test", "-", "-", f"{ML1M_TEST_ROWS * parts[-1][1] / 1e6:.1f} M", f"{test / 3600:.2f} h"])
        rows.append([f"**{method}**", "**total on one GPU**", "", "", "", f"**{total / 3600:.1f} h**"])
    rep.add(s, *lines, "| method | part | training tokens | training time | scored tokens | scoring time |",
            "|---|---|---|---|---|---|", *("| " + " | ".join(r) + " |" for r in rows), "",
            "The papers' own wall times on 2 x A100: docs/papers.md does not give them.")


# ---------------------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.environ.get("OUT", "."), "gpu_report.md"))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tiny", action="store_true", help="tiny stand-in models and budgets: seconds, on any device")
    ap.add_argument("--dry", action="store_true", help="--device cpu --tiny")
    ap.add_argument("--deadline", type=float, default=450.0, help="seconds for the whole run (default 450)")
    args = ap.parse_args(argv)
    if args.dry:
        args.device, args.tiny = "cpu", True
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    sizes = Sizes.tiny() if args.tiny else Sizes.full()
    torch.manual_seed(0)
    rep = Report(time.monotonic() + args.deadline)
    results: dict = {}
    header = ["# llmrec GPU check", "",
              f"Device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor() or 'cpu'}"
              f" ({device}); torch {torch.__version__}, "
              + ", ".join(f"{m} {_version(m)}" for m in ("transformers", "peft", "accelerate"))
              + f"; Python {platform.python_version()}." + (" **Tiny mode: the numbers mean nothing.**" if args.tiny
                                                            else "")]
    started = time.monotonic()
    for section, fn in ((SECTIONS[0], lambda: cuda_tests(rep, sizes, args.tiny)),
                        (SECTIONS[1], lambda: results.__setitem__("peak", matmul_peak(rep, sizes, device, dtype))),
                        (SECTIONS[2], lambda: llm_sections(rep, sizes, device, dtype, results.get("peak"), results)),
                        (SECTIONS[4], lambda: memory_section(rep, device, results)),
                        (SECTIONS[5], lambda: projection(rep, results, sizes))):
        try:
            fn()
        except Exception as e:  # noqa: BLE001 the report says what failed; the other sections still run
            rep.add(section, f"failed: {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}")
            traceback.print_exc()
    header.append(f"Wall time of the check: {time.monotonic() - started:.0f} s.")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(rep.markdown(header))
    print(f"wrote {out}")
    return 0


def _version(module: str) -> str:
    try:
        return __import__(module).__version__
    except Exception:  # noqa: BLE001
        return "missing"


if __name__ == "__main__":
    sys.exit(main())
