/**
 * Out of memory, said plainly. Two guards:
 * - before onnxruntime loads a model on the CPU, the weights it will hold are compared with the
 *   memory this process can still get (Linux: MemAvailable + free swap, within a cgroup's
 *   limit); a model that cannot fit is refused with both numbers instead of failing deep in
 *   onnxruntime or being killed by the system mid-way;
 * - an allocation failure that happens anyway (onnxruntime's std::bad_alloc or "Failed to
 *   allocate memory", a JavaScript buffer that cannot be allocated) becomes an
 *   `OutOfMemoryError` that says what was being done.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { OnnxModel } from './onnx/model';
import { bytesPerElement, DataType } from './onnx/types';

export class OutOfMemoryError extends Error {
  override readonly name = 'OutOfMemoryError';
}

/** Bytes this process can still allocate, and where the figure comes from. */
export function availableMemory(): { bytes: number; source: string } {
  let bytes = os.freemem();
  let source = 'free memory';
  const meminfo = readText('/proc/meminfo');
  if (meminfo) {
    const kib = (k: string): number | undefined => {
      const m = new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(meminfo);
      return m ? Number(m[1]) * 1024 : undefined;
    };
    const avail = kib('MemAvailable');
    if (avail !== undefined) {
      bytes = avail + (kib('SwapFree') ?? 0);
      source = kib('SwapFree') ? 'available memory and free swap' : 'available memory';
    }
  }
  const limit = cgroupRoom();
  if (limit !== undefined && limit < bytes) return { bytes: limit, source: "the container's memory limit" };
  return { bytes, source };
}

/** Room left under a cgroup memory limit (v2, else v1), if one is set. */
function cgroupRoom(): number | undefined {
  const pairs: [string, string][] = [
    ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory.current'],
    ['/sys/fs/cgroup/memory/memory.limit_in_bytes', '/sys/fs/cgroup/memory/memory.usage_in_bytes'],
  ];
  for (const [maxFile, curFile] of pairs) {
    const max = readText(maxFile)?.trim();
    if (!max || max === 'max') continue;
    const limit = Number(max);
    // (v1 reports "no limit" as a huge number near 2^63.)
    if (!Number.isFinite(limit) || limit > 2 ** 60) continue;
    return Math.max(0, limit - Number(readText(curFile)?.trim() ?? 0));
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

/** Refuses, before onnxruntime tries, a model whose weights cannot fit in the memory left. */
export function checkSessionMemory(model: OnnxModel, provider: 'cpu' | 'cuda', available = availableMemory()): void {
  if (provider !== 'cpu') return; // (device memory: onnxruntime's CUDA provider reports its own failures)
  const need = sessionWeightBytes(model, provider);
  if (need <= available.bytes) return;
  const f16 = model.graph.initializer.some((t) => t.data_type === DataType.FLOAT16 || t.data_type === DataType.BFLOAT16);
  throw new OutOfMemoryError(
    `out of memory: onnxruntime needs at least ${gib(need)} for this model's weights on the CPU${f16 ? ' (float16 weights are held as float32 there)' : ''}, and ${gib(available.bytes)} is left (${available.source}); close other programs or use a smaller model`,
  );
}

const ALLOCATION_FAILURE = /bad_alloc|Failed to allocate memory|out of memory|Cannot allocate memory|Array buffer allocation failed|allocation failed/i;

/** `e` as an OutOfMemoryError naming what was being done when it is an allocation failure; else `e`. */
export function asOutOfMemory(e: unknown, doing: string): unknown {
  if (e instanceof OutOfMemoryError) return e;
  const message = e instanceof Error ? e.message : String(e);
  if (!ALLOCATION_FAILURE.test(message)) return e;
  const { bytes, source } = availableMemory();
  const as = addressSpaceLimit();
  const limit = as === undefined ? '' : `, and this process may map at most ${gib(as)} (ulimit -v)`;
  return new OutOfMemoryError(`out of memory while ${doing} (${message.split('\n')[0].trim()}); ${gib(bytes)} is left (${source})${limit}; close other programs, use a smaller model or fewer samples`);
}

/** The process's address-space limit (`ulimit -v`), when one is set. */
function addressSpaceLimit(): number | undefined {
  const m = /^Max address space\s+(\d+)/m.exec(readText('/proc/self/limits') ?? '');
  return m ? Number(m[1]) : undefined;
}
