// The official Node SDKs (openai, @anthropic-ai/sdk) against distill-guard serve.
// Run by tests/clients/test_node.py with the servers' base URLs in
// GUARD_ROOMY, GUARD_TIGHT, GUARD_SLOW, GUARD_DAILY and GUARD_TAGGED. Exits non-zero on the first failure.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';

import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const ROOMY = env('GUARD_ROOMY');
const TIGHT = env('GUARD_TIGHT');
const SLOW = env('GUARD_SLOW');
const DAILY = env('GUARD_DAILY');
const TAGGED = env('GUARD_TAGGED');
const MODEL = 'demo-model';
const MESSAGES = [{ role: 'user', content: 'Write a few words about caches.' }];

// The demo's truthful usage: one token per four bytes of generated text.
const tokens = (text) => Math.ceil(Buffer.byteLength(text) / 4);
const prose = (text) => assert.ok(typeof text === 'string' && text.split(' ').length >= 3, text);

// A fetch that records every response status the SDK saw.
function recorder() {
  const statuses = [];
  const fetchImpl = async (...args) => {
    const res = await fetch(...args);
    statuses.push(res.status);
    return res;
  };
  return { statuses, fetch: fetchImpl };
}

const key = () => `sk-node-${randomUUID()}`;
const openai = (base, maxRetries = 0) => {
  const r = recorder();
  return [new OpenAI({ apiKey: key(), baseURL: `${base}/v1`, maxRetries, fetch: r.fetch }), r];
};
const anthropic = (base, maxRetries = 0) => {
  const r = recorder();
  return [new Anthropic({ apiKey: key(), baseURL: base, maxRetries, fetch: r.fetch }), r];
};

// Fails if `promise` has not settled within `ms` (an SDK sleeping through a day-long
// Retry-After would otherwise hang).
function deadline(promise, ms) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

