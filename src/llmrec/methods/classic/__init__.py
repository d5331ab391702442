"""mf, lightgcn, sasrec, din (and binmf, BinLLM's encoder alone) as click methods: the classic models of
`llmrec.collab` trained pointwise."""
