"""A small client for OpenAI-compatible chat-completions servers (OpenAI, vLLM, Ollama, llama.cpp,
LM Studio...), standard library only so the package needs no SDK.

    client = ChatClient(ChatConfig(base_url="http://localhost:8000/v1", model="Qwen/Qwen2.5-VL-7B-Instruct"))
    answer = client.ask_json([Message("user", "...", images=(frame,))], validate)

Transient trouble (429, 5xx, timeouts, refused connections) is retried with exponential backoff,
honouring Retry-After; anything else becomes a SpiralError that says what to fix. The API key is
held in a wrapper that never prints, and is scrubbed from every message the server sends back.

An answer with a schema (agents/schemas.py) is asked for as structured output (`response_format`
json_schema, strict). A server that refuses the field gets the plain request instead, for the rest
of the client's life; a server that ignores it answers in text, which is parsed like any other.
"""

from __future__ import annotations

import base64
import email.utils
import http.client
import io
import json
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from PIL import Image

from spiral.agents.parsing import AgentOutputError, Answer, Reply, ValidationError, ask_json
from spiral.agents.prompts import Message
from spiral.agents.schemas import ResponseSchema
from spiral.config import option, required
from spiral.errors import AgentUnavailable, SpiralError

__all__ = ["AgentOutputError", "ChatClient", "ChatConfig", "Message", "ValidationError", "frame_to_data_url"]

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_RETRY_AFTER_S = 120.0  # a server asking for longer is better reported than waited on silently
MIN_IMAGE_SIDE = 224  # VLMs cut images into ~14-28 px patches; a 64 px tabletop frame would be 2-4 patches wide
RETRYABLE = {408, 409, 429, 500, 502, 503, 504}
# How servers that cannot do structured output word their refusal (OpenAI-compatible servers
# answer 400, FastAPI-based ones 422, naming the field or the feature).
SCHEMA_REFUSALS = ("response_format", "json_schema", "schema", "structured output", "guided")


@dataclass(frozen=True)
class ChatConfig:
    """Where the model is served and how patiently to talk to it. The key itself is never a field:
    it is read from the environment, so configs can be logged and saved safely."""

    base_url: str = required("server URL up to /v1, e.g. http://localhost:8000/v1 or https://api.openai.com/v1")
    model: str = required("model name as the server knows it")
    api_key_env: str = option("OPENAI_API_KEY", "environment variable holding the API key ('' for servers without keys)")
    timeout_s: float = option(60.0, "seconds one answer may take in all (a trickling reply included) before a retry")
    max_retries: int = option(4, "retries after 429, 5xx, timeouts and refused connections")
    backoff_s: float = option(1.0, "first retry delay in seconds; doubles on each retry")
    max_repairs: int = option(2, "times the model is asked to fix an unusable answer")
    temperature: float = option(0.0, "sampling temperature (0: as deterministic as the server allows)")
    max_tokens: int = option(1024, "most tokens the model may write per answer")

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise SpiralError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        if not self.model:
            raise SpiralError("model must name the model, e.g. 'gpt-4o-mini' or the name vLLM serves")
        for name in ("timeout_s", "backoff_s"):
            if getattr(self, name) <= 0:
                raise SpiralError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("max_retries", "max_repairs", "max_tokens"):
            if getattr(self, name) < (1 if name == "max_tokens" else 0):
                raise SpiralError(f"{name} must be >= {1 if name == 'max_tokens' else 0}, got {getattr(self, name)}")

    @property
    def endpoint(self) -> str:
        url = self.base_url.rstrip("/")
        return url if url.endswith("/chat/completions") else url + "/chat/completions"


