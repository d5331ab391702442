"""CLLM4Rec fine-tuned toward a Mult-VAE teacher (`teacher_weight`, ours): the loss against brute force, a
teacher that equals the labels changes nothing, and a planted pattern that reaches the model only through the
teacher, with a permuted teacher as the control."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from llmrec.data.holdout import holdout_split
from llmrec.errors import LlmrecError
from llmrec.experiment import train
from llmrec.methods.cllm4rec import CLLM4RecConfig
from llmrec.methods.cllm4rec import teacher as teacher_module
from llmrec.methods.cllm4rec.tasks import RecommendTask

from planted_data import chance_recall, cllm4rec_experiment, planted_dataset
from test_cllm4rec_options import build


@pytest.fixture(scope="module")
def split():
    return holdout_split(planted_dataset(n_users=16, per_user=16), min_count=1)


def _task(split, model, vocab, pad, probs=None, weight=0.0):
    users = np.arange(1, split.n_users)
    return RecommendTask(model, vocab, users, split.user_items("train"), 0.2, "all", None, 0.0, pad, seed=0,
                         teacher_probs=probs, teacher_weight=weight)


def test_loss_mixes_the_items_and_the_teacher_as_brute_force_does(split):
    model, vocab, pad = build(split)
    probs = torch.softmax(torch.randn(split.n_users, split.n_items, generator=torch.Generator().manual_seed(0)), -1)
    probs[:, 0] = 0
    probs /= probs.sum(1, keepdim=True)
    w = 0.3
    task = _task(split, model, vocab, pad, probs, w)
    rows = [0, 3, 7]
    batch = task.collate(rows)
    with torch.no_grad():
        h = model.last_hidden(batch["ids"], batch["mask"], "collab")
        logp = torch.log_softmax(model.item_logits(h, "collab").float(), -1)
        expected = []
        for b, r in enumerate(rows):
            user = int(task.users[r])
            items = split.user_items("train")[user]
            hard = -float(logp[b, torch.as_tensor(items)].sum())
            soft = -float((probs[user, 1:] * logp[b, 1:]).sum()) * len(items)
            expected.append((1 - w) * hard + w * soft)
        assert float(task.loss(batch)) == pytest.approx(np.mean(expected), rel=1e-5)


def test_a_teacher_equal_to_the_labels_changes_nothing(split):
    model, vocab, pad = build(split)
    probs = torch.zeros(split.n_users, split.n_items)
    for u, items in enumerate(split.user_items("train")):
        if len(items):
            probs[u, torch.as_tensor(items)] = 1.0 / len(items)
    plain, taught = _task(split, model, vocab, pad), _task(split, model, vocab, pad, probs, 1.0)
    rows = list(range(8))
    with torch.no_grad():
        assert float(taught.loss(taught.collate(rows))) == pytest.approx(float(plain.loss(plain.collate(rows))),
                                                                         rel=1e-5)


@pytest.mark.parametrize("value", [-0.1, 1.01])
def test_teacher_weight_outside_0_1_is_refused(value):
    with pytest.raises(LlmrecError, match="CLLM4RecConfig.teacher_weight"):
        CLLM4RecConfig(teacher_weight=value).validate()


# fine-tuning alone (no pre-training), at the planted pipeline's rates
TAUGHT = dict(device="cpu", init_std=0.1, content_epochs=0, alternate_epochs=0, max_prompt_items=None,
              finetune_lr=0.05, finetune_epochs=8, finetune_batch_size=16, eval_every=10, patience=None,
              max_valid_users=None, teacher_weight=1.0)


@pytest.mark.parametrize("control", [False, True], ids=["teacher", "permuted-teacher-control"])
def test_planted_pattern_reaches_the_model_through_the_teacher_alone(control, tmp_path, monkeypatch):
    """teacher_weight=1: the users' items enter fine-tuning only through Mult-VAE's beliefs. 10 taste groups
    (popularity flat inside them): Recall@20 >= 0.7; with the teacher's items permuted, near chance."""
    if control:
        real = teacher_module.teacher_probs

        def permuted(*args, **kw):
            probs, report = real(*args, **kw)
            perm = np.r_[0, 1 + np.random.default_rng(3).permutation(probs.shape[1] - 1)]
            return probs[:, torch.as_tensor(perm)], report

        import llmrec.methods.cllm4rec.recipe as recipe
        monkeypatch.setattr(recipe, "teacher_probs", permuted)
    split = holdout_split(planted_dataset(n_users=80, n_items=200, n_groups=10, per_user=12), min_count=1)
    cfg = cllm4rec_experiment(**TAUGHT)
    cfg.multvae.epochs, cfg.multvae.patience, cfg.multvae.progress = 100, None, False
    metrics = train(cfg, tmp_path / "run", split=split)
    assert metrics["teacher"]["test"]["recall@20"] >= 0.7  # Mult-VAE found the groups
    chance = chance_recall(split, "test", 20)
    if control:
        assert metrics["test"]["recall@20"] < chance + 0.15, metrics["test"]
    else:
        assert metrics["test"]["recall@20"] >= 0.7, metrics["test"]
