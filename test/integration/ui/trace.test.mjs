// UI test: a person runs "Mechanist: Causal Trace..." on the gpt2 fixture from the command
// palette, answers its prompt, subject, answer and corruption questions, reads the heatmaps'
// numbers (chart and table view) and checks them against the CLI, reveals blocks in the Layer
// Explorer by clicking a heatmap cell and by pressing Enter on a table cell, finds the run in
// the Runs view, cancels a long trace from its progress notification and reloads the window
// (the panel comes back with the same numbers). Runs in a light and a dark theme; screenshots
// of each state land in test/integration/artifacts/trace-<theme>/.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, before, after, afterEach } from 'mocha';
import { harness, openSession } from '../lib/harness.mjs';
import { MECHANIST_ICON, clearNotifications, command, contextMenu, docShot, esc, exact, pane, pickRow, quickInput, reloadWindow, row, selectedInLayerExplorer, webviewFrame } from '../lib/workbench.mjs';

const MODEL_DIR = 'gpt2';
const MODEL_FILE = 'model.onnx';
const KINDS = ['residual', 'mlp', 'attn'];
const TOL = 1e-4;
/** Samples per restoration for the trace that is cancelled (about a minute of work here). */
const LONG_SAMPLES = 5000;

/** The extension's own reference: the same trace from the CLI (outside VS Code). */
function cliTrace(model, fixture) {
  const p = fixture.prompt;
  const args = [join(harness.repoRoot, 'bin', 'mechanist.js'), 'trace', model, '--prompt', p.text, '--subject', p.subject, '--target', p.answer.text];
  // What src/commands/causalTrace.ts sends by default: window 10, noise 3x, 10 samples, seed 1.
  args.push('--kind', 'all', '--window', '10', '--noise', '3x', '--samples', '10', '--seed', '1', '--json');
  const out = execFileSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'ignore'] });
  return JSON.parse(out);
}

/** Everything the panel shows as numbers: header scores, chart summaries (chart view) or tables (table view). */
async function readPanel(frame) {
  await frame.locator('.trace-header h1').waitFor({ timeout: 60_000 });
  return frame.locator('body').evaluate((body) => {
    const facts = {};
    const dts = [...body.querySelectorAll('.trace-facts dt')];
    for (const dt of dts) facts[dt.textContent.trim()] = dt.nextElementSibling?.textContent.trim() ?? '';
    const strong = [...(dts.find((d) => d.textContent.trim() === 'p(answer)')?.nextElementSibling?.querySelectorAll('strong') ?? [])].map((s) => Number(s.textContent));
    const sections = [...body.querySelectorAll('section.trace-result')].map((sec) => ({
      title: sec.querySelector('h2')?.textContent.trim() ?? '',
      aria: sec.querySelector('canvas[role="img"]')?.getAttribute('aria-label') ?? null,
      table: sec.querySelector('table')
        ? {
            cols: [...sec.querySelectorAll('thead th')].slice(1).map((th) => th.textContent.trim()),
            rows: [...sec.querySelectorAll('tbody tr')].map((tr) => ({
              token: tr.querySelector('th')?.textContent ?? '',
              cells: [...tr.querySelectorAll('td')].map((td) => Number(td.textContent)),
            })),
          }
        : null,
    }));
    return { facts, clean: strong[0], corrupted: strong[1], sections, prompt: body.querySelector('.trace-prompt')?.textContent ?? '' };
  });
}

const kindOf = (title) => (/residual/i.test(title) ? 'residual' : /MLP/.test(title) ? 'mlp' : /attention/i.test(title) ? 'attn' : undefined);

