// llama.cpp's greedy decoding speed on a GGUF file, the peer of `jtune bench --generate` (bench/decode/run.sh runs
// both on the same weights). node-llama-cpp's linux-x64 prebuilt binary only: nothing is built or downloaded.
//
// Same workload as jtune's DecodeBench: for each batch size B, B prompts of --prompt-tokens ids drawn exactly as
// jtune draws them (java.util.Random(seed + row).nextInt(vocab - 1) + 1), --new-tokens greedy tokens per row, no EOS
// stop. Decode time excludes the prompt: each batch is timed generating N tokens and generating 1, the difference is
// N - 1 decode steps (as jtune). B sequences of one context decode together (node-llama-cpp batches the sequences'
// pending tokens into one llama_decode per step).
//
// usage: node decode.mjs --gguf FILE [--batch 1,8] [--prompt-tokens 16] [--new-tokens 64] [--threads 2] [--seed 0] [--repeats 1]
// prints one JSON document.
import {getLlama, LlamaLogLevel} from "node-llama-cpp";
import fs from "node:fs";

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
    if (a.startsWith("--")) acc.push([a.slice(2), all[i + 1]]);
    return acc;
}, []));
if (!args.gguf || !fs.existsSync(args.gguf)) {
    console.error(`--gguf: no file ${args.gguf}`);
    process.exit(2);
}
const batches = (args.batch ?? "1,8").split(",").map(Number);
const promptTokens = Number(args["prompt-tokens"] ?? 16);
const newTokens = Number(args["new-tokens"] ?? 64);
const threads = Number(args.threads ?? 2);
const seed = BigInt(args.seed ?? 0);
const repeats = Number(args.repeats ?? 1);

// java.util.Random, to draw jtune's prompts
class JavaRandom {
    constructor(s) { this.s = (BigInt(s) ^ 0x5DEECE66Dn) & ((1n << 48n) - 1n); }
    next(bits) {
        this.s = (this.s * 0x5DEECE66Dn + 0xBn) & ((1n << 48n) - 1n);
        return Number(BigInt.asIntN(32, this.s >> BigInt(48 - bits)));
    }
    nextInt(bound) {
        let r = this.next(31);
        const m = bound - 1;
        if ((bound & m) === 0) return Number((BigInt(bound) * BigInt(r)) >> 31n);
        for (let u = r; ((u - (r = u % bound) + m) | 0) < 0; u = this.next(31)) ;
        return r;
    }
}
function prompts(b, n, vocab) {
    const out = [];
    for (let i = 0; i < b; i++) {
        const r = new JavaRandom(seed + BigInt(i));
        out.push(Array.from({length: n}, () => 1 + r.nextInt(vocab - 1)));
    }
    return out;
}

const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath: args.gguf, gpuLayers: 0, useMmap: true});
const vocab = Number(model.fileInfo.tensorInfo.find(t => t.name === "token_embd.weight").dimensions[1]);   // (D, V) innermost first

let seqs = [];
async function generate(ps, n) {
    for (const s of seqs.slice(0, ps.length)) await s.clearHistory();
    return await Promise.all(ps.map(async (p, i) => {
        const out = [];
        for await (const t of seqs[i].evaluate(p, {temperature: 0})) {
            out.push(t);
            if (out.length >= n) break;
        }
        return out;
    }));
}

const results = [];
const maxB = Math.max(...batches);
const context = await model.createContext({contextSize: maxB * (promptTokens + newTokens + 8), sequences: maxB, threads,
    batchSize: Math.max(512, maxB * promptTokens), flashAttention: false});
seqs = Array.from({length: maxB}, () => context.getSequence());
await generate(prompts(1, Math.min(4, promptTokens), vocab), 3);   // warm-up
for (const b of batches) {
    const ps = prompts(b, promptTokens, vocab);
    let best = Infinity, rows0 = null;
    const runs = [];
    for (let r = 0; r < Math.max(1, repeats); r++) {
        const t0 = process.hrtime.bigint();
        await generate(ps, 1);
        const t1 = process.hrtime.bigint();
        const g = await generate(ps, newTokens);
        const t2 = process.hrtime.bigint();
        const decode = Math.max(1e-9, Number((t2 - t1) - (t1 - t0)) / 1e9);
        runs.push(b * (newTokens - 1) / decode);
        best = Math.min(best, decode);
        rows0 = g[0];
    }
    results.push({batch: b, decodeSeconds: best, steps: newTokens - 1, tokensPerSecond: b * (newTokens - 1) / best,
        weightGBPerSecond: fs.statSync(args.gguf).size * ((newTokens - 1) / best) / 1e9, runsTokensPerSecond: runs, row0: rows0});
    console.error(`llama.cpp batch ${b}: ${results.at(-1).tokensPerSecond.toFixed(2)} tokens/s (load ${fs.readFileSync("/proc/loadavg", "utf8").trim()})`);   // partial results survive a killed run
}
console.log(JSON.stringify({model: args.gguf, threads, vocab, promptTokens, newTokens, batches: results,
    load: fs.readFileSync("/proc/loadavg", "utf8").trim()}));
await context.dispose();
await model.dispose();
