"""`lightgcn-bpr`: LightGCN trained with BPR for ranking, a holdout-family baseline (docs/methods/classic.md)."""
