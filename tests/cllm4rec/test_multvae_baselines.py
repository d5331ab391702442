"""Mult-VAE and the LightGCN-BPR / popularity ranking baselines on a planted pattern."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from llmrec.collab.multvae import MultVAE, MultVAEConfig, train_multvae
from llmrec.data.holdout import holdout_split
from llmrec.methods.cllm4rec.baselines import (BPRConfig, popularity_baseline, sample_negatives,
                                               train_lightgcn_bpr)

from planted_data import planted_dataset


@pytest.fixture(scope="module")
def split():
    # 4 taste groups over 80 items: popularity is flat inside a group's block, so it cannot tell groups apart
    return holdout_split(planted_dataset(n_users=120, n_items=80, n_groups=4, per_user=12, seed=1), min_count=1)


def test_multvae_beats_popularity_on_a_planted_pattern(split):
    cfg = MultVAEConfig(hidden=64, latent=16, batch_size=32, epochs=40, patience=None, progress=False)
    result = train_multvae(split, cfg, seed=0)
    pop = popularity_baseline(split)
    assert result.test["recall@20"] > pop.test["recall@20"] + 0.2
    assert result.test["ndcg@100"] > pop.test["ndcg@100"] + 0.1
    betas = [h["beta"] for h in result.history]
    assert betas == sorted(betas) and max(betas) == pytest.approx(cfg.beta_cap)  # annealed up to the cap
    assert result.best_valid["ndcg@100"] == max(h["valid_ndcg@100"] for h in result.history)


def test_multvae_loss_is_multinomial_nll_plus_beta_kl():
    torch.manual_seed(0)
    model = MultVAE(6, MultVAEConfig(hidden=8, latent=3)).eval()  # eval: no dropout, z = mu
    x = torch.tensor([[0, 1, 0, 1, 1, 0], [0, 0, 1, 0, 0, 1]], dtype=torch.float32)
    loss, kl = model.loss(x, beta=0.3)
    h = torch.tanh(model.encoder(x[:, 1:] / x[:, 1:].norm(dim=1, keepdim=True)))
    mu, logvar = model.to_latent(h).chunk(2, dim=1)
    logits = model.to_items(torch.tanh(model.decoder(mu)))
    nll = -(F.log_softmax(logits, 1) * x[:, 1:]).sum(1).mean()
    ref_kl = (0.5 * (mu ** 2 + logvar.exp() - logvar - 1)).sum(1).mean()
    assert kl.item() == pytest.approx(ref_kl.item(), rel=1e-5)
    assert loss.item() == pytest.approx((nll + 0.3 * ref_kl).item(), rel=1e-5)
    scores = model.scores(x)
    assert scores.shape == (2, 6) and torch.isinf(scores[:, 0]).all()


def test_lightgcn_bpr_beats_popularity(split):
    result = train_lightgcn_bpr(split, BPRConfig(dim=16, layers=2, lr=1e-2, batch_size=256, epochs=30,
                                                 eval_every=5, patience=None, progress=False))
    pop = popularity_baseline(split)
    assert result.test["ndcg@100"] > pop.test["ndcg@100"] + 0.1


def test_negatives_are_never_train_items(split):
    train = split.user_items("train")
    users = np.repeat(np.arange(1, split.n_users), 20)
    neg = sample_negatives(users, train, split.n_items, np.random.default_rng(0))
    assert all(n not in set(train[u].tolist()) for u, n in zip(users, neg))
    assert neg.min() >= 1 and neg.max() < split.n_items


@pytest.mark.parametrize("which", ["multvae", "lightgcn-bpr"])
def test_killed_baseline_resumes_to_the_uninterrupted_result(which, split, tmp_path, monkeypatch):
    import llmrec.collab.multvae as multvae_module
    import llmrec.methods.cllm4rec.baselines as bpr_module

    if which == "multvae":  # a checkpoint after every epoch
        module, train = multvae_module, lambda ckpt: train_multvae(split, MultVAEConfig(
            hidden=32, latent=8, batch_size=32, epochs=6, patience=None, progress=False), ckpt, seed=0)
    else:  # a checkpoint after every validation
        module, train = bpr_module, lambda ckpt: train_lightgcn_bpr(split, BPRConfig(
            dim=8, layers=2, lr=1e-2, batch_size=256, epochs=6, eval_every=2, patience=None, progress=False), ckpt)
    whole = train(tmp_path / "whole.safetensors")
    real, calls = module.evaluate_scores, []

    def dying(*args, **kwargs):  # killed at the third validation: the checkpoint holds the state before it
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "evaluate_scores", dying)
    ckpt = tmp_path / "killed.safetensors"
    with pytest.raises(KeyboardInterrupt):
        train(ckpt)
    assert ckpt.exists()
    monkeypatch.setattr(module, "evaluate_scores", lambda *a, **k: calls.append(1) or real(*a, **k))
    calls.clear()
    resumed = train(ckpt)
    # only the validations after the checkpoint ran again (plus the final test)
    assert len(calls) == ((6 - 2) + 1 if which == "multvae" else (3 - 2) + 1)
    assert resumed.test == pytest.approx(whole.test, rel=1e-6) and resumed.best_epoch == whole.best_epoch
    assert [h["loss"] for h in resumed.history] == pytest.approx([h["loss"] for h in whole.history], rel=1e-6)
