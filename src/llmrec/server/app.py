"""The routes. Handlers check a request (sizes, ids under the one rule of `llmrec.ids`) on the event loop, which
is cheap, and hand the model work to the batcher's worker thread."""
from __future__ import annotations

import asyncio
import contextlib

from fastapi import FastAPI

from llmrec.server import errors
from llmrec.server.batching import Batcher, CallJob, ScoreJob
from llmrec.server.config import ServerConfig
from llmrec.server.schemas import (RecommendRequest, RecommendResponse, Recommended, Scored, ScoreRequest,
                                   ScoreResponse)

RECOMMEND_BATCHING = "one request after another in the model thread (each ranks one user's candidates in one call)"


def create_app(rec, config: ServerConfig, info: dict | None = None) -> FastAPI:
    """An app serving the loaded recommender `rec` (a `Serving`); `info`: what /info says about the run."""
    batcher = Batcher(rec, config.max_batch, config.max_wait_ms / 1000)

    @contextlib.asynccontextmanager
    async def lifespan(_):
        batcher.start()
        yield
        await asyncio.to_thread(batcher.stop, config.timeout_s)  # the queue is answered before the worker ends

    app = FastAPI(title="llmrec", lifespan=lifespan,
                  description="A saved llmrec run over HTTP. Ids are the dataset's own; errors are "
                              '{"error": "one line"}.')
    app.add_middleware(errors.BodyLimit, max_bytes=config.max_body_bytes)
    errors.install(app)
    app.state.batcher = batcher

    async def answer(job):
        try:
            return await asyncio.wait_for(asyncio.wrap_future(batcher.submit(job)), config.timeout_s)
        except asyncio.TimeoutError:
            raise errors.TimedOut(f"no answer within {config.timeout_s:g} s (--timeout-s)") from None

    def limit(what: str, n: int) -> None:
        if n > config.max_pairs:
            raise errors.TooLarge(f"{what}: {n} over the limit of {config.max_pairs} per request (--max-pairs)")

    @app.post("/score", response_model=ScoreResponse)
    async def score(req: ScoreRequest) -> ScoreResponse:
        """Scores of (user, item) pairs, higher = more likely liked."""
        limit("pairs", len(req.pairs))
        users, items = [p.user_id for p in req.pairs], [p.item_id for p in req.pairs]
        u, i = rec.resolve_pairs(users, items, req.cold_start, req.internal_ids, lambda j: f"pairs.{j}: ")
        scores, cold = await answer(ScoreJob(u, i))
        return ScoreResponse(scores=[Scored(user_id=a, item_id=b, score=float(s), cold_start=bool(c))
                                     for a, b, s, c in zip(users, items, scores, cold)])

    @app.post("/recommend", response_model=RecommendResponse)
    async def recommend(req: RecommendRequest) -> RecommendResponse:
        """Top-k items for a user (or for a new user from the items they had)."""
        limit("candidates", len(req.candidates or ()))
        limit("items", len(req.items or ()))
        options = {"k": req.k, "candidates": req.candidates, "internal_ids": req.internal_ids}
        if req.items is not None:
            cold, call = False, lambda: rec.recommend_for_items(req.items, **options)
        else:
            cold = rec.ids.user(req.user_id, req.internal_ids) is None
            if cold and req.cold_start is None:  # 404 at once, without a trip through the queue
                raise rec.ids.unknown_user(req.user_id)
            call = lambda: rec.recommend(req.user_id, cold_start=req.cold_start, **options)  # noqa: E731
        top = await answer(CallJob(call))
        return RecommendResponse(user_id=req.user_id, cold_start=cold and req.cold_start is not None,
                                 items=[Recommended(item_id=i, title=t or "", score=float(s)) for i, t, s in top])

    @app.get("/health")
    async def health() -> dict:
        """Liveness: answers while a batch runs (the model works in its own thread)."""
        return {"status": "ok", "queued": batcher.queued(), "busy": batcher.stats.busy}

    @app.get("/info")
    async def run_info() -> dict:
        """The run (method, family, dataset, counts, id format) and the batching settings and counters."""
        return {**(info or {}), "users": len(rec.ids.known_users), "items": rec.ids.n_known_items,
                "ids": "raw" if rec.ids.has_raw else "internal",
                "batching": {**config.batching(), "score": "concurrent requests' pairs in one model call",
                             "recommend": RECOMMEND_BATCHING},
                "stats": vars(batcher.stats)}

    return app


__all__ = ["create_app"]
