"""The official `anthropic` Python SDK against `distill-guard serve` (demo upstream)."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time

import anthropic
import pytest

from conftest import anthropic_client, async_anthropic_client, call_with_deadline

MODEL = "demo-model"
MESSAGES = [{"role": "user", "content": "Write a few words about caches."}]


def tokens(text: str) -> int:
    return math.ceil(len(text.encode()) / 4)


def assert_prose(text: str, cap: int) -> None:
    assert isinstance(text, str) and len(text.split()) >= 3, text
    assert tokens(text) <= cap + 1, (tokens(text), cap)


def rfc3339(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None, value
    return parsed


# ---------------------------------------------------------------- success paths


def test_messages_json(roomy):
    client, seen = anthropic_client(roomy)
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=60, messages=MESSAGES)
    assert raw.headers["x-distill-guard-demo"] == "1"
    m = raw.parse()
    assert isinstance(m, anthropic.types.Message)
    assert m.model == MODEL
    assert m.role == "assistant"
    assert m.stop_reason == "end_turn"
    assert len(m.content) == 1 and m.content[0].type == "text"
    text = m.content[0].text
    assert_prose(text, 60)
    assert m.usage.output_tokens == tokens(text)
    assert m.usage.input_tokens >= 1
    assert seen.statuses() == [200]
    # serve's request id reaches the SDK, which reads `request-id`.
    assert m._request_id == raw.headers["x-request-id"] and len(m._request_id) == 36


def test_messages_stream_raw_events(roomy):
    client, seen = anthropic_client(roomy)
    stream = client.messages.create(model=MODEL, max_tokens=80, messages=MESSAGES, stream=True)
    kinds, parts, input_tokens, output_tokens = [], [], None, None
    for event in stream:
        kinds.append(event.type)
        if event.type == "message_start":
            input_tokens = event.message.usage.input_tokens
        elif event.type == "content_block_delta":
            parts.append(event.delta.text)
        elif event.type == "message_delta":
            output_tokens = event.usage.output_tokens
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    text = "".join(parts)
    assert_prose(text, 80)
    assert input_tokens is not None and input_tokens >= 1
    assert output_tokens == tokens(text)
    assert seen.statuses() == [200]


def test_messages_stream_helper(roomy):
    client, _ = anthropic_client(roomy)
    with client.messages.stream(model=MODEL, max_tokens=40, messages=MESSAGES) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert final.content[0].text == streamed
    assert_prose(streamed, 40)
    assert final.usage.output_tokens == tokens(streamed)
    assert final.stop_reason == "end_turn"


def test_async_messages_json_and_stream(roomy):
    async def run():
        client, seen = async_anthropic_client(roomy)
        async with client:
            m = await client.messages.create(model=MODEL, max_tokens=30, messages=MESSAGES)
            async with client.messages.stream(
                model=MODEL, max_tokens=30, messages=MESSAGES
            ) as stream:
                text = "".join([t async for t in stream.text_stream])
                final = await stream.get_final_message()
        return m, text, final, seen

    m, text, final, seen = asyncio.run(run())
    assert_prose(m.content[0].text, 30)
    assert_prose(text, 30)
    assert final.usage.output_tokens == tokens(text)
    assert seen.statuses() == [200, 200]


# ---------------------------------------------------------------- rate limits


def test_rate_limit_error_carries_anthropic_body(slow):
    client, seen = anthropic_client(slow, max_retries=0)
    client.messages.create(model=MODEL, max_tokens=20, messages=MESSAGES)
    with pytest.raises(anthropic.RateLimitError) as info:
        client.messages.create(model=MODEL, max_tokens=20, messages=MESSAGES)
    e = info.value
    assert e.status_code == 429
    assert e.body["type"] == "error"
    assert e.body["error"]["type"] == "rate_limit_error"
    assert "Rate limit reached" in e.body["error"]["message"]
    assert e.response.json() == e.body
    h = e.response.headers
    assert int(h["retry-after"]) >= 1
    assert 0 < int(h["retry-after-ms"]) <= 60_000
    # A wait of at most a minute: the SDKs may retry it automatically.
    assert "x-should-retry" not in h
    assert h["anthropic-ratelimit-requests-remaining"] == "0"
    assert h["x-distill-guard-limit"] == "account; requests-minute"
    assert seen.statuses() == [200, 429]


def test_automatic_retry_honours_retry_after_ms(tight):
    client, seen = anthropic_client(tight, max_retries=2)
    client.messages.create(model=MODEL, max_tokens=20, messages=MESSAGES)
    start = time.monotonic()
    m = client.messages.create(model=MODEL, max_tokens=20, messages=MESSAGES)
    elapsed = time.monotonic() - start
    assert_prose(m.content[0].text, 20)
    assert seen.statuses() == [200, 429, 200], seen.statuses()
    assert len(seen.requests) == 3
    wait_ms = int(seen.responses[1][1]["retry-after-ms"])
    assert elapsed >= wait_ms / 1000


def test_stream_retry_after_429(tight):
    """A refused stream is retried the same way and then streams normally."""
    client, seen = anthropic_client(tight, max_retries=2)
    client.messages.create(model=MODEL, max_tokens=20, messages=MESSAGES)
    with client.messages.stream(model=MODEL, max_tokens=20, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
    assert_prose(text, 20)
    assert seen.statuses() == [200, 429, 200], seen.statuses()


def test_request_over_whole_bucket_is_400_without_retry(slow):
    client, seen = anthropic_client(slow, max_retries=2)
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model=MODEL, max_tokens=100_000, messages=MESSAGES)
    e = info.value
    assert e.status_code == 400
    assert e.body["type"] == "error"
    assert e.body["error"]["type"] == "invalid_request_error"
    assert len(seen.requests) == 1, "a request that can never fit must not be retried"


def test_wait_beyond_a_minute_is_not_retried(daily):
    """Without `x-should-retry: false` this SDK would sleep the whole Retry-After
    (about a day) before each of its retries."""
    client, seen = anthropic_client(daily, max_retries=2)
    client.messages.create(model=MODEL, max_tokens=20, messages=MESSAGES)
    with pytest.raises(anthropic.RateLimitError) as info:
        call_with_deadline(
            lambda: client.messages.create(model=MODEL, max_tokens=20, messages=MESSAGES), 30
        )
    h = info.value.response.headers
    assert int(h["retry-after"]) > 3600
    assert h["x-should-retry"] == "false"
    assert h["x-distill-guard-limit"] == "account; requests-day"
    assert len(seen.requests) == 2, seen.statuses()


def test_rate_limit_headers_across_calls(roomy):
    client, _ = anthropic_client(roomy)
    remaining, resets = [], []
    for _ in range(4):
        before = dt.datetime.now(dt.timezone.utc)
        raw = client.messages.with_raw_response.create(
            model=MODEL, max_tokens=20, messages=MESSAGES
        )
        raw.parse()
        h = raw.headers
        assert h["anthropic-ratelimit-requests-limit"] == "50"
        remaining.append(int(h["anthropic-ratelimit-requests-remaining"]))
        reset = rfc3339(h["anthropic-ratelimit-requests-reset"])
        # Whole seconds: allow the truncation.
        assert reset >= before - dt.timedelta(seconds=1)
        assert reset <= before + dt.timedelta(hours=2)
        resets.append(reset)
        for family in ("tokens", "input-tokens", "output-tokens"):
            assert int(h[f"anthropic-ratelimit-{family}-limit"]) == 1_000_000
            assert 0 <= int(h[f"anthropic-ratelimit-{family}-remaining"]) < 1_000_000
            rfc3339(h[f"anthropic-ratelimit-{family}-reset"])
        assert '"requests-minute";r=' in h["ratelimit"]
    assert remaining == [49, 48, 47, 46], remaining
    # Each call takes one more request from a bucket refilling at one a minute,
    # so the time it is full again moves later.
    assert all(b >= a for a, b in zip(resets, resets[1:])), resets


def test_async_retry_honours_retry_after_ms(tight):
    async def run():
        client, seen = async_anthropic_client(tight, max_retries=2)
        async with client:
            await client.messages.create(model=MODEL, max_tokens=20, messages=MESSAGES)
            m = await client.messages.create(model=MODEL, max_tokens=20, messages=MESSAGES)
        return m, seen

    m, seen = asyncio.run(run())
    assert_prose(m.content[0].text, 20)
    assert seen.statuses() == [200, 429, 200], seen.statuses()
