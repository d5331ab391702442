"""llmrec: collaborative information in LLM-based recommenders."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("llmrec")
except PackageNotFoundError:  # a source tree on PYTHONPATH without an install
    __version__ = "0+unknown"
