"""``ServeConfig``: every setting of ``koembed serve`` in one dataclass (the CLI's options mirror its fields)."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from koembed.errors import InputError

API_KEY_ENV = "KOEMBED_API_KEY"
LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


def _api_key_from_env() -> str | None:
    return os.environ.get(API_KEY_ENV) or None


@dataclass
class ServeConfig:
    """Settings of the HTTP service; the defaults are safe on a shared machine (loopback, capped requests)."""

    host: str = "127.0.0.1"
    port: int = 8000
    # Bearer token required on every route but /healthz (and the static page); default: $KOEMBED_API_KEY.
    api_key: str | None = field(default_factory=_api_key_from_env, repr=False)
    cors_origin: str | None = None  # one origin allowed to call the API from a browser; None: CORS off
    max_batch: int = 256  # texts per /v1/embeddings or /encode request, queries per /search request
    max_k: int = 100  # hits per query
    max_text_chars: int = 8192  # characters per text or query (the model truncates at its token limit anyway)
    max_body_bytes: int = 8 << 20  # request body cap, enforced before the body is parsed
    encode_batch: int = 64  # texts per forward pass
    max_batch_texts: int = 512  # texts one micro-batch may gather from concurrent requests
    workers: int = 1  # encode worker threads (each runs whole micro-batches; torch/ONNX use the cores inside one)
    reload_check_s: float = 0.5  # how often, at most, each index's manifest is checked for a newer generation
    backend: str | None = None  # inference backend for the model (default: auto, onnx when installed)
    device: str | None = None
    allow_model_mismatch: bool = False  # serve indexes built with another model (dense scores then mean little)
    # The write API (POST /v1/indexes/{index}/documents[/delete], koembed.server.documents): off by default, and
    # only with an API key, so that a write is never open to whoever can reach the port.
    allow_writes: bool = False
    log_level: str = "info"

    def __post_init__(self) -> None:
        for name in ("max_batch", "max_k", "max_text_chars", "max_body_bytes", "encode_batch", "max_batch_texts",
                     "workers"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"serve config: {name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= int(self.port) <= 65535:
            raise InputError(f"serve config: port must be 0-65535, got {self.port}")
        if self.reload_check_s < 0:
            raise InputError(f"serve config: reload_check_s must be >= 0, got {self.reload_check_s}")
        if self.cors_origin is not None and not self.cors_origin.startswith(("http://", "https://")):
            raise InputError(f"serve config: cors_origin must be an origin like https://example.org, "
                             f"got {self.cors_origin!r}")
        if self.api_key == "":
            self.api_key = None
        if self.allow_writes and self.api_key is None:
            raise InputError("serve config: allow_writes needs an API key (--api-key or KOEMBED_API_KEY): writes are "
                             "never open to whoever can reach the port")
        if self.api_key is not None and not (self.api_key.isascii() and self.api_key.isprintable()
                                             and " " not in self.api_key):
            raise InputError("serve config: api_key must be printable ASCII without spaces (it is sent in an HTTP "
                             "header)")

    @property
    def is_loopback(self) -> bool:
        """True when ``host`` only accepts connections from this machine."""
        if self.host in LOOPBACK_NAMES:
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def public_dict(self) -> dict[str, Any]:
        """The settings without the secret (for /info and logs)."""
        out = asdict(self)
        out["api_key"] = "set" if self.api_key else None
        return out
