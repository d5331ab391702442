"""`popularity-holdout`: the holdout family's floor (docs/methods/classic.md)."""
