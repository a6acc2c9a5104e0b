"""The official `openai` Python SDK against `distill-guard serve` (demo upstream)."""

from __future__ import annotations

import asyncio
import math
import re
import time

import openai
import pytest

from conftest import async_openai_client, call_with_deadline, openai_client

MODEL = "demo-model"
MESSAGES = [{"role": "user", "content": "Write a few words about caches."}]
GO_DURATION = re.compile(r"^(\d+h)?(\d+m)?\d+(ms|s)$")


def tokens(text: str) -> int:
    """The demo's truthful usage: one token per four bytes of generated text."""
    return math.ceil(len(text.encode()) / 4)


def assert_prose(text: str, cap: int) -> None:
    assert isinstance(text, str) and len(text.split()) >= 3, text
    # The demo answers with 60%..100% of the cap.
    assert tokens(text) <= cap + 1, (tokens(text), cap)


# ---------------------------------------------------------------- success paths


def test_chat_json(roomy):
    client, seen = openai_client(roomy)
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, max_tokens=60
    )
    assert raw.headers["x-distill-guard-demo"] == "1"
    c = raw.parse()
    assert isinstance(c, openai.types.chat.ChatCompletion)
    assert c.model == MODEL
    assert c.object == "chat.completion"
    assert c.choices[0].finish_reason == "stop"
    assert c.choices[0].message.role == "assistant"
    text = c.choices[0].message.content
    assert_prose(text, 60)
    assert c.usage is not None
    assert c.usage.completion_tokens == tokens(text)
    assert c.usage.prompt_tokens >= 1
    assert c.usage.total_tokens == c.usage.prompt_tokens + c.usage.completion_tokens
    assert seen.statuses() == [200]
    # serve's request id reaches the SDK's `_request_id`.
    assert c._request_id == raw.headers["x-request-id"] and len(c._request_id) == 36


def test_chat_stream_with_usage(roomy):
    client, seen = openai_client(roomy)
    stream = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        max_tokens=80,
        stream=True,
        stream_options={"include_usage": True},
    )
    parts, usage, finish, chunks = [], None, None, 0
    for chunk in stream:
        chunks += 1
        assert isinstance(chunk, openai.types.chat.ChatCompletionChunk)
        assert chunk.model == MODEL
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                parts.append(choice.delta.content)
            if choice.finish_reason:
                finish = choice.finish_reason
    text = "".join(parts)
    assert chunks > 3, "the answer should arrive in several chunks"
    assert finish == "stop"
    assert_prose(text, 80)
    assert usage is not None, "include_usage asks for a final usage chunk"
    assert usage.completion_tokens == tokens(text)
    assert seen.statuses() == [200]


def test_chat_stream_helper_accumulates(roomy):
    client, _ = openai_client(roomy)
    with client.chat.completions.stream(
        model=MODEL, messages=MESSAGES, max_tokens=40, stream_options={"include_usage": True}
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    text = final.choices[0].message.content
    assert_prose(text, 40)
    assert final.usage is not None and final.usage.completion_tokens == tokens(text)


def test_legacy_completions_json_and_stream(roomy):
    client, _ = openai_client(roomy)
    c = client.completions.create(model=MODEL, prompt="Say something.", max_tokens=30)
    assert_prose(c.choices[0].text, 30)
    assert c.usage is not None and c.usage.completion_tokens == tokens(c.choices[0].text)
    text = "".join(
        ch.choices[0].text
        for ch in client.completions.create(
            model=MODEL, prompt="Say something.", max_tokens=30, stream=True
        )
        if ch.choices
    )
    assert_prose(text, 30)


def test_responses_json(roomy):
    client, _ = openai_client(roomy)
    r = client.responses.create(model=MODEL, input="Tell me about parsers.", max_output_tokens=50)
    assert isinstance(r, openai.types.responses.Response)
    assert r.status == "completed"
    assert r.model == MODEL
    text = r.output_text
    assert_prose(text, 50)
    assert r.usage is not None
    assert r.usage.output_tokens == tokens(text)
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens


def test_responses_stream(roomy):
    client, _ = openai_client(roomy)
    stream = client.responses.create(
        model=MODEL, input="Tell me about parsers.", max_output_tokens=50, stream=True
    )
    deltas, completed, kinds = [], None, []
    for event in stream:
        kinds.append(event.type)
        if event.type == "response.output_text.delta":
            deltas.append(event.delta)
        elif event.type == "response.completed":
            completed = event.response
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    assert completed is not None
    text = "".join(deltas)
    assert completed.output_text == text
    assert_prose(text, 50)
    assert completed.usage is not None and completed.usage.output_tokens == tokens(text)


def test_responses_stream_helper(roomy):
    client, _ = openai_client(roomy)
    with client.responses.stream(
        model=MODEL, input="Tell me about parsers.", max_output_tokens=50
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    assert_prose(final.output_text, 50)


def test_async_chat_json_and_stream(roomy):
    async def run():
        client, seen = async_openai_client(roomy)
        async with client:
            c = await client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=30)
            stream = await client.chat.completions.create(
                model=MODEL,
                messages=MESSAGES,
                max_tokens=30,
                stream=True,
                stream_options={"include_usage": True},
            )
            parts, usage = [], None
            async for chunk in stream:
                usage = chunk.usage or usage
                parts.extend(ch.delta.content or "" for ch in chunk.choices)
        return c, "".join(parts), usage, seen

    c, text, usage, seen = asyncio.run(run())
    assert_prose(c.choices[0].message.content, 30)
    assert_prose(text, 30)
    assert usage is not None and usage.completion_tokens == tokens(text)
    assert seen.statuses() == [200, 200]


# ---------------------------------------------------------------- rate limits


def test_rate_limit_error_carries_openai_body(slow):
    client, seen = openai_client(slow, max_retries=0)
    client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=20)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=20)
    e = info.value
    assert e.status_code == 429
    # The SDK unwraps `error`; the full body is our OpenAI-dialect error.
    assert e.code == "rate_limit_exceeded"
    assert e.type == "requests"
    assert e.param is None
    assert "Rate limit reached" in e.message
    body = e.response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == "rate_limit_exceeded"
    assert body["error"]["message"] in e.message
    h = e.response.headers
    assert int(h["retry-after"]) >= 1
    assert 0 < int(h["retry-after-ms"]) <= 60_000
    # A wait of at most a minute: the SDKs may retry it automatically.
    assert "x-should-retry" not in h
    assert h["x-distill-guard-limit"] == "account; requests-minute"
    assert h["x-ratelimit-remaining-requests"] == "0"
    assert seen.statuses() == [200, 429]


