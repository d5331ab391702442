"""RQ-VAE indexer: Sinkhorn against the official algorithm, the loss formula, k-means init, unique indices."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from llmrec.errors import LlmrecError
from llmrec.methods.lcrec.rqvae import (RQVAE, RQVAEConfig, build_index, collision_groups, collision_rate,
                                        default_hidden, random_index, resolve_collisions, sinkhorn_assign,
                                        sinkhorn_assign_log)


def official_sinkhorn(d: torch.Tensor, epsilon: float, iters: int) -> torch.Tensor:
    """LC-Rec's `center_distance_for_constraint` + `sinkhorn_algorithm`, transcribed (float64, exp domain)."""
    d = d.double()
    middle = (d.max() + d.min()) / 2
    d = (d - middle) / (d.max() - middle + 1e-5)
    Q = torch.exp(-d / epsilon)
    B, K = Q.shape
    Q /= Q.sum()
    for _ in range(iters):
        Q /= Q.sum(dim=1, keepdim=True)
        Q /= B
        Q /= Q.sum(dim=0, keepdim=True)
        Q /= K
    return (Q * B).argmax(dim=-1)


@pytest.mark.parametrize("epsilon", [0.003, 0.05])
def test_sinkhorn_matches_official_algorithm(epsilon):
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        d = torch.rand(64, 16, generator=g) * 3
        assert torch.equal(sinkhorn_assign(d, epsilon, 50), official_sinkhorn(d, epsilon, 50))
        scaled = (d.double() - (d.max() + d.min()) / 2) / (d.max() - (d.max() + d.min()) / 2 + 1e-5)
        assert torch.equal(sinkhorn_assign_log(scaled, epsilon, 50), official_sinkhorn(d, epsilon, 50))


def test_sinkhorn_spreads_items_that_argmin_piles_on_one_code():
    g = torch.Generator().manual_seed(1)
    d = torch.rand(64, 8, generator=g)
    d[:, 0] -= 1.0  # every item's nearest code is code 0
    assert (d.argmin(1) == 0).all()
    counts = torch.bincount(sinkhorn_assign(d, 0.003, 50), minlength=8)
    # 50 iterations at epsilon 0.003 do not reach the uniform 8 per code, but every code gets items
    assert (counts > 0).all() and counts[0] < 48


def test_default_hidden_rule():
    assert default_hidden(4096, 32) == [2048, 1024, 512, 256, 128, 64]  # the official sizes
    assert default_hidden(384, 32) == [192, 96, 48]
    assert default_hidden(576, 32) == [288, 144, 72, 36]
    assert default_hidden(16, 32) == []


def test_loss_is_recon_plus_mean_level_losses_with_straight_through_gradients():
    torch.manual_seed(0)
    cfg = RQVAEConfig(levels=3, codebook_size=8, e_dim=4, hidden=(16,))
    model = RQVAE(12, cfg)
    x = torch.randn(20, 12)
    loss, recon, codes = model(x)
    z = model.encoder(x)
    residual, zq, level_losses = z, torch.zeros_like(z), []
    for level, cb in enumerate(model.quantizer.codebooks):
        d = torch.cdist(residual, cb.weight) ** 2
        k = d.argmin(1)
        assert torch.equal(k, codes[:, level])
        q = cb.weight[k]
        level_losses.append(F.mse_loss(q, residual) * (1 + cfg.beta))  # codebook + 0.25 commitment (same value)
        residual, zq = residual - q, zq + q
    expected_recon = F.mse_loss(model.decoder(zq), x)
    torch.testing.assert_close(recon, expected_recon)
    torch.testing.assert_close(loss, expected_recon + torch.stack(level_losses).mean(), rtol=1e-5, atol=1e-6)
    loss.backward()
    assert model.encoder[0].weight.grad.abs().sum() > 0  # the reconstruction reaches the encoder
    assert all(cb.weight.grad is not None for cb in model.quantizer.codebooks)


def test_kmeans_init_places_centres_at_cluster_means():
    torch.manual_seed(0)
    cfg = RQVAEConfig(levels=2, codebook_size=4, e_dim=2, hidden=())
    model = RQVAE(2, cfg)
    with torch.no_grad():  # identity encoder, so the first level clusters the raw points
        model.encoder[0].weight.copy_(torch.eye(2))
        model.encoder[0].bias.zero_()
    centres = torch.tensor([[5.0, 5.0], [-5.0, 5.0], [5.0, -5.0], [-5.0, -5.0]])
    x = (centres[:, None, :] + 0.1 * torch.randn(4, 25, 2)).reshape(-1, 2)
    model.kmeans_init(x, iters=50, seed=0)
    got = model.quantizer.codebooks[0].weight.detach()
    for c in centres:
        assert torch.cdist(c[None], got).min() < 0.1
    assigned = torch.cdist(x, got).argmin(1)
    for k in range(4):
        torch.testing.assert_close(got[k], x[assigned == k].mean(0), atol=1e-4, rtol=1e-4)


def _clustered(n=60, dim=24, dup=4, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(6, dim))
    emb = base[rng.integers(0, 6, n)] + 0.3 * rng.normal(size=(n, dim))
    emb[n - dup:] = emb[:dup]  # identical texts: no quantiser can separate them
    return emb.astype(np.float32)


