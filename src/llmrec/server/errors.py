"""Every bad request gets one line of JSON, {"error": "..."}, and never hurts the server:

    422  a malformed body (not JSON, a missing or misspelt field, a wrong type) or a bad value (LlmrecError)
    404  a user or item the run does not know (UnknownIdError: the CLI's rule and message), or no such path
    413  a body over max_body_bytes, or more pairs / candidates than max_pairs
    504  no answer within timeout_s
    500  anything else (the server keeps serving)
"""
from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from llmrec.errors import LlmrecError, UnknownIdError


class TooLarge(Exception):
    """413: a request over one of the size limits."""


class TimedOut(Exception):
    """504: a request not answered in time."""


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": one_line(message)}, status_code=status)


def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
    """The first problem, as `field.path: message` (FastAPI's default is a multi-line list)."""
    errs = exc.errors()
    if not errs:
        return error(422, "invalid request body")
    e = errs[0]
    loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
    msg = e.get("msg", "invalid")
    if e.get("type") == "json_invalid":
        msg = f"not valid JSON ({e.get('ctx', {}).get('error', msg)})"
    more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
    return error(422, f"{loc}: {msg}{more}")


def install(app: FastAPI) -> None:
    """The handlers above, for every route (FastAPI's defaults answer {"detail": ...} over several lines)."""
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, lambda _, e: error(e.status_code, str(e.detail)))
    app.add_exception_handler(UnknownIdError, lambda _, e: error(404, str(e)))
    app.add_exception_handler(LlmrecError, lambda _, e: error(422, str(e)))
    app.add_exception_handler(TooLarge, lambda _, e: error(413, str(e)))
    app.add_exception_handler(TimedOut, lambda _, e: error(504, str(e)))
    app.add_exception_handler(Exception, lambda _, e: error(500, f"internal error: {type(e).__name__}: {e}"))


class BodyLimit:
    """ASGI middleware: a body over `max_bytes` gets 413 before anything parses it, whether it announces its
    length (Content-Length) or not (chunked); the body is buffered (at most `max_bytes`) and replayed."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            return await self._too_large(send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await self._too_large(send)
            more = message.get("more_body", False)
        body, sent = b"".join(chunks), False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send):
        data = json.dumps({"error": f"request body over {self.max_bytes} bytes (--max-body-bytes)"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": data})
