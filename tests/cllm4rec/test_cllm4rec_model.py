"""CLLM4Rec's ID tokens, embedding routing, heads and mutual regulariser, on the tiny backbone."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from llmrec.data.holdout import holdout_split
from llmrec.errors import LlmrecError
from llmrec.llm.backbones import load_backbone
from llmrec.methods.cllm4rec.documents import (collaborative_documents, content_documents,
                                               recommendation_prompt)
from llmrec.methods.cllm4rec.model import CLLM4RecModel
from llmrec.methods.cllm4rec.tasks import PretrainTask, document_batches, lm_loss
from llmrec.methods.cllm4rec.tokens import IdVocab

from planted_data import planted_dataset

N_USERS, N_ITEMS = 7, 11


@pytest.fixture
def tiny():
    backbone, tok = load_backbone("tiny", device="cpu")
    model = CLLM4RecModel(backbone, N_USERS, N_ITEMS, init_std=0.5, seed=0)
    return model, IdVocab(tok, model.vocab_size, N_USERS, N_ITEMS), tok


def test_id_tokens_are_atomic(tiny):
    model, vocab, tok = tiny
    text = "<user_3> has interacted with <item_5> <item_10>, <user_3> will interact with"
    ids = vocab.encode(text)
    v, u = model.vocab_size, N_USERS
    assert ids.count(v + 3) == 2 and ids.count(v + u + 5) == 1 and ids.count(v + u + 10) == 1
    assert sum(t >= v for t in ids) == 4  # nothing else became an ID token
    # the text between ID tokens is the backbone's own tokenisation of that piece
    assert ids[1:ids.index(v + u + 5)] == tok(" has interacted with", add_special_tokens=False).input_ids
    # the plain tokenizer would have split the same ID into several pieces
    assert len(tok("<user_3>", add_special_tokens=False).input_ids) > 1
    assert vocab.decode(ids) == text
    with pytest.raises(LlmrecError, match="item id 11"):
        vocab.encode("<item_11>")


def test_embeddings_route_to_the_side_tables_and_vocabulary(tiny):
    model, vocab, _ = tiny
    ids = torch.tensor([[5, vocab.user_id(2), vocab.item_id(4)]])
    for side in ("collab", "content"):
        e = model.embed(ids, side)
        t = model.table(side)
        assert torch.equal(e[0, 0], model.backbone.get_input_embeddings().weight[5])
        assert torch.equal(e[0, 1], t.user.weight[2]) and torch.equal(e[0, 2], t.item.weight[4])
    assert not torch.equal(model.embed(ids, "collab")[0, 1], model.embed(ids, "content")[0, 1])
    # the backbone is not resized and stays frozen
    assert model.backbone.get_input_embeddings().num_embeddings == vocab.vocab_size
    assert not any(p.requires_grad for p in model.backbone.parameters())


@pytest.mark.parametrize("head", ["dot", "normalized"])
def test_collab_lm_softmax_is_only_over_items(tiny, head):
    model, vocab, tok = tiny
    model.item_head = head
    model.set_trainable(True, False)
    ids = torch.tensor([vocab.encode("<user_1> has interacted with") + vocab.item_ids([3, 7, 2])])
    p = len(vocab.encode("<user_1> has interacted with"))
    labels = torch.full_like(ids, -100)
    labels[0, p - 1:p + 2] = torch.tensor(vocab.item_ids([3, 7, 2]))
    mask = torch.ones_like(ids)
    loss = lm_loss(model, ids, mask, labels, "collab", lambda_reg=0.0)
    # reference: the backbone run on the same embeddings, softmax over the item table (item 0 excluded)
    h = model.backbone(inputs_embeds=model.embed(ids, "collab"), output_hidden_states=True).hidden_states[-1][0]
    hp = h[p - 1:p + 2]
    if head == "normalized":  # the hidden state at unit norm: |logit| <= |item row|
        hp = hp / hp.norm(dim=-1, keepdim=True)
        assert (model.item_logits(h).abs()[:, 1:] <= model.collab.item.weight[1:].norm(dim=-1) + 1e-5).all()
    logits = hp @ model.collab.item.weight[1:].T
    ref = F.cross_entropy(logits, torch.tensor([3, 7, 2]) - 1)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
    assert model.item_logits(h, "collab").shape[-1] == N_ITEMS
    # the content LM predicts over the vocabulary instead
    assert model.vocab_logits(h).shape[-1] == vocab.vocab_size


def test_mutual_regulariser_moves_only_the_trained_side(tiny):
    model, vocab, _ = tiny
    ids = torch.tensor([[vocab.user_id(1), 9, vocab.item_id(2), vocab.item_id(2)], [vocab.item_id(5), 0, 0, 0]])
    model.set_trainable(True, True)
    reg = model.regulariser(ids, "collab")
    c, t = model.collab, model.content
    ref0 = ((c.user.weight[1] - t.user.weight[1]) ** 2).sum() + 2 * ((c.item.weight[2] - t.item.weight[2]) ** 2).sum()
    ref1 = ((c.item.weight[5] - t.item.weight[5]) ** 2).sum()
    assert reg.tolist() == pytest.approx([ref0.item(), ref1.item()], rel=1e-5)
    reg.sum().backward()
    assert c.user.weight.grad[1].abs().sum() > 0 and c.item.weight.grad[[2, 5]].abs().sum() > 0
    assert c.user.weight.grad[2].abs().sum() == 0
    assert t.user.weight.grad is None and t.item.weight.grad is None  # the other side is held fixed
    # gradient = 2 (e_collab - e_content)
    assert torch.allclose(c.item.weight.grad[5], 2 * (c.item.weight[5] - t.item.weight[5]).detach())


def test_documents_and_pretrain_batches():
    split = holdout_split(planted_dataset())
    backbone, tok = load_backbone("tiny", device="cpu")
    model = CLLM4RecModel(backbone, split.n_users, split.n_items, seed=0)
    vocab = IdVocab(tok, model.vocab_size, split.n_users, split.n_items)
    collab = collaborative_documents(split, vocab, max_items=5, seed=0)
    content = content_documents(split, vocab, None, max_text_tokens=8, max_docs=30, seed=0)
    assert len(collab) == split.n_users - 1 and all(len(d.main) <= 5 for d in collab)
    assert all(t >= vocab.item_base for d in collab for t in d.main)  # homogeneous: items only
    assert len(content) == 30 and all(all(t < vocab.vocab_size for t in d.main) for d in content)
    assert vocab.decode(content[0].prompt).split(" has ")[1].startswith("interacted with <item_")
    docs = collab + content
    batches = document_batches(docs, 8, seed=0)
    assert sorted(k for b in batches for k in b) == list(range(len(docs)))
    task = PretrainTask(model, vocab, docs, batches, 1.0, tok.pad_token_id)
    for r in range(len(batches)):
        (batch,) = task.collate([r])["parts"]
        assert len({docs[k].kind for k in batches[r]}) == 1
        d0 = docs[batches[r][0]]
        # the last prompt position predicts the first main token
        assert batch["labels"][0, len(d0.prompt) - 1].item() == d0.main[0]
        assert (batch["labels"] != -100).sum().item() == sum(len(docs[k].main) for k in batches[r])
    model.set_trainable(True, True)
    task.loss(task.collate([0])).backward()
    assert model.collab.item.weight.grad is not None and model.content.item.weight.grad is None
    # several rows (what one process takes when P processes take one each): the mean of their losses
    kinds = [docs[batches[r][0]].kind for r in range(len(batches))]
    a, b = kinds.index("collab"), kinds.index("content")
    with torch.no_grad():
        both = task.loss(task.collate([a, b]))
        one = [task.loss(task.collate([r])) for r in (a, b)]
    assert both.item() == pytest.approx((one[0].item() + one[1].item()) / 2, rel=1e-6)


def test_recommendation_prompt_keeps_the_instruction(tiny):
    _, vocab, _ = tiny
    ids = recommendation_prompt(vocab, 2, [1, 4])
    assert ids[0] == vocab.bos_id  # the tiny backbone is Llama-like: BOS first
    assert vocab.decode(ids) == "<user_2> has interacted with <item_1> <item_4>, <user_2> will interact with"


def test_lora_option_trains_adapters_and_keeps_base_weights_frozen():
    from llmrec.methods.cllm4rec import CLLM4RecConfig
    from llmrec.methods.cllm4rec.recipe import build_model

    model, vocab, tok = build_model(CLLM4RecConfig(device="cpu", lora=True), N_USERS, N_ITEMS, backbone="tiny")
    model.set_trainable(True, False)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("lora_A" in n for n in names) and all(n.startswith("collab.") or "lora_" in n for n in names)
    ids = torch.tensor([vocab.encode("<user_1> has interacted with <item_2>, <user_1> will interact with")])
    h = model.last_hidden(ids, torch.ones_like(ids), "collab")
    model.item_logits(h).logsumexp(-1).sum().backward()
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert all(p.grad is not None for p in lora_b)
    model.set_trainable(True, False, lora=False)
    assert not any("lora_" in n for n, p in model.named_parameters() if p.requires_grad)
