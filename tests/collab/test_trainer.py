import numpy as np
import pytest
import torch
from torch import nn

from llmrec.collab import build_model
from llmrec.collab.trainer import CHECKPOINT_FILE, TrainConfig, evaluate, fit, predict
from llmrec.errors import LlmrecError
from llmrec.metrics import click_metrics


class Interrupted(Exception):
    pass


def _kill_after(n):
    def hook(record):
        if record["epoch"] == n:
            raise Interrupted
    return hook


def _fresh(name, frames, tiny, **extra):
    torch.manual_seed(1)
    return build_model(name, frames[3], frames[4], **{**tiny[name], **extra})


def test_early_stopping_keeps_the_best_epoch(latent, tiny):
    train, valid, test, *_ = latent
    # lr 0: valid AUC never improves after epoch 1, so patience 2 stops after epoch 3
    result = fit(_fresh("mf", latent, tiny), train, valid, test,
                 TrainConfig(lr=0.0, epochs=50, patience=2, progress=False))
    assert result.epochs_run == 3 and result.stopped_early and result.best_epoch == 1
    assert result.valid_auc == [result.best_valid_auc] * 3

    result = fit(_fresh("mf", latent, tiny), train, valid, test, TrainConfig(epochs=12, patience=3, progress=False))
    best = int(np.argmax(result.valid_auc))
    assert result.best_epoch == best + 1 and result.best_valid_auc == max(result.valid_auc)
    # the returned model carries the best epoch's weights, not the last ones
    scores = predict(result.model, valid)
    assert click_metrics(valid["user_id"], valid["label"], scores)["auc"] == pytest.approx(result.best_valid_auc)


@pytest.mark.parametrize("name", ["din", "sasrec"])  # dropout + BatchNorm statistics / attention dropout
def test_killed_run_resumes_and_ends_like_an_uninterrupted_one(name, sequential, tiny, tmp_path):
    train, valid, test, *_ = sequential
    cfg = TrainConfig(epochs=6, patience=100, batch_size=256, progress=False)
    reference = fit(_fresh(name, sequential, tiny, dropout=0.3), train, valid, test, cfg)

    with pytest.raises(Interrupted):
        fit(_fresh(name, sequential, tiny, dropout=0.3), train, valid, test, cfg, tmp_path, on_epoch_end=_kill_after(3))
    assert (tmp_path / CHECKPOINT_FILE).exists()
    seen = []
    resumed = fit(_fresh(name, sequential, tiny, dropout=0.3), train, valid, test, cfg, tmp_path,
                  on_epoch_end=lambda r: seen.append(r["epoch"]))
    assert seen == [4, 5, 6]  # continued from epoch 3
    assert resumed.valid_auc == reference.valid_auc
    for key, value in reference.state_dict.items():
        assert torch.equal(resumed.state_dict[key], value), key
    for key, value in reference.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
    assert resumed.test == reference.test

    # a finished run re-run with the same arguments trains nothing more and gives the same result
    again = fit(_fresh(name, sequential, tiny, dropout=0.3), train, valid, test, cfg, tmp_path,
                on_epoch_end=lambda r: pytest.fail("trained again"))
    assert again.test == reference.test and again.best_epoch == reference.best_epoch


def test_checkpoint_of_other_settings_is_refused(latent, tiny, tmp_path):
    train, valid, *_ = latent
    fit(_fresh("mf", latent, tiny), train, valid, config=TrainConfig(epochs=1, progress=False), checkpoint_dir=tmp_path)
    with pytest.raises(LlmrecError, match="different training.*lr"):
        fit(_fresh("mf", latent, tiny), train, valid, config=TrainConfig(epochs=2, lr=0.5, progress=False),
            checkpoint_dir=tmp_path)
    (tmp_path / CHECKPOINT_FILE).write_bytes(b"garbage")
    with pytest.raises(LlmrecError, match="unreadable training checkpoint"):
        fit(_fresh("mf", latent, tiny), train, valid, config=TrainConfig(epochs=2, progress=False),
            checkpoint_dir=tmp_path)


