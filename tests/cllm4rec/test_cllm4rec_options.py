"""CLLM4Rec's recipe options against the official code: fine-tuning target, regulariser reduction, item head, the
no-LLM control, and the paper's settings one override away."""
from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import pytest
import torch

from llmrec.data.holdout import holdout_split
from llmrec.errors import LlmrecError
from llmrec.llm.backbones import load_backbone
from llmrec.methods.cllm4rec import CLLM4RecConfig
from llmrec.methods.cllm4rec.documents import collaborative_documents, recommendation_prompt
from llmrec.methods.cllm4rec.model import CLLM4RecModel
from llmrec.methods.cllm4rec.tasks import PretrainTask, RecommendTask, document_batches
from llmrec.methods.cllm4rec.tokens import IdVocab

from planted_data import planted_dataset


def build(split, seed=0, **kw):
    torch.manual_seed(seed)
    backbone, tok = load_backbone("tiny", device="cpu")
    model = CLLM4RecModel(backbone, split.n_users, split.n_items, init_std=0.1, seed=seed, **kw)
    return model, IdVocab(tok, model.vocab_size, split.n_users, split.n_items), tok.pad_token_id


@pytest.fixture(scope="module")
def split():
    return holdout_split(planted_dataset(n_users=16, per_user=16), min_count=1)  # 13 train items each


def test_finetune_targets_all_and_heldout(split):
    model, vocab, pad = build(split)
    train = split.user_items("train")
    users = np.arange(1, split.n_users)
    tasks = {t: RecommendTask(model, vocab, users, train, 0.2, t, None, 0.0, pad, seed=0) for t in ("all", "heldout")}
    for slot, user in enumerate(users):
        items = set(train[user].tolist())
        got = {}
        for target, task in tasks.items():
            b = task.collate([slot])
            ids = b["ids"][0][b["mask"][0].bool()].tolist()
            shown = {t - vocab.item_base for t in ids if t >= vocab.item_base}
            got[target] = (shown, set(b["targets"][0][b["target_mask"][0].bool()].tolist()))
        (shown, all_targets), (shown_h, held) = got["all"], got["heldout"]
        assert shown == shown_h  # the same draw: only the likelihood's targets differ
        assert len(items - shown) == max(1, math.floor(0.2 * len(items)))  # floor, as the official code
        assert all_targets == items  # official: every train item, shown or not
        assert held == items - shown  # paper's text: the held-out ones only
    with pytest.raises(LlmrecError, match="target"):
        RecommendTask(model, vocab, users, train, 0.2, "some", None, 0.0, pad)


def test_regulariser_sums_over_the_batch_or_averages(split):
    """Official: lambda x MSELoss(reduction="sum") over the batch; "mean" is batch_size times weaker."""
    model, vocab, pad = build(split)
    model.set_trainable(True, False)
    with torch.no_grad():  # the two sides apart, so the regulariser is not zero
        model.content.item.weight.add_(0.3)
    train = split.user_items("train")
    users = np.arange(1, split.n_users)
    rows = list(range(6))

    def rec_loss(lam, reduction):
        task = RecommendTask(model, vocab, users, train, 0.2, "all", None, lam, pad, reg_reduction=reduction)
        with torch.no_grad():
            return task.loss(task.collate(rows)).item()

    nll = rec_loss(0.0, "sum")
    reg_sum, reg_mean = rec_loss(1.0, "sum") - nll, rec_loss(1.0, "mean") - nll
    assert reg_sum > 0 and reg_sum == pytest.approx(len(rows) * reg_mean, rel=1e-4)

    docs = collaborative_documents(split, vocab, None, seed=0)
    batches = document_batches(docs, 5, seed=0)

    def pre_loss(lam, reduction):
        task = PretrainTask(model, vocab, docs, batches, lam, pad, reduction)
        with torch.no_grad():
            return task.loss(task.collate([0])).item()

    lm = pre_loss(0.0, "sum")
    assert pre_loss(2.0, "sum") - lm == pytest.approx(len(batches[0]) * (pre_loss(2.0, "mean") - lm), rel=1e-4)
    with pytest.raises(LlmrecError, match="reg_reduction"):
        CLLM4RecConfig(reg_reduction="max").validate()


