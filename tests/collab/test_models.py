import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from llmrec.collab import MODELS, build_model, from_description
from llmrec.collab.lightgcn import LightGCN
from llmrec.collab.sasrec import SASRec
from llmrec.collab.trainer import TrainConfig, fit, predict
from llmrec.data.samples import click_tensors
from llmrec.errors import LlmrecError
from llmrec.metrics import auc


def _batch(frame, model, rows=7):
    return {k: v[:rows] for k, v in click_tensors(frame, max(model.history_length, 12)).items()}


def _model(name, frames, tiny, **extra):
    train, _, _, n_users, n_items = frames
    torch.manual_seed(0)
    model = build_model(name, n_users, n_items, **{**tiny[name], **extra})
    model.prepare(train)
    return model.eval()


@pytest.mark.parametrize("name", list(MODELS))
def test_interface_shapes_and_gradients(name, sequential, tiny):
    model = _model(name, sequential, tiny)
    batch = _batch(sequential[0], model)
    logits = model(batch)
    assert logits.shape == (7,) and torch.isfinite(logits).all()
    u, i = model.user_embedding(batch), model.item_embedding(batch["item"])
    assert u.shape == (7, model.dim) and i.shape == (7, model.dim)
    model.train()
    model(batch).sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", list(MODELS))
def test_state_dict_roundtrip_through_safetensors_rebuilds_the_same_model(name, sequential, tiny, tmp_path):
    model = _model(name, sequential, tiny)
    batch = _batch(sequential[0], model)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "w.safetensors"))
    again = from_description(model.describe())  # fresh: LightGCN has no graph until the state dict brings it
    again.load_state_dict(load_file(str(tmp_path / "w.safetensors")))
    torch.testing.assert_close(again.eval()(batch), model(batch))


def test_bad_names_and_fields_are_one_line_errors():
    with pytest.raises(LlmrecError, match="unknown collaborative model 'bpr'"):
        build_model("bpr", 3, 3)
    with pytest.raises(LlmrecError, match="unknown config field.*hidden"):
        build_model("mf", 3, 3, hidden=4)


def test_mf_logit_is_the_plain_inner_product(latent, tiny):
    model = _model("mf", latent, tiny)
    batch = _batch(latent[0], model)
    expected = (model.user_emb.weight[batch["user"]] * model.item_emb.weight[batch["item"]]).sum(-1)
    torch.testing.assert_close(model(batch), expected)
    torch.testing.assert_close(model.user_embedding(batch), model.user_emb.weight[batch["user"]])


def test_lightgcn_propagation_equals_dense_normalised_adjacency():
    n_users, n_items, d = 4, 6, 3
    users = np.array([1, 1, 2, 3, 3, 3, 2])
    items = np.array([1, 2, 2, 3, 4, 1, 2])  # (2, 2) twice: one edge
    torch.manual_seed(0)
    model = LightGCN(n_users, n_items, LightGCN.config_class(dim=d, layers=3))
    model.set_graph(users, items)
    n = n_users + n_items
    A = torch.zeros(n, n, dtype=torch.float64)
    for u, i in zip(users, items):
        A[u, n_users + i] = A[n_users + i, u] = 1.0
    deg = A.sum(1)
    inv = torch.where(deg > 0, deg.rsqrt(), torch.zeros_like(deg))
    A_hat = inv[:, None] * A * inv[None, :]
    E = torch.cat([model.user_emb.weight, model.item_emb.weight]).detach().double()
    layers = [E]
    for _ in range(3):
        layers.append(A_hat @ layers[-1])
    expected = torch.stack(layers).mean(0)
    got_u, got_i = model.propagate()
    torch.testing.assert_close(torch.cat([got_u, got_i]).double(), expected, rtol=1e-5, atol=1e-6)
    # users 0 and item 5 have no edges: their final vector is their own embedding / (K + 1)
    torch.testing.assert_close(got_i[5], model.item_emb.weight[5] / 4)


def test_lightgcn_graph_uses_positive_train_rows_only(latent, tiny):
    train = latent[0]
    model = _model("lightgcn", latent, tiny)
    pos = train[train["label"] == 1]
    n_pairs = len(set(zip(pos["user_id"], pos["item_id"])))
    assert model.edge_index.shape[1] == 2 * n_pairs


