#!/usr/bin/env node
// Mechanist's benchmarks (`npm run bench` = build, then this). Never part of `npm test`.
// Every time is reported as a ratio against a reference measured in this same run; see
// bench/README.md for what each number means.
//
//   node bench/run.mjs [--only parse|trace] [--runs N] [--rome-fraction F | --rome-full]
//                      [--skip-rome] [--profile] [--no-breakdown]
//
// Results: a table on stdout and bench/results/<date>.json (git-ignored).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { benchArgs } from './lib/args.mjs';
import { bundleBenchScripts } from './lib/bundle.mjs';
import { engineFlops, engineRunFlops, forwardFlops, romeFlops, statedFloorFlops, sweepFloorFlops } from './lib/flops.mjs';

const BENCH = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(BENCH, '..');
const PY = '/usr/bin/python3';
const { flag, opt } = benchArgs();
const only = opt('only', 'all');
const RUNS = Number(opt('runs', 3));
const romeFraction = flag('rome-full') ? 1 : Number(opt('rome-fraction', 0.25));

// The issue's setting.
const TRACE = { prompt: 'The famous Golden Gate Bridge is located in the beautiful city of', subject: 'Golden Gate Bridge', samples: 10, window: 4, kinds: ['residual', 'mlp', 'attn'] };
const PARSE_MODEL = join(BENCH, 'models', 'parse-gpt2', 'model.onnx');
const TRACE_DIR = join(BENCH, 'models', 'trace-gpt2');
const TRACE_MODEL = join(TRACE_DIR, 'model.onnx');
// Bundles of bench/lib/*.ts (and /usr/bin/time's reports) go under out/ (git- and eslint-ignored).
const BUILD = join(ROOT, 'out', 'bench');

