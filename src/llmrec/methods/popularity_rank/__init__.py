"""`popularity-rank`: the sequence family's floor."""
