"""The server's settings, one dataclass shared by the CLI, the app and the tests."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from llmrec.errors import LlmrecError


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    """Address to listen on; the default answers this machine only (0.0.0.0: every interface)."""
    port: int = 8000
    """TCP port; 0 picks a free one (printed at start)."""
    max_batch: int = 32
    """Most requests coalesced into one model call; 1 turns batching off (each request alone, no waiting)."""
    max_wait_ms: float = 5.0
    """How long the first request of a batch waits for others to join it. Costs up to this much latency at low
    load, buys one model call for many requests at high load."""
    timeout_s: float = 30.0
    """A request not answered within this (queue wait included) gets 504; if its batch has not started, it is
    dropped from the queue."""
    max_body_bytes: int = 1 << 20
    """Larger request bodies get 413 before they are parsed."""
    max_pairs: int = 10_000
    """More pairs (POST /score) or candidates / items (POST /recommend) in one request get 413."""

    def check(self) -> "ServerConfig":
        """One line for the first bad setting (the CLI flag it came from)."""
        if not 0 <= self.port <= 65535:
            raise LlmrecError(f"--port: must be 0..65535, got {self.port}")
        for flag, value, low in (("--max-batch", self.max_batch, 1), ("--max-body-bytes", self.max_body_bytes, 1),
                                 ("--max-pairs", self.max_pairs, 1)):
            if value < low:
                raise LlmrecError(f"{flag}: must be >= {low}, got {value}")
        if not self.max_wait_ms >= 0:
            raise LlmrecError(f"--max-wait-ms: must be >= 0, got {self.max_wait_ms}")
        if not self.timeout_s > 0:
            raise LlmrecError(f"--timeout-s: must be > 0, got {self.timeout_s}")
        return self

    def batching(self) -> dict:
        """The settings /info shows."""
        out = asdict(self)
        del out["host"], out["port"]
        return out