def test_automatic_retry_honours_retry_after_ms(tight):
    key_client, seen = openai_client(tight, max_retries=2)
    key_client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=20)
    start = time.monotonic()
    raw = key_client.chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, max_tokens=20
    )
    elapsed = time.monotonic() - start
    c = raw.parse()
    assert_prose(c.choices[0].message.content, 20)
    # First call, then the refused attempt, then the retry that succeeded.
    assert seen.statuses() == [200, 429, 200], seen.statuses()
    assert len(seen.requests) == 3
    assert raw.retries_taken == 1
    wait_ms = int(seen.responses[1][1]["retry-after-ms"])
    assert wait_ms > 0
    # Two distinct attempts reached the server.
    ids = [h["x-request-id"] for _, h in seen.responses[1:]]
    assert ids[0] != ids[1]
    # The SDK slept what the guard asked for (it prefers retry-after-ms).
    assert elapsed >= wait_ms / 1000


def test_request_over_whole_bucket_is_400_without_retry(slow):
    client, seen = openai_client(slow, max_retries=2)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=100_000)
    e = info.value
    assert e.status_code == 400
    assert e.code == "quota_exceeded_by_request"
    assert e.type == "invalid_request_error"
    assert len(seen.requests) == 1, "a request that can never fit must not be retried"
    assert seen.statuses() == [400]


def test_wait_beyond_a_minute_is_not_retried(daily):
    client, seen = openai_client(daily, max_retries=2)
    client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=20)
    with pytest.raises(openai.RateLimitError) as info:
        call_with_deadline(
            lambda: client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=20),
            30,
        )
    h = info.value.response.headers
    assert int(h["retry-after"]) > 3600
    assert h["x-should-retry"] == "false"
    assert h["x-distill-guard-limit"] == "account; requests-day"
    assert len(seen.requests) == 2, seen.statuses()


def test_rate_limit_headers_across_calls(roomy):
    client, _ = openai_client(roomy)
    remaining = []
    for _ in range(4):
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=MESSAGES, max_tokens=20
        )
        raw.parse()
        h = raw.headers
        assert h["x-ratelimit-limit-requests"] == "50"
        remaining.append(int(h["x-ratelimit-remaining-requests"]))
        assert GO_DURATION.match(h["x-ratelimit-reset-requests"]), h["x-ratelimit-reset-requests"]
        assert GO_DURATION.match(h["x-ratelimit-reset-tokens"]), h["x-ratelimit-reset-tokens"]
        assert int(h["x-ratelimit-limit-tokens"]) == 1_000_000
        assert 0 <= int(h["x-ratelimit-remaining-tokens"]) < 1_000_000
        assert "requests-minute" in h["ratelimit-policy"]
        assert '"requests-minute";r=' in h["ratelimit"]
    assert remaining == [49, 48, 47, 46], remaining


def test_async_retry_honours_retry_after_ms(tight):
    async def run():
        client, seen = async_openai_client(tight, max_retries=2)
        async with client:
            await client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=20)
            c = await client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=20)
        return c, seen

    c, seen = asyncio.run(run())
    assert_prose(c.choices[0].message.content, 20)
    assert seen.statuses() == [200, 429, 200], seen.statuses()
