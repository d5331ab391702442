"""`popularity`: the click family's floor."""
