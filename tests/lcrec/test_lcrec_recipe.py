"""The LC-Rec recipe end to end on the tiny backbone and a synthetic split."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from llmrec.errors import LlmrecError
from llmrec.metrics import leave_one_out_metrics
from llmrec.methods.lcrec.config import LCRecConfig, RQVAEConfig
from llmrec.experiment import train
from llmrec.methods.lcrec.recipe import apply_finetuning
from llmrec.methods.lcrec.vocab import ItemIndex

from lcrec_fixtures import lcrec_experiment, synthetic_split

SMALL = dict(text_encoder="backbone", max_steps=4, eval_every=2, batch_size=4, valid_users=4,
             test_users=5, num_beams=5, eval_batch_size=3,
             rqvae=RQVAEConfig(levels=3, codebook_size=4, e_dim=8, epochs=10, batch_size=32, eval_every=5))


def test_ranking_metrics_formulas_and_intervals():
    m = leave_one_out_metrics([1, 3, float("inf"), 7, 12], intervals=True)
    assert m["hr@1"] == pytest.approx(0.2) and m["hr@5"] == pytest.approx(0.4) and m["hr@10"] == pytest.approx(0.6)
    assert m["ndcg@5"] == pytest.approx((1 + 1 / np.log2(4)) / 5)
    assert m["ndcg@10"] == pytest.approx((1 + 1 / np.log2(4) + 1 / np.log2(8)) / 5)
    assert m["mrr"] == pytest.approx((1 + 1 / 3 + 1 / 7 + 1 / 12) / 5)  # never ranked: reciprocal rank 0
    for k in ("hr@1", "hr@10", "ndcg@10", "mrr"):
        assert 0 <= m[f"{k}_lo"] <= m[k] <= m[f"{k}_hi"] <= 1
    assert m["hr@10_lo"] < m["hr@10_hi"]  # five users: a wide interval
    assert set(leave_one_out_metrics([2.0], prefix="paper_")) == {"paper_hr@1", "paper_hr@5", "paper_hr@10", "paper_ndcg@5",
                                                            "paper_ndcg@10", "paper_mrr", "paper_users"}


def test_learned_index_run_writes_a_complete_run_and_resumes(tmp_path):
    split = synthetic_split()
    out = tmp_path / "run"
    m = train(lcrec_experiment(**SMALL), out, split=split)
    plain = {"hr@1", "hr@5", "hr@10", "ndcg@5", "ndcg@10", "mrr"}
    assert set(m["test"]) == plain | {"users", "paper_users"} | {f"{k}_{b}" for k in plain for b in ("lo", "hi")} \
        | {f"paper_{k}{b}" for k in plain for b in ("", "_lo", "_hi")}
    assert m["test"]["users"] == m["test"]["paper_users"] == 5 and m["exclude_seen"] is True
    assert m["valid"]["users"] == 4 and m["steps"] == 4 and len(m["history"]) == 2
    assert [c["step"] for c in m["curve"]] == [2, 4] and m["curve"][-1]["samples"] == 16
    # the paper's seqrec samples train one next-item target each, the alignment tasks none
    assert 0 < m["targets_seen"] <= 16 and {"hr@10", "ndcg@10_lo", "train_seconds"} <= set(m["curve"][0])
    assert m["tasks"]["itemsearch"].startswith("skipped") and m["tasks"]["seqrec"] > 0
    assert m["index"]["collision_rate_final"] == 0.0 and m["index"]["kind"] == "learned"
    index = ItemIndex.load(out / "indices.json", n_items=split.n_items)
    assert index.collisions() == 0 and index.levels == 3
    for f in ("metrics.json", "config.yaml", "rqvae_report.json", "tokenizer/tokenizer.json",
              "adapter/adapter_config.json", "train/best/trainable.safetensors", "new_token_rows.safetensors"):
        assert (out / f).is_file(), f
    # one run: no run directory of its own inside, no config or metrics of its own
    assert not (out / "lcrec").exists() and not (out / "lcrec_config.yaml").exists()
    assert train(lcrec_experiment(**SMALL), out, split=split) == json.loads((out / "metrics.json").read_text())


def test_killed_run_resumes_and_a_finished_run_continues_with_more_steps(tmp_path, monkeypatch):
    from llmrec.llm import train as loop

    split = synthetic_split()
    small = {**SMALL, "index": "random", "max_steps": 2, "eval_every": 2}
    # killed after its first evaluation (step 2, checkpointed): the same call resumes from there
    out = tmp_path / "r"
    real = loop.predict_rows
    calls = {"n": 0}

    def killed_at_test(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 2:  # 1: the validation at step 2; 2: the test
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(loop, "predict_rows", killed_at_test)
    with pytest.raises(KeyboardInterrupt):
        train(lcrec_experiment(**small), out, split=split)
    monkeypatch.setattr(loop, "predict_rows", real)
    assert not (out / "metrics.json").exists()
    m = train(lcrec_experiment(**small), out, split=split)
    assert m["steps"] == 2 and [h["step"] for h in m["history"]] == [2]
    # a larger budget: the finished run continues from step 2 (not from scratch)
    more = train(lcrec_experiment(**{**small, "max_steps": 4}), out, split=split)
    assert more["steps"] == 4 and [h["step"] for h in more["history"]] == [2, 4]
    log = (out / "log.txt").read_text()
    assert "budget changed (lcrec.max_steps 2 -> 4)" in log and "at train step 2" in log
    assert log.count(" eval sft at ") == 2 and log.count(" end: test ndcg@10 ") == 2


def test_random_index_ablation_and_lora_trains_only_adapters_and_new_rows(tmp_path):
    split = synthetic_split()
    m = train(lcrec_experiment(**{**SMALL, "index": "random", "max_steps": 2, "eval_every": 2}), tmp_path / "r",
              split=split)
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


def _effective_rows(pm, ids):
    """(input, output) rows of these tokens as the peft model computes with them (base row + trained delta)."""
    import torch

    with torch.no_grad():
        emb = pm.get_input_embeddings()(torch.as_tensor(ids)).clone()
        d = emb.shape[1]
        head = pm.get_output_embeddings()(torch.eye(d)).T[ids].clone()  # row t = W[t] (x = unit vectors)
    return emb, head


@pytest.mark.parametrize("tied", [True, False])
def test_every_new_row_in_a_batch_moves_input_and_output_side(tied, tmp_path):
    import torch
    from llmrec.llm.backbones import tiny_backbone
    from llmrec.llm.train import TrainConfig, fit
    from llmrec.methods.lcrec.recipe import new_token_groups
    from llmrec.methods.lcrec.tasks import SFTTask, build_samples, encode
    from llmrec.methods.lcrec.vocab import add_index_tokens

    model, tok = tiny_backbone(tie_word_embeddings=tied)
    tok.pad_token = tok.eos_token  # as load_backbone sets it
    # items 25..39 are in no sequence, and their tokens <a_4>, <a_5>, <b_8>..<b_15> in no other item
    index = ItemIndex(np.array([[-1, -1]] + [[i // 8, i % 8] for i in range(1, 25)]
                               + [[4 + (i - 25) // 8, 8 + (i - 25) % 8] for i in range(25, 40)]))
    ids = sorted(add_index_tokens(model, tok, index).values())
    cfg = LCRecConfig(new_token_lr=1e-2)
    pm = apply_finetuning(model, cfg, ids)
    samples = build_samples(synthetic_split(), index, {"seqrec_all_positions": 1.0}, max_history=4,
                            log=lambda m: None)[0][:16]
    seen_inputs = {t for s in samples for t in encode(tok, s)[0]}
    emb0, head0 = _effective_rows(pm, ids)
    groups = new_token_groups(pm, cfg)
    assert len(groups) == 1 and len(groups[0]["params"]) == (1 if tied else 2) and groups[0]["lr"] == 1e-2
    fit(SFTTask(pm, tok, samples, lr_groups=groups), 16, None, None,
        TrainConfig(lr=1e-3, batch_size=8, epochs=1, warmup_steps=0), tmp_path)  # every sample once
    emb1, head1 = _effective_rows(pm, ids)
    in_batch = torch.as_tensor([t in seen_inputs for t in ids])
    assert 0 < in_batch.sum() < len(ids)
    moved_in = (emb1 - emb0).abs().amax(1)
    assert (moved_in[in_batch] > 1e-3).all()  # every row a batch fed in moved (new_token_lr-sized steps)
    assert ((head1 - head0).abs().amax(1) > 1e-3).all()  # every output row: each softmax reaches them all
    if tied:  # one row serves both sides
        torch.testing.assert_close(emb1, head1)
    else:  # an input row no batch fed in only shrinks by the weight decay (lr * 0.01 of itself per step)
        assert (moved_in[~in_batch] < 1e-4).all()


def test_new_token_lr_needs_new_token_rows_and_the_sequence_prompt_needs_its_task():
    for kwargs, message in [({"new_token_lr": 1e-2, "embeddings": "full"}, "new_token_lr"),
                            ({"new_token_lr": 1e-2, "finetune": "full"}, "new_token_lr"),
                            ({"new_token_lr": 0.0}, "new_token_lr"), ({"eval_prompt": "sequence"}, "eval_prompt"),
                            ({"template": "chatml"}, "template"), ({"new_token_init": "zeros"}, "new_token_init")]:
        with pytest.raises(LlmrecError, match=message):
            LCRecConfig(**kwargs).validate()
    LCRecConfig(eval_prompt="sequence", tasks={"seqrec_all_positions": 1.0}, template="compact").validate()


def test_untied_new_rows_start_at_logit_zero_and_train_at_their_own_rate(tmp_path):
    """new_token_head=untied on a tied backbone: the head becomes a copy (old tokens' logits unchanged, a later
    tie_weights() does not tie it back), the new tokens start at logit 0, and training moves their input and
    output rows apart, the output rows at new_token_head_lr (about 100x smaller steps here)."""
    import torch
    from llmrec.llm.backbones import tiny_backbone
    from llmrec.llm.train import TrainConfig, fit
    from llmrec.methods.lcrec.recipe import new_token_groups
    from llmrec.methods.lcrec.tasks import SFTTask, build_samples
    from llmrec.methods.lcrec.vocab import add_index_tokens, untie_new_rows
    from lcrec_fixtures import synthetic_index

    model, tok = tiny_backbone(tie_word_embeddings=True)
    tok.pad_token = tok.eos_token
    index = synthetic_index()
    x = torch.tensor([[1, 5, 7, 9]])
    with torch.no_grad():
        old = model(input_ids=x).logits[0, -1].clone()
    ids = sorted(add_index_tokens(model, tok, index, init="matched").values())
    untie_new_rows(model, ids)
    model.tie_weights()
    assert model.get_output_embeddings().weight is not model.get_input_embeddings().weight
    with torch.no_grad():
        logits = model(input_ids=x).logits[0, -1]
    torch.testing.assert_close(logits[: len(old)], old)
    assert (logits[ids] == 0).all()
    cfg = LCRecConfig(new_token_lr=1e-2, new_token_head="untied", new_token_head_lr=1e-4)
    pm = apply_finetuning(model, cfg, ids)
    groups = new_token_groups(pm, cfg)
    assert [g["lr"] for g in groups] == [1e-2, 1e-4] and all(len(g["params"]) == 1 for g in groups)
    emb0, head0 = _effective_rows(pm, ids)
    samples = build_samples(synthetic_split(), index, {"seqrec_all_positions": 1.0}, max_history=4,
                            log=lambda m: None)[0][:16]
    fit(SFTTask(pm, tok, samples, lr_groups=groups), 16, None, None,
        TrainConfig(lr=1e-3, batch_size=8, epochs=1, warmup_steps=0), tmp_path)
    emb1, head1 = _effective_rows(pm, ids)
    moved_in, moved_out = (emb1 - emb0).abs().amax(1), (head1 - head0).abs().amax(1)
    assert moved_in.max() > 1e-3 and 0 < moved_out.max() < 5e-4  # two steps of ~lr per coordinate each
    assert (head0 == 0).all() and not torch.allclose(emb1, head1)


def test_new_token_head_lr_needs_untied_rows():
    for kwargs in ({"new_token_head_lr": 1e-4}, {"new_token_head": "untied", "new_token_head_lr": 1e-4},
                   {"new_token_head": "untied", "new_token_lr": 1e-2, "new_token_head_lr": 0.0}):
        with pytest.raises(LlmrecError, match="new_token_head_lr"):
            LCRecConfig(**kwargs).validate()
    with pytest.raises(LlmrecError, match="new_token_head"):
        LCRecConfig(new_token_head="shared").validate()


def test_full_finetuning_of_a_bf16_backbone_keeps_float32_master_weights(tmp_path):
    """The paper's full fine-tuning on a bf16 backbone (CUDA's default): AdamW updates float32 weights, which the
    run saves; the bf16 serving model takes them back."""
    from llmrec.recommender import Recommender

    cfg = lcrec_experiment(**{**SMALL, "index": "random", "finetune": "full", "max_steps": 2, "eval_every": 2})
    cfg.llm.dtype = "bfloat16"
    m = train(cfg, tmp_path / "r", split=synthetic_split())
    saved = load_file(str(tmp_path / "r" / "train" / "best" / "trainable.safetensors"))
    assert len(saved) == 20 and {v.dtype for v in saved.values()} == {torch.float32}
    rec = Recommender.from_pretrained(tmp_path / "r")
    assert next(rec.model.parameters()).dtype == torch.bfloat16
    assert rec.evaluate("test")["users"] == m["test"]["users"] == 5
