"""`python -m llmrec ...` is the `llmrec` command."""
import os
import sys

from llmrec.cli import main

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.exit(main())
