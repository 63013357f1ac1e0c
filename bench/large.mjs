#!/usr/bin/env node
// Large-model bench (`npm run bench:large` = build, then this). Never part of `npm test`.
//
//   node bench/large.mjs [--only explorer|trace] [--runs N] [--keep] [--dir bench/models/large]
//
// 1. explorer: writes a LLaMA-7B-shaped fp16 export (6.74 B parameters, 13.5 GB of random
//    weights in model.onnx.data, every byte written) and measures the time from opening it to
//    the Layer Explorer's tree data three ways: in-process (openModel + summarize, the engine's
//    `open`), through the engine process (EngineClient -> dist/host.js, as the extension does),
//    and `mechanist inspect --json`. It checks that the weights are not read: bytes read from
//    the data file (fs calls counted) and by the process at all (/proc/<pid>/io rchar), and the
//    resident memory against the weights' size. Then a causal trace on it, which must be
//    refused at once for memory where its float16 weights, held as float32 on the CPU, cannot fit.
// 2. trace: writes a GPT-2-shaped fp32 export of 1.12 GB and runs `mechanist trace` on it,
//    measuring peak resident memory (/usr/bin/time %M) against weights + activations.
// Before both, the same generators at toy size are run through onnxruntime and discovery
// (the graphs must run and be recognised with the generator's numbers).
// The generated files are deleted afterwards unless --keep. Results: a table on stdout and
// bench/results/large-<date>.json (git-ignored).
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { benchArgs } from './lib/args.mjs';
import { bundleBenchScripts } from './lib/bundle.mjs';

const BENCH = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(BENCH, '..');
const BUILD = join(ROOT, 'out', 'bench');
const { flag, opt } = benchArgs();
const only = opt('only', 'all');
const RUNS = Number(opt('runs', 3));
const DIR = resolve(opt('dir', join(BENCH, 'models', 'large')));
const KEEP = flag('keep');
const TRACE = { prompt: 'The famous Golden Gate Bridge is located in the beautiful city of', subject: 'Golden Gate Bridge', samples: 5 };