class _Secret:
    """The API key; its repr and str never show it, so it cannot leak through a debug print."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def scrub(self, text: str) -> str:
        return text.replace(self._value, "***") if self._value else text

    def __repr__(self) -> str:
        return "<hidden>"

    __str__ = __repr__


def frame_to_data_url(frame: np.ndarray) -> str:
    """A PNG data URL of an (H, W, 3) uint8 frame, upscaled (nearest) so small frames stay legible."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise SpiralError(f"an image must be an (H, W, 3) uint8 array, got {frame.dtype} {frame.shape}")
    image = Image.fromarray(frame)
    scale = -(-MIN_IMAGE_SIDE // min(frame.shape[:2]))  # ceil
    if scale > 1:
        image = image.resize((frame.shape[1] * scale, frame.shape[0] * scale), Image.NEAREST)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def to_openai(message: Message) -> dict:
    if not message.images:
        return {"role": message.role, "content": message.text}
    parts = [{"type": "text", "text": message.text}]
    parts += [{"type": "image_url", "image_url": {"url": frame_to_data_url(f)}} for f in message.images]
    return {"role": message.role, "content": parts}


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    return (
        parts.scheme.lower(),
        (parts.hostname or "").lower(),
        parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower()),
    )


class RequestRefused(SpiralError):
    """The server answered a request with an HTTP error that a retry cannot fix."""

    def __init__(self, message: str, code: int, detail: str):
        super().__init__(message)
        self.code, self.detail = code, detail

    def names_the_schema(self) -> bool:
        return self.code in (400, 422) and any(word in self.detail.lower() for word in SCHEMA_REFUSALS)


class RedirectRefused(Exception):
    def __init__(self, code: int, location: str):
        super().__init__(code, location)
        self.code, self.location = code, location


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follows only a 307/308 to the same scheme, host and port, which keeps the POST and its body;
    anything else is refused, so the Authorization header never travels to a host it was not
    configured for (urllib's default handler would re-send every header to any Location, and turn
    the POST into a GET that no chat endpoint answers)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 - urllib's signature
        if code in (307, 308) and _origin(newurl) == _origin(req.full_url):
            return urllib.request.Request(newurl, data=req.data, headers=dict(req.header_items()), method=req.get_method())
        raise RedirectRefused(code, newurl)


_OPENER = urllib.request.build_opener(_SameOriginRedirects)


