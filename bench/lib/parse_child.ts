/**
 * Child process of the parse benchmark: times OnnxModel.load (reading: for a large file the skim
 * of onnx/skim.ts, which leaves the big weights on disk, then the protobuf decode of what it
 * read), OnnxGraph.build and discover() — i.e. openModel() step by step — with
 * process.cpuUsage() and the wall clock, and the resident set / ArrayBuffer memory before
 * and after. Prints one JSON line. Run as `node --expose-gc parse_child.js <model.onnx>`.
 */
import * as fs from 'node:fs';
import { discover } from '../../src/runtime/architecture/discover';
import { OnnxGraph } from '../../src/runtime/onnx/graph';
import { OnnxModel } from '../../src/runtime/onnx/model';

const file = process.argv[2];
const gc = (globalThis as { gc?: () => void }).gc;
const cpuMs = (u: NodeJS.CpuUsage): number => (u.user + u.system) / 1000;
const mem = (): { rss: number; arrayBuffers: number; heapUsed: number } => {
  gc?.();
  const m = process.memoryUsage();
  return { rss: m.rss, arrayBuffers: m.arrayBuffers, heapUsed: m.heapUsed };
};

const before = mem();
const c0 = process.cpuUsage();
const t0 = performance.now();
const model = OnnxModel.load(file); // (read and decode together: the skim interleaves them)
const cr = process.cpuUsage();
const tr = performance.now();
const c1 = process.cpuUsage();
const t1 = performance.now();
const graph = OnnxGraph.build(model);
const c2 = process.cpuUsage();
const t2 = performance.now();
const arch = discover(graph);
const c3 = process.cpuUsage();
const t3 = performance.now();
const after = mem();

// Large weights are kept as offsets into the file (never read), small ones in memory: count
// the bytes of each kind.
let initBytes = 0;
let copied = 0;
for (const init of model.graph.initializer) {
  const at = model.inlineOffset(init);
  if (at) initBytes += at.length;
  else if (init.raw_data?.length) {
    initBytes += init.raw_data.length;
    copied += init.raw_data.length;
  }
}
process.stdout.write(
  `${JSON.stringify({
    file,
    fileBytes: fs.statSync(file).size,
    family: arch.family,
    layers: arch.layers,
    dModel: arch.dModel,
    nodes: graph.nodes.length,
    hookPoints: arch.hookPoints.length,
    cpuMs: { total: cpuMs(c3) - cpuMs(c0), read: cpuMs(cr) - cpuMs(c0), decode: cpuMs(c1) - cpuMs(cr), graph: cpuMs(c2) - cpuMs(c1), discover: cpuMs(c3) - cpuMs(c2) },
    wallMs: { total: t3 - t0, read: tr - t0, decode: t1 - tr, graph: t2 - t1, discover: t3 - t2 },
    userMs: (c3.user - c0.user) / 1000,
    systemMs: (c3.system - c0.system) / 1000,
    before,
    after,
    rssGrowth: after.rss - before.rss,
    arrayBuffersGrowth: after.arrayBuffers - before.arrayBuffers,
    initializerBytes: initBytes,
    copiedInitializerBytes: copied,
  })}\n`,
);
