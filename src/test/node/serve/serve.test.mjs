// The official OpenAI Node client against a running `jtune serve`, started by dev.jtune.serve.OpenAiClientTest with:
//   JTUNE_URL      http://127.0.0.1:PORT/v1
//   JTUNE_KEY      the server's --api-key
//   JTUNE_BASE     the base model's id;  JTUNE_ADAPTER  a LoRA adapter's id
//   JTUNE_PID      the server's process id (the last test sends it SIGTERM)
//   JTUNE_MAX_BODY the server's --max-body in bytes;  JTUNE_MAX_RUNNING  --max-batch + --max-queue;  JTUNE_MAX_QUEUE  --max-queue
// Tests run in order (node:test runs a file's tests one after another); the last one drains the server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import OpenAI from 'openai';

const baseURL = process.env.JTUNE_URL;
const apiKey = process.env.JTUNE_KEY;
const BASE = process.env.JTUNE_BASE;
const ADAPTER = process.env.JTUNE_ADAPTER;
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 120_000 });
const QUESTIONS = ['Hello', 'What is cross-validation?', 'Name three rivers.', 'ok', 'Why is the sky blue?',
  'Tell me a story about a cat.', 'What is 2 + 2?', 'Translate "good morning" to French.'];

function greedy(content, model = BASE, extra = {}) {
  return { model, messages: [{ role: 'user', content }], max_tokens: 8, temperature: 0, ...extra };
}

function metrics() {
  return execFileSync('curl', ['-sf', baseURL.replace(/\/v1$/, '/metrics')], { encoding: 'utf8' });
}

function counter(text, name, labels) {
  const line = text.split('\n').find(l => l.startsWith(name + '{') && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)));
  return line ? Number(line.split(' ').pop()) : 0;
}

async function expectError(promise, status, param) {
  await assert.rejects(promise, err => {
    assert.equal(err.status, status, String(err));
    assert.ok(err.error && typeof err.error.message === 'string', 'OpenAI error shape: ' + JSON.stringify(err.error));
    assert.ok('type' in err.error && 'code' in err.error && 'param' in err.error, JSON.stringify(err.error));
    if (param !== undefined) assert.equal(err.error.param, param);
    assert.ok(!/\tat |Exception/.test(err.error.message), 'no stack trace: ' + err.error.message);
    return true;
  });
}

test('lists the base model and the adapter', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.deepEqual(ids, [BASE, ADAPTER]);
});

test('chat completion: an answer, a finish reason and usage', async () => {
  const r = await client.chat.completions.create(greedy('Hello'));
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.model, BASE);
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.ok(r.choices[0].message.content.length > 0);
  assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
  assert.ok(r.usage.prompt_tokens > 0 && r.usage.completion_tokens > 0 && r.usage.completion_tokens <= 8);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  const again = await client.chat.completions.create(greedy('Hello', BASE, { max_completion_tokens: 8, max_tokens: undefined }));
  assert.equal(again.choices[0].message.content, r.choices[0].message.content, 'greedy is deterministic; max_completion_tokens works');
  const adapted = await client.chat.completions.create(greedy('Hello', ADAPTER));
  assert.equal(adapted.model, ADAPTER);
  assert.notEqual(adapted.choices[0].message.content, r.choices[0].message.content, 'the adapter answers differently');
});

test('streaming gives the same text as one response, ending in [DONE], usage on request', async () => {
  const whole = await client.chat.completions.create(greedy('What is cross-validation?'));
  const stream = await client.chat.completions.create({ ...greedy('What is cross-validation?'), stream: true, stream_options: { include_usage: true } });
  let text = '', finish = null, usage = null, chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.delta.content ?? '';
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.ok(chunks >= 3, 'several chunks: ' + chunks);
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(finish, whole.choices[0].finish_reason);
  assert.deepEqual(usage, whole.usage);
});

test('completions: plain prompt, stop string, seeded sampling', async () => {
  const r = await client.completions.create({ model: BASE, prompt: 'Once upon a time', max_tokens: 8, temperature: 0 });
  assert.equal(r.object, 'text_completion');
  assert.ok(r.choices[0].text.length > 0);
  const cut = r.choices[0].text.slice(2, 5);
  const stopped = await client.completions.create({ model: BASE, prompt: 'Once upon a time', max_tokens: 8, temperature: 0, stop: [cut] });
  assert.equal(stopped.choices[0].finish_reason, 'stop');
  assert.equal(stopped.choices[0].text, r.choices[0].text.slice(0, r.choices[0].text.indexOf(cut)));
  const s1 = await client.completions.create({ model: BASE, prompt: 'Once', max_tokens: 8, temperature: 1, top_p: 0.9, seed: 42 });
  const s2 = await client.completions.create({ model: BASE, prompt: 'Once', max_tokens: 8, temperature: 1, top_p: 0.9, seed: 42 });
  assert.equal(s1.choices[0].text, s2.choices[0].text, 'same seed, same sample');
  const streamed = await client.completions.create({ model: BASE, prompt: 'Once upon a time', max_tokens: 8, temperature: 0, stream: true });
  let text = '';
  for await (const chunk of streamed) text += chunk.choices[0]?.text ?? '';
  assert.equal(text, r.choices[0].text);
});

test('8 concurrent greedy requests give the one-at-a-time answers', async () => {
  const alone = [];
  const t0 = performance.now();
  for (const q of QUESTIONS) alone.push((await client.chat.completions.create(greedy(q, q.length % 2 ? ADAPTER : BASE))).choices[0].message.content);
  const sequential = performance.now() - t0;
  const t1 = performance.now();
  const together = await Promise.all(QUESTIONS.map(q => client.chat.completions.create(greedy(q, q.length % 2 ? ADAPTER : BASE))));
  const concurrent = performance.now() - t1;
  assert.deepEqual(together.map(r => r.choices[0].message.content), alone);
  console.log(`# 8 requests: one at a time ${sequential.toFixed(0)} ms, concurrently ${concurrent.toFixed(0)} ms (ratio ${(concurrent / sequential).toFixed(2)})`);
});

