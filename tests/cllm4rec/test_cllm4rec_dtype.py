"""CLLM4Rec on a bfloat16 backbone (what `llm.dtype=auto` gives on CUDA): the trainable ID tables and LoRA adapters
stay float32 master weights, the backbone gets its own dtype, a training step moves the tables, scores are finite."""
from __future__ import annotations

import numpy as np
import torch

from llmrec.data.holdout import holdout_split
from llmrec.methods.cllm4rec import CLLM4RecConfig
from llmrec.methods.cllm4rec.recipe import build_model
from llmrec.methods.cllm4rec.tasks import RankTask, RecommendTask

from planted_data import planted_dataset


def test_bf16_backbone_keeps_float32_tables_and_adapters():
    split = holdout_split(planted_dataset())
    model, vocab, tok = build_model(CLLM4RecConfig(device="cpu", lora=True), split.n_users, split.n_items,
                                    backbone="tiny", dtype="bfloat16", seed=0)
    assert model.backbone.get_input_embeddings().weight.dtype == torch.bfloat16
    for side in ("collab", "content"):
        assert model.table(side).user.weight.dtype == model.table(side).item.weight.dtype == torch.float32
    lora = {n: p for n, p in model.backbone.named_parameters() if "lora_" in n}
    assert lora and all(p.dtype == torch.float32 for p in lora.values())
    # what the backbone reads is in its dtype
    ids = torch.tensor([vocab.encode("<user_1> has interacted with <item_2>, <user_1> will interact with")])
    assert model.embed(ids, "collab").dtype == torch.bfloat16

    train_items = split.user_items("train")
    users = np.asarray([u for u in range(1, split.n_users) if len(train_items[u])], dtype=np.int64)
    model.set_trainable(True, False)
    task = RecommendTask(model, vocab, users, train_items, 0.2, "heldout", 10, 0.0, tok.pad_token_id, seed=0)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    before = model.collab.item.weight.detach().clone()
    loss = task.loss(task.collate(list(range(4))))
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is None or p.grad.dtype == torch.float32 for p in trainable)
    optimizer.step()
    # a 1e-4 step on float32 tables moves them; the same step in bfloat16 would mostly round away
    moved = (model.collab.item.weight.detach() != before).float().mean().item()
    assert moved > 0.5 and model.collab.item.weight.dtype == torch.float32

    model.eval()
    rank = RankTask(model, vocab, users[:5], train_items, 10, 10, tok.pad_token_id, 0)
    batch = rank.collate(list(range(rank.n_rows)))
    with torch.no_grad():
        logits = model.item_logits(model.last_hidden(batch["ids"], batch["mask"], "collab"))
        top = rank.predict(batch)
    assert torch.isfinite(logits[:, 1:]).all() and torch.isinf(logits[:, 0]).all()  # item 0 is padding
    assert ((top >= 1) & (top < split.n_items)).all()