/** Checks a panel reading against the CLI's results (every table cell when the tables show). */
function checkPanel(panel, ref, { tables }) {
  const first = ref.residual;
  assert.ok(Math.abs(panel.clean - first.highScore) <= TOL, `clean p(answer) ${panel.clean} vs CLI ${first.highScore}`);
  assert.ok(Math.abs(panel.corrupted - first.lowScore) <= TOL, `corrupted p(answer) ${panel.corrupted} vs CLI ${first.lowScore}`);
  const c = first.corruption;
  const nu = /ν = ([\d.]+), (\d+) samples?, seed (\d+)/.exec(panel.facts.Corruption ?? '');
  assert.ok(nu, `corruption line ${JSON.stringify(panel.facts.Corruption)}`);
  assert.ok(Math.abs(Number(nu[1]) - c.nu) <= TOL, `noise scale ν ${nu[1]} vs CLI ${c.nu}`);
  assert.deepEqual([Number(nu[2]), Number(nu[3])], [c.samples, c.seed], 'samples and seed');
  assert.deepEqual(panel.sections.map((s) => kindOf(s.title)), KINDS, `heatmap titles: ${panel.sections.map((s) => s.title).join(' | ')}`);
  let checked = 0;
  for (const sec of panel.sections) {
    const r = ref[kindOf(sec.title)];
    if (tables) {
      assert.ok(sec.table, `no table under "${sec.title}"`);
      assert.deepEqual(sec.table.cols, r.scores.map((_, l) => `Layer ${l}`), `${sec.title}: columns`);
      assert.equal(sec.table.rows.length, r.inputTokens.strings.length, `${sec.title}: one row per token`);
      sec.table.rows.forEach((tr, t) => {
        const subject = t >= r.subjectRange[0] && t < r.subjectRange[1];
        assert.equal(tr.token, `${r.inputTokens.strings[t]}${subject ? '*' : ''}`, `${sec.title}: token of row ${t}`);
        tr.cells.forEach((v, l) => {
          assert.ok(Math.abs(v - r.scores[l][t]) <= TOL, `${sec.title}: token ${t} ${JSON.stringify(r.inputTokens.strings[t])}, layer ${l}: panel ${v} vs CLI ${r.scores[l][t]}`);
          checked++;
        });
      });
    } else {
      // The chart's accessible summary names the maximum: "max 0.8316 at layer 0, token ' is'".
      const m = /max (\S+) at layer (\d+)/.exec(sec.aria ?? '');
      assert.ok(m, `${sec.title}: canvas aria-label ${JSON.stringify(sec.aria)}`);
      const best = Math.max(...r.scores.flat());
      assert.ok(Math.abs(Number(m[1]) - best) <= TOL, `${sec.title}: max ${m[1]} vs CLI ${best}`);
      assert.ok(Math.abs(r.scores[Number(m[2])].reduce((a, b) => Math.max(a, b), -Infinity) - best) <= TOL, `${sec.title}: the max is at layer ${m[2]}`);
      checked++;
    }
  }
  return checked;
}

/** The trace webview's document (the visible one). */
const traceFrame = webviewFrame;

/** The Layer Explorer's selected row label. */
const selectedBlock = (page, label) => selectedInLayerExplorer(page, label);

/** Editor tabs of trace panels. */
function traceTabs(page) {
  return page.locator('.tabs-container .tab', { hasText: /Causal trace:/ });
}

/** Sets a user setting in the Settings editor (search, type the value, close the editor). */
async function setSetting(s, id, value) {
  const page = s.page;
  await command(page, 'Preferences: Open Settings (UI)');
  const editor = page.locator('.settings-editor');
  await editor.waitFor({ timeout: 30_000 });
  const search = editor.locator('.settings-header .suggest-input-container');
  await search.waitFor({ timeout: 30_000 });
  await search.click();
  await page.keyboard.press('ControlOrMeta+A');
  await page.keyboard.type(id);
  const item = editor.locator('.setting-item-contents', { has: page.locator('.setting-item-label', { hasText: new RegExp(id.split('.').pop(), 'i') }) }).first();
  const input = item.locator('.setting-item-control input');
  await input.waitFor({ timeout: 30_000 });
  await input.fill(String(value));
  await input.press('Tab');
  await item.locator('.setting-item-modified-indicator, .setting-item-overrides').first().waitFor({ state: 'attached', timeout: 10_000 }).catch(() => {});
  await page.waitForTimeout(1_000); // the write is debounced
  await s.shot(`setting-${id}`);
  // Close its tab (only that one) with the tab's close button.
  const tab = page.locator('.tabs-container .tab', { hasText: /^Settings/ }).first();
  await tab.hover();
  await tab.locator('.tab-actions .action-label').first().click();
  await editor.waitFor({ state: 'detached', timeout: 30_000 });
  await page.waitForTimeout(1_000); // the trace panel's webview takes focus again
}

