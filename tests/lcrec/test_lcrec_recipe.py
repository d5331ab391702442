"""The LC-Rec recipe end to end on the tiny backbone and a synthetic split."""
from __future__ import annotations

import json

import numpy as np
import pytest

from llmrec.errors import LlmrecError
from llmrec.methods.lcrec.recipe import LCRecConfig, apply_finetuning, ranking_metrics, train_lcrec
from llmrec.methods.lcrec.rqvae import RQVAEConfig
from llmrec.methods.lcrec.vocab import ItemIndex

from lcrec_fixtures import synthetic_split

SMALL = dict(backbone="tiny", text_encoder="backbone", max_steps=4, eval_every=2, batch_size=4, valid_users=4,
             test_users=5, num_beams=5, eval_batch_size=3,
             rqvae=RQVAEConfig(levels=3, codebook_size=4, e_dim=8, epochs=10, batch_size=32, eval_every=5))


def test_ranking_metrics_formulas():
    m = ranking_metrics([1, 3, float("inf"), 7, 12])
    assert m["hr@1"] == pytest.approx(0.2) and m["hr@5"] == pytest.approx(0.4) and m["hr@10"] == pytest.approx(0.6)
    assert m["ndcg@5"] == pytest.approx((1 + 1 / np.log2(4)) / 5)
    assert m["ndcg@10"] == pytest.approx((1 + 1 / np.log2(4) + 1 / np.log2(8)) / 5)


def test_learned_index_run_writes_a_complete_run_and_resumes(tmp_path):
    split = synthetic_split()
    out = tmp_path / "run"
    m = train_lcrec(LCRecConfig(**SMALL), split, out)
    assert set(m["test"]) == {"hr@1", "hr@5", "hr@10", "ndcg@5", "ndcg@10", "users"} and m["test"]["users"] == 5
    assert m["valid"]["users"] == 4 and m["steps"] == 4 and len(m["history"]) == 2
    assert m["tasks"]["itemsearch"].startswith("skipped") and m["tasks"]["seqrec"] > 0
    assert m["index"]["collision_rate_final"] == 0.0 and m["index"]["kind"] == "learned"
    index = ItemIndex.load(out / "indices.json", n_items=split.n_items)
    assert index.collisions() == 0 and index.levels == 3
    for f in ("metrics.json", "rqvae_report.json", "lcrec_config.yaml", "tokenizer/tokenizer.json",
              "adapter/adapter_config.json", "train/best/trainable.safetensors", "new_token_rows.safetensors"):
        assert (out / f).is_file(), f
    assert train_lcrec(LCRecConfig(**SMALL), split, out) == json.loads((out / "metrics.json").read_text())


def test_random_index_ablation_and_lora_trains_only_adapters_and_new_rows(tmp_path):
    split = synthetic_split()
    m = train_lcrec(LCRecConfig(**{**SMALL, "index": "random", "max_steps": 2, "eval_every": 2}), split,
                    tmp_path / "r")
    assert m["index"] == {"kind": "random"} and m["steps"] == 2
    from llmrec.llm.backbones import load_backbone
    model, _ = load_backbone("tiny", device="cpu")
    peft_model = apply_finetuning(model, LCRecConfig(), [10, 11])
    names = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n or "trainable_tokens" in n for n in names)


@pytest.mark.parametrize("field, value, message", [
    ("index", "semantic", "index"), ("finetune", "qlora", "finetune"), ("tasks", {"search": 1.0}, "tasks"),
    ("num_beams", 0, "num_beams"), ("index_file", None, "index_file")])
def test_bad_config_is_refused(field, value, message):
    cfg = LCRecConfig(**{field: value, **({"index": "file"} if field == "index_file" else {})})
    with pytest.raises(LlmrecError, match=message):
        cfg.validate()


@pytest.mark.parametrize("tied", [True, False])
def test_new_token_deltas_move_both_the_input_rows_and_the_output_logits(tied):
    import torch
    from llmrec.llm.backbones import tiny_backbone
    from llmrec.methods.lcrec.vocab import add_index_tokens
    from lcrec_fixtures import synthetic_index

    model, tok = tiny_backbone(tie_word_embeddings=tied)
    ids = sorted(add_index_tokens(model, tok, synthetic_index()).values())
    pm = apply_finetuning(model, LCRecConfig(), ids)
    x = torch.tensor([[1, 5, 7, ids[0]]])
    with torch.no_grad():
        before_logits = pm(input_ids=x).logits[0, -1, ids].clone()
        for n, p in pm.named_parameters():
            if "trainable_tokens" in n:
                p.add_(torch.randn_like(p))
        after = pm(input_ids=x).logits[0, -1]
    assert not torch.allclose(before_logits, after[ids])