def _read_by(response, deadline: float) -> bytes:
    """The whole body, or TimeoutError once `deadline` passes: the socket timeout alone applies to
    each read, so a server sending a byte every few seconds would otherwise hold a run forever."""
    chunks = []
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError("the reply did not finish in time")
        chunk = response.read1(1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


class ChatClient:
    """One OpenAI-compatible endpoint. `complete` is a single turn; `ask_json` adds validation and repair."""

    def __init__(self, config: ChatConfig, sleep: Callable[[float], None] = time.sleep):
        self.config, self._sleep = config, sleep
        self.max_repairs = config.max_repairs
        self.tokens_used = 0  # over the client's lifetime, from the servers' `usage` fields
        self.structured = True  # False once the server refused a response_format
        key = ""
        if config.api_key_env:
            key = os.environ.get(config.api_key_env, "")
            if not key:
                raise SpiralError(
                    f"the API key is missing: set the environment variable {config.api_key_env} "
                    f"(export {config.api_key_env}=...), or pass --api-key-env '' for a server that needs no key"
                )
        self._key = _Secret(key)

    def __repr__(self) -> str:
        return f"ChatClient(endpoint={self.config.endpoint!r}, model={self.config.model!r}, key={self._key!r})"

    def ask_json(self, messages: Sequence[Message], validate: Callable[[dict], T], repair: str | None = None) -> Answer[T]:
        """Ask, extract the JSON object, validate it; ask again with the error up to max_repairs times
        (then AgentOutputError). `repair` overrides the follow-up template (slot {error})."""
        return ask_json(self.complete, messages, validate, self.config.max_repairs, repair)

    def complete(self, messages: Sequence[Message], schema: ResponseSchema | None = None) -> Reply:
        cfg = self.config
        body = {
            "model": cfg.model,
            "messages": [to_openai(m) for m in messages],
            "temperature": cfg.temperature,
            "max_tokens": cfg.max_tokens,
        }
        if schema is not None and self.structured:
            body["response_format"] = schema.response_format()
        try:
            data = self._post(json.dumps(body).encode("utf-8"))
        except RequestRefused as err:
            if "response_format" not in body or not err.names_the_schema():
                raise
            log.warning("%s refused structured output (HTTP %d: %s); asking for plain JSON from now on",
                        cfg.endpoint, err.code, err.detail)  # fmt: skip
            self.structured = False
            del body["response_format"]
            data = self._post(json.dumps(body).encode("utf-8"))
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise SpiralError(f"{cfg.endpoint} did not answer in the chat-completions format: {self._clip(data)}") from None
        if isinstance(content, list):  # some servers return content parts even for text
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        usage = data.get("usage") or {}
        tokens = int(usage.get("total_tokens") or (usage.get("prompt_tokens") or 0) + (usage.get("completion_tokens") or 0))
        self.tokens_used += tokens
        # Scrubbed like error text: the reply ends up in episode records, which get written and shared.
        return Reply(self._key.scrub(content or ""), tokens)

    def _post(self, payload: bytes) -> dict:
        cfg, url = self.config, self.config.endpoint
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key.reveal():
            headers["Authorization"] = "Bearer " + self._key.reveal()
        problem = hint = ""
        for attempt in range(cfg.max_retries + 1):
            wait = cfg.backoff_s * 2**attempt
            request = urllib.request.Request(url, data=payload, headers=headers, method="POST")
            try:
                deadline = time.monotonic() + cfg.timeout_s
                with _OPENER.open(request, timeout=cfg.timeout_s) as response:
                    raw = _read_by(response, deadline)
                return self._decode(raw)
            except RedirectRefused as err:
                raise SpiralError(
                    f"{url} redirected (HTTP {err.code}) to {self._clip(err.location)}; the request was not followed, "
                    "so the API key stays with the configured server: set --base-url to the address that answers"
                ) from None
            except urllib.error.HTTPError as err:
                message = self._error_message(err)
                if err.code not in RETRYABLE:
                    hint = " (check the API key)" if err.code in (401, 403) else ""
                    raise RequestRefused(f"{url} refused the request with HTTP {err.code}{hint}: {message}", err.code,
                                         message) from None  # fmt: skip
                problem, hint = f"HTTP {err.code}: {message}", "the server is busy or failing; try later or raise --agent-retries"
                asked = _retry_after(err.headers.get("Retry-After"))
                wait = min(asked if asked is not None else wait, MAX_RETRY_AFTER_S)
            except (TimeoutError, urllib.error.URLError, ConnectionError, http.client.HTTPException) as err:
                reason = getattr(err, "reason", err)
                timed_out = isinstance(reason, TimeoutError) or isinstance(err, TimeoutError)
                if timed_out:
                    problem, hint = f"no answer within {cfg.timeout_s:g} s", "raise --agent-timeout, or check the server's load"
                else:
                    problem = f"cannot connect ({self._key.scrub(str(reason))})"
                    hint = "check that the server is running and that base_url is right"
            if attempt < cfg.max_retries:
                log.warning("chat server %s: %s; retry %d/%d in %.2f s", url, problem, attempt + 1, cfg.max_retries, wait)
                self._sleep(wait)
        raise AgentUnavailable(f"the chat server at {url} could not be used after {cfg.max_retries + 1} tries: {problem}; {hint}")

    def _decode(self, raw: bytes) -> dict:
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise SpiralError(f"{self.config.endpoint} did not answer with JSON: {self._clip(raw)}") from None
        if not isinstance(data, dict):
            raise SpiralError(f"{self.config.endpoint} did not answer in the chat-completions format: {self._clip(data)}")
        return data

    def _error_message(self, err: urllib.error.HTTPError) -> str:
        try:
            raw = err.read().decode("utf-8", "replace")
        except OSError:
            raw = ""
        try:
            detail = json.loads(raw)["error"]
            raw = detail.get("message", raw) if isinstance(detail, dict) else str(detail)
        except (ValueError, KeyError, TypeError):
            pass
        return self._clip(raw or err.reason)

    def _clip(self, value: object) -> str:
        """Server text for a message: at most 500 characters, with the key scrubbed out."""
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        return self._key.scrub(text)[:500]