test('errors: 400 names the parameter, 401, 404, 413, 429, in OpenAI shape', async () => {
  await expectError(client.chat.completions.create(greedy('x', BASE, { top_p: 5 })), 400, 'top_p');
  await expectError(client.chat.completions.create(greedy('x', BASE, { temperature: 'hot' })), 400, 'temperature');
  await expectError(client.chat.completions.create(greedy('x', BASE, { max_tokens: 0 })), 400, 'max_tokens');
  await expectError(client.chat.completions.create(greedy('x', BASE, { n: 2 })), 400, 'n');
  await expectError(client.chat.completions.create({ model: BASE, messages: [] }), 400, 'messages');
  await expectError(client.chat.completions.create({ model: BASE, messages: [{ role: 'wizard', content: 'x' }] }), 400, 'messages[0].role');
  await expectError(new OpenAI({ baseURL, apiKey: 'wrong', maxRetries: 0 }).models.list(), 401);
  await expectError(new OpenAI({ baseURL, apiKey: apiKey + 'x', maxRetries: 0 }).chat.completions.create(greedy('x')), 401);
  await expectError(client.chat.completions.create(greedy('x', 'no-such-model')), 404, 'model');
  await expectError(client.chat.completions.create(greedy('y'.repeat(Number(process.env.JTUNE_MAX_BODY) + 1))), 413);
  // more long requests at once than the batch and the queue hold: the rest are refused with 429, none fails otherwise
  const n = Number(process.env.JTUNE_MAX_RUNNING) + 6;
  const results = await Promise.allSettled(Array.from({ length: n }, (_, i) =>
    client.chat.completions.create(greedy('Question ' + i, BASE, { max_tokens: 48 }))));
  const refused = results.filter(r => r.status === 'rejected');
  assert.ok(refused.length >= 1, 'some requests get 429');
  for (const r of refused) assert.equal(r.reason.status, 429, String(r.reason));
  assert.equal(refused[0].reason.error.code, 'queue_full');
  assert.ok(results.some(r => r.status === 'fulfilled'));
});

test('a client that disconnects cancels its generation', async () => {
  const before = counter(metrics(), 'jtune_requests_total', { model: BASE, status: 'cancelled' });
  const controller = new AbortController();
  const stream = await client.chat.completions.create({ ...greedy('Tell me everything', BASE, { max_tokens: 60 }), stream: true },
    { signal: controller.signal });
  let chunks = 0;
  try {
    for await (const chunk of stream) {
      chunks++;
      if (chunk.choices[0]?.delta?.content) controller.abort();   // ends the iteration (or throws, by client version)
    }
  } catch (e) {
    assert.equal(e.name, 'APIUserAbortError', String(e));
  }
  assert.ok(chunks >= 1);
  let after = before;
  for (let i = 0; i < 100 && after === before; i++) {
    await new Promise(r => setTimeout(r, 100));
    after = counter(metrics(), 'jtune_requests_total', { model: BASE, status: 'cancelled' });
  }
  assert.equal(after, before + 1, 'the server counted the cancelled request');
});

test('curl /metrics: Prometheus text with requests, latencies, tokens, batch, queue and KV cache', async () => {
  const text = metrics();
  assert.ok(counter(text, 'jtune_requests_total', { model: BASE, status: '200' }) >= 10);
  for (const status of ['400', '401', '404', '413', '429']) assert.ok(text.includes(`status="${status}"`), status);
  for (const name of ['jtune_time_to_first_token_seconds_bucket', 'jtune_inter_token_latency_seconds_bucket',
    'jtune_request_duration_seconds_count', 'jtune_prompt_tokens_total', 'jtune_generation_tokens_total',
    'jtune_running_requests', 'jtune_waiting_requests', 'jtune_kv_cache_bytes', 'jtune_kv_cache_budget_bytes']) {
    assert.ok(text.includes(name), name);
  }
  assert.ok(counter(text, 'jtune_generation_tokens_total', { model: ADAPTER }) > 0);
  const health = execFileSync('curl', ['-sf', baseURL.replace(/\/v1$/, '/health')], { encoding: 'utf8' });
  assert.equal(JSON.parse(health).status, 'ok');
});

test('SIGTERM under load: every accepted request finishes, new ones get 503, the server exits 0', async () => {
  // as many as the batch holds (all arrive while a step runs: the queue must hold them too)
  const questions = QUESTIONS.slice(0, Math.min(Number(process.env.JTUNE_MAX_QUEUE), QUESTIONS.length));
  const started = [];
  let failed = null;
  const runs = questions.map((q, i) => (async () => {
    const stream = await client.chat.completions.create({ ...greedy(q, i % 2 ? ADAPTER : BASE, { max_tokens: 48 }), stream: true });
    let text = '', finish = null, first = true;
    for await (const chunk of stream) {
      if (first) { started.push(i); first = false; }
      text += chunk.choices[0]?.delta?.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    return { text, finish };
  })().catch(e => { failed = e; throw e; }));
  while (started.length < questions.length && !failed) await new Promise(r => setTimeout(r, 20));
  if (failed) throw failed;
  process.kill(Number(process.env.JTUNE_PID), 'SIGTERM');
  await new Promise(r => setTimeout(r, 200));
  await expectError(client.chat.completions.create(greedy('too late')), 503);
  const done = await Promise.all(runs);
  for (const d of done) assert.ok(['stop', 'length'].includes(d.finish), JSON.stringify(d));
});
