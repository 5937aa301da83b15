// Loads GGUF files in llama.cpp (node-llama-cpp's prebuilt linux-x64 binary, CPU only, never built or downloaded
// here) and parses them with @huggingface/gguf, for jtune's export tests.
//
// usage: node check.mjs request.json > result.json
// request: {"jobs": [{"gguf": path, "parse": bool (default true), "lora": path?, "texts": [str], "logitTokens": [id], "logitPositions": n,
//                     "greedyPrompt": [id], "greedyCount": n, "nllTokens": [id]}]}
// result:  {"jobs": [{"metadata": {key: {type, value}}, "tensors": [{name, shape, dtype}], "lora": {metadata, tensors}?,
//                     "tokens": [[id]],
//                     "logProbs": [[float]], "greedy": [id], "nll": float}]}
import {readFileSync} from "node:fs";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";
import {gguf} from "@huggingface/gguf";

const request = JSON.parse(readFileSync(process.argv[2], "utf8"));
const llama = await getLlama({gpu: false, build: "never", usePrebuiltBinaries: true, skipDownload: true,
    progressLogs: false, logLevel: LlamaLogLevel.error});

const plain = (v) => typeof v === "bigint" ? Number(v) : Array.isArray(v) ? v.map(plain) : v;

async function parse(path) {
    const {typedMetadata, tensorInfos} = await gguf(path, {allowLocalFile: true, typedMetadata: true});
    const metadata = {};
    for (const [k, v] of Object.entries(typedMetadata)) {
        metadata[k] = {type: v.type, subType: v.subType, value: plain(v.value)};
    }
    const tensors = tensorInfos.map(t => ({name: t.name, shape: t.shape.map(Number), dtype: t.dtype}));
    return {metadata, tensors};
}

/** The whole softmax, untruncated: temperature 1 and no top-k/top-p/min-p cut. */
const FULL = {temperature: 1, topK: 1 << 30, topP: 1, minP: 0};

/** log p(id) of every vocabulary id after each of the first `positions` tokens (node-llama-cpp 3.21 reports
 * probabilities, not raw logits; log-softmax is what a comparison of logits means up to a shared shift). */
async function logProbs(context, tokens, positions) {
    const seq = context.getSequence();
    const input = tokens.map((t, i) => i < positions ? [t, {generateNext: {probabilities: true, options: FULL}}] : t);
    const out = await seq.controlledEvaluate(input);
    const rows = [];
    for (let i = 0; i < positions; i++) {
        const m = out[i].next.probabilities;
        const row = new Array(m.size);
        for (const [id, p] of m) row[id] = Math.log(p);
        rows.push(row);
    }
    seq.dispose();
    return rows;
}

/** Mean negative log-likelihood (nats) of tokens[1..] given the previous ones, from the probabilities llama.cpp reports. */
async function nll(context, tokens) {
    const seq = context.getSequence();
    const input = tokens.map((t, i) => i < tokens.length - 1 ? [t, {generateNext: {probabilities: true, options: FULL}}] : t);
    const out = await seq.controlledEvaluate(input);
    let sum = 0;
    for (let i = 0; i < tokens.length - 1; i++) sum -= Math.log(out[i].next.probabilities.get(tokens[i + 1]));
    seq.dispose();
    return sum / (tokens.length - 1);
}

async function greedy(context, prompt, count) {
    const seq = context.getSequence();
    const out = [];
    for await (const t of seq.evaluate(prompt, {temperature: 0})) {
        out.push(t);
        if (out.length >= count) break;
    }
    seq.dispose();
    return out;
}

const results = [];
for (const job of request.jobs) {
    const r = job.parse === false ? {} : await parse(job.gguf);
    if (job.lora) r.lora = await parse(job.lora);
    const model = await llama.loadModel({modelPath: job.gguf, gpuLayers: 0});
    r.tokens = (job.texts ?? []).map(t => Array.from(model.tokenize(t, false)));
    // One sequence per kind of check (a disposed sequence is not handed out again). An f32 KV cache: llama.cpp's
    // default f16 cache would add its own rounding to the comparison with jtune.
    const contextOptions = {contextSize: 512, batchSize: 512, threads: 2, sequences: 3,
        experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32"};
    if (job.lora) contextOptions.lora = {adapters: [{filePath: job.lora, scale: 1}]};
    const context = await model.createContext(contextOptions);
    if (job.logitTokens) r.logProbs = await logProbs(context, job.logitTokens, job.logitPositions);
    if (job.greedyPrompt) r.greedy = await greedy(context, job.greedyPrompt, job.greedyCount);
    if (job.nllTokens) r.nll = await nll(context, job.nllTokens);
    await context.dispose();
    await model.dispose();
    results.push(r);
}
process.stdout.write(JSON.stringify({jobs: results}));
await llama.dispose();
