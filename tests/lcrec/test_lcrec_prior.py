"""The popularity prior over the trie (`item_prior="popularity"`): exact popularity on its own, popularity's order
from an untrained model, the loss and the search reading it, and a loaded run computing it again."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from llmrec.errors import LlmrecError
from llmrec.experiment import train
from llmrec.llm.backbones import load_backbone
from llmrec.methods.lcrec.config import LCRecConfig
from llmrec.methods.lcrec.generate import constrained_beam_search, score_all_items
from llmrec.methods.lcrec.prior import popularity_prior
from llmrec.methods.lcrec.recommend import LCRecRecommender
from llmrec.methods.lcrec.trie import IndexTrie
from llmrec.methods.lcrec.vocab import add_index_tokens, index_token_ids, untie_new_rows
from llmrec.methods.sequence import lcrec_eval_rows

from lcrec_fixtures import lcrec_experiment, synthetic_index, synthetic_split
from test_lcrec_recipe import SMALL


def _counts(n_items: int, seed: int = 0) -> np.ndarray:
    """Distinct training counts per item (index 0 unused), so that popularity's order has no ties."""
    counts = np.r_[0, np.random.default_rng(seed).permutation(n_items - 1) * 3]
    return counts.astype(np.int64)


def test_the_prior_alone_is_each_items_popularity():
    index = synthetic_index(n_items=40, levels=3, codebook=4)  # shared prefixes and shared deeper tokens
    table = np.where(index.codes >= 0, index.codes + 10 * np.arange(3)[None, :], -1)
    trie = IndexTrie(table)
    counts = _counts(index.n_items)
    trie.log_prior = popularity_prior(trie, counts)
    for level, rows in enumerate(trie.log_prior):  # each node's children: a distribution
        assert torch.allclose(rows.logsumexp(dim=1), torch.zeros(len(rows)), atol=1e-5), level
        assert (rows.isfinite() == trie.allowed[level]).all()
    zero = torch.zeros(1, 30)
    for item in range(1, index.n_items):
        logp = sum(trie.child_log_probs(zero, level, torch.tensor([node]))[0, k]
                   for level, (node, k) in enumerate(zip(*trie.token_nodes(table[item].tolist())[1:])))
        assert float(logp) == pytest.approx(np.log((counts[item] + 1) / (counts[1:] + 1).sum()), abs=1e-5)


def test_an_untrained_model_with_untied_rows_generates_in_popularity_order():
    model, tok = load_backbone("tiny", device="cpu")
    index = synthetic_index(n_items=30)
    ids = add_index_tokens(model, tok, index)
    untie_new_rows(model, list(ids.values()))  # every index token at logit 0
    table = index_token_ids(index, ids)
    trie = IndexTrie(table, eos_token_id=tok.eos_token_id)
    counts = _counts(index.n_items, seed=1)
    prompt = tok("The user has interacted with items")["input_ids"]
    n = index.n_items - 1

    def search(exclude=None):
        return constrained_beam_search(model, [prompt], trie, num_beams=n, pad_token_id=tok.pad_token_id,
                                       exclude=exclude, normalize="trie")

    plain = search()  # without the prior: uniform over each node's children
    for item, score in zip(plain.items[0].tolist(), plain.scores[0].tolist()):
        _, nodes, _ = trie.token_nodes(table[item].tolist())
        fan_out = [int(trie.allowed[level][node].sum()) for level, node in enumerate(nodes)]
        assert score == pytest.approx(-np.log(fan_out).sum(), abs=1e-4)
    trie.log_prior = popularity_prior(trie, counts)
    res = search()
    assert res.items[0].tolist() == (np.argsort(-counts[1:], kind="stable") + 1).tolist()
    expected = torch.as_tensor(np.log((counts + 1) / (counts[1:] + 1).sum()), dtype=torch.float32)
    torch.testing.assert_close(res.scores[0], expected[res.items[0]], atol=1e-4, rtol=1e-4)
    # the brute-force scorer reads the same prior; leaving the most popular item out gives the next ones
    torch.testing.assert_close(score_all_items(model, prompt, table, trie=trie)[1:], expected[1:], atol=1e-4, rtol=1e-4)
    top = int(res.items[0, 0])
    assert search(exclude=[[top]]).items[0, :n - 1].tolist() == res.items[0, 1:].tolist()


def test_the_prior_needs_the_trie_loss_and_untied_rows():
    for kwargs in ({"item_prior": "popularity"}, {"item_prior": "popularity", "item_loss": "trie"},
                   {"item_prior": "popularity", "new_token_head": "untied"}, {"item_prior": "counts"}):
        with pytest.raises(LlmrecError, match="item_prior"):
            LCRecConfig(**kwargs).validate()
    LCRecConfig(item_prior="popularity", item_loss="trie", new_token_head="untied").validate()


def test_a_run_with_the_prior_trains_it_into_the_loss_and_a_loaded_run_ranks_the_same(tmp_path):
    split = synthetic_split()
    options = dict(SMALL, item_loss="trie", new_token_head="untied", item_prior="popularity", test_users=12)
    metrics = train(lcrec_experiment(**options), tmp_path / "run", split=split)
    rec = LCRecRecommender.load(tmp_path / "run", split)
    assert rec.trie.log_prior is not None
    assert rec.evaluate("test") == pytest.approx(metrics["test"])
    user = int(split.users["user_id"].iloc[0])
    with_prior = rec.recommend(user, k=5, internal_ids=True)
    rec.trie.log_prior = None  # the same weights without it rank otherwise: the prior is in the scores
    assert [s for *_, s in rec.recommend(user, k=5, internal_ids=True)] != pytest.approx([s for *_, s in with_prior])


