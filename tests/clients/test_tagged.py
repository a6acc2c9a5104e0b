"""Tagged (watermarked) responses through both Python SDKs: the objects still parse,
JSON and streaming, and the tag read through the raw response verifies with
`distill-guard verify`."""

from __future__ import annotations

import json
import subprocess

import anthropic
import openai
import pytest

from conftest import anthropic_client, binary, openai_client

MODEL = "demo-model"
MESSAGES = [{"role": "user", "content": "Write a few words about caches."}]
TAG_HEADER = "x-distill-guard-tag"
START_PREFIX = ": dg-tag "
FINAL_PREFIX = ": dg-final "


def verify(guard, tag: str) -> dict:
    """`distill-guard verify --config FILE --json TAG`: the tag's fields, or fails."""
    proc = subprocess.run(
        [str(binary()), "verify", "--config", str(guard.config_path), "--json", tag],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, f"verify rejected {tag!r}: {proc.stdout}{proc.stderr}"
    return json.loads(proc.stdout)


def rejects(guard, tag: str) -> bool:
    proc = subprocess.run(
        [str(binary()), "verify", "--config", str(guard.config_path), tag],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return proc.returncode == 1


MARK_CHARS = set("\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064")


def marked(text: str) -> bool:
    """Whether `text` carries the invisible text mark's characters."""
    return any(ch in MARK_CHARS for ch in text)


def tampered(tag: str) -> str:
    i = len(tag) - 3
    return tag[:i] + ("A" if tag[i] != "A" else "B") + tag[i + 1 :]


def test_openai_chat_json_tagged(tagged):
    client, _ = openai_client(tagged)
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, max_tokens=60
    )
    c = raw.parse()
    assert isinstance(c, openai.types.chat.ChatCompletion)
    assert c.choices[0].message.content
    assert c.usage is not None and c.usage.completion_tokens > 0
    tag = raw.headers[TAG_HEADER]
    # The in-body copy survives the SDK's parsing as an extra field.
    assert c.model_extra is not None and c.model_extra["distill_guard"]["tag"] == tag
    fields = verify(tagged, tag)
    assert fields["key_id"] == "k1"
    assert fields["text_marked"] is True and marked(c.choices[0].message.content)
    assert rejects(tagged, tampered(tag))
    # The same key is the same account; another key is another account.
    again = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, max_tokens=20
    )
    assert verify(tagged, again.headers[TAG_HEADER])["account"] == fields["account"]
    other, _ = openai_client(tagged)
    third = other.chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, max_tokens=20
    )
    assert verify(tagged, third.headers[TAG_HEADER])["account"] != fields["account"]


def test_openai_chat_stream_tagged(tagged):
    client, _ = openai_client(tagged)
    stream = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        max_tokens=60,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    for chunk in stream:
        usage = chunk.usage or usage
        text += "".join(ch.delta.content or "" for ch in chunk.choices)
    assert text and usage is not None
    with client.chat.completions.with_streaming_response.create(
        model=MODEL, messages=MESSAGES, max_tokens=60, stream=True
    ) as res:
        header_tag = res.headers[TAG_HEADER]
        lines = list(res.iter_lines())
    start = [line[len(START_PREFIX) :] for line in lines if line.startswith(START_PREFIX)]
    final = [line[len(FINAL_PREFIX) :] for line in lines if line.startswith(FINAL_PREFIX)]
    assert start == [header_tag]
    assert len(final) == 1
    head = verify(tagged, header_tag)
    end = verify(tagged, final[0])
    assert end["account"] == head["account"]
    assert end["stream_digest"] is not None and end["stream_bytes"] > 0
    assert marked(text), "streamed prose carries the text mark"


def test_openai_responses_tagged(tagged):
    client, _ = openai_client(tagged)
    raw = client.responses.with_raw_response.create(
        model=MODEL, input="Parsers?", max_output_tokens=40
    )
    r = raw.parse()
    assert r.output_text
    verify(tagged, raw.headers[TAG_HEADER])
    events = [
        e.type
        for e in client.responses.create(
            model=MODEL, input="Parsers?", max_output_tokens=40, stream=True
        )
    ]
    assert events[0] == "response.created" and events[-1] == "response.completed"


def test_anthropic_messages_json_tagged(tagged):
    client, _ = anthropic_client(tagged)
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=60, messages=MESSAGES)
    m = raw.parse()
    assert isinstance(m, anthropic.types.Message)
    assert m.content[0].text and m.usage.output_tokens > 0
    tag = raw.headers[TAG_HEADER]
    verify(tagged, tag)
    assert rejects(tagged, tampered(tag))


def test_anthropic_messages_stream_tagged(tagged):
    client, _ = anthropic_client(tagged)
    with client.messages.stream(model=MODEL, max_tokens=60, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.content[0].text == text
    assert final.stop_reason == "end_turn"
    with client.messages.with_streaming_response.create(
        model=MODEL, max_tokens=60, messages=MESSAGES, stream=True
    ) as res:
        header_tag = res.headers[TAG_HEADER]
        lines = list(res.iter_lines())
    final_tags = [line[len(FINAL_PREFIX) :] for line in lines if line.startswith(FINAL_PREFIX)]
    assert len(final_tags) == 1
    head = verify(tagged, header_tag)
    end = verify(tagged, final_tags[0])
    assert end["account"] == head["account"]
    assert end["stream_digest"] is not None
    assert marked(text), "streamed prose carries the text mark"


@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
def test_untagged_server_sends_no_tag(roomy, sdk):
    if sdk == "openai":
        client, _ = openai_client(roomy)
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=MESSAGES, max_tokens=20
        )
    else:
        client, _ = anthropic_client(roomy)
        raw = client.messages.with_raw_response.create(
            model=MODEL, max_tokens=20, messages=MESSAGES
        )
    raw.parse()
    assert TAG_HEADER not in raw.headers
