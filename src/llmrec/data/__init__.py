"""The data layer: sources -> `Dataset` (cached) -> click / sequence splits -> samples.

The names below are imported on first use, so `llmrec.data.split_configs` (read by the experiment config) does not
load pandas and every source.
"""
import importlib

_EXPORTS = {
    "describe": "info", "describe_split": "info", "format_info": "info",
    "list_datasets": "registry", "load_dataset": "registry",
    "click_split": "splits", "get_click_split": "splits", "get_sequence_split": "splits", "sequence_split": "splits",
    "ClickSplit": "types", "Dataset": "types", "SequenceSplit": "types",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'llmrec.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"llmrec.data.{_EXPORTS[name]}"), name)
