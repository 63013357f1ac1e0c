/**
 * Where a causal trace's time goes: the same call the CLI's `trace --kind all` makes, in one
 * process, with timers around its phases. Phases: open (read + decode + discovery), tokenizer,
 * instrument (graph rewrite + protobuf encode, timed on its own), session creation (prepare()
 * minus instrument), the clean run, the corrupted run, and the restoration batches; inside
 * every session.run(), the onnxruntime call itself vs the host work around it (patch masks and
 * values, tensor conversion), and outside it the host work of the method (building the
 * corrupted embeddings per batch, softmax over the vocabulary for every row).
 * Prints one JSON line. Args: <model.onnx> <prompt> <subject> <samples> <window> [threads]
 */
import { discover } from '../../src/runtime/architecture/discover';
import { HookedModel, PreparedSession } from '../../src/runtime/instrument/hookedModel';
import { instrument } from '../../src/runtime/instrument/rewrite';
import { causalTrace } from '../../src/runtime/methods/causalTrace';
import { OnnxGraph } from '../../src/runtime/onnx/graph';
import { OnnxModel } from '../../src/runtime/onnx/model';
import { onnxType } from '../../src/runtime/onnx/proto';
import { TextTokenizer } from '../../src/runtime/tokenizer';

const [file, prompt, subject, samplesArg, windowArg, threadsArg] = process.argv.slice(2);
const now = (): number => performance.now();

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
  const L = arch.layers;
  const hooks = ['hook_embed', ...['resid_post', 'mlp_out', 'attn_out'].flatMap((h) => Array.from({ length: L }, (_, l) => `blocks.${l}.hook_${h}`))];
  t = now();
  const tensors = hooks.map((h) => hooked.tensorOf(h));
  const from = arch.hookPoints.find((h) => h.name === 'ln_final.hook_normalized')!.tensor;
  const inst = instrument(model, graph, { capture: tensors, patch: tensors, lastTokenLogits: { from, logits: graph.outputs[0].name }, keepOutputs: false });
  T.encodedMiB = onnxType('ModelProto').encode(inst.proto as never).finish().length / 2 ** 20;
  T.instrumentAndEncode = now() - t;
  mark('afterInstrumentAndEncode');
  t = now();
  const session = await hooked.prepare({ capture: hooks, patch: hooks, lastTokenLogits: true });
  T.prepare = now() - t; // instrument + encode again + onnxruntime session creation
  T.sessionCreation = T.prepare - T.instrumentAndEncode;
  mark('afterSessionCreation');

  // Timers inside PreparedSession.run: onnxruntime's run vs the rest.
  const ortSession = session.open.session;
  const ortRun = ortSession.run.bind(ortSession);
  const runs: { rows: number; ortMs: number; totalMs: number }[] = [];
  let ortMs = 0;
  (ortSession as { run: unknown }).run = async (...a: Parameters<typeof ortRun>) => {
    const s = now();
    const r = await ortRun(...a);
    ortMs = now() - s;
    return r;
  };
  const prepRun = PreparedSession.prototype.run;
  PreparedSession.prototype.run = async function (this: PreparedSession, feeds, opts) {
    const s = now();
    const r = await prepRun.call(this, feeds, opts);
    const first = Object.values(feeds)[0];
    runs.push({ rows: first.dims[0], ortMs, totalMs: now() - s });
    rss.maxDuringRuns = Math.max(rss.maxDuringRuns ?? 0, process.memoryUsage().rss / 2 ** 20);
    return r;
  };
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
  T.beforeClean = marks.find((m) => m.msg === 'clean run')!.at; // tokenise + prepare() (cached: ~0)
  T.clean = corruptedMark - T.beforeClean; // the clean run + its softmax + building the noise
  T.corrupted = corrupted.totalMs;
  T.restorationBatches = T.traceCall - corruptedMark - corrupted.totalMs; // + the corrupted run's 10-row softmax
  T.restorationOrt = sum(batches.map((b) => b.ortMs));
  T.restorationRunHost = sum(batches.map((b) => b.totalMs - b.ortMs));
  T.restorationMethodHost = T.restorationBatches - sum(batches.map((b) => b.totalMs));
  process.stdout.write(
    `${JSON.stringify({
      ms: T,
      rssMiB: Object.fromEntries(Object.entries(rss).map(([k, v]) => [k, Math.round(v)])),
      runs: { clean, corrupted, batches: batches.length, rowsPerBatch: batches.map((b) => b.rows), ortMsPerBatch: batches.map((b) => Math.round(b.ortMs)) },
    })}\n`,
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
