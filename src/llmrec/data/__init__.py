"""The data layer: sources -> `Dataset` (cached) -> click / sequence splits -> samples."""
from llmrec.data.info import describe, describe_split, format_info
from llmrec.data.registry import list_datasets, load_dataset
from llmrec.data.splits import click_split, get_click_split, get_sequence_split, sequence_split
from llmrec.data.types import ClickSplit, Dataset, SequenceSplit

__all__ = ["ClickSplit", "Dataset", "SequenceSplit", "click_split", "describe", "describe_split", "format_info",
           "get_click_split", "get_sequence_split", "list_datasets", "load_dataset", "sequence_split"]
