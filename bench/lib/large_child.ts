/**
 * Child process of the large-model bench: what the engine does when the Layer Explorer opens a
 * model (openModel + summarize, the tree data), timed, with the bytes this process read from
 * the model's external data files (every fs read of them counted) and from anything at all
 * (/proc/self/io rchar, the kernel's count of bytes returned by read calls). Prints one JSON line.
 *
 *   node large_child.js <model.onnx> [--run]      (--run: also one forward on a short prompt)
 */
import type * as FsModule from 'node:fs';
import * as path from 'node:path';
import { textFeeds } from '../../src/runtime/feeds';
import { openModel, summarize } from '../../src/runtime/inspect';
import { HookedModel } from '../../src/runtime/instrument/hookedModel';
import { asFloat32 } from '../../src/runtime/tensor';

// The fs module object itself (not an ES namespace copy), so that replacing its functions is
// seen by every caller: the bundled runtime reads `fs.readSync` & co. at call time.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const fs = require('node:fs') as typeof FsModule;

const file = path.resolve(process.argv[2]);
const dataPrefix = `${file}.data`;
let dataBytesRead = 0;
let dataOpens = 0;
const fds = new Set<number>();
// Count reads of the external data file through the fs calls the runtime uses.
const origOpen = fs.openSync;
const origRead = fs.readSync;
const origReadFile = fs.readFileSync;
(fs as { openSync: typeof fs.openSync }).openSync = ((p: FsModule.PathLike, ...rest: unknown[]) => {
  const fd = (origOpen as (...a: unknown[]) => number)(p, ...rest);
  if (String(p).startsWith(dataPrefix)) {
    dataOpens++;
    fds.add(fd);
  }
  return fd;
}) as typeof fs.openSync;
(fs as { readSync: typeof fs.readSync }).readSync = ((fd: number, ...rest: unknown[]) => {
  const n = (origRead as (...a: unknown[]) => number)(fd, ...rest);
  if (fds.has(fd)) dataBytesRead += n;
  return n;
}) as typeof fs.readSync;
(fs as { readFileSync: typeof fs.readFileSync }).readFileSync = ((p: FsModule.PathOrFileDescriptor, ...rest: unknown[]) => {
  const out = (origReadFile as (...a: unknown[]) => Buffer | string)(p, ...rest);
  if (String(p).startsWith(dataPrefix)) {
    dataOpens++;
    dataBytesRead += out.length;
  }
  return out;
}) as typeof fs.readFileSync;

function rchar(): number {
  const m = /rchar:\s+(\d+)/.exec(origReadFile('/proc/self/io', 'utf8') as string);
  return m ? Number(m[1]) : NaN;
}

async function main(): Promise<void> {
  const r0 = rchar();
  const t0 = performance.now();
  const { model, graph, arch } = openModel(file);
  const t1 = performance.now();
  const summary = summarize(model, graph, arch);
  const json = JSON.stringify(summary); // what crosses the engine's process boundary
  const t2 = performance.now();
  const r1 = rchar();
  const mem = process.memoryUsage();
  const result: Record<string, unknown> = {
    file,
    family: summary.family,
    layers: summary.layers,
    heads: summary.heads,
    kvHeads: summary.kvHeads,
    dModel: summary.dModel,
    vocabSize: summary.vocabSize,
    paramCount: summary.paramCount,
    nodes: graph.nodes.length,
    hookPoints: summary.hookPoints.length,
    notices: summary.notices,
    summaryBytes: json.length,
    ms: { open: t1 - t0, summarize: t2 - t1, total: t2 - t0 },
    dataBytesRead,
    dataOpens,
    rcharDelta: r1 - r0,
    rssBytes: mem.rss,
    heapUsedBytes: mem.heapUsed,
  };
  if (process.argv.includes('--run')) {
    const hooked = new HookedModel(model, graph, arch);
    const ids = [1, 2, 3, 4, 5].map((i) => i % (summary.vocabSize ?? 2));
    const out = await hooked.runWithCache(textFeeds(graph, [ids]), [`blocks.${arch.layers - 1}.hook_resid_post`], [graph.outputs[0].name]);
    const logits = out.outputs[graph.outputs[0].name];
    result.run = { logitsDims: logits.dims, finite: asFloat32(logits).every((x) => Number.isFinite(x)) };
    await hooked.dispose();
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