const log = (s) => process.stderr.write(`[bench] ${s}\n`);
const MB = (b) => b / 2 ** 20;
const fmt = (x, d = 1) => (x === undefined || x === null || Number.isNaN(x) ? '-' : Number(x).toFixed(d));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Runs a command; resolves with wall ms, stdout, stderr, and the peak resident set (KiB). */
function measure(cmd, argv, { cwd = ROOT, env = process.env } = {}) {
  // Peak RSS: /usr/bin/time's %M (the kernel's ru_maxrss of the child, exact) when installed,
  // else polling the child's VmHWM in /proc (the kernel's high-water mark, read until exit).
  const haveTime = existsSync('/usr/bin/time');
  const timeOut = join(BUILD, `time-${process.pid}-${Date.now()}.txt`);
  const [c, a] = haveTime ? ['/usr/bin/time', ['-f', '%M %U %S', '-o', timeOut, cmd, ...argv]] : [cmd, argv];
  return new Promise((res, rej) => {
    const t0 = performance.now();
    const child = spawn(c, a, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let hwm = 0;
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const poll = haveTime
      ? undefined
      : setInterval(() => {
          try {
            const m = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
            if (m) hwm = Math.max(hwm, Number(m[1]));
          } catch {
            /* exited */
          }
        }, 20);
    child.on('error', rej);
    child.on('close', (code) => {
      const wallMs = performance.now() - t0;
      if (poll) clearInterval(poll);
      let peakKiB = hwm;
      let cpuS;
      if (haveTime && existsSync(timeOut)) {
        const [m, u, s] = readFileSync(timeOut, 'utf8').trim().split('\n').pop().split(' ').map(Number);
        peakKiB = m;
        cpuS = u + s;
      }
      if (code !== 0) return rej(new Error(`${cmd} ${argv.join(' ')} exited ${code}:\n${err.slice(-2000)}`));
      res({ wallMs, out, err, peakKiB, cpuS, peakSource: haveTime ? '/usr/bin/time %M' : '/proc VmHWM polling' });
    });
  });
}

async function prepare() {
  log('models: tools/make_bench_models.py (skips what is present)');
  const r = spawnSync(PY, [join(ROOT, 'tools', 'make_bench_models.py')], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) throw new Error('make_bench_models.py failed');
  await bundleBenchScripts([join(BENCH, 'lib', 'parse_child.ts'), join(BENCH, 'lib', 'trace_breakdown.ts')], BUILD);
  if (!existsSync(join(ROOT, 'dist', 'cli.js'))) throw new Error('dist/cli.js is missing: run `npm run bench` (it builds first)');
}

// ---------------------------------------------------------------- 1. parse + discovery
async function benchParse() {
  const out = {};
  for (const [name, file] of [['parse-gpt2', PARSE_MODEL], ['trace-gpt2', TRACE_MODEL]]) {
    const runs = [];
    for (let i = 0; i < RUNS; i++) {
      const r = await measure(process.execPath, ['--expose-gc', join(BUILD, 'parse_child.js'), file]);
      runs.push(JSON.parse(r.out));
    }
    // The run with the median CPU time represents the figure (its own breakdown shown).
    const best = [...runs].sort((a, b) => a.cpuMs.total - b.cpuMs.total)[Math.floor(runs.length / 2)];
    out[name] = {
      ...best,
      cpuMsRuns: runs.map((r) => r.cpuMs.total),
      cpuMsMedian: median(runs.map((r) => r.cpuMs.total)),
      wallMsMedian: median(runs.map((r) => r.wallMs.total)),
      rssGrowthOverFile: best.rssGrowth / best.fileBytes,
    };
    log(`parse ${name}: ${fmt(out[name].cpuMsMedian, 0)} ms CPU (median of ${RUNS}), RSS +${fmt(MB(best.rssGrowth))} MiB for a ${fmt(MB(best.fileBytes))} MiB file`);
  }
  return out;
}

// ---------------------------------------------------------------- 2. causal trace
async function benchTrace() {
  const cfg = JSON.parse(readFileSync(join(TRACE_DIR, 'config.json'), 'utf8'));
  const res = { model: { ...cfg, fileBytes: statSync(TRACE_MODEL).size }, setting: TRACE };
  const cli = [join(ROOT, 'bin', 'mechanist.js'), 'trace', TRACE_MODEL, '--prompt', TRACE.prompt, '--subject', TRACE.subject, '--kind', 'all', '--window', String(TRACE.window), '--samples', String(TRACE.samples), '--json', '--quiet'];
  // No graph cache: every run rewrites the graph and creates its session, as a first use does.
  const env = { ...process.env };
  delete env.MECHANIST_CACHE_DIR;

  // Process start + module loading alone (the CLI's usage text), for the breakdown.
  const start = await measure(process.execPath, [join(ROOT, 'bin', 'mechanist.js'), '--help'], { env }).catch(() => undefined);
  const ortLoad = await measure(process.execPath, ['-e', "require('onnxruntime-node')"], { env });
  res.processStartMs = start?.wallMs;
  res.nodeWithOrtPeakKiB = ortLoad.peakKiB;

  log(`trace: mechanist trace --kind all, ${RUNS} runs`);
  const runs = [];
  for (let i = 0; i < RUNS; i++) {
    const r = await measure(process.execPath, cli, { env });
    runs.push(r);
    log(`  run ${i + 1}: ${fmt(r.wallMs / 1000, 2)} s wall, ${fmt(r.cpuS, 1)} s CPU, peak RSS ${fmt(r.peakKiB / 1024, 0)} MiB`);
  }
  const best = runs.reduce((a, b) => (b.wallMs < a.wallMs ? b : a));
  const result = JSON.parse(best.out);
  const ids = result.residual.inputTokens.ids;
  const [s0, s1] = result.residual.subjectRange;
  if (ids.length !== 12 || s1 - s0 !== 3) throw new Error(`the prompt is ${ids.length} tokens with a ${s1 - s0}-token subject; the benchmark needs 12 and 3`);
  res.mechanist = {
    wallMs: best.wallMs,
    wallMsRuns: runs.map((r) => r.wallMs),
    cpuS: best.cpuS,
    peakKiB: Math.max(...runs.map((r) => r.peakKiB)),
    peakSource: best.peakSource,
    answer: result.residual.answer,
    highScore: result.residual.highScore,
    lowScore: result.residual.lowScore,
    nu: result.residual.corruption.nu,
    tokens: ids.length,
    subjectRange: [s0, s1],
  };
  const S = ids.length;

  // b. onnxruntime's matmul rate on a large batched forward of the same (plain) model.
  log('onnxruntime rate: plain model, batch 64 x 12');
  const rate = JSON.parse((await measure(process.execPath, [join(BENCH, 'lib', 'ort_rate.mjs'), TRACE_MODEL, join(TRACE_DIR, 'config.json'), '64', String(S), '4'])).out);
  res.ortRate = rate;
  // Where the time goes (also gives the rows the engine really ran, for its FLOP count).
  if (!flag('no-breakdown')) {
    log('breakdown: the same trace in one process with phase timers');
    // With the huge-page tunable the CLI (bin/mechanist.js) and the engine process start with.
    const { withHugePages } = createRequire(import.meta.url)(join(ROOT, 'dist', 'hugePages.js'));
    const b = await measure(process.execPath, [join(BUILD, 'trace_breakdown.js'), TRACE_MODEL, TRACE.prompt, TRACE.subject, String(TRACE.samples), String(TRACE.window)], { env: withHugePages(process.env) });
    res.breakdown = JSON.parse(b.out);
    res.breakdown.processWallMs = b.wallMs;
    res.breakdown.cpuS = b.cpuS;
  }

  const sweep = { kinds: TRACE.kinds, samples: TRACE.samples, window: TRACE.window };
  // The floor as specified (restart at the restored layer, logits at the last position, no
  // recomputation before the restored token, clean + corrupted once) and the same with
  // no-op restorations (tokens before the subject) skipped, which the engine itself skips.
  const floorSpec = sweepFloorFlops(cfg, S, sweep);
  const floor = sweepFloorFlops(cfg, S, { ...sweep, firstAffected: s0 });
  const floorStated = statedFloorFlops(cfg, S, { ...sweep, firstAffected: s0 });
  // What the engine executed: the runs it really made (rows, positions, start block), when
  // the breakdown observed them; else every restoration as a full 12-position forward.
  let engine;
  if (res.breakdown) {
    const r = res.breakdown.runs;
    // (Restorations run as suffix runs, which cut the last block's MLP to the last position.)
    const batches = r.rowsPerBatch.map((rows, i) => ({ rows, positions: r.positionsPerBatch[i], start: r.startPerBatch[i], lastMlpCut: true }));
    engine = engineRunFlops(cfg, S, [{ rows: r.clean.rows, positions: S, start: 0 }, { rows: r.corrupted.rows, positions: S, start: 0 }, ...batches]);
  } else engine = engineFlops(cfg, S, 1 + TRACE.samples + TRACE.kinds.length * cfg.layers * (S - s0) * TRACE.samples);
  const rome = romeFlops(cfg, S, sweep);
  res.flops = { floorSpec, floor, floorStated, engine, rome, fullForwardRow: forwardFlops(cfg, S, { logitPositions: 1, dense: true }), rowsObserved: !!res.breakdown };
  res.floorMs = (floor.total / rate.flopPerS) * 1000;
  res.floorSpecMs = (floorSpec.total / rate.flopPerS) * 1000;
  res.floorStatedMs = (floorStated.total / rate.flopPerS) * 1000;
  res.wallOverFloorStated = res.mechanist.wallMs / res.floorStatedMs;
  res.cpuOverFloorStatedCpu = res.mechanist.cpuS / (floorStated.total / rate.flopPerCpuS);
  res.wallOverFloor = res.mechanist.wallMs / res.floorMs;
  res.wallOverFloorSpec = res.mechanist.wallMs / res.floorSpecMs;
  // The same in CPU seconds (robust when other processes share the cores).
  res.floorCpuS = floor.total / rate.flopPerCpuS;
  res.cpuOverFloorCpu = res.mechanist.cpuS / res.floorCpuS;
  res.mechanistFlopPerS = engine.total / (res.mechanist.wallMs / 1000);
  res.engineFlopsOverFloor = engine.total / floor.total;

  // c. memory: peak RSS vs weights + activations of the largest batch the engine ran.
  const batchRows = res.breakdown ? Math.max(...res.breakdown.runs.rowsPerBatch) : Math.floor(64 / TRACE.samples) * TRACE.samples; // the engine's default maxBatchRows
  const act = activationBytes(cfg, S, batchRows);
  res.memory = {
    peakBytes: res.mechanist.peakKiB * 1024,
    weightsBytes: res.model.fileBytes,
    activationBytes: act,
    batchRows,
    nodeWithOrtBytes: ortLoad.peakKiB * 1024,
  };
  res.memory.peakOverWeightsPlusActivations = res.memory.peakBytes / (res.memory.weightsBytes + act);
  // Without what node and onnxruntime cost before any model is loaded (the same for any model).
  res.memory.peakLessRuntimeOverWeightsPlusActivations = (res.memory.peakBytes - res.memory.nodeWithOrtBytes) / (res.memory.weightsBytes + act);

  // a. ROME's loop in PyTorch.
  if (!flag('skip-rome')) {
    log(`ROME reference (PyTorch, 2 threads${romeFraction < 1 ? `, ${romeFraction} of the calls, extrapolated` : ''}): this takes minutes`);
    const r = await measure(PY, [join(BENCH, 'rome_trace.py'), '--model-dir', TRACE_DIR, '--ids', ids.join(','), '--subject', `${s0},${s1}`, '--samples', String(TRACE.samples), '--window', String(TRACE.window), '--threads', '2', '--fraction', String(romeFraction)]);
    const rj = JSON.parse(r.out);
    delete rj.scores;
    res.rome = { ...rj, processWallMs: r.wallMs, cpuS: r.cpuS, flopPerS: rome.total / rj.seconds };
    res.romeOverMechanist = (rj.seconds * 1000) / res.mechanist.wallMs;
    // CPU seconds of both processes (ROME's extrapolated like its time), process starts included.
    res.romeCpuS = rj.extrapolated ? (r.cpuS * rj.seconds) / (r.wallMs / 1000) : r.cpuS;
    res.romeCpuOverMechanistCpu = res.romeCpuS / res.mechanist.cpuS;
    res.sameAnswer = rj.answer === res.mechanist.answer.id;
    res.highScoreAbsDiff = Math.abs(rj.highScore - res.mechanist.highScore);
  }

  if (flag('profile')) res.profile = await profile(cli, env);
  return res;
}

/**
 * Activations of the largest batch (`rows` rows of S tokens), float32: the tensors alive at
 * once inside one block — the residual stream (d), Q/K/V (3d), the MLP hidden layer (4d) and
 * the attention scores (heads x S) per row and token — plus the last-position logits (V per
 * row). A rough, generous working set; onnxruntime's arena may keep more.
 */
function activationBytes(c, S, rows) {
  return 4 * (rows * S * (c.d + 3 * c.d + 4 * c.d + c.heads * S) + rows * c.vocab);
}

/** One CLI run under `node --cpu-prof`: self time by function (top 15). */
async function profile(cli, env) {
  const dir = join(BENCH, 'profiles');
  mkdirSync(dir, { recursive: true });
  const before = new Set(readdirSync(dir));
  await measure(process.execPath, ['--cpu-prof', '--cpu-prof-dir', dir, ...cli], { env });
  const file = readdirSync(dir).find((f) => !before.has(f) && f.endsWith('.cpuprofile'));
  const p = JSON.parse(readFileSync(join(dir, file), 'utf8'));
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map();
  p.samples.forEach((id, i) => {
    const n = byId.get(id);
    const f = n.callFrame;
    const key = `${f.functionName || '(anonymous)'} ${f.url ? `${f.url.split('/').slice(-2).join('/')}:${f.lineNumber + 1}` : ''}`.trim();
    self.set(key, (self.get(key) ?? 0) + (p.timeDeltas[i] ?? 0) / 1000);
  });
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const top = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 15).map(([fn, ms]) => ({ fn, ms: Math.round(ms), share: ms / total }));
  log(`profile: ${join('bench', 'profiles', file)}`);
  return { file: join('bench', 'profiles', file), totalMs: Math.round(total), top };
}

