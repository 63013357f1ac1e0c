// Waiting for the workbench in the in-host tests: poll until a condition holds, or fail with
// the last value seen. The default allows a minute: a webview's first load on a cold, busy
// machine (CI) can take tens of seconds.
import * as assert from 'node:assert/strict';

/** Polls `fn` every 200 ms until `ok` holds; fails after `ms` with what it last saw. */
export async function until<T>(what: string, fn: () => T | Promise<T>, ok: (v: T) => boolean, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  let last: T = await fn();
  while (!ok(last)) {
    if (Date.now() > end) assert.fail(`timed out after ${ms} ms waiting for ${what}; last value: ${JSON.stringify(last)?.slice(0, 500)}`);
    await new Promise((r) => setTimeout(r, 200));
    last = await fn();
  }
  return last;
}
