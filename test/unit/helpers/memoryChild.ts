/**
 * Child process of memory.test.ts: opens a model and runs it once on zeros, then prints
 * {"ok": true} or the error's name and message as one JSON line. Run under a memory limit.
 */
import { openModel } from '../../../src/runtime/inspect';
import { HookedModel } from '../../../src/runtime/instrument/hookedModel';

async function main(): Promise<void> {
  const { model, graph, arch } = openModel(process.argv[2]);
  // (Two threads: onnxruntime's pool is one thread per core, which a many-core machine could not start under the address-space limit.)
  const hooked = new HookedModel(model, graph, arch, { provider: 'cpu', threads: 2 });
  try {
    const x = graph.inputs[0];
    const dims = (graph.shape(x.name) ?? []).map((d) => (typeof d === 'number' ? d : 1));
    await hooked.runWithCache({ [x.name]: { type: 'float32', data: new Float32Array(dims.reduce((a, b) => a * b, 1)), dims } }, [], graph.outputs.map((o) => o.name));
    process.stdout.write(`${JSON.stringify({ ok: true })}\n`);
  } catch (e) {
    process.stdout.write(`${JSON.stringify({ name: (e as Error).name, message: (e as Error).message })}\n`);
  } finally {
    await hooked.dispose();
  }
}
void main();
