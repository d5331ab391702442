"""CLLM4Rec: users per second ranking the full catalogue (recommendation prompt -> last hidden state -> item head)."""
from __future__ import annotations

import numpy as np
import torch

from bench.common import Context, Section, measure, table

BATCH = 8


def run(ctx: Context, sec: Section) -> None:
    try:
        from llmrec.methods.cllm4rec.documents import recommendation_prompt
        from llmrec.methods.cllm4rec.model import CLLM4RecModel
        from llmrec.methods.cllm4rec.tokens import IdVocab
    except ImportError as e:
        sec.add(f"CLLM4Rec is not available yet ({e}).")
        return
    b = ctx.budget
    split = ctx.split
    backbone = ctx.model_copy()
    tok = ctx.backbone[1]
    model = CLLM4RecModel(backbone, split.n_users, split.n_items, seed=0).eval()
    vocab = IdVocab(tok, model.vocab_size, split.n_users, split.n_items)
    pos = split.train[split.train["label"] == 1]
    seen = {int(u): g["item_id"].to_numpy() for u, g in pos.groupby("user_id")}
    users = np.random.default_rng(0).permutation(sorted(seen))[:b.cllm4rec_users]
    prompts = [recommendation_prompt(vocab, int(u), seen[int(u)].tolist()) for u in users]

    @torch.no_grad()
    def rank_all(limit: int | None = None):
        tops = []
        for s in range(0, min(len(prompts), limit or len(prompts)), BATCH):
            chunk = prompts[s:s + BATCH]
            width = max(len(p) for p in chunk)
            ids = torch.zeros((len(chunk), width), dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, p in enumerate(chunk):
                ids[r, :len(p)] = torch.as_tensor(p)
                mask[r, :len(p)] = 1
            logits = model.item_logits(model.last_hidden(ids, mask, "collab"), "collab")
            for r, u in enumerate(users[s:s + BATCH]):
                logits[r, torch.as_tensor(seen[int(u)])] = float("-inf")  # training items are excluded
            tops.append(logits.topk(20, dim=1).indices)
        return torch.cat(tops)

    t = measure({"rank": rank_all}, b.reps, warmup={"rank": lambda: rank_all(BATCH)})["rank"]
    lengths = [len(p) for p in prompts]
    sec.add(f"{len(users)} {split.name} users, recommendation prompt \"<user_u> has interacted with <items>, <user_u> "
            f"will interact with\" listing all their train positives ({np.mean(lengths):.0f} tokens on average, "
            f"max {max(lengths)}), batches of {BATCH}, `CLLM4RecModel.last_hidden` + `item_logits` over all "
            f"{split.n_items - 1} items, train items masked, top-20; `{b.backbone}` backbone with untrained ID tables "
            f"(speed does not depend on training); median of {b.reps} after a one-batch warm-up.", "")
    sec.add(*table(["users", "seconds (min-max)", "users/s"],
                   [[len(users), f"{t.median:.2f} ({t.spread()})", f"{len(users) / t.median:.2f}"]]))
    sec.add("", "Timed on the model directly (`last_hidden` + `item_logits`, the computation the recipe's "
                "`RankTask` batches at evaluation), without the evaluation loop around it.")
