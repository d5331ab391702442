"""Every method, one folder each with the same roles (config.py, recipe.py, model.py, recommend.py where it has
them), and `registry.py`, which names every method and variant, its family and its recipe
(docs/architecture.md)."""