const log = (s) => process.stderr.write(`[bench:large] ${s}\n`);
const GB = (b) => b / 1e9;
const MiB = (b) => b / 2 ** 20;
const fmt = (x, d = 2) => (x === undefined || x === null || Number.isNaN(x) ? '-' : Number(x).toFixed(d));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Runs a command; resolves with wall ms, stdout, stderr, exit code and peak resident set (KiB, /usr/bin/time %M); rejects on a non-zero exit unless `allowFail`. */
function measure(cmd, argv, { allowFail = false } = {}) {
  const timeOut = join(BUILD, `large-time-${process.pid}-${Date.now()}.txt`);
  return new Promise((res, rej) => {
    const t0 = performance.now();
    const child = spawn('/usr/bin/time', ['-f', '%M %U %S', '-o', timeOut, cmd, ...argv], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', rej);
    child.on('close', (code) => {
      const wallMs = performance.now() - t0;
      if (code !== 0 && !allowFail) return rej(new Error(`${cmd} ${argv.join(' ')} exited ${code}: ${err.slice(-2000)}`));
      const [kib, user, sys] = readFileSync(timeOut, 'utf8').trim().split('\n').pop().split(' ').map(Number);
      rmSync(timeOut, { force: true });
      res({ wallMs, out, err, code, peakKiB: kib, cpuS: user + sys });
    });
  });
}

async function bundle() {
  await bundleBenchScripts([join(BENCH, 'lib', 'large_models.ts'), join(BENCH, 'lib', 'large_child.ts')], BUILD);
  for (const f of ['cli.js', 'host.js']) if (!existsSync(join(ROOT, 'dist', f))) throw new Error(`dist/${f} is missing: run \`npm run bench:large\` (it builds first)`);
}

async function generate(config, dir) {
  const model = join(dir, 'model.onnx');
  if (existsSync(model) && existsSync(`${model}.data`)) {
    log(`${config}: reusing ${model}`);
    return { model, dataBytes: statSync(`${model}.data`).size, reused: true };
  }
  log(`${config}: writing ${dir} ...`);
  const r = await measure(process.execPath, [join(BUILD, 'large_models.js'), config, dir]);
  const info = JSON.parse(r.out);
  log(`${config}: ${fmt(GB(info.dataBytes))} GB of weights, ${(info.params / 1e9).toFixed(3)} B parameters, written in ${fmt(info.seconds, 1)} s`);
  return info;
}

const child = (model, extra = []) => measure(process.execPath, [join(BUILD, 'large_child.js'), model, ...extra]).then((r) => ({ ...JSON.parse(r.out), peakKiB: r.peakKiB, wallMs: r.wallMs }));

/** The toy-size generators: the graphs run in onnxruntime and are discovered with their numbers. */
async function preflight() {
  const want = { 'llama-tiny': { family: 'llama', layers: 2, heads: 4, dModel: 32 }, 'gpt2-tiny': { family: 'gpt2', layers: 2, heads: 4, dModel: 32 } };
  const out = {};
  for (const [config, w] of Object.entries(want)) {
    const dir = join(DIR, config);
    rmSync(dir, { recursive: true, force: true });
    await generate(config, dir);
    const r = await child(join(dir, 'model.onnx'), ['--run']);
    for (const k of Object.keys(w)) if (r[k] !== w[k]) throw new Error(`${config}: discovered ${k} ${r[k]}, generated ${w[k]} (${r.notices.join(' ')})`);
    if (!r.run?.finite) throw new Error(`${config}: the forward gave non-finite logits`);
    if (r.notices.length) throw new Error(`${config}: unexpected notices: ${r.notices.join(' ')}`);
    out[config] = { family: r.family, layers: r.layers, heads: r.heads, dModel: r.dModel, logits: r.run.logitsDims };
    rmSync(dir, { recursive: true, force: true });
  }
  log(`preflight: toy llama and gpt2 exports run in onnxruntime and are discovered with the generated numbers`);
  return out;
}

/** Opens the model through the engine process, as the extension does; cold = engine start included. */
async function viaEngine(model) {
  const require = createRequire(import.meta.url);
  const { EngineClient } = require(join(ROOT, 'out', 'bench', 'engine_client.js'));
  const client = new EngineClient(join(ROOT, 'dist', 'host.js'));
  try {
    const t0 = performance.now();
    const { pid } = await client.request('ping', {});
    const io0 = readFileSync(`/proc/${pid}/io`, 'utf8');
    const t1 = performance.now();
    const m = await client.request('open', { path: model });
    const t2 = performance.now();
    const io1 = readFileSync(`/proc/${pid}/io`, 'utf8');
    const rchar = (s) => Number(/rchar:\s+(\d+)/.exec(s)[1]);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (k) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(status)[1]);
    return { coldMs: t2 - t0, openMs: t2 - t1, rcharDelta: rchar(io1) - rchar(io0), hostRssKiB: kib('VmRSS'), hostPeakKiB: kib('VmHWM'), layers: m.layers, blocks: m.blocks.length };
  } finally {
    client.dispose();
  }
}

async function explorer() {
  const dir = join(DIR, 'llama7b');
  const info = await generate('llama7b', dir);
  const model = info.model;
  const weights = statSync(`${model}.data`).size;
  const runs = [];
  for (let i = 0; i < RUNS; i++) runs.push(await child(model));
  const engine = [];
  for (let i = 0; i < RUNS; i++) engine.push(await viaEngine(model));
  const cli = [];
  for (let i = 0; i < RUNS; i++) cli.push(await measure(process.execPath, [join(ROOT, 'bin', 'mechanist.js'), 'inspect', model, '--json']));
  const r = runs[0];
  const res = {
    model: { file: model, graphBytes: statSync(model).size, weightBytes: weights, params: r.paramCount, nodes: r.nodes, family: r.family, layers: r.layers, heads: r.heads, dModel: r.dModel, vocab: r.vocabSize, hookPoints: r.hookPoints },
    inProcessMs: median(runs.map((x) => x.ms.total)),
    inProcessPeakMiB: MiB(median(runs.map((x) => x.peakKiB * 1024))),
    dataBytesRead: Math.max(...runs.map((x) => x.dataBytesRead)),
    dataOpens: Math.max(...runs.map((x) => x.dataOpens)),
    rcharDelta: median(runs.map((x) => x.rcharDelta)),
    engineColdMs: median(engine.map((x) => x.coldMs)),
    engineOpenMs: median(engine.map((x) => x.openMs)),
    engineRcharDelta: median(engine.map((x) => x.rcharDelta)),
    enginePeakMiB: MiB(median(engine.map((x) => x.hostPeakKiB * 1024))),
    cliInspectMs: median(cli.map((x) => x.wallMs)),
    cliPeakMiB: MiB(median(cli.map((x) => x.peakKiB * 1024))),
    runs,
    engine,
  };
  if (r.family !== 'llama' || r.layers !== 32 || r.heads !== 32 || r.dModel !== 4096) throw new Error(`llama7b discovered as ${r.family} ${r.layers}x${r.heads} d ${r.dModel}`);
  res.trace = await traceTooLarge(dir, model, weights);
  if (!KEEP) rmSync(dir, { recursive: true, force: true });
  return res;
}

