import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EngineClient } from '../../src/engine/client';
import type { CancelSource , EngineError } from '../../src/engine/client';
import { tinyLinearModel } from './helpers/tinyModel';

// tsc compiles src/ next to the tests, so the engine's entry is out/src/engine/host.js.
const HOST = path.resolve(__dirname, '../../src/engine/host.js');

function cancelSource(): CancelSource & { cancel(): void } {
  const listeners: (() => void)[] = [];
  return {
    isCancellationRequested: false,
    onCancellationRequested(l) {
      listeners.push(l);
      return { dispose: () => listeners.splice(listeners.indexOf(l), 1) };
    },
    cancel() {
      this.isCancellationRequested = true;
      for (const l of [...listeners]) l();
    },
  };
}

test('the engine starts on first use, opens a model in its own process and reports errors by kind', async (t) => {
  const client = new EngineClient(HOST);
  t.after(() => client.dispose());
  assert.equal(client.started, false);
  const { pid } = await client.request('ping', {});
  assert.notEqual(pid, process.pid);
  if (process.platform === 'linux' && !process.env.GLIBC_TUNABLES && process.env.MECHANIST_HUGE_PAGES !== '0') {
    // Started with glibc's huge-page tunable (src/engine/hugePages.ts).
    assert.ok(fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes('GLIBC_TUNABLES=glibc.malloc.hugetlb=1'));
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mechanist-engine-'));
  fs.writeFileSync(path.join(dir, 'm.onnx'), tinyLinearModel().bytes);
  const m = await client.request('open', { path: path.join(dir, 'm.onnx') });
  assert.equal(m.family, 'unknown');
  assert.deepEqual(m.inputs.map((i) => i.name), ['x']);
  const nodes = await client.request('nodes', { id: m.id, names: ['/linear/MatMul'] });
  assert.deepEqual(nodes[0].inputs, ['x', 'linear.weight']);
  fs.writeFileSync(path.join(dir, 'bad.onnx'), '');
  await assert.rejects(client.request('open', { path: path.join(dir, 'bad.onnx') }), (e: EngineError) => e.kind === 'model' && /empty/.test(e.message));
});

test('progress streams and cancellation stops a long request', async (t) => {
  const client = new EngineClient(HOST);
  t.after(() => client.dispose());
  const seen: number[] = [];
  const cancel = cancelSource();
  const p = client.request('sleep', { steps: 200, ms: 5 }, { cancel, onProgress: (x) => (seen.push(x.fraction ?? 0), seen.length === 3 && cancel.cancel()) });
  await assert.rejects(p, (e: EngineError) => e.kind === 'cancelled');
  assert.ok(seen.length >= 3 && seen.length < 200, `stopped early after ${seen.length} steps`);
  assert.deepEqual(await client.request('sleep', { steps: 2, ms: 1 }), { completed: 2 });
});

test('a crashed engine fails pending requests with a clear message and restarts on the next one', async (t) => {
  const client = new EngineClient(HOST);
  t.after(() => client.dispose());
  const { pid } = await client.request('ping', {});
  const pending = client.request('sleep', { steps: 100, ms: 20 });
  // SIGKILL is what the kernel's out-of-memory killer sends: the message says so.
  process.kill(pid, 'SIGKILL');
  await assert.rejects(pending, (e: EngineError) => e.kind === 'memory' && /engine process was killed \(SIGKILL\), most likely .* memory ran out/.test(e.message));
  const { pid: second } = await client.request('ping', {});
  assert.notEqual(second, pid);
  const other = client.request('sleep', { steps: 100, ms: 20 });
  process.kill(second, 'SIGSEGV');
  await assert.rejects(other, (e: EngineError) => e.kind === 'internal' && /engine process exited \(SIGSEGV\)/.test(e.message));
  const again = await client.request('ping', {});
  assert.notEqual(again.pid, second);
});