@pytest.mark.parametrize("sinkhorn", [True, False])
def test_build_index_gives_every_item_a_unique_index(sinkhorn):
    emb = _clustered()
    cfg = RQVAEConfig(levels=3, codebook_size=4, e_dim=8, epochs=30, batch_size=32, eval_every=10,
                      sinkhorn=sinkhorn, collision_rounds=20 if sinkhorn else 0)
    res = build_index(emb, cfg)
    r = res.report
    assert res.index.n_items == len(emb) + 1 and res.index.collisions() == 0
    assert r["collision_rate_final"] == 0.0
    assert r["collision_rate_argmin"] >= 4 / 60 - 1e-9  # the duplicates at least
    assert r["collision_rate_argmin"] >= r["collision_rate_sinkhorn"]
    assert r["resolved_deterministically"] == round(r["collision_rate_sinkhorn"] * 60)
    assert len(r["codebook_usage"]) == 3 and all(0 < u <= 1 for u in r["codebook_usage"])
    assert r["recon_mse"] > 0 and r["hidden"] == [12] and r["best_epoch"] in (10, 20, 30)
    again = build_index(emb, cfg)
    assert np.array_equal(again.index.codes, res.index.codes)  # seeded: the same index twice


def test_resolution_keeps_the_first_item_and_moves_the_others_to_their_nearest_free_code():
    torch.manual_seed(0)
    cfg = RQVAEConfig(levels=2, codebook_size=4, e_dim=3, hidden=())
    model = RQVAE(3, cfg).eval()
    x = torch.randn(5, 3)
    x[1] = x[0]
    x[2] = x[0] + 1e-4
    codes = model.codes(x).numpy()
    codes[1] = codes[2] = codes[0]  # a three-item collision on the items' own (argmin) prefix
    others = {tuple(c) for c in codes[3:].tolist()}
    out, moved = resolve_collisions(model, x, codes)
    assert moved == 2 and collision_rate(out) == 0.0
    assert out[0].tolist() == codes[0].tolist() and np.array_equal(out[3:], codes[3:])
    q = model.quantizer
    taken = {tuple(codes[0].tolist())} | others
    top = int(codes[0, 0])
    for row in (1, 2):  # in item order: each takes the nearest last-level code still free under its prefix
        r = model.encoder(x[row:row + 1]) - q.codebooks[0].weight[top]
        order = q.distances(1, r)[0].argsort().tolist()
        expect = next(c for c in order if (top, c) not in taken)
        assert out[row].tolist() == [top, expect]
        taken.add((top, expect))


def test_resolution_moves_up_a_level_when_a_prefix_is_full():
    torch.manual_seed(0)
    model = RQVAE(3, RQVAEConfig(levels=2, codebook_size=2, e_dim=3, hidden=())).eval()
    codes = np.array([[0, 0], [0, 1], [0, 1]])  # prefix 0 has both its last-level codes taken
    out, moved = resolve_collisions(model, torch.randn(3, 3), codes)
    assert moved == 1 and out[2, 0] == 1 and collision_rate(out) == 0.0


def test_collision_groups_and_rate():
    codes = np.array([[1, 1], [2, 2], [1, 1], [3, 3], [2, 2], [1, 1]])
    assert [g.tolist() for g in collision_groups(codes)] == [[0, 2, 5], [1, 4]]
    assert collision_rate(codes) == pytest.approx(3 / 6)


def test_random_index_is_unique_and_seeded():
    a, b = random_index(200, levels=2, codebook_size=16, seed=3), random_index(200, levels=2, codebook_size=16, seed=3)
    assert a.collisions() == 0 and np.array_equal(a.codes, b.codes) and (a.codes[0] == -1).all()
    with pytest.raises(LlmrecError):
        random_index(20, levels=2, codebook_size=4)


def test_bad_embeddings_are_refused():
    with pytest.raises(LlmrecError, match="NaN"):
        build_index(np.array([[0.0, np.nan], [1.0, 2.0]], dtype=np.float32), RQVAEConfig(epochs=1))


def test_killed_indexer_resumes_to_the_uninterrupted_index(tmp_path, monkeypatch):
    from llmrec.collab import loop

    emb = _clustered()
    cfg = RQVAEConfig(levels=3, codebook_size=4, e_dim=8, epochs=30, batch_size=32, eval_every=10)
    whole = build_index(emb, cfg)
    save = loop.save_training_state

    def killed_after_15(path, tensors, optimizer, state, scheduler=None):
        save(path, tensors, optimizer, state, scheduler)
        if state["epoch"] == 15:  # after k-means, one evaluation and half a warm-up: all must come back
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "save_training_state", killed_after_15)
    ckpt = tmp_path / "rqvae.safetensors"
    with pytest.raises(KeyboardInterrupt):
        build_index(emb, cfg, checkpoint=ckpt)
    monkeypatch.setattr(loop, "save_training_state", save)
    resumed = build_index(emb, cfg, checkpoint=ckpt)
    assert np.array_equal(resumed.index.codes, whole.index.codes)
    assert resumed.report["history"] == whole.report["history"]
    assert resumed.report["best_epoch"] == whole.report["best_epoch"]
    for key, value in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
