"""The whole CLLM4Rec pipeline (content LM, alternating pre-training, fine-tuning, test ranking) on planted data
with the tiny backbone: it must find a planted taste-group pattern that popularity cannot see, and stay near chance
when the data holds no pattern (a leak of test items into training would lift that control)."""
from __future__ import annotations

import pytest

from llmrec.data.holdout import holdout_split
from llmrec.experiment import train
from llmrec.methods.cllm4rec.baselines import popularity_baseline

from planted_data import chance_recall, cllm4rec_experiment, planted_dataset

# The recipe's defaults (all-items target, normalized head, regulariser summed over the batch in pre-training and
# off in fine-tuning) at a tiny budget. Learning rates are 5x the SmolLM2 ones: a 64-wide table row grows about
# 3x slower per Adam step than a 576-wide one, and a few dozen steps must do.
PIPELINE = dict(device="cpu", init_std=0.1, content_epochs=1, alternate_epochs=1,
                max_content_docs=None, max_doc_items=None, max_prompt_items=None, pretrain_lr=0.05,
                finetune_lr=0.05, finetune_epochs=8, finetune_batch_size=16, eval_every=10, patience=None,
                max_valid_users=None)


def run(tmp_path, n_groups):
    # 200 items; with 10 groups each user likes 12 of its group's 20, popularity is flat inside the groups
    split = holdout_split(planted_dataset(n_users=80, n_items=200, n_groups=n_groups, per_user=12), min_count=1)
    metrics = train(cllm4rec_experiment(**PIPELINE), tmp_path / f"groups-{n_groups}", split=split)
    return split, metrics


def test_pipeline_finds_a_planted_pattern_popularity_cannot_see(tmp_path):
    split, metrics = run(tmp_path, n_groups=10)
    assert set(metrics["stages"]) == {"pretrain-content", "pretrain-alternate", "finetune"}
    assert all(metrics["stages"][s]["steps"] > 0 for s in metrics["stages"])
    test, pop = metrics["test"], popularity_baseline(split).test
    chance = chance_recall(split, "test", 20)
    assert chance < 0.15 and pop["recall@20"] < 0.15
    assert test["recall@20"] >= 0.7 and test["recall@20_lo"] > pop["recall@20_hi"]
    assert test["ndcg@100"] > pop["ndcg@100"] + 0.25
    # the learning curve climbs from the pre-trained state at step 0
    curve = metrics["curve"]
    assert curve[-1]["recall@20"] > curve[0]["recall@20"] + 0.4


def test_pipeline_stays_near_chance_without_a_pattern(tmp_path):
    split, metrics = run(tmp_path, n_groups=1)  # every user likes random items of one block of 200
    chance = chance_recall(split, "test", 20)
    assert metrics["test"]["recall@20"] == pytest.approx(chance, abs=0.15)
    assert metrics["test"]["recall@20"] < 0.3
