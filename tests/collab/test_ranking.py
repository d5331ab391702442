import numpy as np
import pandas as pd
import pytest
import torch

from llmrec.collab.ranking import (CHECKPOINT_FILE, RankingConfig, eval_sequences, popularity_ranks, rank_targets,
                                   train_ranking, training_pairs)
from llmrec.collab.sasrec import SASRec
from llmrec.data.types import SequenceSplit
from llmrec.errors import LlmrecError
from llmrec.metrics import leave_one_out_metrics, rank_of_target


def cyclic_split(n_users=300, n_items=61, seed=0) -> SequenceSplit:
    """Each sequence walks the cycle 1 -> 2 -> ... -> 60 -> 1 (90% of steps; else a random jump): the next item is
    predictable from the last one, and popularity knows nothing."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(1, n_users + 1):
        seq = [int(rng.integers(1, n_items))]
        for _ in range(int(rng.integers(6, 14))):
            seq.append(seq[-1] % (n_items - 1) + 1 if rng.random() < 0.9 else int(rng.integers(1, n_items)))
        rows.append({"user_id": u, "train": np.array(seq[:-2], dtype=np.int64), "valid": seq[-2], "test": seq[-1]})
    items = pd.DataFrame({"item_id": np.arange(1, n_items), "title": "", "text": ""})
    return SequenceSplit(name="cyclic", users=pd.DataFrame(rows), items=items, n_users=n_users + 1, n_items=n_items)


@pytest.fixture(scope="module")
def cyclic():
    return cyclic_split()


SMALL = {"dim": 16, "max_len": 10, "dropout": 0.1, "lr": 0.01}


def test_training_pairs_shift_by_one():
    split = SequenceSplit("s", pd.DataFrame({"user_id": [1, 2], "train": [np.array([4, 5, 6]), np.array([7])],
                                             "valid": [1, 2], "test": [3, 3]}),
                          pd.DataFrame({"item_id": range(1, 8)}), 3, 8)
    inputs, targets = training_pairs(split, 4)
    assert inputs.tolist() == [[0, 0, 4, 5]] and targets.tolist() == [[0, 0, 5, 6]]  # user 2 has no pair
    hist, target = eval_sequences(split, "test")
    assert [h.tolist() for h in hist] == [[4, 5, 6, 1], [7, 2]] and target.tolist() == [3, 3]
    hist, target = eval_sequences(split, "valid", rows=[1, 0])  # chosen users, in the given order
    assert [h.tolist() for h in hist] == [[7], [4, 5, 6]] and target.tolist() == [2, 1]


def test_full_ranking_excludes_padding_and_history():
    torch.manual_seed(0)
    model = SASRec(2, 9, SASRec.config_class(dim=8, max_len=5)).eval()
    hist = [np.array([3, 4]), np.array([5])]
    targets = np.array([6, 2])
    got = rank_targets(model, hist, targets, exclude_history=True)
    scores = (model.encode(torch.tensor([[0, 0, 0, 3, 4], [0, 0, 0, 0, 5]]))[:, -1] @ model.item_emb.weight.T)
    scores = scores.detach().numpy().astype(np.float64)
    scores[:, 0] = -np.inf
    scores[0, [3, 4]] = -np.inf
    scores[1, 5] = -np.inf
    np.testing.assert_array_equal(got, rank_of_target(scores, targets))
    assert got.max() <= 9 - 1 - 1  # never ranked against padding or the one history item of user 2
    kept = rank_targets(model, hist, targets, exclude_history=False)
    assert (kept >= got).all()


@pytest.mark.parametrize("loss", ["ce", "bce"])
def test_sasrec_beats_popularity_on_a_planted_sequence(cyclic, loss, tmp_path):
    cfg = RankingConfig(loss=loss, epochs=15, patience=5, batch_size=64, progress=False)
    result = train_ranking(cyclic, cfg, SMALL, checkpoint_dir=tmp_path)
    pop = leave_one_out_metrics(popularity_ranks(cyclic, "test"))
    assert result.test["hr@10"] > pop["hr@10"] + 0.3, (result.test, pop)
    assert result.test["ndcg@10"] > 0.5 and result.best_valid_ndcg10 == max(
        h["valid_ndcg@10"] for h in result.history if "valid_ndcg@10" in h)
    assert result.test["users"] == 300 and (tmp_path / CHECKPOINT_FILE).exists()


def test_ranking_resume_matches_uninterrupted(cyclic, tmp_path):
    cfg = RankingConfig(loss="bce", epochs=4, patience=10, batch_size=64, progress=False)
    reference = train_ranking(cyclic, cfg, SMALL)

    class Stop(Exception):
        pass

    def stop(record):
        if record["epoch"] == 2:
            raise Stop

    from llmrec.collab import build_model
    from llmrec.collab.ranking import RANKING_SASREC, fit_ranking
    torch.manual_seed(cfg.seed)
    model = build_model("sasrec", cyclic.n_users, cyclic.n_items, **{**RANKING_SASREC, **SMALL})
    with pytest.raises(Stop):
        fit_ranking(model, cyclic, cfg, tmp_path, on_validation=stop)
    resumed = train_ranking(cyclic, cfg, SMALL, checkpoint_dir=tmp_path)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    assert resumed.test == reference.test
    for key, value in reference.state_dict.items():
        assert torch.equal(resumed.state_dict[key], value), key


def test_bad_loss_is_refused(cyclic):
    with pytest.raises(LlmrecError, match="'ce' or 'bce'"):
        train_ranking(cyclic, RankingConfig(loss="bpr", progress=False), SMALL)
