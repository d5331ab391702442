"""Speed of the constrained beam search: batched trie mask on the KV cache (ours) vs transformers' generate with
a prefix_allowed_tokens_fn callback (the official decoding, with a real trie). Not a test (no test_ prefix).

    .venv/bin/python tests/lcrec/bench_beam_search.py [--backbone tiny|smollm2-135m] [--users 16] [--threads 1]

Both run on the same prompts (seqrec template 0, 20 random history items) over a random 4 x 256 index of
1,682 items (ml-100k's size), 20 beams, index tokens then EOS; it prints ms per user and whether the two return
the same sequence scores (item order may differ only among exactly tied scores, as in an untrained model).
"""
from __future__ import annotations

import argparse
import time

import torch

from llmrec.llm.backbones import load_backbone
from llmrec.methods.lcrec.generate import constrained_beam_search, hf_constrained_generate
from llmrec.methods.lcrec.rqvae import random_index
from llmrec.methods.lcrec.tasks import seqrec_prompt
from llmrec.methods.lcrec.trie import IndexTrie
from llmrec.methods.lcrec.vocab import add_index_tokens, index_token_ids


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbone", default="tiny")
    ap.add_argument("--users", type=int, default=16)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, tok = load_backbone(args.backbone, device="cpu")
    index = random_index(1683, 4, 256, seed=0)
    trie = IndexTrie(index_token_ids(index, add_index_tokens(model, tok, index)), eos_token_id=tok.eos_token_id)
    g = torch.Generator().manual_seed(0)
    prompts = [tok(seqrec_prompt(torch.randint(1, 1683, (20,), generator=g).tolist(), index))["input_ids"]
               for _ in range(args.users)]
    print(f"{args.backbone}: {len(prompts)} users, {sum(map(len, prompts)) / len(prompts):.0f} prompt tokens each")
    scores = {}
    for name, fn in (("ours", constrained_beam_search), ("hf", hf_constrained_generate)):
        t, parts = time.perf_counter(), []
        for s in range(0, len(prompts), args.batch):
            parts.append(fn(model, prompts[s:s + args.batch], trie, num_beams=20, pad_token_id=tok.pad_token_id,
                            eos_token_id=tok.eos_token_id).scores)
        print(f"{name}: {(time.perf_counter() - t) / len(prompts) * 1000:.0f} ms per user (batch {args.batch})")
        scores[name] = torch.cat(parts)
    print("same scores:", torch.allclose(scores["ours"], scores["hf"], atol=1e-3, rtol=1e-4))


if __name__ == "__main__":
    main()