/**
 * A method on the 7B export where it cannot fit: on the CPU its float16 weights are held as
 * float32 (2 x 13.5 GB), more than this machine's memory. The trace must be refused at once
 * with the figures (src/runtime/memory.ts), not fail deep in onnxruntime or be killed by the
 * system. Skipped where the memory would suffice (the run would then take very long).
 */
async function traceTooLarge(dir, model, weights) {
  const meminfo = readFileSync('/proc/meminfo', 'utf8');
  const kib = (k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(meminfo)?.[1] ?? 0) * 1024;
  const available = kib('MemAvailable') + kib('SwapFree');
  if (2 * weights <= available) return { skipped: `${fmt(GB(available))} GB available: the trace would fit and run for long` };
  const { writeTokenizer } = createRequire(import.meta.url)(join(BUILD, 'large_models.js'));
  writeTokenizer(dir, 32000, `${TRACE.prompt} Paris London Rome`.split(' '));
  const argv = [join(ROOT, 'bin', 'mechanist.js'), 'trace', model, '--prompt', TRACE.prompt, '--subject', TRACE.subject, '--samples', '2', '--kind', 'residual', '--json', '--quiet'];
  log(`llama7b trace (expected: refused for memory): ${argv.slice(1).join(' ')}`);
  const r = await measure(process.execPath, argv, { allowFail: true });
  const refused = r.code === 1 && /out of memory/.test(r.err) && r.err.trim().split('\n').length === 1;
  if (!refused) throw new Error(`the 7B trace was not refused for memory (exit ${r.code}): ${r.err.slice(-1000)}`);
  return { availableGB: GB(available), wallMs: r.wallMs, peakMiB: MiB(r.peakKiB * 1024), exitCode: r.code, message: r.err.trim() };
}

async function trace() {
  // --trace-model gpt2-2g: the same measurement on a model over protobuf's 2 GB limit.
  const name = opt('trace-model', 'gpt2-1g');
  const dir = join(DIR, name);
  const info = await generate(name, dir);
  const { CONFIGS } = createRequire(import.meta.url)(join(BUILD, 'large_models.js'));
  const model = info.model;
  const words = `${TRACE.prompt} Paris London Rome`.split(' ');
  const { writeTokenizer } = createRequire(import.meta.url)(join(BUILD, 'large_models.js'));
  writeTokenizer(dir, 8192, words);
  const weights = statSync(`${model}.data`).size;
  const argv = [join(ROOT, 'bin', 'mechanist.js'), 'trace', model, '--prompt', TRACE.prompt, '--subject', TRACE.subject, '--samples', String(TRACE.samples), '--kind', 'residual', '--json', '--quiet'];
  log(`trace: ${argv.slice(1).join(' ')}`);
  const r = await measure(process.execPath, argv);
  const out = JSON.parse(r.out);
  const S = out.inputTokens.ids.length;
  const L = out.scores.length;
  // Activations of the largest batch onnxruntime holds at once: rows x tokens x the widest
  // per-layer intermediates (q/k/v 3d + MLP 4d + attention scores heads x S), float32, plus
  // the residual stream each restartable block hands on; a generous upper bound.
  const { d, heads } = CONFIGS[name];
  const rows = Math.min(64, (TRACE.samples + 1) * L * S);
  const activations = rows * S * (3 * d + 4 * d + heads * S + 2 * d) * 4 * 2;
  const res = {
    model: { file: model, weightBytes: weights, layers: L, tokens: S },
    wallS: r.wallMs / 1000,
    cpuS: r.cpuS,
    peakMiB: MiB(r.peakKiB * 1024),
    activationBoundMiB: MiB(activations),
    ratioToWeights: (r.peakKiB * 1024) / weights,
    ratioToWeightsPlusActivations: (r.peakKiB * 1024) / (weights + activations),
    answer: out.answer,
    highScore: out.highScore,
    lowScore: out.lowScore,
  };
  if (!KEEP) rmSync(dir, { recursive: true, force: true });
  return res;
}

