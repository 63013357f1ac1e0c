// UI test: a person opens the gpt2 fixture from the Explorer's context menu, opens the
// Mechanist view, expands the Layer Explorer and sees one row per block and per head.
// Runs in a light and a dark theme; screenshots of each state land in
// test/integration/artifacts/ui-<theme>/.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it, before, after, afterEach } from 'mocha';
import { harness, openSession } from '../lib/harness.mjs';
import { expectedFor } from '../lib/expected.mjs';
import { MECHANIST_ICON, contextMenu, docShot, expand, row } from '../lib/workbench.mjs';

const MODEL_DIR = 'gpt2';
const MODEL_FILE = 'model.onnx';

for (const theme of ['light', 'dark']) {
  describe(`Layer Explorer, clicked through (${theme} theme)`, function () {
    let s;
    let expected;

    before(async function () {
      this.timeout(120_000);
      expected = expectedFor(join(harness.workspace, MODEL_DIR, MODEL_FILE), harness.repoRoot);
      s = await openSession({ name: `ui-${theme}`, theme });
      await s.shot('workbench');
    });

    afterEach(async function () {
      if (this.currentTest?.state === 'failed' && s?.page) await s.shot(`FAILED-${this.currentTest.title.replace(/[^\w]+/g, '-').slice(0, 60)}`).catch(() => {});
    });

    after(async () => {
      await s?.close();
    });

    it('shows the fixture in the Explorer', async () => {
      const explorer = s.page.locator('.explorer-folders-view');
      await explorer.waitFor({ timeout: 30_000 });
      const folder = row(explorer, MODEL_DIR);
      await folder.waitFor({ timeout: 30_000 });
      await expand(folder);
      await row(explorer, MODEL_FILE).waitFor({ timeout: 30_000 });
      // The extension's contributions are in once its activity-bar entry shows.
      await s.page.locator(MECHANIST_ICON).first().waitFor({ timeout: 60_000 });
      await s.shot('explorer');
    });

    it('opens the model with right-click > Mechanist: Open Model', async () => {
      const explorer = s.page.locator('.explorer-folders-view');
      await contextMenu(s.page, row(explorer, MODEL_FILE), /Open Model/, { onOpen: () => s.shot('context-menu') });
    });

    it('lists one row per block and per head in the Layer Explorer', async function () {
      this.timeout(120_000);
      const mech = s.page.locator(MECHANIST_ICON).first();
      await mech.waitFor({ timeout: 30_000 });
      const view = s.page.locator('.pane', { has: s.page.locator('.pane-header', { hasText: /Layer Explorer/i }) });
      if (!(await view.isVisible())) await mech.click();
      await view.waitFor({ timeout: 30_000 });
      const header = view.locator('.pane-header');
      if ((await header.getAttribute('aria-expanded')) === 'false') await header.click();
      const root = row(view, MODEL_FILE);
      await root.waitFor({ timeout: 60_000 });
      await s.shot('layer-explorer');
      // Walk the tree with the keyboard as a person would: Down moves on, Right expands the
      // model, each block and each attention node. The focused row is always scrolled into
      // sight, so every row is seen although the list renders only the visible ones.
      // A click focuses the tree (and toggles the model row): let it settle.
      await root.click();
      await s.page.mouse.move(900, 700); // no hover tooltip over the tree in the screenshots
      const v = await view.elementHandle();
      const focused = view.locator('.monaco-list-row.focused');
      await focused.waitFor({ timeout: 30_000 });
      const state = () =>
        focused.evaluate((el) => ({
          label: (el.querySelector('.label-name')?.textContent ?? '').trim(),
          index: Number(el.getAttribute('data-index')),
          expanded: el.getAttribute('aria-expanded'),
          level: Number(el.getAttribute('aria-level')),
          last: el.getAttribute('data-last-element') === 'true',
        }));
      for (let prev = ''; ; ) {
        await s.page.waitForTimeout(300);
        const now = JSON.stringify(await state());
        if (now === prev) break;
        prev = now;
      }
      /** Presses `key` until `done(v, arg)` holds in the page (a slow machine may drop a key). */
      const press = async (key, done, arg, { tries = 3, wait = 15_000, retryIf } = {}) => {
        for (let t = 1; ; t++) {
          await s.page.keyboard.press(key);
          const ok = await s.page.waitForFunction(done, { v, ...arg }, { timeout: wait }).then(() => true, () => false);
          if (ok) return;
          if (t >= tries || (retryIf && !(await retryIf()))) assert.fail(`${key} had no effect on the Layer Explorer (row ${JSON.stringify(await state())})`);
        }
      };
      const seen = new Map();
      for (let i = 0; i < 5000; i++) {
        const f = await state();
        if (f.expanded === 'false' && (f.label === MODEL_FILE || f.label === 'attention' || /^block \d+$/.test(f.label))) {
          // Expanded, and the children are in the list (they arrive after aria-expanded flips;
          // the list's full height grows then, even when they are below the visible part).
          const height = (v) => parseFloat(v.querySelector('.monaco-list-rows')?.style.height ?? '0');
          await press(
            'ArrowRight',
            ({ v, i, h }) =>
              v.querySelector(`.monaco-list-row.focused[data-index="${i}"]`)?.getAttribute('aria-expanded') === 'true' &&
              parseFloat(v.querySelector('.monaco-list-rows')?.style.height ?? '0') > h,
            { i: f.index, h: await v.evaluate(height) },
            { retryIf: async () => (await state()).index === f.index && (await state()).expanded === 'false' },
          );
        }
        if (process.env.MECHANIST_UI_DEBUG) console.log('    walk', JSON.stringify(f));
        seen.set(f.index, f.label);
        if (f.last) break; // the list's last row
        await press('ArrowDown', ({ v, i }) => v.querySelector('.monaco-list-row.focused')?.getAttribute('data-index') !== String(i), { i: f.index }, { retryIf: async () => (await state()).index === f.index });
      }
      await s.shot('layer-explorer-expanded');
      // The README's picture: the tree from its top.
      await s.page.keyboard.press('Home');
      await s.page.waitForFunction(({ v, label }) => v.querySelector('.monaco-list-row.focused .label-name')?.textContent.trim() === label, { v, label: MODEL_FILE }, { timeout: 15_000 });
      await docShot(s, 'layer-explorer', { part: 'sidebar', maxHeight: 520 });
      const labels = [...seen.entries()].sort((x, y) => x[0] - y[0]).map((e) => e[1]);
      const blocks = labels.filter((l) => /^block \d+$/.test(l));
      const heads = labels.filter((l) => /^head \d+$/.test(l));
      assert.equal(blocks.length, expected.layers, `blocks shown (expected from ${expected.source}): ${blocks.join(', ')}`);
      assert.equal(heads.length, expected.layers * expected.heads, `heads shown (expected ${expected.layers} x ${expected.heads} from ${expected.source})`);
    });
  });
}
