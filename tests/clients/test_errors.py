"""The guard's other error responses, as both Python SDKs surface them."""

from __future__ import annotations

import anthropic
import openai
import pytest

from conftest import anthropic_client, openai_client

MODEL = "demo-model"


def big_messages(size: int):
    return [{"role": "user", "content": "word " * (size // 5)}]


@pytest.mark.parametrize("size", [16 * 1024, 1024 * 1024])
def test_openai_body_over_the_limit_is_413_once(small_bodies, size):
    client, seen = openai_client(small_bodies, max_retries=2)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model=MODEL, messages=big_messages(size), max_tokens=10)
    e = info.value
    assert e.status_code == 413
    assert e.code == "request_too_large"
    assert e.type == "invalid_request_error"
    assert seen.statuses() == [413]
    # A small request on the same server is fine.
    c = client.chat.completions.create(model=MODEL, messages=big_messages(100), max_tokens=10)
    assert c.choices[0].message.content


@pytest.mark.parametrize("size", [16 * 1024, 1024 * 1024])
def test_anthropic_body_over_the_limit_is_413_once(small_bodies, size):
    client, seen = anthropic_client(small_bodies, max_retries=2)
    with pytest.raises(anthropic.RequestTooLargeError) as info:
        client.messages.create(model=MODEL, max_tokens=10, messages=big_messages(size))
    e = info.value
    assert e.body["type"] == "error"
    assert e.body["error"]["type"] == "request_too_large"
    assert seen.statuses() == [413]


def test_openai_upstream_down_is_502_in_dialect(no_upstream):
    client, seen = openai_client(no_upstream, max_retries=1)
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=10
        )
    e = info.value
    assert e.status_code == 502
    assert e.type == "server_error"
    assert e.code == "bad_gateway"
    # 5xx is retried by the SDK: two attempts with max_retries=1.
    assert seen.statuses() == [502, 502]


def test_anthropic_upstream_down_is_502_in_dialect(no_upstream):
    client, seen = anthropic_client(no_upstream, max_retries=1)
    with pytest.raises(anthropic.InternalServerError) as info:
        client.messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    e = info.value
    assert e.status_code == 502
    assert e.body["type"] == "error"
    assert e.body["error"]["type"] == "api_error"
    assert seen.statuses() == [502, 502]


def test_streamed_responses_carry_rate_limit_headers(roomy):
    oc, _ = openai_client(roomy)
    with oc.chat.completions.with_streaming_response.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=20, stream=True
    ) as res:
        assert res.headers["content-type"].startswith("text/event-stream")
        assert res.headers["x-ratelimit-remaining-requests"] == "49"
        text = "".join(
            ch.choices[0].delta.content or "" for ch in res.parse() if ch.choices
        )
    assert text
    ac, _ = anthropic_client(roomy)
    with ac.messages.with_streaming_response.create(
        model=MODEL, max_tokens=20, messages=[{"role": "user", "content": "hi"}], stream=True
    ) as res:
        assert res.headers["anthropic-ratelimit-requests-remaining"] == "49"
        kinds = [ev.type for ev in res.parse()]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"


def test_openai_token_window_429_has_type_tokens(token_window):
    """The demo uses at least 60% of a 2000-token cap, so a second such request
    right after the first is refused on the 3000-token window, and OpenAI's error
    type says `tokens`."""
    client, seen = openai_client(token_window, max_retries=0)
    req = dict(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=2000)
    client.chat.completions.create(**req)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(**req)
    e = info.value
    assert e.type == "tokens"
    assert e.code == "rate_limit_exceeded"
    assert e.response.headers["x-distill-guard-limit"] == "account; tokens-minute"
    assert "reserves" in e.message
    assert seen.statuses() == [200, 429]