// ---------------------------------------------------------------- report
function table(r) {
  const rows = [];
  const add = (what, value, ref, ratio, goal) => rows.push([what, value, ref ?? '', ratio ?? '', goal ?? '']);
  if (r.parse) {
    for (const [name, p] of Object.entries(r.parse)) {
      add(`parse+discover ${name} (${fmt(MB(p.fileBytes))} MiB, ${p.nodes} nodes): CPU`, `${fmt(p.cpuMsMedian, 0)} ms`, `read + decode ${fmt(p.cpuMs.read, 0)} (sys ${fmt(p.systemMs, 0)} in all) / graph ${fmt(p.cpuMs.graph, 0)} / discover ${fmt(p.cpuMs.discover, 0)} ms`, '', name === 'parse-gpt2' ? '< 1000 ms CPU' : '');
      add(`  RSS growth vs file size`, `${fmt(MB(p.rssGrowth))} MiB`, `${fmt(MB(p.fileBytes))} MiB`, `${fmt(p.rssGrowthOverFile, 2)}x`, '(the weights stay on disk: far below 1x)');
    }
  }
  const t = r.trace;
  if (t) {
    add('trace --kind all: wall (best of runs, process start incl.)', `${fmt(t.mechanist.wallMs / 1000, 2)} s`, `runs ${t.mechanist.wallMsRuns.map((x) => fmt(x / 1000, 1)).join(', ')} s; ${fmt(t.mechanist.cpuS, 1)} s CPU`);
    if (t.rome) add('ROME loop, PyTorch 2 threads', `${fmt(t.rome.seconds, 1)} s${t.rome.extrapolated ? ' (extrap.)' : ''}`, `mechanist ${fmt(t.mechanist.wallMs / 1000, 2)} s`, `${fmt(t.romeOverMechanist, 1)}x faster`, '>= 30x');
    if (t.rome) add('  same in CPU seconds (both processes)', `${fmt(t.romeCpuS, 0)} s CPU`, `mechanist ${fmt(t.mechanist.cpuS, 1)} s CPU`, `${fmt(t.romeCpuOverMechanistCpu, 1)}x`);
    add('strict floor: minimal FLOPs / onnxruntime rate', `${fmt(t.floorMs / 1000, 2)} s`, `${fmt(t.flops.floor.total / 1e9, 0)} GFLOP @ ${fmt(t.ortRate.flopPerS / 1e9, 1)} GFLOP/s`, `wall/floor ${fmt(t.wallOverFloor, 2)}x`, '<= 2x');
    add('floor as the issue states it (all positions from the restored token, every later layer)', `${fmt(t.floorStatedMs / 1000, 2)} s`, `${fmt(t.flops.floorStated.total / 1e9, 0)} GFLOP`, `wall/floor ${fmt(t.wallOverFloorStated, 2)}x (CPU ${fmt(t.cpuOverFloorStatedCpu, 2)}x)`, '<= 2x');
    add('  strict floor without the pre-subject skip', `${fmt(t.floorSpecMs / 1000, 2)} s`, `${fmt(t.flops.floorSpec.total / 1e9, 0)} GFLOP`, `wall/floor ${fmt(t.wallOverFloorSpec, 2)}x`, '<= 2x');
    add('  floor in CPU seconds', `${fmt(t.floorCpuS, 2)} s CPU`, `${fmt(t.ortRate.flopPerCpuS / 1e9, 1)} GFLOP per CPU-s; mechanist ${fmt(t.mechanist.cpuS, 1)} s CPU`, `cpu/floor ${fmt(t.cpuOverFloorCpu, 2)}x`);
    add('mechanist achieved rate', `${fmt(t.mechanistFlopPerS / 1e9, 1)} GFLOP/s`, `${fmt(t.flops.engine.total / 1e9, 0)} GFLOP executed, ${t.flops.engine.rows} rows (${fmt(t.engineFlopsOverFloor, 2)}x floor)`, `${fmt(t.mechanistFlopPerS / t.ortRate.flopPerS, 2)}x ort rate`);
    add('peak RSS of the trace', `${fmt(MB(t.memory.peakBytes), 0)} MiB`, `weights ${fmt(MB(t.memory.weightsBytes), 0)} + activations ${fmt(MB(t.memory.activationBytes), 0)} MiB (${t.memory.batchRows} rows)`, `${fmt(t.memory.peakOverWeightsPlusActivations, 2)}x`, '< 1.5x');
    add('  less node + onnxruntime alone', `${fmt(MB(t.memory.peakBytes - t.memory.nodeWithOrtBytes), 0)} MiB`, `node with onnxruntime-node loaded: ${fmt(MB(t.memory.nodeWithOrtBytes), 0)} MiB`, `${fmt(t.memory.peakLessRuntimeOverWeightsPlusActivations, 2)}x`);
    if (t.breakdown) {
      const m = t.breakdown.ms;
      add('breakdown (one process)', `${fmt(t.breakdown.processWallMs / 1000, 2)} s, ${fmt(t.breakdown.cpuS, 1)} s CPU`, `start ${fmt(t.processStartMs, 0)} open ${fmt(m.open, 0)} prepare (instrument, encode, session) ${fmt(m.prepare, 0)} clean ${fmt(m.clean, 0)} corrupt ${fmt(m.corrupted, 0)} restore ${fmt(m.restorationBatches, 0)} (ort ${fmt(m.restorationOrt, 0)}, run host ${fmt(m.restorationRunHost, 0)}, method host ${fmt(m.restorationMethodHost, 0)}) ms`);
    }
  }
  const w = rows.reduce((acc, row) => row.map((c, i) => Math.max(acc[i] ?? 0, String(c).length)), []);
  const head = ['measure', 'value', 'reference', 'ratio', 'goal'];
  const line = (row) => row.map((c, i) => String(c).padEnd(Math.max(w[i], head[i].length))).join('  ').trimEnd();
  return [line(head), ...rows.map(line)].join('\n');
}

async function main() {
  const started = new Date();
  await prepare();
  const load0 = loadavg();
  const r = {
    date: started.toISOString(),
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memGiB: Math.round(totalmem() / 2 ** 30), node: process.version, loadAvgStart: load0 },
    git: spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).stdout.trim(),
  };
  if (only === 'all' || only === 'parse') r.parse = await benchParse();
  if (only === 'all' || only === 'trace') r.trace = await benchTrace();
  r.machine.loadAvgEnd = loadavg();
  const dir = join(BENCH, 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${started.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(r, null, 1)}\n`);
  console.log(table(r));
  console.log(`\nload average at start ${load0.map((x) => x.toFixed(1)).join(' ')}, end ${r.machine.loadAvgEnd.map((x) => x.toFixed(1)).join(' ')} (${r.machine.cpus} CPUs)`);
  console.log(`results: ${file.slice(ROOT.length + 1)}`);
}

main().catch((e) => {
  console.error(`[bench] ${e.stack ?? e}`);
  process.exit(1);
});
