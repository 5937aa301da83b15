// Loopback load test of a running `jtune serve` (bench/serve/run.sh starts one and calls this).
// Plain fetch and server-sent events, no dependencies. Prints one JSON object.
//   node load.mjs URL MODEL SERVER_PID [seconds=30] [clients=32] [max_tokens=32]
const [url, model, pidArg, secondsArg = '30', clientsArg = '32', tokensArg = '32'] = process.argv.slice(2);
const pid = Number(pidArg), seconds = Number(secondsArg), clients = Number(clientsArg), maxTokens = Number(tokensArg);
import { readFileSync } from 'node:fs';

const QUESTIONS = ['What is the difference between mean and median?', 'Why do we split data into train and test sets?',
  'What is overfitting?', 'Explain cross-validation in two sentences.', 'What does a p-value measure?',
  'When is the median better than the mean?', 'What is a confusion matrix?', 'What is gradient descent?'];

function rssMiB() {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
  return m ? Number(m[1]) / 1024 : NaN;
}

/** One streamed chat request: its text, tokens, time to first token and duration (ms); status on failure. */
async function request(question, stream = true) {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: question }], max_tokens: maxTokens, temperature: 0,
      stream, stream_options: stream ? { include_usage: true } : undefined }),
  });
  if (res.status !== 200) return { ok: false, status: res.status };
  if (!stream) {
    const j = await res.json();
    return { ok: true, text: j.choices[0].message.content, tokens: j.usage.completion_tokens, ms: performance.now() - t0 };
  }
  let text = '', ttft = null, tokens = 0, done = false, buf = '';
  const decoder = new TextDecoder();
  for await (const part of res.body) {
    buf += decoder.decode(part, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const ev = buf.slice(0, i); buf = buf.slice(i + 2);
      if (!ev.startsWith('data: ')) continue;
      const data = ev.slice(6);
      if (data === '[DONE]') { done = true; continue; }
      const j = JSON.parse(data);
      if (j.error) return { ok: false, status: 'stream-error' };
      if (j.usage) tokens = j.usage.completion_tokens;
      const c = j.choices[0]?.delta?.content;
      if (c) { if (ttft === null) ttft = performance.now() - t0; text += c; }
    }
  }
  return done ? { ok: true, text, tokens, ttft, ms: performance.now() - t0 } : { ok: false, status: 'no [DONE]' };
}

function pct(v, p) {
  if (v.length === 0) return NaN;
  const s = [...v].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p / 100 * s.length))];
}

/** `n` clients, each sending requests back to back for `secs` seconds. */
async function phase(n, secs) {
  const end = performance.now() + secs * 1000, results = [], rss = [];
  const sampler = setInterval(() => rss.push(rssMiB()), 1000);
  const t0 = performance.now();
  await Promise.all(Array.from({ length: n }, async (_, c) => {
    for (let k = 0; performance.now() < end; k++) {
      try { results.push(await request(QUESTIONS[(c + k) % QUESTIONS.length])); }
      catch (e) { results.push({ ok: false, status: String(e) }); }
    }
  }));
  const wall = (performance.now() - t0) / 1000;
  clearInterval(sampler);
  const ok = results.filter(r => r.ok), tokens = ok.reduce((a, r) => a + r.tokens, 0), ttft = ok.map(r => r.ttft);
  const q = Math.max(1, Math.floor(rss.length / 4));
  return { clients: n, seconds: +wall.toFixed(1), requests: results.length, failed: results.length - ok.length,
    tokens_per_s: +(tokens / wall).toFixed(1), requests_per_s: +(ok.length / wall).toFixed(2),
    ttft_p50_ms: +pct(ttft, 50).toFixed(0), ttft_p99_ms: +pct(ttft, 99).toFixed(0),
    rss_mib_first_quarter: +Math.max(...rss.slice(0, q)).toFixed(0), rss_mib_last_quarter: +Math.max(...rss.slice(-q)).toFixed(0) };
}

const out = {};
// warm-up: the JIT and LibTorch's first ops
for (const q of QUESTIONS) await request(q, false);
// the done-when check: 8 greedy requests one at a time, then the same 8 at once
let t = performance.now();
const alone = [];
for (const q of QUESTIONS) alone.push((await request(q, false)).text);
const sequentialS = (performance.now() - t) / 1000;
t = performance.now();
const together = await Promise.all(QUESTIONS.map(q => request(q, false)));
const concurrentS = (performance.now() - t) / 1000;
out.greedy8 = { sequential_s: +sequentialS.toFixed(2), concurrent_s: +concurrentS.toFixed(2), ratio: +(concurrentS / sequentialS).toFixed(3),
  same_answers: together.every((r, i) => r.ok && r.text === alone[i]) };
out.one_at_a_time = await phase(1, seconds);
out.concurrent = await phase(clients, seconds);
out.throughput_ratio = +(out.concurrent.tokens_per_s / out.one_at_a_time.tokens_per_s).toFixed(2);
// SIGTERM under load: every request the server accepted (status 200) must finish with [DONE]
const inflight = Array.from({ length: clients }, (_, c) => request(QUESTIONS[c % QUESTIONS.length]).catch(e => ({ ok: false, status: String(e) })));
await new Promise(r => setTimeout(r, 500));
process.kill(pid, 'SIGTERM');
const drained = await Promise.all(inflight);
out.sigterm = { requests: clients, finished: drained.filter(r => r.ok).length,
  refused_503: drained.filter(r => r.status === 503).length,
  lost: drained.filter(r => !r.ok && r.status !== 503).map(r => r.status) };
console.log(JSON.stringify(out, null, 2));