for (const theme of ['light', 'dark']) {
  describe(`Causal trace, clicked through (${theme} theme)`, function () {
    let s;
    let fixture;
    let ref;
    const model = () => join(harness.workspace, MODEL_DIR, MODEL_FILE);
    const timings = {};
    const timed = async (label, fn) => {
      const t = Date.now();
      try {
        return await fn();
      } finally {
        timings[label] = ((Date.now() - t) / 1000).toFixed(1);
      }
    };

    before(async function () {
      this.timeout(180_000);
      fixture = JSON.parse(readFileSync(join(harness.workspace, MODEL_DIR, 'expected.json'), 'utf8'));
      ref = await timed('cli', () => cliTrace(model(), fixture));
      s = await timed('start', () => openSession({ name: `trace-${theme}`, theme }));
      await s.page.setViewportSize({ width: 1280, height: 800 });
    });

    afterEach(async function () {
      if (this.currentTest?.state === 'failed' && s?.page) await s.shot(`FAILED-${this.currentTest.title.replace(/[^\w]+/g, '-').slice(0, 60)}`).catch(() => {});
    });

    after(async () => {
      if (process.env.MECHANIST_UI_DEBUG || Object.keys(timings).length) console.log(`    timings (s): ${JSON.stringify(timings)}`);
      await s?.close();
    });

    it('opens the gpt2 fixture (Explorer > right-click > Mechanist: Open Model)', async function () {
      this.timeout(150_000);
      const page = s.page;
      const explorer = page.locator('.explorer-folders-view');
      await explorer.waitFor({ timeout: 60_000 });
      const folder = row(explorer, MODEL_DIR);
      await folder.waitFor({ timeout: 60_000 });
      if ((await folder.getAttribute('aria-expanded')) === 'false') await folder.click();
      const file = row(explorer, MODEL_FILE);
      await file.waitFor({ timeout: 30_000 });
      await page.locator(MECHANIST_ICON).first().waitFor({ timeout: 60_000 });
      await contextMenu(page, file, /Open Model/);
      // Opening focuses the Layer Explorer with the model in it.
      const view = pane(page, /Layer Explorer/i);
      await timed('open', () => row(view, MODEL_FILE).waitFor({ timeout: 90_000 }));
      await page.mouse.move(640, 780);
      await s.shot('model-open');
    });

    it('runs Mechanist: Causal Trace... from the command palette (prompt, subject, answer, corruption)', async function () {
      this.timeout(180_000);
      const page = s.page;
      const p = fixture.prompt;
      await command(page, 'Mechanist: Causal Trace...');
      const w = await quickInput(page, /Causal trace \(1\/4\): prompt/);
      const input = w.locator('input');
      await input.fill(p.text);
      await s.shot('prompt');
      await input.press('Enter');

      await quickInput(page, /Causal trace \(2\/4\): subject/);
      await input.fill(p.subject); // filters the spans
      const subject = await pickRow(page, exact(p.subject));
      await s.shot('subject');
      await subject.click();

      // The answers are the model's own top predictions (the engine runs the prompt first).
      await quickInput(page, /Causal trace \(3\/4\): answer/);
      const answer = await timed('predict', () => pickRow(page, exact(JSON.stringify(p.answer.text))));
      await page.mouse.move(640, 780);
      await s.shot('answer');
      await answer.click();

      await quickInput(page, /Causal trace \(4\/4\): corruption/);
      const noise = await pickRow(page, /^Gaussian noise \(3x.*, 10 samples\)$/);
      await s.shot('corruption');
      const t = Date.now();
      await noise.click();

      // The progress notification shows while the engine traces (a few seconds here).
      const toast = page.locator('.notification-toast', { hasText: `Causal trace of "${p.subject}"` });
      const seen = await toast.waitFor({ timeout: 20_000 }).then(() => true, () => false);
      if (seen) {
        await page.waitForTimeout(400); // the toast slides in
        await s.shot('progress').catch(() => {});
      }
      await traceTabs(page).first().waitFor({ timeout: 120_000 });
      const frame = traceFrame(page);
      await frame.locator('section.trace-result canvas[role="img"]').first().waitFor({ timeout: 60_000 });
      timings.trace = ((Date.now() - t) / 1000).toFixed(1);
      assert.equal(await traceTabs(page).count(), 1, 'one trace panel');
      assert.match(await traceTabs(page).first().textContent(), new RegExp(`Causal trace: ${esc(p.subject)} → ${esc(p.answer.text.trim())}`));
    });

    it('shows the CLI’s numbers (chart view, then table view)', async function () {
      this.timeout(120_000);
      const page = s.page;
      const frame = traceFrame(page);
      await page.mouse.move(640, 780);
      const chart = await readPanel(frame);
      assert.match(chart.prompt, new RegExp(esc(fixture.prompt.text)));
      checkPanel(chart, ref, { tables: false });
      await s.shot('trace-chart');

      const toggle = frame.locator('vscode-button', { hasText: 'Table view' });
      await toggle.click();
      await frame.locator('vscode-button[aria-pressed="true"]', { hasText: 'Table view' }).waitFor({ timeout: 30_000 });
      await frame.locator('table.trace-table').nth(KINDS.length - 1).waitFor({ timeout: 30_000 });
      const table = await readPanel(frame);
      const cells = checkPanel(table, ref, { tables: true });
      assert.equal(cells, KINDS.length * ref.residual.scores.length * ref.residual.inputTokens.strings.length, 'every cell checked');
      await s.shot('trace-table');
    });

    it('reveals the block in the Layer Explorer (Enter on a table cell, click on a heatmap cell)', async function () {
      this.timeout(120_000);
      const page = s.page;
      const frame = traceFrame(page);
      const tokens = ref.residual.inputTokens.strings.length;
      // Table view: the last token's row of the residual table, layer 1; Enter reveals "block 1".
      const cell = frame.locator('section.trace-result').first().locator('tbody tr').nth(tokens - 1).locator('td').nth(1);
      await cell.focus();
      await cell.press('Enter');
      assert.equal(await selectedBlock(page, 'block 1'), 'block 1');
      await s.shot('revealed-from-table');

      // Chart view: click the residual heatmap's cell (last token, layer 2): "block 2".
      const toggle = frame.locator('vscode-button', { hasText: 'Table view' });
      await toggle.click();
      await frame.locator('vscode-button[aria-pressed="false"]', { hasText: 'Table view' }).waitFor({ timeout: 30_000 });
      const canvas = frame.locator('section.trace-result').first().locator('canvas[role="img"]');
      await canvas.waitFor({ timeout: 30_000 });
      await canvas.scrollIntoViewIfNeeded();
      // The plot area from the canvas's pixels: chart.js leaves the canvas transparent outside
      // what it draws, and a frame is stroked around the cells.
      const area = await canvas.evaluate((c) => {
        const ctx = c.getContext('2d');
        const { width: W, height: H } = c;
        const img = ctx.getImageData(0, 0, W, H).data;
        const drawn = (x, y) => img[(y * W + x) * 4 + 3] > 0;
        const x = W - Math.round((18 * W) / c.clientWidth); // inside the plot (8 px padding), right of the last column's tick label
        let top = 0;
        while (top < H && !drawn(x, top)) top++;
        let bottom = top;
        while (bottom + 1 < H && drawn(x, bottom + 1)) bottom++;
        let right = W - 1;
        const yMid = Math.round(top + 1);
        while (right > 0 && !drawn(right, yMid)) right--;
        let left = right;
        while (left > 0 && drawn(left - 1, top)) left--;
        const dpr = W / c.clientWidth;
        return { left: left / dpr, right: right / dpr, top: top / dpr, bottom: bottom / dpr, dpr };
      });
      const layers = ref.residual.scores.length;
      const [t, l] = [tokens - 1, 2];
      const position = {
        x: area.left + ((l + 0.5) * (area.right - area.left)) / layers,
        y: area.top + ((t + 0.5) * (area.bottom - area.top)) / tokens,
      };
      assert.ok(area.right - area.left > 40 && area.bottom - area.top > 40, `plot area found in the canvas: ${JSON.stringify(area)}`);
      await canvas.click({ position });
      assert.equal(await selectedBlock(page, 'block 2'), 'block 2');
      await page.waitForTimeout(300);
      await s.shot('revealed-from-chart');
      // The README's picture: the panel with the Layer Explorer beside it.
      await page.mouse.move(640, 790);
      await page.waitForTimeout(300);
      await s.shot('trace-panel-with-explorer');
      await docShot(s, 'trace', { part: 'window' });
    });

    it('lists the run in the Runs view', async function () {
      this.timeout(60_000);
      const page = s.page;
      const runs = pane(page, /^Runs$/);
      await runs.waitFor({ timeout: 30_000 });
      const header = runs.locator('.pane-header');
      if ((await header.getAttribute('aria-expanded')) === 'false') await header.click();
      const item = runs.locator('.monaco-list-row').filter({ hasText: new RegExp(`${esc(fixture.prompt.subject)} → +${esc(fixture.prompt.answer.text.trim())}`) });
      await item.first().waitFor({ timeout: 30_000 });
      assert.equal(await runs.locator('.monaco-list-row').count(), 1, 'one run stored');
      assert.match(await item.first().textContent(), /model\.onnx/);
      await s.shot('runs-view');
    });

    it('cancels a long trace from its progress notification: no panel, an information message', async function () {
      this.timeout(180_000);
      const page = s.page;
      const p = fixture.prompt;
      await clearNotifications(page);
      // Many samples per restoration (minutes of work), set in the Settings editor as a person would.
      await setSetting(s, 'mechanist.samples', LONG_SAMPLES);
      let corruption;
      for (let attempt = 1; ; attempt++) {
        await command(page, 'Mechanist: Causal Trace...');
        const w = await quickInput(page, /Causal trace \(1\/4\): prompt/);
        const input = w.locator('input');
        await input.fill(p.text);
        await input.press('Enter');
        await quickInput(page, /Causal trace \(2\/4\): subject/);
        await input.fill(p.subject);
        await (await pickRow(page, exact(p.subject))).click();
        await quickInput(page, /Causal trace \(3\/4\): answer/);
        await (await pickRow(page, exact(JSON.stringify(p.answer.text)))).click();
        await quickInput(page, /Causal trace \(4\/4\): corruption/);
        corruption = await pickRow(page, /^Gaussian noise \(3x/);
        const label = await corruption.locator('.label-name').textContent();
        if (label.includes(`${LONG_SAMPLES} samples`)) break;
        // The setting is written after a short delay; a slow machine may not have it yet.
        assert.ok(attempt < 3, `the corruption pick still says ${JSON.stringify(label)} after writing mechanist.samples = ${LONG_SAMPLES}`);
        await page.keyboard.press('Escape');
        await page.waitForTimeout(3_000);
      }
      await s.shot('corruption-many-samples');
      await corruption.click();
      const toast = page.locator('.notification-toast', { hasText: `Causal trace of "${p.subject}"` });
      await toast.waitFor({ timeout: 60_000 });
      // Let it get going (progress messages), then cancel as a person would.
      await toast.locator('.notification-list-item-details-row, .monaco-progress-container').first().waitFor({ timeout: 10_000 }).catch(() => {});
      await page.waitForTimeout(2_000);
      await toast.hover();
      await s.shot('progress-long');
      const t = Date.now();
      await toast.locator('.monaco-button', { hasText: /^Cancel$/ }).click();
      const message = page.locator('.notification-toast', { hasText: /causal trace cancelled/i });
      await message.waitFor({ timeout: 60_000 });
      timings.cancel = ((Date.now() - t) / 1000).toFixed(1);
      await toast.waitFor({ state: 'detached', timeout: 30_000 });
      await s.shot('cancelled');
      // No panel for it (give a late one a moment to show up), and no stored run.
      await page.waitForTimeout(3_000);
      assert.equal(await traceTabs(page).count(), 1, 'still one trace panel after the cancel');
      assert.equal(await pane(page, /^Runs$/).locator('.monaco-list-row').count(), 1, 'still one stored run after the cancel');
      await clearNotifications(page);
    });

    it('restores the panel with the same numbers, and the model in the Layer Explorer, after Developer: Reload Window', async function () {
      this.timeout(180_000);
      const page = s.page;
      const t = Date.now();
      await reloadWindow(page);
      await traceTabs(page).first().waitFor({ timeout: 90_000 });
      const frame = traceFrame(page);
      await frame.locator('section.trace-result canvas[role="img"]').first().waitFor({ timeout: 90_000 });
      timings.reload = ((Date.now() - t) / 1000).toFixed(1);
      assert.equal(await traceTabs(page).count(), 1, 'one trace panel after the reload');
      await page.mouse.move(640, 790);
      checkPanel(await readPanel(frame), ref, { tables: false });
      await s.shot('restored-chart');
      await frame.locator('vscode-button', { hasText: 'Table view' }).click();
      await frame.locator('table.trace-table').nth(KINDS.length - 1).waitFor({ timeout: 30_000 });
      checkPanel(await readPanel(frame), ref, { tables: true });
      await s.shot('restored-table');
      // The Layer Explorer reopens the model that was open (the Mechanist view shows it again).
      const view = pane(page, /Layer Explorer/i);
      if (!(await view.isVisible())) await page.locator(MECHANIST_ICON).first().click();
      const root = view.locator('.monaco-list-row[aria-level="1"]').filter({ has: page.locator('.label-name', { hasText: exact(MODEL_FILE) }) });
      await root.first().waitFor({ timeout: 90_000 });
      assert.equal(await root.count(), 1, 'one model in the Layer Explorer after the reload');
      assert.match(await root.first().locator('.label-description').textContent(), /^gpt2 · /, 'the gpt2 fixture, reopened');
      await row(view, 'block 0').waitFor({ timeout: 30_000 });
      await s.shot('restored-layer-explorer');
    });
  });
}