async function main() {
  await bundle();
  // The engine client (extension side, no vscode import) for the through-the-engine timing.
  await build({ entryPoints: [join(ROOT, 'src', 'engine', 'client.ts')], outfile: join(BUILD, 'engine_client.js'), bundle: true, platform: 'node', target: 'node20', format: 'cjs', external: ['vscode', 'onnxruntime-node'], logLevel: 'warning' });
  mkdirSync(DIR, { recursive: true });
  const results = { date: new Date().toISOString(), machine: { cpus: cpus().length, cpu: cpus()[0]?.model, memGiB: totalmem() / 2 ** 30, loadavgStart: loadavg() } };
  mkdirSync(join(BENCH, 'results'), { recursive: true });
  const outFile = join(BENCH, 'results', `large-${results.date.replace(/[:.]/g, '-')}.json`);
  // Written after every stage, so a later failure keeps the earlier numbers.
  const save = () => writeFileSync(outFile, JSON.stringify({ ...results, machine: { ...results.machine, loadavgEnd: loadavg() } }, null, 2));
  results.preflight = await preflight();
  if (only === 'all' || only === 'explorer') {
    results.explorer = await explorer();
    save();
    const e = results.explorer;
    console.log(`\nLayer Explorer data for a LLaMA-7B-shaped fp16 export (${(e.model.params / 1e9).toFixed(2)} B params, ${fmt(GB(e.model.weightBytes))} GB weights, ${e.model.nodes} nodes; median of ${RUNS}):`);
    console.log(`  in-process openModel + summarize   ${fmt(e.inProcessMs, 0)} ms   peak RSS ${fmt(e.inProcessPeakMiB, 0)} MiB`);
    console.log(`  through the engine process         ${fmt(e.engineOpenMs, 0)} ms (cold, engine start included: ${fmt(e.engineColdMs, 0)} ms)   host peak RSS ${fmt(e.enginePeakMiB, 0)} MiB`);
    console.log(`  mechanist inspect --json (CLI)     ${fmt(e.cliInspectMs, 0)} ms   peak RSS ${fmt(e.cliPeakMiB, 0)} MiB`);
    console.log(`  weight bytes read: ${e.dataBytesRead} (data file opened ${e.dataOpens}x); all reads: ${fmt(MiB(e.rcharDelta))} MiB in-process, ${fmt(MiB(e.engineRcharDelta))} MiB in the engine`);
    if (e.trace.skipped) console.log(`  trace on it: skipped (${e.trace.skipped})`);
    else console.log(`  trace on it (${fmt(e.trace.availableGB, 1)} GB available): refused in ${fmt(e.trace.wallMs, 0)} ms, peak RSS ${fmt(e.trace.peakMiB, 0)} MiB: ${e.trace.message}`);
  }
  if (only === 'all' || only === 'trace') {
    results.trace = await trace();
    save();
    const t = results.trace;
    console.log(`\nCausal trace (residual, ${TRACE.samples} samples) on a GPT-2-shaped fp32 export of ${fmt(GB(t.model.weightBytes))} GB (${t.model.layers} layers, ${t.model.tokens} tokens):`);
    console.log(`  wall ${fmt(t.wallS, 1)} s, CPU ${fmt(t.cpuS, 1)} s, peak RSS ${fmt(t.peakMiB, 0)} MiB = ${fmt(t.ratioToWeights)}x the weights, ${fmt(t.ratioToWeightsPlusActivations)}x weights + activations (bound ${fmt(t.activationBoundMiB, 0)} MiB)`);
  }
  save();
  console.log(`\nresults: ${outFile}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
