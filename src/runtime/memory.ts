/**
 * Out of memory, said plainly. Two guards:
 * - before onnxruntime loads a model on the CPU, the weights it will hold are compared with the
 *   memory this process can still get (Linux: MemAvailable + free swap, within a cgroup's
 *   limit); a model that cannot fit is refused with both numbers instead of failing deep in
 *   onnxruntime or being killed by the system mid-way (elsewhere there is no figure to trust);
 * - an allocation failure that happens anyway (onnxruntime's std::bad_alloc or "Failed to
 *   allocate memory", a JavaScript buffer that cannot be allocated) becomes an
 *   `OutOfMemoryError` that says what was being done.
 */
import * as fs from 'node:fs';
import { OnnxModel } from './onnx/model';
import { bytesPerElement, DataType } from './onnx/types';

export class OutOfMemoryError extends Error {
  override readonly name = 'OutOfMemoryError';
}

/** Bytes a process can still get, and where the figure comes from. */
export interface MemoryLeft {
  bytes: number;
  source: string;
}

/**
 * Bytes this process can still get, and where the figure comes from; null where it is not
 * known well enough to refuse anything on it (outside Linux, `os.freemem()` counts only pages
 * that are entirely free, a few hundred MB on a busy Mac with gigabytes reclaimable).
 */
export function availableMemory(): MemoryLeft | null {
  const meminfo = readText('/proc/meminfo');
  const kib = (k: string): number | undefined => {
    const m = meminfo && new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(meminfo);
    return m ? Number(m[1]) * 1024 : undefined;
  };
  const avail = kib('MemAvailable');
  if (avail === undefined) return null;
  const swap = kib('SwapFree') ?? 0;
  const host = { bytes: avail + swap, source: swap ? 'available memory and free swap' : 'available memory' };
  const room = cgroupRoom();
  return room !== undefined && room < host.bytes ? { bytes: room, source: "the container's memory limit" } : host;
}

/**
 * Room left under a cgroup memory limit (v2, else v1), if one is set. The usage counts the page
 * cache, which the kernel reclaims before it fails an allocation: its inactive part is not
 * counted as used (as `docker stats` does).
 */
function cgroupRoom(): number | undefined {
  const layouts = [
    { max: '/sys/fs/cgroup/memory.max', current: '/sys/fs/cgroup/memory.current', stat: '/sys/fs/cgroup/memory.stat', inactive: 'inactive_file' },
    { max: '/sys/fs/cgroup/memory/memory.limit_in_bytes', current: '/sys/fs/cgroup/memory/memory.usage_in_bytes', stat: '/sys/fs/cgroup/memory/memory.stat', inactive: 'total_inactive_file' },
  ];
  for (const c of layouts) {
    const max = readText(c.max)?.trim();
    if (!max || max === 'max') continue;
    const limit = Number(max);
    // (v1 reports "no limit" as a huge number near 2^63.)
    if (!Number.isFinite(limit) || limit > 2 ** 60) continue;
    const used = Number(readText(c.current)?.trim() ?? 0);
    const inactive = Number(new RegExp(`^${c.inactive} (\\d+)`, 'm').exec(readText(c.stat) ?? '')?.[1] ?? 0);
    return Math.max(0, limit - Math.max(0, used - inactive));
  }
  return undefined;
}

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * The bytes of weights an onnxruntime session on `provider` holds for `model`: every
 * initializer, float16 and bfloat16 ones twice over on the CPU (its kernels compute in float32,
 * so onnxruntime keeps float32 copies: a 128 MiB float16 model grew a session by 282 MiB here).
 */
export function sessionWeightBytes(model: OnnxModel, provider: 'cpu' | 'cuda'): number {
  let total = 0;
  for (const t of model.graph.initializer) {
    const size = bytesPerElement(t.data_type) * OnnxModel.elementCount(t);
    total += provider === 'cpu' && (t.data_type === DataType.FLOAT16 || t.data_type === DataType.BFLOAT16) ? 2 * size : size;
  }
  return total;
}

const gib = (b: number): string => `${(b / 2 ** 30).toFixed(b < 2 ** 30 ? 2 : 1)} GiB`;

/**
 * Refuses, before onnxruntime tries, a model whose weights cannot fit in the memory left (CPU
 * sessions on Linux; `MECHANIST_MEMORY_CHECK=0` turns it off).
 */
export function checkSessionMemory(model: OnnxModel, provider: 'cpu' | 'cuda', available: MemoryLeft | null = availableMemory()): void {
  if (provider !== 'cpu' || !available || process.env.MECHANIST_MEMORY_CHECK === '0') return; // (device memory: onnxruntime's CUDA provider reports its own failures)
  const need = sessionWeightBytes(model, provider);
  if (need <= available.bytes) return;
  const f16 = model.graph.initializer.some((t) => t.data_type === DataType.FLOAT16 || t.data_type === DataType.BFLOAT16);
  throw new OutOfMemoryError(
    `out of memory: onnxruntime needs at least ${gib(need)} for this model's weights on the CPU${f16 ? ' (float16 weights are held as float32 there)' : ''}, and ${gib(available.bytes)} is left (${available.source}); close other programs or use a smaller model (MECHANIST_MEMORY_CHECK=0 skips this check)`,
  );
}

const ALLOCATION_FAILURE = /bad_alloc|Failed to allocate memory|out of memory|Cannot allocate memory|Array buffer allocation failed|allocation failed/i;

/**
 * `e` as an OutOfMemoryError naming what was being done when it is an allocation failure; else
 * `e`. Only plain errors are read (onnxruntime's, and JavaScript's RangeError): the project's own
 * errors (bad input, bad model, cancel) may quote the user's text.
 */
export function asOutOfMemory(e: unknown, doing: string, device: 'cpu' | 'cuda' = 'cpu'): unknown {
  if (!(e instanceof Error) || (e.constructor !== Error && e.constructor !== RangeError)) return e;
  if (!ALLOCATION_FAILURE.test(e.message)) return e;
  const cause = e.message.split('\n')[0].trim();
  if (device === 'cuda') return new OutOfMemoryError(`out of GPU memory while ${doing} (${cause}); use a smaller model or fewer samples, or the CPU`);
  const available = availableMemory();
  const left = available ? `; ${gib(available.bytes)} is left (${available.source})` : '';
  const as = addressSpaceLimit();
  const limit = as === undefined ? '' : `, and this process may map at most ${gib(as)} (ulimit -v)`;
  return new OutOfMemoryError(`out of memory while ${doing} (${cause})${left}${limit}; close other programs, use a smaller model or fewer samples`);
}

/** The process's address-space limit (`ulimit -v`), when one is set. */
function addressSpaceLimit(): number | undefined {
  const m = /^Max address space\s+(\d+)/m.exec(readText('/proc/self/limits') ?? '');
  return m ? Number(m[1]) : undefined;
}
