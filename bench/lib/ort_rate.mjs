// The matmul rate onnxruntime-node reaches on this machine: the plain exported model (no
// instrumentation), batch B x S tokens, best of `reps` runs after one warm-up, with the same
// session options the engine uses (graph optimisation 'all', one intra-op thread per core
// unless given, as src/runtime/session.ts). Prints one JSON line: {bestMs, runsMs, flops (bench/lib/flops.mjs, dense attention,
// logits at every position), flopPerS (best wall), flopPerCpuS (mean CPU time of the process,
// all threads: a figure that holds up when other processes share the cores)}.
// Args: <model.onnx> <config.json> [B=64] [S=12] [reps=4] [threads=0]
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { createRequire } from 'node:module';
import { forwardFlops } from './flops.mjs';

const require = createRequire(import.meta.url);
const ort = require('onnxruntime-node');
const [file, cfgFile, B = '64', S = '12', reps = '4', threads = '0'] = process.argv.slice(2);
const cfg = JSON.parse(readFileSync(cfgFile, 'utf8'));
const b = Number(B);
const s = Number(S);
const session = await ort.InferenceSession.create(file, {
  executionProviders: ['cpu'],
  graphOptimizationLevel: 'all',
  logSeverityLevel: 3,
  intraOpNumThreads: Number(threads) || availableParallelism(),
});
const ids = BigInt64Array.from({ length: b * s }, (_, i) => BigInt((i * 7919) % (cfg.vocab - 1)));
const feeds = {
  input_ids: new ort.Tensor('int64', ids, [b, s]),
  attention_mask: new ort.Tensor('int64', new BigInt64Array(b * s).fill(1n), [b, s]),
};
await session.run(feeds);
const runsMs = [];
const cpu0 = process.cpuUsage();
for (let i = 0; i < Number(reps); i++) {
  const t = performance.now();
  await session.run(feeds);
  runsMs.push(performance.now() - t);
}
const cpu1 = process.cpuUsage(cpu0);
const cpuSPerRun = (cpu1.user + cpu1.system) / 1e6 / runsMs.length; // all threads of this process
const bestMs = Math.min(...runsMs);
const flops = b * forwardFlops(cfg, s, { dense: true });
process.stdout.write(`${JSON.stringify({ batch: b, seq: s, bestMs, runsMs, flops, flopPerS: flops / (bestMs / 1000), cpuSPerRun, flopPerCpuS: flops / cpuSPerRun })}\n`);
