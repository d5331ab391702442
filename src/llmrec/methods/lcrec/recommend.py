"""Inference from a finished LC-Rec run directory (`llmrec recommend RUN --user U -k K`).

    rec = LCRecRecommender.load("runs/lcrec", split)
    rec.recommend(user=1, k=10)       # [(item_id, title, log-probability), ...], items the user has not had

The model is rebuilt exactly as it was trained: backbone, the index tokens added (ids checked against the run),
the added rows' initial embeddings restored, the same LoRA (or full) wrapping, then the selected trainable state
(`train/best/trainable.safetensors`) loaded; backbone, dtype and seed are the run's `llm.backbone`, `llm.dtype`
and `seed` (config.yaml). `evaluate(part)` therefore reproduces the run's metrics.

Recommendations continue the user's known past (train + valid + test items, see `llmrec.methods.sequence`):
the constrained beam search leaves those items out of the trie (at least the run's `num_beams` beams), so k
distinct, existing, unseen items come back whenever the catalogue has them. With `candidates`, every candidate
is scored by the teacher-forced log-probability of its index (then EOS when the run's prompt ends in one) and
the best k are returned, seen or not; `score` gives (user, item) pairs that same log-probability.
"""
from __future__ import annotations


import numpy as np
import torch

from llmrec.data.types import SequenceSplit
from llmrec.errors import LlmrecError
from llmrec.methods.lcrec.generate import constrained_beam_search, score_all_items
from llmrec.methods.lcrec.config import LCRecConfig
from llmrec.methods.lcrec.prior import popularity_prior
from llmrec.methods.lcrec.recipe import (apply_finetuning, eval_user_rows, evaluate_users, generation_prompt,
                                         seqrec_eval_task)
from llmrec.methods.lcrec.trie import IndexTrie
from llmrec.methods.lcrec.vocab import ItemIndex, add_index_tokens, index_token_ids, untie_new_rows
from llmrec.methods.sequence import SequenceUsers
from llmrec.serving import Serving


class LCRecRecommender(Serving):
    def __init__(self, model, tokenizer, index: ItemIndex, token_table: np.ndarray, config: LCRecConfig,
                 split: SequenceSplit, seed: int):
        self.model, self.tok, self.index, self.cfg, self.split = model, tokenizer, index, config, split
        self.seed = seed
        self.token_table = token_table
        self.trie = IndexTrie(token_table, eos_token_id=tokenizer.eos_token_id)
        self.users = SequenceUsers(split)
        if config.item_prior == "popularity":  # a function of the split: computed again, as in training
            self.trie.log_prior = popularity_prior(self.trie, self.users.counts)
        self.ids, self.item_popularity, self.item_titles = self.users.ids, self.users.counts, self.users.titles
        self.method = "lcrec"

    @classmethod
    def load(cls, run, split: SequenceSplit) -> "LCRecRecommender":
        """Rebuild the trained model of an LC-Rec run (a `Run` or its directory)."""
        from safetensors.torch import load_file

        from llmrec.llm.backbones import load_backbone
        from llmrec.llm.train import TRAINABLE_FILE, load_trainable
        from llmrec.methods.lcrec.recipe import NEW_ROWS_FILE, TRAIN_DIR
        from llmrec.runs import Run, open_run

        run = run if isinstance(run, Run) else open_run(run)
        needed = [run.file("indices.json"), run.file(NEW_ROWS_FILE), run.file(TRAIN_DIR) / "best" / TRAINABLE_FILE]
        missing = [str(p) for p in needed if not p.is_file()]
        if missing:
            raise LlmrecError(f"{missing[0]}: missing from the LC-Rec run (was it trained to the end?)")
        experiment = run.config
        cfg, backbone = experiment.lcrec, experiment.llm.backbone
        model, tok = load_backbone(backbone, dtype=experiment.llm.dtype, device=cfg.device)
        index = ItemIndex.load(needed[0], n_items=split.n_items)
        token_ids = add_index_tokens(model, tok, index)
        if cfg.new_token_head == "untied":
            untie_new_rows(model, list(token_ids.values()))
        rows = load_file(str(needed[1]))
        ids = sorted(token_ids.values())
        if rows["token_ids"].tolist() != ids:
            raise LlmrecError(f"{needed[1]}: the index tokens got other ids than in training "
                              f"(backbone {backbone!r} changed?)")
        with torch.no_grad():  # LoRA trains only deltas of these rows: restore the rows they were added to
            emb = model.get_input_embeddings().weight
            emb[ids] = rows["input"].to(emb.device, emb.dtype)
            if "output" in rows:
                head = model.get_output_embeddings().weight
                head[ids] = rows["output"].to(head.device, head.dtype)
        model = apply_finetuning(model, cfg, ids)
        load_trainable(model, needed[2])
        model.eval()
        return cls(model, tok, index, index_token_ids(index, token_ids), cfg, split, experiment.seed)

    @property
    def _eos(self) -> int | None:
        """EOS is scored after an index only where training put one there (the seqrec prompt), and not under
        item_loss="trie", where the trie makes it certain."""
        return self.tok.eos_token_id if self.cfg.eval_prompt == "seqrec" and self.cfg.item_loss == "vocab" else None

    def _recommend(self, user: int, k: int, candidates) -> list[tuple[int, str, float]]:
        """Top-k (item id, title, log-probability of its index) that the model generates after the user's past."""
        past = self.users.history(user)
        if candidates is not None:
            return self.users.top(candidates, self._log_probs(past, candidates), k)
        prompt = generation_prompt(self.tok, past, self.index, self.cfg)
        res = constrained_beam_search(self.model, [prompt], self.trie, num_beams=max(self.cfg.num_beams, k),
                                      pad_token_id=self.tok.pad_token_id, eos_token_id=self._eos,
                                      exclude=[past.tolist()], normalize=self.cfg.item_loss)
        items, scores = res.items[0].tolist(), res.scores[0].tolist()
        return [(i, self.users.titles.get(i, ""), float(s)) for i, s in zip(items, scores) if i > 0][:k]

    def _log_probs(self, past: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Teacher-forced log-probability of each item's index tokens (then EOS where training put one) after
        the user's past: the score the constrained beam search ranks by."""
        prompt = generation_prompt(self.tok, past, self.index, self.cfg)
        table = np.vstack([np.full((1, self.index.levels), -1), self.token_table[items]])
        return score_all_items(self.model, prompt, table, eos_token_id=self._eos,
                               trie=self.trie if self.cfg.item_loss == "trie" else None)[1:].numpy().astype(np.float64)

    def _score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        out = np.zeros(len(users))
        for u in np.unique(users):
            at = users == u
            out[at] = self._log_probs(self.users.history(int(u)), items[at])
        return out

    def evaluate(self, part: str = "test") -> dict:
        """The run's metrics on its valid or test users (as in training; test with the paper_ view too)."""
        rows = eval_user_rows(self.cfg, self.seed, len(self.split.users), part)
        task = seqrec_eval_task(self.model, self.tok, self.split, self.index, self.trie, self.cfg, rows, part,
                                paper_view=part == "test")
        return evaluate_users(task, self.cfg.eval_batch_size, valid=part == "valid")


def load_recommender(run, split: SequenceSplit) -> LCRecRecommender:
    """The trained LC-Rec of a finished run: `recommend(user, k, candidates)` and `evaluate(part)`."""
    return LCRecRecommender.load(run, split)
