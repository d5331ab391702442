"""LC-Rec decoding: the tensorised trie beam search vs transformers' generate with prefix_allowed_tokens_fn."""
from __future__ import annotations

import copy

import numpy as np

from bench.common import Context, Section, Target, measure, table

BEAM_TARGET = 3.0


def run(ctx: Context, sec: Section) -> None:
    try:
        from llmrec.methods.lcrec.generate import constrained_beam_search, hf_constrained_generate
        from llmrec.methods.lcrec.rqvae import random_index
        from llmrec.methods.lcrec.tasks import seqrec_prompt
        from llmrec.methods.lcrec.trie import IndexTrie
        from llmrec.methods.lcrec.vocab import add_index_tokens, index_token_ids
    except ImportError as e:
        sec.add(f"LC-Rec is not available yet ({e}).")
        return
    b = ctx.budget
    split = ctx.split
    model = ctx.model_copy()
    tok = copy.deepcopy(ctx.backbone[1])
    # A random distinct 4 x 256 index per item: decoding cost depends on the trie's shape, not on what the codes mean.
    index = random_index(split.n_items, levels=4, codebook_size=256 if not ctx.smoke else 8, seed=0)
    ids = add_index_tokens(model, tok, index)
    trie = IndexTrie(index_token_ids(index, ids), eos_token_id=tok.eos_token_id)
    frame = split.test
    order = np.argsort([-len(h) for h in frame["history"]], kind="stable")[:b.lcrec_users]
    prompts = [list(tok(seqrec_prompt(frame["history"].iloc[i], index, 20))["input_ids"]) for i in order]
    W = b.lcrec_beams
    kw = dict(num_beams=W, pad_token_id=tok.pad_token_id)
    short = [prompts[0][-16:]]  # warm-up: the same code paths on a short prompt
    ours = measure({"trie": lambda: constrained_beam_search(model, prompts, trie, eos_token_id=tok.eos_token_id, **kw)},
                   b.reps, warmup={"trie": lambda: constrained_beam_search(model, short, trie,
                                                                           eos_token_id=tok.eos_token_id, **kw)})["trie"]
    # generate copies each prompt to all beams before the first forward (beams x the prefill): one repetition
    hf = measure({"hf": lambda: hf_constrained_generate(model, prompts, trie, eos_token_id=tok.eos_token_id, **kw)},
                 1, warmup={"hf": lambda: hf_constrained_generate(model, short, trie, eos_token_id=tok.eos_token_id,
                                                                  **kw)})["hf"]
    overlap = np.mean([len(set(ours.output.items[u].tolist()) & set(hf.output.items[u].tolist())) / W
                       for u in range(len(prompts))])
    same_top1 = np.mean([int(ours.output.items[u, 0]) == int(hf.output.items[u, 0]) for u in range(len(prompts))])
    n = len(prompts)
    sec.add(f"{n} {split.name} users decoded in one batch, seqrec template 0 (last 20 history items spelled in "
            f"index tokens, Alpaca wrapper; {np.mean([len(p) for p in prompts]):.0f} prompt tokens on average), "
            f"{len(index.tokens())} index tokens added to `{b.backbone}`, a random distinct 4-level index over "
            f"{split.n_items - 1} items, {W} beams, index tokens then EOS; ours: median of {b.reps} repetitions, "
            f"generate: one repetition (its prefill alone costs {W} times ours, see below); each after a warm-up on "
            f"a 16-token prompt.", "")
    ratio = hf.median / ours.median
    sec.add(*table(["decoder", "seconds (min-max)", "users/s", "speed-up"],
                   [["`constrained_beam_search` (trie tensors, one gather per step)", f"{ours.median:.2f} ({ours.spread()})",
                     f"{n / ours.median:.2f}", f"x{ratio:.2f}"],
                    ["`generate` + `prefix_allowed_tokens_fn` (same trie)", f"{hf.median:.2f} ({hf.spread()})",
                     f"{n / hf.median:.2f}", "1"]]))
    sec.add("", f"`generate` expands every prompt to its {W} beams before the first forward pass, so it encodes "
                f"{W} copies of each prompt; `constrained_beam_search` encodes each prompt once and copies its key/value "
                f"cache to the beams. Agreement: {overlap:.0%} of the top-{W} items shared, top-1 equal for {same_top1:.0%} of users "
                f"(transformers' beam search keeps finished beams by length-normalised score, so the sets can differ).")
    sec.targets.append(Target(f"LC-Rec constrained beam search (beam {W})", f">= x{BEAM_TARGET:.0f} vs generate",
                              f"x{ratio:.2f}", ratio >= BEAM_TARGET))
