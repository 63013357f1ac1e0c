/**
 * Where a causal trace's time goes: the same call the CLI's `trace --kind all` makes, in one
 * process, with timers around its phases. Phases: open (read + decode + discovery), tokenizer,
 * prepare (graph rewrite + protobuf encode + onnxruntime session creation), the clean run, the
 * corrupted run, and the restoration batches; inside
 * every session.run(), the onnxruntime call itself vs the host work around it (patch masks and
 * values, tensor conversion), and outside it the host work of the method (building the
 * corrupted embeddings per batch, softmax over the vocabulary for every row).
 * Prints one JSON line. Args: <model.onnx> <prompt> <subject> <samples> <window> [threads]
 */
import * as fs from 'node:fs';
import { discover } from '../../src/runtime/architecture/discover';
import { HookedModel, PreparedSession } from '../../src/runtime/instrument/hookedModel';
import { causalTrace } from '../../src/runtime/methods/causalTrace';
import { OnnxGraph } from '../../src/runtime/onnx/graph';
import { OnnxModel } from '../../src/runtime/onnx/model';
import { TextTokenizer } from '../../src/runtime/tokenizer';

const [file, prompt, subject, samplesArg, windowArg, threadsArg] = process.argv.slice(2);
const now = (): number => performance.now();

/**
 * The resident set split (MiB): anonymous (JS heap, onnxruntime's arena and packed weights)
 * vs file-backed (code, mapped weights), and what JS holds in ArrayBuffers (feeds, outputs).
 */
function memSplit(): { rss: number; anon: number; file: number; arrayBuffers: number } {
  const status = fs.readFileSync('/proc/self/status', 'utf8');
  const mib = (k: string): number => Math.round(Number(new RegExp(`${k}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) / 1024);
  return { rss: mib('VmRSS'), anon: mib('RssAnon'), file: mib('RssFile'), arrayBuffers: Math.round(process.memoryUsage().arrayBuffers / 2 ** 20) };
}

async function main(): Promise<void> {
  const T: Record<string, number> = {};
  // Resident set (MiB) after each phase, to see where the peak memory goes.
  const rss: Record<string, number> = { start: process.memoryUsage().rss / 2 ** 20 };
  const mark = (k: string): void => void (rss[k] = process.memoryUsage().rss / 2 ** 20);
  let t = now();
  const model = OnnxModel.load(file);
  const graph = OnnxGraph.build(model);
  const arch = discover(graph);
  T.open = now() - t;
  mark('afterOpen');
  t = now();
  const tok = TextTokenizer.load(file);
  T.tokenizer = now() - t;
  const hooked = new HookedModel(model, graph, arch, { provider: 'cpu', threads: threadsArg ? Number(threadsArg) : undefined });

  // The exact spec causalTrace prepares (so its prepare() finds this session in the cache).
  // Timers inside PreparedSession.run: onnxruntime's run vs the rest (patch masks and values, tensor conversion).
  const runs: { rows: number; positions: number; block: number; ortMs: number; totalMs: number; rssMiB: number }[] = [];
  let peak = memSplit();
  const prepRun = PreparedSession.prototype.run;
  PreparedSession.prototype.run = async function (this: PreparedSession, feeds, opts) {
    const ort = this.open.session as { run: (...a: unknown[]) => Promise<unknown>; timed?: boolean };
    if (!ort.timed) {
      const inner = ort.run.bind(ort);
      ort.run = async (...a: unknown[]) => {
        const s = now();
        const r = await inner(...a);
        lastOrtMs = now() - s;
        return r;
      };
      ort.timed = true;
    }
    if (!runs.length) mark('afterPrepare');
    const s = now();
    const r = await prepRun.call(this, feeds, opts);
    if (runs.length === 1) mark('afterCorrupted');
    const first = Object.values(feeds)[0];
    const m = memSplit();
    if (m.rss > peak.rss) peak = m;
    runs.push({ rows: first.dims[0], positions: opts?.start?.entry.dims[1] ?? first.dims[1], block: opts?.start?.block ?? 0, ortMs: lastOrtMs, totalMs: now() - s, rssMiB: m.rss });
    rss.maxDuringRuns = Math.max(rss.maxDuringRuns ?? 0, m.rss);
    return r;
  };
  let lastOrtMs = 0;
  const marks: { msg: string; at: number }[] = [];
  const t0 = now();
  await causalTrace(
    hooked,
    tok,
    { prompt, subject, corruption: { type: 'noise', samples: Number(samplesArg), seed: 1 }, kinds: ['residual', 'mlp', 'attn'], window: Number(windowArg) },
    { report: (p) => marks.push({ msg: p.message ?? '', at: now() - t0 }) },
  );
  T.traceCall = now() - t0;
  mark('end');
  await hooked.dispose();
  const clean = runs[0];
  const corrupted = runs[1];
  const batches = runs.slice(2);
  const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
  const corruptedMark = marks.find((m) => m.msg === 'corrupted run')!.at;
  T.prepare = marks.find((m) => m.msg === 'clean run')!.at; // tokenise + instrument + encode + session creation
  T.clean = corruptedMark - T.prepare; // the clean run + its softmax + building the noise
  T.corrupted = corrupted.totalMs;
  T.restorationBatches = T.traceCall - corruptedMark - corrupted.totalMs; // + the corrupted run's 10-row softmax
  T.restorationOrt = sum(batches.map((b) => b.ortMs));
  T.restorationRunHost = sum(batches.map((b) => b.totalMs - b.ortMs));
  T.restorationMethodHost = T.restorationBatches - sum(batches.map((b) => b.totalMs));
  process.stdout.write(
    `${JSON.stringify({
      ms: T,
      rssMiB: Object.fromEntries(Object.entries(rss).map(([k, v]) => [k, Math.round(v)])),
      peakDuringRunsMiB: peak,
      runs: { clean, corrupted, batches: batches.length, rowsPerBatch: batches.map((b) => b.rows), positionsPerBatch: batches.map((b) => b.positions), startPerBatch: batches.map((b) => b.block), ortMsPerBatch: batches.map((b) => Math.round(b.ortMs)), rssMiBPerBatch: batches.map((b) => b.rssMiB) },
    })}\n`,
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
