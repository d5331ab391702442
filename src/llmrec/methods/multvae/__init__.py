"""`multvae`: Mult-VAE (Liang et al. 2018), the holdout family's collaborative baseline (docs/methods/classic.md)."""
