"""HTTP to the VibeBox API, sync and async, with retries.

A request is described once as a `Call` (built by `calls.py`) and sent by either transport, so the
sync and async clients share every endpoint's definition and the retry rules:

- retried, with exponential backoff and full jitter: 429 (after `Retry-After` when the server
  sends it), 502 and 503 (for a POST only a 503 saying nothing started), connections that could not be
  made, and dropped connections of idempotent requests (GET, PUT, DELETE, HEAD); never any other
  4xx, never a POST whose request may have reached the server;
- `max_retries` (default 3) more attempts, delays from `backoff` (0.5 s) doubling up to `max_backoff`
  (8 s); a `Retry-After` above `max_retry_after` (60 s) is not waited for: the error is raised.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import email.utils
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from . import errors
from .version import USER_AGENT

RETRY_STATUSES = frozenset({429, 502, 503})
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
CONNECT_TIMEOUT = 10.0


def _json(response: httpx.Response) -> Any:
    return response.json() if response.content else None


@dataclass(frozen=True)
class Call:
    """One API request: what to send and how to read the answer."""

    method: str
    path: str
    json: Any = None
    params: dict[str, Any] | None = None
    body: Callable[[], Any] | None = None  # a fresh body (bytes or an iterable of bytes) for each attempt
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None  # read timeout, when the call needs more than the client's
    parse: Callable[[httpx.Response], Any] = _json
    stream: bool = False  # answer the open response (the caller reads and closes it)
    feature: str | None = None  # a generic 404/405/501 means the server lacks this feature
    raise_for_status: bool = True  # False: error answers are parsed like the others (health checks)


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0

    def backoff_delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.max_backoff, self.backoff * (2**attempt)))

    def delay_after_response(self, response: httpx.Response, attempt: int, method: str = "GET") -> float | None:
        """Seconds to wait before retrying this answer, or None to not retry it. A POST is retried
        only when it cannot have started anything: a 429, or a 503 saying the engine or the image
        is unavailable (never a 502: the engine failed after the command may have started)."""
        if response.status_code not in RETRY_STATUSES or attempt >= self.max_retries:
            return None
        if method not in IDEMPOTENT and response.status_code != 429 and not _nothing_started(response):
            return None
        after = retry_after(response)
        if after is None:
            return self.backoff_delay(attempt)
        return after if after <= self.max_retry_after else None

    def delay_after_error(self, error: httpx.TransportError, method: str, attempt: int) -> float | None:
        if attempt >= self.max_retries:
            return None
        never_sent = isinstance(error, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
        dropped = isinstance(error, httpx.ReadError | httpx.RemoteProtocolError | httpx.WriteError)
        if never_sent or (dropped and method in IDEMPOTENT):
            return self.backoff_delay(attempt)
        return None


NOTHING_STARTED = frozenset({"runtime_unavailable", "template_unavailable", "rate_limiter_unavailable", "no_capacity"})


def _nothing_started(response: httpx.Response) -> bool:
    """A 503 whose code says the engine or the image was unavailable (or a proxy's, without our
    envelope): the request cannot have started anything, so a POST may be sent again. The body
    must have been read."""
    if response.status_code != 503:
        return False
    try:
        code = response.json().get("error", {}).get("code")
    except (ValueError, AttributeError, httpx.ResponseNotRead):
        return True
    return code is None or code in NOTHING_STARTED


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def _error_for(call: Call, response: httpx.Response) -> errors.VibeBoxError:
    try:
        payload = response.json()
    except ValueError:
        payload = None
    request_id = response.headers.get("X-Request-Id")
    error = errors.from_payload(response.status_code, payload, request_id=request_id, retry_after=retry_after(response))
    generic = error.code in ("not_found", "method_not_allowed") or response.status_code == 501
    if call.feature and generic:
        return errors.NotSupportedError(
            f"this VibeBox server does not support {call.feature}",
            status=response.status_code,
            request_id=request_id,
            details={"feature": call.feature},
        )
    return error


def _transport_error(error: httpx.TransportError, call: Call) -> errors.VibeBoxError:
    if isinstance(error, httpx.TimeoutException):
        return errors.TimeoutError(f"{call.method} {call.path} timed out ({type(error).__name__})")
    return errors.ConnectionError(f"cannot reach the VibeBox server: {error}")


def _headers(api_key: str | None, extra: dict[str, str] | None) -> dict[str, str]:
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **(extra or {})}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


class _Base:
    def __init__(self, base_url: str, api_key: str | None, timeout: float, retry: RetryPolicy) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.retry = retry

    def with_options(self, *, timeout: float | None = None, max_retries: int | None = None) -> Any:
        """A copy sharing the connection pool, with another default timeout or retry count."""
        clone = copy.copy(self)
        if timeout is not None:
            clone.timeout = timeout
        if max_retries is not None:
            clone.retry = dataclasses.replace(self.retry, max_retries=max_retries)
        return clone

    def _timeout(self, call: Call) -> httpx.Timeout:
        return httpx.Timeout(call.timeout or self.timeout, connect=CONNECT_TIMEOUT)

    def _request_kwargs(self, call: Call) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"params": call.params, "headers": call.headers, "timeout": self._timeout(call)}
        if call.body is not None:
            kwargs["content"] = call.body()
        elif call.json is not None:
            kwargs["json"] = call.json
        return kwargs


class SyncTransport(_Base):
    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(base_url, api_key, timeout, retry or RetryPolicy())
        self.http = httpx.Client(base_url=self.base_url, headers=_headers(api_key, headers))

    def send(self, call: Call) -> Any:
        attempt = 0
        while True:
            try:
                request = self.http.build_request(call.method, call.path, **self._request_kwargs(call))
                response = self.http.send(request, stream=True)
            except httpx.TransportError as error:
                delay = self.retry.delay_after_error(error, call.method, attempt)
                if delay is None:
                    raise _transport_error(error, call) from error
                time.sleep(delay)
                attempt += 1
                continue
            if response.status_code == 503 and call.method not in IDEMPOTENT:
                response.read()  # its code says whether the request may be sent again
            delay = self.retry.delay_after_response(response, attempt, call.method)
            if delay is not None:
                response.close()
                time.sleep(delay)
                attempt += 1
                continue
            return self._finish(call, response)

    def _finish(self, call: Call, response: httpx.Response) -> Any:
        try:
            if response.status_code >= 400 or not call.stream:
                response.read()
        except httpx.TransportError as error:
            response.close()
            raise _transport_error(error, call) from error
        if response.status_code >= 400 and call.raise_for_status:
            response.close()
            raise _error_for(call, response)
        if call.stream:
            return response
        response.close()
        return call.parse(response)

    def close(self) -> None:
        self.http.close()


async def _aiter(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


class AsyncTransport(_Base):
    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(base_url, api_key, timeout, retry or RetryPolicy())
        self.http = httpx.AsyncClient(base_url=self.base_url, headers=_headers(api_key, headers))

    def _request_kwargs(self, call: Call) -> dict[str, Any]:
        kwargs = super()._request_kwargs(call)
        content = kwargs.get("content")
        if content is not None and not isinstance(content, bytes | str) and not hasattr(content, "__aiter__"):
            kwargs["content"] = _aiter(content)
        return kwargs

    async def send(self, call: Call) -> Any:
        attempt = 0
        while True:
            try:
                request = self.http.build_request(call.method, call.path, **self._request_kwargs(call))
                response = await self.http.send(request, stream=True)
            except httpx.TransportError as error:
                delay = self.retry.delay_after_error(error, call.method, attempt)
                if delay is None:
                    raise _transport_error(error, call) from error
                await asyncio.sleep(delay)
                attempt += 1
                continue
            if response.status_code == 503 and call.method not in IDEMPOTENT:
                await response.aread()  # its code says whether the request may be sent again
            delay = self.retry.delay_after_response(response, attempt, call.method)
            if delay is not None:
                await response.aclose()
                await asyncio.sleep(delay)
                attempt += 1
                continue
            return await self._finish(call, response)

    async def _finish(self, call: Call, response: httpx.Response) -> Any:
        try:
            if response.status_code >= 400 or not call.stream:
                await response.aread()
        except httpx.TransportError as error:
            await response.aclose()
            raise _transport_error(error, call) from error
        if response.status_code >= 400 and call.raise_for_status:
            await response.aclose()
            raise _error_for(call, response)
        if call.stream:
            return response
        await response.aclose()
        return call.parse(response)

    async def aclose(self) -> None:
        await self.http.aclose()
