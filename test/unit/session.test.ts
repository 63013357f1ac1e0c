import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openSession, providerPlan } from '../../src/runtime/session';
import { tinyLinearModel } from './helpers/tinyModel';

test('provider selection: auto takes CUDA only with a GPU and the CUDA package; settings win; CPU is the fallback', () => {
  assert.deepEqual(providerPlan('auto', false, false).order, ['cpu']);
  assert.deepEqual(providerPlan('auto', false, true).order, ['cpu']);
  assert.deepEqual(providerPlan('auto', true, false).order, ['cpu']);
  assert.match(providerPlan('auto', true, false).reason, /without CUDA/);
  assert.deepEqual(providerPlan('auto', true, true).order, ['cuda', 'cpu']);
  assert.deepEqual(providerPlan('cuda', false, false).order, ['cuda', 'cpu']);
  assert.deepEqual(providerPlan('cpu', true, true).order, ['cpu']);
});

test('asking for CUDA where it cannot start falls back to CPU with the reason, never a crash', async () => {
  const { session, provider, reason } = await openSession(tinyLinearModel().bytes, { provider: 'cuda' });
  // On a machine with a working CUDA provider this runs on CUDA; elsewhere it must fall back.
  if (provider === 'cpu') assert.match(reason, /CUDA failed .*using CPU/);
  else assert.equal(provider, 'cuda');
  await session.release();
});