const checks = {
  async openaiChatJson() {
    const [c, r] = openai(ROOMY);
    const { data, response } = await c.chat.completions
      .create({ model: MODEL, messages: MESSAGES, max_tokens: 60 })
      .withResponse();
    assert.equal(response.headers.get('x-distill-guard-demo'), '1');
    assert.equal(data.model, MODEL);
    const text = data.choices[0].message.content;
    prose(text);
    assert.equal(data.usage.completion_tokens, tokens(text));
    assert.equal(response.headers.get('x-ratelimit-remaining-requests'), '49');
    assert.match(response.headers.get('x-ratelimit-reset-requests'), /^(\d+h)?(\d+m)?\d+(ms|s)$/);
    assert.deepEqual(r.statuses, [200]);
  },
  async openaiChatStream() {
    const [c] = openai(ROOMY);
    const stream = await c.chat.completions.create({
      model: MODEL,
      messages: MESSAGES,
      max_tokens: 60,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let usage = null;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      for (const ch of chunk.choices) text += ch.delta.content ?? '';
    }
    prose(text);
    assert.equal(usage.completion_tokens, tokens(text));
  },
  async openaiResponsesJsonAndStream() {
    const [c] = openai(ROOMY);
    const r = await c.responses.create({ model: MODEL, input: 'Parsers?', max_output_tokens: 40 });
    prose(r.output_text);
    assert.equal(r.usage.output_tokens, tokens(r.output_text));
    const stream = await c.responses.create({
      model: MODEL,
      input: 'Parsers?',
      max_output_tokens: 40,
      stream: true,
    });
    let text = '';
    let done = null;
    for await (const ev of stream) {
      if (ev.type === 'response.output_text.delta') text += ev.delta;
      if (ev.type === 'response.completed') done = ev.response;
    }
    prose(text);
    assert.equal(done.usage.output_tokens, tokens(text));
  },
  async openaiRateLimitError() {
    const [c, r] = openai(SLOW);
    await c.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: 20 });
    const e = await c.chat.completions
      .create({ model: MODEL, messages: MESSAGES, max_tokens: 20 })
      .then(() => null, (err) => err);
    assert.ok(e instanceof OpenAI.RateLimitError, String(e));
    assert.equal(e.status, 429);
    assert.equal(e.code, 'rate_limit_exceeded');
    assert.equal(e.type, 'requests');
    assert.ok(Number(e.headers.get('retry-after-ms')) > 0);
    assert.deepEqual(r.statuses, [200, 429]);
  },
  async openaiRetryHonoursRetryAfter() {
    const [c, r] = openai(TIGHT, 2);
    await c.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: 20 });
    const done = await c.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: 20 });
    prose(done.choices[0].message.content);
    assert.deepEqual(r.statuses, [200, 429, 200]);
  },
  async openaiBadRequestNotRetried() {
    const [c, r] = openai(SLOW, 2);
    const e = await c.chat.completions
      .create({ model: MODEL, messages: MESSAGES, max_tokens: 100000 })
      .then(() => null, (err) => err);
    assert.ok(e instanceof OpenAI.BadRequestError, String(e));
    assert.deepEqual(r.statuses, [400]);
  },
  async openaiDayLongWaitNotRetried() {
    const [c, r] = openai(DAILY, 2);
    await c.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: 20 });
    const e = await deadline(
      c.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: 20 }),
      30000,
    ).then(() => null, (err) => err);
    assert.ok(e instanceof OpenAI.RateLimitError, String(e));
    assert.equal(e.headers.get('x-should-retry'), 'false');
    assert.deepEqual(r.statuses, [200, 429]);
  },
  async anthropicMessagesJson() {
    const [c, r] = anthropic(ROOMY);
    const { data, response } = await c.messages
      .create({ model: MODEL, max_tokens: 60, messages: MESSAGES })
      .withResponse();
    const text = data.content[0].text;
    prose(text);
    assert.equal(data.usage.output_tokens, tokens(text));
    assert.equal(response.headers.get('anthropic-ratelimit-requests-remaining'), '49');
    assert.ok(!Number.isNaN(Date.parse(response.headers.get('anthropic-ratelimit-requests-reset'))));
    assert.deepEqual(r.statuses, [200]);
  },
  async anthropicMessagesStream() {
    const [c] = anthropic(ROOMY);
    const stream = c.messages.stream({ model: MODEL, max_tokens: 60, messages: MESSAGES });
    let text = '';
    stream.on('text', (t) => {
      text += t;
    });
    const final = await stream.finalMessage();
    prose(text);
    assert.equal(final.content[0].text, text);
    assert.equal(final.usage.output_tokens, tokens(text));
  },
  async anthropicRateLimitError() {
    const [c, r] = anthropic(SLOW);
    await c.messages.create({ model: MODEL, max_tokens: 20, messages: MESSAGES });
    const e = await c.messages
      .create({ model: MODEL, max_tokens: 20, messages: MESSAGES })
      .then(() => null, (err) => err);
    assert.ok(e instanceof Anthropic.RateLimitError, String(e));
    assert.equal(e.status, 429);
    assert.equal(e.error.type, 'error');
    assert.equal(e.error.error.type, 'rate_limit_error');
    assert.deepEqual(r.statuses, [200, 429]);
  },
  async anthropicRetryHonoursRetryAfter() {
    const [c, r] = anthropic(TIGHT, 2);
    await c.messages.create({ model: MODEL, max_tokens: 20, messages: MESSAGES });
    const m = await c.messages.create({ model: MODEL, max_tokens: 20, messages: MESSAGES });
    prose(m.content[0].text);
    assert.deepEqual(r.statuses, [200, 429, 200]);
  },
  async anthropicDayLongWaitNotRetried() {
    const [c, r] = anthropic(DAILY, 2);
    await c.messages.create({ model: MODEL, max_tokens: 20, messages: MESSAGES });
    const e = await deadline(
      c.messages.create({ model: MODEL, max_tokens: 20, messages: MESSAGES }),
      30000,
    ).then(() => null, (err) => err);
    assert.ok(e instanceof Anthropic.RateLimitError, String(e));
    assert.equal(e.headers.get('x-should-retry'), 'false');
    assert.deepEqual(r.statuses, [200, 429]);
  },
  async taggedResponsesParse() {
    const tag = /^dg1\.k1\./;
    const [o] = openai(TAGGED);
    const { data, response } = await o.chat.completions
      .create({ model: MODEL, messages: MESSAGES, max_tokens: 40 })
      .withResponse();
    prose(data.choices[0].message.content);
    assert.match(response.headers.get('x-distill-guard-tag'), tag);
    assert.equal(data.distill_guard.tag, response.headers.get('x-distill-guard-tag'));
    const stream = await o.chat.completions.create({
      model: MODEL,
      messages: MESSAGES,
      max_tokens: 40,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let usage = null;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      for (const ch of chunk.choices) text += ch.delta.content ?? '';
    }
    prose(text);
    assert.ok(usage.completion_tokens > 0);
    const r = await o.responses.create({ model: MODEL, input: 'Parsers?', max_output_tokens: 40 });
    prose(r.output_text);
    const [a] = anthropic(TAGGED);
    const m = await a.messages.create({ model: MODEL, max_tokens: 40, messages: MESSAGES });
    prose(m.content[0].text);
    const s = a.messages.stream({ model: MODEL, max_tokens: 40, messages: MESSAGES });
    let streamed = '';
    s.on('text', (t) => {
      streamed += t;
    });
    const final = await s.finalMessage();
    prose(streamed);
    assert.equal(final.content[0].text, streamed);
  },
};

let failed = 0;
for (const [name, check] of Object.entries(checks)) {
  try {
    await check();
    console.log(`ok ${name}`);
  } catch (err) {
    failed += 1;
    console.log(`FAIL ${name}: ${err?.stack ?? err}`);
  }
}
console.log(`${Object.keys(checks).length - failed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
