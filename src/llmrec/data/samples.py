"""Turn click frames into tensors: the one place histories are padded."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch


def pad_histories(histories, length: int) -> torch.Tensor:
    """Last `length` items of each history, left-padded with 0 (the padding id): LongTensor [n, length]."""
    out = np.zeros((len(histories), length), dtype=np.int64)
    for row, h in enumerate(histories):
        h = np.asarray(h, dtype=np.int64)[-length:] if length else np.zeros(0, dtype=np.int64)
        if len(h):
            out[row, length - len(h):] = h
    return torch.from_numpy(out)


def click_tensors(frame: pd.DataFrame, history_length: int = 10) -> dict[str, torch.Tensor]:
    """user, item, label, history tensors for a whole click frame (index rows by slicing the tensors)."""
    return {
        "user": torch.tensor(frame["user_id"].to_numpy(np.int64)),
        "item": torch.tensor(frame["item_id"].to_numpy(np.int64)),
        "label": torch.tensor(frame["label"].to_numpy(np.float32)),
        "history": pad_histories(frame["history"].tolist(), history_length),
    }
