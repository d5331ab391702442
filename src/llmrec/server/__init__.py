"""`llmrec serve`: a saved run over HTTP. One process holds one run's model, read-only, and answers

    POST /score      (user, item) pairs in the dataset's own ids -> scores
    POST /recommend  a user (or a new user's known items), k, optional candidates -> top-k
    GET  /health     liveness (answers while a batch runs: the model works in its own thread)
    GET  /info       the run and the batching settings

Modules: `config` (ServerConfig, the settings), `batching` (the worker thread and dynamic batcher), `schemas`
(request and response bodies), `errors` (one-line JSON errors, the body-size limit), `app` (the routes),
`run` (load the run, listen, serve until SIGTERM). Only `run` and `app` import FastAPI / uvicorn.
"""
from llmrec.server.config import ServerConfig

__all__ = ["ServerConfig"]
