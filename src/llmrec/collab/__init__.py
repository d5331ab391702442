"""Classic collaborative models (MF, LightGCN, SASRec, DIN) behind one interface (see `base.CollabModel`).

    model = build_model("sasrec", split.n_users, split.n_items, dropout=0.3)
    result = llmrec.collab.trainer.fit(model, split.train, split.valid_small, split.test)
"""
from __future__ import annotations

import dataclasses

from llmrec.collab.base import CollabModel
from llmrec.collab.din import DIN, DINConfig
from llmrec.collab.lightgcn import LightGCN, LightGCNConfig
from llmrec.collab.mf import MF, MFConfig
from llmrec.collab.sasrec import SASRec, SASRecConfig
from llmrec.errors import LlmrecError

MODELS: dict[str, type[CollabModel]] = {"mf": MF, "lightgcn": LightGCN, "sasrec": SASRec, "din": DIN}
"""name -> model class; `MODELS[name].config_class` is its config dataclass."""


def model_config(name: str, **overrides):
    """The paper-default config of model `name` with `overrides` applied (unknown fields are an error)."""
    if name not in MODELS:
        raise LlmrecError(f"unknown collaborative model {name!r}; expected one of {', '.join(MODELS)}")
    cls = MODELS[name].config_class
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise LlmrecError(f"{name}: unknown config field(s) {', '.join(unknown)} (known: {', '.join(sorted(fields))})")
    return cls(**overrides)


def build_model(name: str, n_users: int, n_items: int, **overrides) -> CollabModel:
    """A freshly initialised model; sizes count the reserved id 0 (max id + 1)."""
    config = model_config(name, **overrides)
    if n_users < 1 or n_items < 2:
        raise LlmrecError(f"{name}: need n_users >= 1 and n_items >= 2 (ids count the reserved 0), "
                          f"got {n_users} and {n_items}")
    return MODELS[name](n_users, n_items, config)


def from_description(desc: dict) -> CollabModel:
    """Rebuild the (untrained) model described by `CollabModel.describe()`; load its state dict afterwards."""
    return build_model(desc["name"], desc["n_users"], desc["n_items"], **desc.get("config", {}))


__all__ = ["MODELS", "CollabModel", "build_model", "model_config", "from_description",
           "MF", "MFConfig", "LightGCN", "LightGCNConfig", "SASRec", "SASRecConfig", "DIN", "DINConfig"]
