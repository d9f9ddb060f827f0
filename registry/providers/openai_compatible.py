"""POST {base_url}/chat/completions: OpenAI's chat JSON, so also vLLM, Ollama, LiteLLM, OpenRouter... No Django.

At most 2 retries, only on 429 and 5xx, 0.5 s then 1 s apart (Retry-After is
followed up to 5 s). Timeouts, connection errors and other statuses are not retried.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

import requests
import urllib3

from .base import Completion, ProviderError, count_or_none

MAX_RESPONSE_BYTES = 10 * 1024 * 1024


def _timed_out(exc: requests.RequestException) -> bool:
    # A read timeout while the body streams surfaces as a ConnectionError wrapping urllib3's ReadTimeoutError.
    return isinstance(exc, requests.Timeout) or any(isinstance(arg, urllib3.exceptions.TimeoutError) for arg in exc.args)


class OpenAICompatibleProvider:
    """POST {base_url}/chat/completions: `{"model", "messages": [system, user], "temperature", "max_tokens"}`.

    Reads choices[0].message.content and usage.prompt_tokens / completion_tokens.
    `timeout` bounds the connection, each read, and the whole answer (checked as
    it streams in). Cost: `pricing(model, input_tokens, output_tokens)` when
    given, else None. `latency_ms` is the successful attempt's, request to last byte.
    """

    retries = 2
    backoff = 0.5  # seconds before the first retry, doubled for the next
    max_retry_after = 5.0

    def __init__(
        self, base_url: str, api_key: str | None, model_override: str | None = None, *,
        pricing: Callable[[str, int, int], float | None] | None = None,
        session: requests.Session | None = None, sleep: Callable[[float], None] = time.sleep,
    ):
        base = base_url.strip().rstrip("/")
        if not base.lower().startswith(("http://", "https://")):
            raise ValueError(f"base_url {base_url!r} must start with http:// or https://")
        self.url = f"{base}/chat/completions"
        self.api_key, self.model_override, self.pricing = api_key, model_override, pricing
        self.session, self.sleep = session or requests.Session(), sleep

    def complete(
        self, *, system: str, prompt: str, model: str, temperature: float, max_tokens: int | None, timeout: float,
        index: int | None = None, row_id: str | None = None,
    ) -> Completion:
        model = self.model_override or model
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        payload = {"model": model, "messages": messages, "temperature": temperature}
        if max_tokens is not None:
            payload["max_tokens"] = max_tokens
        headers = {"Accept": "application/json"} | ({"Authorization": f"Bearer {self.api_key}"} if self.api_key else {})
        for attempt in range(self.retries + 1):
            status, content, retry_after, latency_ms = self._post(payload, headers, timeout)
            if (status == 429 or status >= 500) and attempt < self.retries:
                self.sleep(min(retry_after, self.max_retry_after) if retry_after is not None else self.backoff * 2**attempt)
                continue
            if not 200 <= status < 300:
                raise self._http_error(status, content, attempt)
            return self._completion(content, latency_ms, model)
        raise AssertionError("unreachable")  # the last attempt returns or raises

    def _post(self, payload: dict, headers: dict, timeout: float) -> tuple[int, bytes, float | None, float]:
        start = time.monotonic()
        try:
            # No redirects: requests would resend a redirected POST as a GET.
            answer = self.session.post(self.url, json=payload, headers=headers, timeout=timeout, allow_redirects=False, stream=True)
            with answer as response:
                chunks, size = [], 0
                for chunk in response.iter_content(64 * 1024):
                    size += len(chunk)
                    if size > MAX_RESPONSE_BYTES:
                        raise ProviderError(f"the answer from {self.url} is larger than {MAX_RESPONSE_BYTES} bytes", kind="bad_answer")
                    if time.monotonic() - start > timeout:
                        raise ProviderError(f"no complete answer from {self.url} within {timeout:g} s", kind="timeout")
                    chunks.append(chunk)
                status, retry_after = response.status_code, response.headers.get("Retry-After", "")
        except requests.RequestException as exc:
            if _timed_out(exc):
                raise ProviderError(f"no answer from {self.url} within {timeout:g} s", kind="timeout") from None
            raise ProviderError(f"cannot reach {self.url}: {type(exc).__name__}", kind="connection") from None
        wait = float(retry_after) if re.fullmatch(r"[0-9]{1,4}(\.[0-9]+)?", retry_after.strip()) else None
        return status, b"".join(chunks), wait, (time.monotonic() - start) * 1000

    def _http_error(self, status: int, content: bytes, retries: int) -> ProviderError:
        message = ""
        try:
            body = json.loads(content)
        except ValueError:
            body = None
        if isinstance(body, dict):
            error = body.get("error", body)
            message = error.get("message", "") if isinstance(error, dict) else error if isinstance(error, str) else ""
        if not isinstance(message, str) or not message:
            # A proxy's HTML error page: keep its words, not its tags.
            message = " ".join(re.sub(r"<[^>]*>", " ", content.decode("utf-8", "replace")).split())
        hint = {401: " (check the API key)", 403: " (the key may not reach this model)", 404: " (check the base URL and the model name)"}
        after = f" after {retries} retries" if retries else ""
        text = f"HTTP {status} from {self.url}{after}{hint.get(status, '')}" + (f": {message[:200]}" if message else "")
        return ProviderError(text, kind="http", status=status)

    def _completion(self, content: bytes, latency_ms: float, model: str) -> Completion:
        start = content[:100].decode("utf-8", "replace")
        try:
            body = json.loads(content)
        except ValueError:
            raise ProviderError(f"the answer from {self.url} is not JSON: {start!r}", kind="bad_answer") from None
        choices = body.get("choices") if isinstance(body, dict) else None
        message = choices[0].get("message") if isinstance(choices, list) and choices and isinstance(choices[0], dict) else None
        if not isinstance(message, dict):
            raise ProviderError(f"the answer from {self.url} has no choices[0].message: {start!r}", kind="bad_answer")
        text = message.get("content")
        if isinstance(text, list):  # content parts: keep the text ones
            text = "".join(p.get("text", "") for p in text if isinstance(p, dict) and p.get("type") == "text") or None
        if not isinstance(text, str):
            reason = choices[0].get("finish_reason")
            raise ProviderError(f"the answer from {self.url} has no text content (finish_reason {reason!r})", kind="bad_answer")
        usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
        tokens_in, tokens_out = count_or_none(usage.get("prompt_tokens")), count_or_none(usage.get("completion_tokens"))
        cost = None
        if self.pricing is not None and tokens_in is not None and tokens_out is not None:
            cost = self.pricing(model, tokens_in, tokens_out)
        return Completion(text=text, latency_ms=latency_ms, input_tokens=tokens_in, output_tokens=tokens_out, cost_usd=cost, raw=body)
