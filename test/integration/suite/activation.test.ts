// Activation is lazy and cheap: the extension is not active until a Mechanist view, command or
// .onnx file needs it, and activating does not start the engine process. (The time it takes is
// printed, not asserted: timings are benchmarks, not test limits.)
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';

interface Api {
  engine: { started: boolean };
}

describe('activation', () => {
  it('is lazy, and activating does not start the engine', async () => {
    const ext = vscode.extensions.getExtension<Api>('mechanist.mechanist');
    assert.ok(ext, 'the extension is installed');
    const wasActive = ext.isActive;
    const t0 = performance.now();
    const api = await ext.activate();
    const ms = performance.now() - t0;
    if (!wasActive) console.log(`activation took ${ms.toFixed(1)} ms`);
    const activation = ext.packageJSON.activationEvents as string[];
    assert.ok(!activation.includes('*') && !activation.some((e) => e.startsWith('onStartupFinished')), `lazy activation events: ${activation.join(', ')}`);
    assert.equal(api.engine.started, false, 'the engine process starts on first use, not on activation');
  });
});