def test_sasrec_is_causal():
    torch.manual_seed(0)
    model = SASRec(3, 20, SASRec.config_class(dim=16, max_len=10, heads=2)).eval()
    seq = torch.tensor([[0, 0, 3, 5, 7, 2, 9, 11, 4, 6]])
    changed = seq.clone()
    changed[0, 6] = 13
    a, b = model.encode(seq), model.encode(changed)
    torch.testing.assert_close(a[:, :6], b[:, :6])
    assert not torch.allclose(a[:, 6:], b[:, 6:])
    torch.testing.assert_close(model.encode(seq, last_only=True), a[:, -1:])  # the shortcut forward uses


def test_sasrec_is_padding_invariant():
    torch.manual_seed(0)
    model = SASRec(3, 20, SASRec.config_class(dim=16, max_len=10)).eval()
    items = [3, 5, 7, 2]
    bare = model.encode(torch.tensor([items]))
    padded = model.encode(torch.tensor([[0] * 6 + items]))
    torch.testing.assert_close(padded[:, -4:], bare)  # padding changes nothing at the real positions
    short = {"user": torch.tensor([1]), "item": torch.tensor([8]), "history": torch.tensor([items])}
    long = dict(short, history=torch.tensor([[0] * 30 + items]))
    torch.testing.assert_close(model(short), model(long))
    # a history longer than max_len is read as its last max_len items
    many = torch.tensor([list(range(1, 19))])
    torch.testing.assert_close(model(dict(short, history=many)), model(dict(short, history=many[:, -10:])))
    # the official behaviour (padding takes attention weight) is an option, and it does depend on padding
    torch.manual_seed(0)
    official = SASRec(3, 20, SASRec.config_class(dim=16, max_len=10, mask_padding=False)).eval()
    official.load_state_dict(model.state_dict())
    torch.testing.assert_close(official.encode(torch.tensor([items])), bare)  # nothing to mask: identical
    assert not torch.allclose(official.encode(torch.tensor([[0] * 6 + items]))[:, -4:], bare)


def test_din_attention_ignores_padding(sequential, tiny):
    model = _model("din", sequential, tiny, dropout=0.0)
    batch = _batch(sequential[0], model, rows=32)
    history = batch["history"][:, -model.history_length:]
    weights = model.attention_weights(model.item_emb(batch["item"]), history)
    assert (weights[history == 0] == 0).all() and (weights[history != 0] != 0).all()
    # pooled history equals a per-row sum over the real items only
    pooled = model.user_embedding(batch)[:, model.dim // 3: 2 * model.dim // 3]
    for r in range(5):
        real = history[r][history[r] != 0]
        k = model.hist_emb(real)
        q = model.item_emb(batch["item"][r]).expand_as(k)
        w = model.attention_unit(torch.cat([q, k, q - k, q * k], -1))[:, 0]
        torch.testing.assert_close(pooled[r], (w[:, None] * k).sum(0))
    # whatever the padding id's embedding holds, nothing changes, in eval and in training mode (batch statistics)
    for mode in (False, True):
        model.train(mode)
        before = model(batch).detach()
        with torch.no_grad():
            model.hist_emb.weight[0] = torch.randn(model.dim // 3) * 100
        torch.testing.assert_close(model(batch).detach(), before)
    assert model.item_embedding(batch["item"]).shape == (32, model.dim)


@pytest.mark.parametrize("name,frames", [("mf", "latent"), ("lightgcn", "latent"), ("sasrec", "sequential"),
                                         ("din", "sequential")])
def test_each_model_learns_its_planted_signal(name, frames, request, tiny):
    train, valid, test, n_users, n_items = request.getfixturevalue(frames)
    torch.manual_seed(0)
    model = build_model(name, n_users, n_items, **tiny[name])
    result = fit(model, train, valid, test, TrainConfig(epochs=10, patience=5, batch_size=128, progress=False))
    held_out = auc(test["label"], predict(result.model, test))
    assert held_out > 0.85, (name, held_out, result.valid_auc)
    assert result.test["auc"] == pytest.approx(held_out)


def test_sasrec_xavier_init_option_gives_small_embeddings_and_a_zero_padding_row():
    torch.manual_seed(0)
    default = SASRec(3, 500, SASRec.config_class(dim=16))
    xavier = SASRec(3, 500, SASRec.config_class(dim=16, xavier_init=True))
    assert default.item_emb.weight[1:].std() > 0.9  # PyTorch's N(0, 1), as CoLLM trains it
    assert xavier.item_emb.weight[1:].std().item() == pytest.approx((2 / (500 + 16)) ** 0.5, rel=0.1)
    assert (xavier.item_emb.weight[0] == 0).all()
