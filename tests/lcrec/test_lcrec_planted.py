"""Planted signal: LC-Rec on the tiny backbone learns a next-item rule from sequences and generates it for users
it never trained on, by the real constrained beam search; trained on shuffled targets, it stays near chance."""
from __future__ import annotations

import pytest

from llmrec.experiment import train
from llmrec.methods.lcrec.config import RQVAEConfig
from llmrec.methods.lcrec.recommend import LCRecRecommender

from lcrec_fixtures import lcrec_experiment, planted_split

# the efficient recipe: every item position of a sequence in one forward, the new rows at their own learning
# rate, the compact wrapper; a random two-level index (30 items in 8 x 8 codes) instead of the RQ-VAE
PLANTED = dict(index="random", rqvae=RQVAEConfig(levels=2, codebook_size=8),
               tasks={"seqrec_all_positions": 1.0}, eval_prompt="sequence", template="compact", max_history=10,
               lr=3e-3, new_token_lr=3e-2, batch_size=16, max_steps=100, eval_every=100, valid_users=20,
               test_users=50, num_beams=10, eval_batch_size=16)


# new_token_head=untied: the index tokens' output rows their own, from zero (the tiny backbone's small hidden states
# need no smaller steps on them than on the input rows)
UNTIED = dict(new_token_head="untied", new_token_head_lr=3e-2)
# item_prior=popularity: the trie loss with the training items' popularity added inside the trie's softmax
PRIOR = dict(UNTIED, item_loss="trie", item_prior="popularity")


@pytest.mark.parametrize("pattern,options", [(True, {}), (False, {}), (True, {"item_loss": "trie"}),
                                             (False, {"item_loss": "trie"}), (True, UNTIED), (False, UNTIED),
                                             (True, PRIOR), (False, PRIOR)],
                         ids=["pattern", "shuffled-control", "pattern-trie-loss", "shuffled-control-trie-loss",
                              "pattern-untied-head", "shuffled-control-untied-head", "pattern-popularity-prior",
                              "shuffled-control-popularity-prior"])
def test_planted_next_item_is_learned_and_generated_for_held_out_users(pattern, options, tmp_path):
    metrics = train(lcrec_experiment(**PLANTED, **options), tmp_path / "run",
                    split=planted_split(200, seed=1, pattern=pattern))
    # 50 new users who follow the pattern; they were in no training sample
    held_out = LCRecRecommender.load(tmp_path / "run", planted_split(50, seed=99)).evaluate("test")
    assert held_out["users"] == 50
    if pattern:
        assert held_out["hr@1"] >= 0.9 and metrics["test"]["hr@1"] >= 0.9, (held_out, metrics["test"])
        assert metrics["targets_seen"] >= 3 * metrics["samples_seen"]  # 3 to 7 targets per sample, not 1
    else:  # chance: about 1 / 23 unseen items; the rule was never in the data
        assert held_out["hr@1"] <= 0.2 and held_out["hr@10"] <= 0.8, held_out
