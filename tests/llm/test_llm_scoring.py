"""Yes/No scoring: answer tokens, the official score and loss, and each speed-up against the plain path."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from llmrec.errors import LlmrecError
from llmrec.llm.backbones import cached_backbone_dir, tiny_tokenizer
from llmrec.llm.prompts import EMBED, PromptBuilder
from llmrec.llm.scoring import (Batch, ScoringConfig, YesScorer, length_grouped_batches, padding_fraction,
                                rank_candidates, resolve_answer_tokens, token_embeddings)

TOL = 1e-4  # fp32: every speed-up must reproduce the plain path's scores within this
TITLES = ["Toy Story (1995)", "Heat (1995)", "Jumanji (1995)", "Casino (1995)", "Sabrina (1995)", "Fargo (1996)",
          "GoldenEye (1995)", "L.A. Confidential (1997)", "Pulp Fiction (1994)", "Dune", "Emma", "Persuasion"]
PLAIN = ScoringConfig(last_position_head=False, group_by_length=False, prefix_cache=False)


def prompts_for(tok, n=9, embed=False, same_user=False):
    """Prompts of varied length: different history sizes, titles and code lengths."""
    b = PromptBuilder("id_movie", tok)
    out = []
    for i in range(n):
        hist = TITLES if same_user else TITLES[: (3 * i) % 11]
        user = EMBED if embed else ("0101" if same_user else "01" * (1 + i % 5))
        item = EMBED if embed else f"192.168.{i}.{7 * i % 256}"
        out.append(b.build(hist, TITLES[(5 * i + 1) % len(TITLES)] + " Part " * (i % 3), user, item))
    return out


def reference_yes_no(model, answer, prompts, embeds=None):
    """Brute force: each prompt alone, unpadded, full model forward, full-vocabulary logits."""
    out = []
    with torch.no_grad():
        for i, p in enumerate(prompts):
            kw = ({"inputs_embeds": embeds[i][None]} if embeds is not None
                  else {"input_ids": torch.tensor([p.input_ids])})
            logits = model(**kw).logits[0, -1]
            out.append([logits[answer.yes].item(), logits[answer.no].item()])
    return np.array(out)


# -- answer tokens ---------------------------------------------------------------------------------------------

def test_answer_tokens_in_process_tokenizers(any_tokenizer):
    tok = any_tokenizer
    a = resolve_answer_tokens(tok)
    assert tok.decode([a.yes]).strip() == "Yes" and tok.decode([a.no]).strip() == "No"
    # it is the token that follows '#Answer:' in '#Answer: Yes' (leading-space variant), not bare 'Yes'
    ids = list(tok("#Answer: Yes", add_special_tokens=False)["input_ids"])
    assert ids[-1] == a.yes
    assert tok.convert_ids_to_tokens(a.yes) in ("ĠYes", "▁Yes")


@pytest.mark.parametrize("name,expected", [("smollm2-135m", "ĠYes"), ("gemma3-270m", "▁Yes")])
def test_answer_tokens_real_tokenizers(name, expected, real_home):
    path = cached_backbone_dir(name)
    if path is None:
        pytest.skip(f"{name} not converted yet in $LLMREC_HOME (run the smollm2 smoke test or load_backbone)")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    a = resolve_answer_tokens(tok)
    assert tok.convert_ids_to_tokens(a.yes) == expected
    assert tok.decode([a.no]).strip() == "No"


def test_same_answer_words_rejected(tiny):
    with pytest.raises(LlmrecError, match="same token"):
        resolve_answer_tokens(tiny[1], ("Yes", "Yes"))


# -- score and loss ----------------------------------------------------------------------------------------------

def test_score_is_the_raw_yes_logit_at_the_last_position(tiny):
    model, tok = tiny
    ps = prompts_for(tok)
    s = YesScorer(model, tok)
    ref = reference_yes_no(model, s.answer, ps)
    assert np.abs(s.score(ps, batch_size=4) - ref[:, 0]).max() < TOL
    assert ref[:, 0].std() > 1e-2  # scores differ between prompts: the comparison means something


def test_yes_no_softmax_option(tiny):
    model, tok = tiny
    ps = prompts_for(tok)
    s = YesScorer(model, tok, ScoringConfig(score="yes_no_softmax"))
    ref = reference_yes_no(model, s.answer, ps)
    want = torch.log_softmax(torch.tensor(ref), dim=1)[:, 0].numpy()
    assert np.abs(s.score(ps) - want).max() < TOL
    assert np.abs(s.logits(ps).detach().numpy() - (ref[:, 0] - ref[:, 1])).max() < TOL
    with pytest.raises(LlmrecError, match="score"):
        YesScorer(model, tok, ScoringConfig(score="softmax"))


def test_loss_is_bce_with_logits(tiny):
    model, tok = tiny
    ps = prompts_for(tok, n=6)
    labels = np.array([1, 0, 1, 1, 0, 0], dtype=np.float32)
    s = YesScorer(model, tok)
    z = reference_yes_no(model, s.answer, ps)[:, 0]
    sig = 1 / (1 + np.exp(-z))
    want = -np.mean(labels * np.log(sig) + (1 - labels) * np.log(1 - sig))
    assert abs(s.loss(ps, labels).item() - want) < TOL


# -- speed-ups against the plain path ----------------------------------------------------------------------------

def test_last_position_head_same_scores_and_gradients(tiny):
    model, tok = tiny
    ps = prompts_for(tok, n=6)
    labels = [1, 0, 0, 1, 1, 0]
    fast, plain = YesScorer(model, tok), YesScorer(model, tok, PLAIN)
    assert np.abs(fast.score(ps) - plain.score(ps)).max() < TOL
    grads = []
    for s in (fast, plain):
        model.zero_grad()
        s.loss(ps, labels).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    model.zero_grad()
    assert grads[0].abs().max() > 0
    assert torch.allclose(grads[0], grads[1], atol=1e-6, rtol=1e-4)


def test_group_by_length_same_scores_in_callers_order(tiny):
    model, tok = tiny
    ps = prompts_for(tok, n=11)
    grouped = YesScorer(model, tok).score(ps, batch_size=3)
    ungrouped = YesScorer(model, tok, ScoringConfig(group_by_length=False)).score(ps, batch_size=3)
    ref = reference_yes_no(model, YesScorer(model, tok).answer, ps)[:, 0]
    assert np.abs(grouped - ref).max() < TOL and np.abs(ungrouped - ref).max() < TOL


def test_length_grouping_pads_under_ten_percent():
    rng = np.random.default_rng(0)
    # BinLLM-like prompt lengths: 0-10 titles of 3-15 tokens, codes, fixed question
    lengths = 90 + rng.integers(0, 11, 5000) * rng.integers(3, 16, 5000)
    naive = [np.arange(i, min(i + 16, 5000)) for i in range(0, 5000, 16)]
    assert padding_fraction(lengths, naive) > 0.2
    eval_batches = length_grouped_batches(lengths, 16)
    train_batches = length_grouped_batches(lengths, 16, seed=1)
    for batches in (eval_batches, train_batches):
        assert sorted(np.concatenate(batches).tolist()) == list(range(5000))  # every row exactly once
        assert padding_fraction(lengths, batches) < 0.10
    again = length_grouped_batches(lengths, 16, seed=1)
    assert all((a == b).all() for a, b in zip(train_batches, again))


def test_prefix_cache_ranking_equals_independent_scoring(tiny):
    model, tok = tiny
    ps = prompts_for(tok, n=13, same_user=True)
    assert len({p.input_ids[:p.candidate_start] for p in ps}) == 1
    s = YesScorer(model, tok)
    ref = reference_yes_no(model, s.answer, ps)[:, 0]
    assert np.abs(s.rank(ps, batch_size=4) - ref).max() < TOL
    assert np.abs(YesScorer(model, tok, PLAIN).rank(ps) - ref).max() < TOL
    # low-level form: a prefix and suffixes of raw ids
    start = ps[0].candidate_start
    got = rank_candidates(model, tok, ps[0].input_ids[:start], [p.input_ids[start:] for p in ps])
    assert np.abs(got - ref).max() < TOL


def test_rank_groups_prompts_with_different_prefixes(tiny):
    model, tok = tiny
    ps = prompts_for(tok, n=5, same_user=True) + prompts_for(tok, n=4)
    s = YesScorer(model, tok)
    assert np.abs(s.rank(ps, batch_size=2) - s.score(ps)).max() < TOL


def _gemma_tiny(tok):
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    cfg = Gemma3TextConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                           num_attention_heads=2, num_key_value_heads=1, head_dim=32, sliding_window=16,
                           layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                           final_logit_softcapping=5.0, initializer_range=0.1, pad_token_id=tok.pad_token_id,
                           bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return Gemma3ForCausalLM(cfg).eval()


def test_gemma3_architecture_softcap_and_sliding_window():
    """Scaled embeddings, logit softcapping and a sliding window shorter than the shared prefix."""
    tok = tiny_tokenizer()
    tok.pad_token = tok.eos_token
    model = _gemma_tiny(tok)
    ps = prompts_for(tok, n=7, same_user=True)
    assert ps[0].candidate_start > 16
    s = YesScorer(model, tok)
    ref = reference_yes_no(model, s.answer, ps)[:, 0]
    assert np.abs(s.score(ps, batch_size=3) - ref).max() < TOL
    assert np.abs(s.rank(ps, batch_size=3) - ref).max() < TOL


def test_lora_wrapped_model(tiny):
    from peft import LoraConfig, get_peft_model

    model, tok = tiny
    lora = get_peft_model(_copy(model), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # non-zero adapters, so forgetting them would show
    ps = prompts_for(tok, n=6)
    fast, plain = YesScorer(lora, tok), YesScorer(lora, tok, PLAIN)
    got = fast.score(ps)
    assert np.abs(got - plain.score(ps)).max() < TOL
    assert np.abs(got - YesScorer(model, tok).score(ps)).max() > 1e-3  # the adapters took part
    lora.train()
    fast.score(ps)
    assert lora.training  # mode restored after scoring


def _copy(model):
    import copy
    return copy.deepcopy(model)


# -- CoLLM embedding hook ----------------------------------------------------------------------------------------

def _collm_embed_fn(model, user_vec, item_vec):
    """Overwrite each row's slot positions with per-row vectors (what CoLLM's mapping MLP produces)."""

    def embed_fn(input_ids: torch.Tensor, batch: Batch) -> torch.Tensor:
        emb = token_embeddings(model, input_ids).clone()
        for slot, vec in (("user", user_vec), ("item", item_vec)):
            cols = batch.slot_columns(slot)
            sel = (cols >= 0).nonzero().flatten()
            emb[sel, cols[sel]] = vec[batch.rows[sel]]
        return emb

    return embed_fn


def test_embed_fn_overwrites_slots(tiny):
    model, tok = tiny
    ps = prompts_for(tok, n=7, embed=True)
    g = torch.Generator().manual_seed(0)
    users, items = torch.randn(7, 64, generator=g), torch.randn(7, 64, generator=g)
    # reference: embeddings built by hand, one prompt at a time
    embeds = []
    for i, p in enumerate(ps):
        e = token_embeddings(model, torch.tensor(p.input_ids)).detach().clone()
        e[p.user_pos], e[p.item_pos] = users[i], items[i]
        embeds.append(e)
    s = YesScorer(model, tok, embed_fn=_collm_embed_fn(model, users, items))
    ref = reference_yes_no(model, s.answer, ps, embeds)[:, 0]
    assert np.abs(s.score(ps, batch_size=3) - ref).max() < TOL
    plain = YesScorer(model, tok, PLAIN, embed_fn=_collm_embed_fn(model, users, items))
    assert np.abs(plain.score(ps) - ref).max() < TOL
    assert np.abs(YesScorer(model, tok).score(ps) - ref).max() > 1e-3  # the slot vectors mattered


def test_embed_fn_with_prefix_cache(tiny):
    """Two users' candidates interleaved: rank() groups them by prefix and embed_fn still sees caller rows."""
    model, tok = tiny
    b = PromptBuilder("id_movie", tok)
    ps = [b.build(TITLES if i % 2 else TITLES[:4], TITLES[i], EMBED, EMBED) for i in range(8)]
    assert len({p.input_ids[:p.candidate_start] for p in ps}) == 2
    g = torch.Generator().manual_seed(1)
    two_users = torch.randn(2, 64, generator=g)
    users = two_users[torch.arange(8) % 2]
    items = torch.randn(8, 64, generator=g)
    s = YesScorer(model, tok, embed_fn=_collm_embed_fn(model, users, items))
    embeds = []
    for i, p in enumerate(ps):
        e = token_embeddings(model, torch.tensor(p.input_ids)).detach().clone()
        e[p.user_pos], e[p.item_pos] = users[i], items[i]
        embeds.append(e)
    ref = reference_yes_no(model, s.answer, ps, embeds)[:, 0]
    assert np.abs(s.rank(ps, batch_size=3) - ref).max() < TOL
    assert np.abs(s.score(ps) - ref).max() < TOL


def test_embed_fn_is_differentiable(tiny):
    model, tok = tiny
    ps = prompts_for(tok, n=4, embed=True)
    users = torch.randn(4, 64, requires_grad=True)
    items = torch.randn(4, 64, requires_grad=True)
    s = YesScorer(model, tok, embed_fn=_collm_embed_fn(model, users, items))
    s.loss(ps, [1, 0, 1, 0]).backward()
    assert users.grad.abs().sum() > 0 and items.grad.abs().sum() > 0
    model.zero_grad()