def test_bad_frames_are_one_line_errors(latent, tiny):
    train, valid, *_ = latent
    model = _fresh("mf", latent, tiny)
    bad = train.copy()
    bad.loc[3, "item_id"] = 10_000
    with pytest.raises(LlmrecError, match="train frame: item_id 10000 outside"):
        fit(model, bad, valid, config=TrainConfig(epochs=1, progress=False))
    with pytest.raises(LlmrecError, match="valid frame: missing column.*label"):
        fit(model, train, valid.drop(columns="label"), config=TrainConfig(epochs=1, progress=False))
    bad = valid.copy()
    bad.loc[0, "label"] = 3
    with pytest.raises(LlmrecError, match="label must be 0 or 1"):
        fit(model, train, bad, config=TrainConfig(epochs=1, progress=False))


def test_predict_is_batch_independent_and_evaluate_splits_warm_and_cold(sequential, tiny):
    _, valid, test, *_ = sequential
    model = _fresh("din", sequential, tiny).eval()
    torch.testing.assert_close(torch.from_numpy(predict(model, test, batch_size=7)),
                               torch.from_numpy(predict(model, test)), rtol=1e-5, atol=1e-6)
    test = test.copy()
    test["warm"] = np.arange(len(test)) % 3 == 0
    metrics = evaluate(model, test)
    scores = predict(model, test)
    for prefix, rows in (("warm_", test["warm"].to_numpy()), ("cold_", ~test["warm"].to_numpy())):
        expected = click_metrics(test["user_id"][rows], test["label"][rows], scores[rows], prefix=prefix)
        for key, value in expected.items():
            assert metrics[key] == pytest.approx(value)


class Counter(nn.Module):
    """A non-registry model with the hooks the trainer honours (as BinLLM's encoder uses them)."""

    def __init__(self, n_users, n_items):
        super().__init__()
        self.n_users, self.n_items = n_users, n_items
        self.emb = nn.Embedding(n_items, 1)
        self.calls = []
        self.ticks = 0
        self.lr, self.weight_decay = 0.01, 0.0

    def forward(self, batch):
        return self.emb(batch["item"])[:, 0]

    def on_epoch_end(self, epoch):
        self.calls.append(epoch)
        self.ticks += 1

    def extra_state(self):
        return {"ticks": self.ticks}


def test_model_hooks_are_called_and_extra_state_is_restored(latent, tmp_path):
    train, valid, *_ = latent
    cfg = TrainConfig(lr=0.01, weight_decay=0.0, epochs=4, patience=100, progress=False)
    model = Counter(latent[3], latent[4])
    with pytest.raises(Interrupted):
        fit(model, train, valid, config=cfg, checkpoint_dir=tmp_path, on_epoch_end=_kill_after(2))
    assert model.calls == [0, 1]
    again = Counter(latent[3], latent[4])
    fit(again, train, valid, config=cfg, checkpoint_dir=tmp_path)
    assert again.calls == [2, 3] and again.ticks == 4


def test_train_on_split_is_deterministic_from_the_seed(latent, tiny):
    from llmrec.collab.trainer import train_on_split
    from llmrec.data.types import ClickSplit

    train, valid, test, n_users, n_items = latent
    split = ClickSplit(name="latent", train=train, valid=valid, valid_small=valid.iloc[::2], test=test,
                       items=None, n_users=n_users, n_items=n_items)
    cfg = TrainConfig(epochs=3, patience=5, seed=7, progress=False)
    a = train_on_split("lightgcn", split, cfg, tiny["lightgcn"])
    b = train_on_split("lightgcn", split, cfg, tiny["lightgcn"])
    assert a.valid_auc == b.valid_auc and a.test == b.test
    assert {"auc", "uauc", "warm_auc", "cold_auc"} <= set(a.test) and a.description["name"] == "lightgcn"
    c = train_on_split("lightgcn", split, TrainConfig(epochs=3, patience=5, seed=8, progress=False), tiny["lightgcn"])
    assert c.valid_auc != a.valid_auc