@pytest.mark.parametrize("normalize,eos", [("vocab", True), ("vocab", False), ("trie", False)])
def test_the_next_item_nll_is_minus_the_brute_force_score_of_the_target(tiny_with_index, normalize, eos):
    from llmrec.methods.lcrec.tasks import NextItemNLLTask

    model, tok, index, trie = tiny_with_index
    table = index_token_ids(index, {t: tok.convert_tokens_to_ids(t) for t in index.tokens()})
    trie.log_prior = popularity_prior(trie, _counts(index.n_items)) if normalize == "trie" else None
    prompts = [tok(p)["input_ids"] for p in ("The user has interacted with items", "Which item is it?", "A")]
    targets = [3, 11, 27]
    task = NextItemNLLTask(model, prompts, targets, trie, table, pad_token_id=tok.pad_token_id,
                           eos_token_id=tok.eos_token_id if eos else None, normalize=normalize)
    nll = task.predict(task.collate([0, 1, 2]))
    for prompt, target, got in zip(prompts, targets, nll.tolist()):
        brute = score_all_items(model, prompt, table, eos_token_id=tok.eos_token_id if eos else None,
                                trie=trie if normalize == "trie" else None)
        assert got == pytest.approx(-float(brute[target]), abs=1e-4)


def test_a_run_can_select_on_the_valid_items_likelihood(tmp_path):
    options = dict(SMALL, valid_metric="nll", item_loss="trie", new_token_head="untied", item_prior="popularity")
    metrics = train(lcrec_experiment(**options), tmp_path / "run", split=synthetic_split())
    nll = [h["nll"] for h in metrics["history"]]
    assert len(nll) == 2 and all(np.isfinite(nll))
    assert metrics["best_step"] == metrics["history"][int(np.argmin(nll))]["step"]  # the lowest is selected
    assert [c["nll"] for c in metrics["curve"]] == nll and "hr@10" in metrics["test"]
    with pytest.raises(LlmrecError, match="valid_metric"):
        LCRecConfig(valid_metric="auc").validate()


def test_bench_lcrec_nll_finds_a_run_that_learnt_nothing_level_with_popularity(tmp_path):
    from bench import lcrec_nll

    frozen = dict(lr=1e-12, new_token_lr=1e-12, new_token_head_lr=1e-12)  # the prior's start, kept
    options = dict(SMALL, item_loss="trie", new_token_head="untied", item_prior="popularity", test_users=12, **frozen)
    train(lcrec_experiment(**options), tmp_path / "run", split=synthetic_split())
    nll, pop, n_items = lcrec_nll.per_user_nll(str(tmp_path / "run"))
    assert len(nll) == 12 and n_items == 24
    np.testing.assert_allclose(nll, pop, atol=1e-3)
    row = lcrec_nll.compare(str(tmp_path / "run"))[0]
    assert row["users"] == 12 and row["run - popularity"].startswith(("+0.000", "-0.000"))


def test_bench_lcrec_ranks_pairs_the_runs_saved_test_ranks_with_popularity(tmp_path):
    from bench import lcrec_ranks
    from llmrec.collab.ranking import popularity_ranks
    from llmrec.metrics import leave_one_out_metrics
    from llmrec.methods.lcrec.recipe import TEST_RANKS_FILE
    from llmrec.recommender import Recommender

    run = tmp_path / "run"
    metrics = train(lcrec_experiment(**dict(SMALL, test_users=12)), run, split=synthetic_split())
    saved = pd.read_csv(run / TEST_RANKS_FILE)  # the test's own ranks, both views
    assert len(saved) == 12 and list(saved.columns) == ["target", "rank", "paper_rank"]
    for key, value in leave_one_out_metrics(saved["rank"]).items():
        assert metrics["test"][key] == pytest.approx(value), key
    assert metrics["test"]["paper_hr@10"] == pytest.approx((saved["paper_rank"] <= 10).mean())

    ranks, pop = lcrec_ranks.per_user_ranks(str(run))
    np.testing.assert_array_equal(ranks, saved["rank"])
    rec = Recommender.from_pretrained(str(run))
    rows = lcrec_eval_rows(len(rec.split.users), 12, None, rec.seed, "test")
    np.testing.assert_array_equal(pop, popularity_ranks(rec.split, "test", rows=rows))
    (run / TEST_RANKS_FILE).unlink()  # an older run: ranked again, to the same ranks
    np.testing.assert_array_equal(lcrec_ranks.per_user_ranks(str(run))[0], ranks)

    saved.assign(rank=1.0).to_csv(run / TEST_RANKS_FILE, index=False)  # a perfect run: +1 - popularity's HR@10
    hr10 = {r["metric"]: r for r in lcrec_ranks.compare(str(run))}["hr@10"]
    assert hr10["run"] == 1.0 and hr10["users"] == 12
    assert hr10["run - popularity"].startswith(f"{1.0 - (pop <= 10).mean():+.4f} [")
    saved.assign(target=saved["target"][::-1].to_numpy()).to_csv(run / TEST_RANKS_FILE, index=False)
    with pytest.raises(SystemExit, match="not the test items"):
        lcrec_ranks.per_user_ranks(str(run))