def test_normalized_head_is_stable_where_the_raw_head_diverges():
    """The raw head's logits move by about lr x |h|_1 per Adam step on the item rows. With the backbone's final
    norm scaled so that |h| = 48 (SmolLM2-135M's), lr 3e-2 sends the raw head's loss far above uniform on the
    tiny model (SmolLM2, with 9x the width, does the same at 1e-2); the normalized head learns."""
    split = holdout_split(planted_dataset(n_users=40, n_items=300, n_groups=10, per_user=12), min_count=1)
    train = split.user_items("train")
    users = np.arange(1, split.n_users)
    uniform = math.log(split.n_items - 1)
    end = {}
    for head in ("dot", "normalized"):
        model, vocab, pad = build(split, item_head=head)
        with torch.no_grad():
            model.backbone.model.norm.weight.mul_(6.0)
        model.set_trainable(True, False)
        task = RecommendTask(model, vocab, users, train, 0.2, "all", None, 0.0, pad, seed=0, draws=10)
        if head == "dot":
            b = task.collate(list(range(8)))
            assert model.last_hidden(b["ids"], b["mask"]).norm(dim=-1).mean().item() == pytest.approx(48, rel=0.01)
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-2)
        losses = []
        for step in range(30):
            b = task.collate(list(range(step * 8, step * 8 + 8)))
            loss = task.loss(b) / b["target_mask"].sum(1).float().mean()  # per target: comparable to log(n)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        end[head] = float(np.mean(losses[-5:]))
    assert end["dot"] > 1.5 * uniform
    assert end["normalized"] < 0.85 * uniform


def test_mean_encoder_averages_the_prompts_id_rows_without_the_backbone(split, monkeypatch):
    model, vocab, pad = build(split, encoder="mean")
    monkeypatch.setattr(model.backbone, "get_decoder", lambda: pytest.fail("the mean control ran the backbone"))
    prompts = [recommendation_prompt(vocab, 3, [5, 9, 2]), recommendation_prompt(vocab, 4, [7])]
    width = max(map(len, prompts))
    ids = torch.tensor([p + [pad] * (width - len(p)) for p in prompts])
    mask = torch.tensor([[1] * len(p) + [0] * (width - len(p)) for p in prompts])
    h = model.last_hidden(ids, mask)
    c = model.collab
    # the prompt names its user twice ("<user_3> has interacted with ..., <user_3> will interact with")
    ref0 = (2 * c.user.weight[3] + c.item.weight[[5, 9, 2]].sum(0)) / 5
    ref1 = (2 * c.user.weight[4] + c.item.weight[7]) / 3
    assert torch.allclose(h[0], ref0, atol=1e-6) and torch.allclose(h[1], ref1, atol=1e-6)
    # an unknown user's stand-in vector replaces the user rows, as with the LLM
    vec = torch.ones(1, h.shape[1])
    h_new = model.last_hidden(ids[1:], mask[1:], user_vectors=vec)
    assert torch.allclose(h_new[0], (2 * vec[0] + c.item.weight[7]) / 3, atol=1e-6)
    with pytest.raises(LlmrecError, match="lora"):
        CLLM4RecConfig(encoder="mean", lora=True).validate()
    with pytest.raises(LlmrecError, match="encoder"):
        CLLM4RecConfig(encoder="gru").validate()


