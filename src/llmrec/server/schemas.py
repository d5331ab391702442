"""Request and response bodies (pydantic; FastAPI checks requests against them and documents them at /docs).
Ids are the dataset's own, as JSON strings or integers (`internal_ids: true` takes and gives the run's)."""
from __future__ import annotations

from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, model_validator

Id = Union[StrictStr, StrictInt]
ColdStart = Literal["popularity"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is a 422, not silently ignored


class Pair(_Strict):
    user_id: Id
    item_id: Id


class ScoreRequest(_Strict):
    pairs: list[Pair] = Field(min_length=1, description="(user, item) pairs to score")
    cold_start: ColdStart | None = Field(None, description="unknown ids: the popularity fallback instead of 404")
    internal_ids: bool = Field(False, description="ids are the run's internal integers")


class Scored(BaseModel):
    user_id: Id
    item_id: Id
    score: float
    cold_start: bool = Field(description="true where the popularity fallback gave the score")


class ScoreResponse(BaseModel):
    scores: list[Scored]


class RecommendRequest(_Strict):
    user_id: Id | None = Field(None, description="a user the run knows (or any, with cold_start)")
    items: list[Id] | None = Field(None, min_length=1, description="instead of user_id: a new user's known items "
                                   "(cllm4rec, multvae, popularity-holdout runs)")
    k: int = Field(10, ge=1, description="how many items")
    candidates: list[Id] | None = Field(None, min_length=1, description="items to rank (default: all unseen)")
    cold_start: ColdStart | None = None
    internal_ids: bool = False

    @model_validator(mode="after")
    def _one_of(self):
        if (self.user_id is None) == (self.items is None):
            raise ValueError("give exactly one of user_id or items")
        return self


class Recommended(BaseModel):
    item_id: Id
    title: str
    score: float


class RecommendResponse(BaseModel):
    user_id: Id | None
    items: list[Recommended]
    cold_start: bool = Field(description="true when the popularity fallback ranked an unknown user")