def test_residual_encoder_starts_as_the_mean_control_and_learns_its_gate(split):
    model, vocab, pad = build(split, encoder="residual")
    control, _, _ = build(split, encoder="mean")  # the same seed: the same tables
    train = split.user_items("train")
    users = np.arange(1, split.n_users)
    task = RecommendTask(model, vocab, users, train, 0.2, "all", None, 0.0, pad, seed=0, draws=4)
    b = task.collate(list(range(8)))
    unit = torch.nn.functional.normalize
    assert model.gate.item() == 0.0
    start = model.last_hidden(b["ids"], b["mask"])
    assert torch.allclose(start, unit(control.last_hidden(b["ids"], b["mask"]), dim=-1), atol=1e-6)
    # the content LM reads the backbone alone, as with encoder="llm"
    llm = model.backbone.get_decoder()(inputs_embeds=model.embed(b["ids"], "content"),
                                       attention_mask=b["mask"]).last_hidden_state
    assert torch.allclose(model.hidden(b["ids"], b["mask"], "content"), llm, atol=1e-6)
    model.set_trainable(True, False)
    assert model.gate.requires_grad
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for step in range(5):
        b = task.collate(list(range(step * 8, step * 8 + 8)))
        opt.zero_grad()
        task.loss(b).backward()
        opt.step()
    assert abs(model.gate.item()) > 0.01  # the LLM's vector now takes part
    with torch.no_grad():
        h = model.last_hidden(b["ids"], b["mask"])
        model.gate.zero_()
        assert (h - model.last_hidden(b["ids"], b["mask"])).norm(dim=-1).min() > 1e-3
    model.set_trainable(False, True)
    assert not model.gate.requires_grad


def test_paper_settings_are_one_override_away():
    paper, ours = CLLM4RecConfig.paper(), CLLM4RecConfig()
    official = {"item_head": "dot", "finetune_reg": True, "reg_reduction": "sum", "finetune_target": "all",
                "encoder": "llm", "finetune_lr": 1e-4, "pretrain_lr": 1e-3, "lambda_reg": 1.0,
                "content_epochs": 10, "alternate_epochs": 100, "finetune_epochs": 150, "finetune_batch_size": 20,
                "pretrain_batch_size": 20, "max_prompt_items": None, "patience": None}
    for name, value in official.items():
        assert getattr(paper, name) == value, name
    # our departures in the recipe (not the budget) are exactly these, each a field of its own
    recipe = {"item_head", "finetune_reg", "finetune_lr"}
    budget = {"max_doc_items", "max_content_docs", "max_text_tokens", "content_epochs",
              "alternate_epochs", "finetune_epochs", "finetune_batch_size", "max_prompt_items", "max_valid_users",
              "patience"}
    differ = {f.name for f in fields(CLLM4RecConfig) if getattr(paper, f.name) != getattr(ours, f.name)}
    assert differ == recipe | budget
    assert CLLM4RecConfig.paper(item_head="normalized").item_head == "normalized"


def test_lora_adapters_get_their_own_fine_tuning_rate(split, tmp_path):
    """`finetune_lora_lr`: the adapters train at their own rate in the loop's AdamW, the ID tables at the loop's lr;
    unset, one group (no task groups)."""
    from llmrec.llm.train import TrainConfig, _optimizer_groups
    from llmrec.methods.cllm4rec.model import inject_lora

    model, vocab, pad = build(split)
    inject_lora(model.backbone, 4, 8, 0.0, ["q_proj", "v_proj"])
    train = split.user_items("train")
    users = np.arange(1, split.n_users)
    params = [p for p in model.parameters() if p.requires_grad]
    task = RecommendTask(model, vocab, users, train, 0.2, "all", None, 0.0, pad, lora_lr=1e-3)
    (group,) = task.param_groups()
    names = {id(p): n for n, p in model.named_parameters()}
    assert group["lr"] == 1e-3 and group["params"] and all("lora_" in names[id(p)] for p in group["params"])
    groups, own = _optimizer_groups(task, params, TrainConfig(lr=1e-2))
    assert own == [[sum(p.numel() for p in group["params"]), 1e-3]]
    by_lr = {g["lr"]: {names[id(p)] for p in g["params"]} for g in groups}
    assert set(by_lr) == {1e-2, 1e-3}
    assert any("user" in n or "item" in n for n in by_lr[1e-2]) and not any("lora_" in n for n in by_lr[1e-2])
    plain = RecommendTask(model, vocab, users, train, 0.2, "all", None, 0.0, pad)
    assert plain.param_groups() == []
