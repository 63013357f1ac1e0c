// UI test: a person runs every result panel besides the causal trace (that is trace.test.mjs),
// from the command palette or the Layer Explorer's context menu, answers its questions, and
// reads the panel's numbers out of the webview, which must equal the CLI's for the same
// inputs (`mechanist <method> ... --json`, the same engine outside VS Code):
//   - gpt2: Attention Knockout..., Head Contributions... (a cell click reveals the head in the
//     Layer Explorer), Logit Lens...;
//   - clip-vision (+ the clip-text tower): Decompose Image...;
//   - encdec: Localize Attribute...;
//   - clip-text: right-click an attention node in the Layer Explorer > Edit Concept Here...,
//     then Discard edit (its confirmation answered) deletes the new file.
// Runs in a light and a dark theme; each panel's picture lands in
// test/integration/artifacts/screenshots/<panel>-<theme>.png (the README's, see docShot) and
// every step's in test/integration/artifacts/panels-<theme>/.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, before, after, afterEach } from 'mocha';
import { harness, openSession } from '../lib/harness.mjs';
import {
  answer,
  choose,
  chooseModelIfAsked,
  clearNotifications,
  cli,
  command,
  contextMenu,
  docShot,
  esc,
  exact,
  expand,
  layerExplorer,
  openFromExplorer,
  pickRow,
  quickInput,
  selectedInLayerExplorer,
  waitTreeRow,
  webviewFrame,
} from '../lib/workbench.mjs';

const PROMPT = 'The home city of Zorwynquill is';
const SUBJECT = 'Zorwynquill';
const KO_WINDOW = 2;
const DESCRIPTIONS = ['red', 'green', 'blue', 'yellow'];
const LOC = { prompt: 'the big ball is red', target: 'the big ball is blue', decoder: 'colour:', window: 2 };
const EDIT = { layer: 'blocks.0.attn', source: 'red circle', target: 'blue circle' };

/** |a - b| within what `digits` printed decimals allow (half a unit in the last place, and a hair). */
function near(a, b, digits, what) {
  const tol = 0.5 * 10 ** -digits + 1e-9;
  assert.ok(Number.isFinite(a) && Math.abs(a - b) <= tol, `${what}: panel ${a} vs CLI ${b} (±${tol})`);
}

/** Waits for the visible panel's heading, and for it to say `title`. */
async function panel(page, title) {
  const frame = webviewFrame(page);
  await frame.locator('h1', { hasText: title }).waitFor({ timeout: 120_000 });
  return frame;
}

/** Presses a panel's "Table view" toggle and waits until it is on. */
async function tableView(frame) {
  await frame.locator('vscode-button', { hasText: 'Table view' }).first().click();
  await frame.locator('vscode-button[aria-pressed="true"]', { hasText: 'Table view' }).waitFor({ timeout: 30_000 });
}

/** The rows of the `n`-th table matching `selector` in the panel: header cell and data cells (text, title, aria-label). */
function readTable(frame, selector, n = 0) {
  return frame.locator(selector).nth(n).evaluate((t) =>
    [...t.querySelectorAll('tbody tr')].map((tr) => ({
      head: (tr.querySelector('th')?.textContent ?? '').trim(),
      cells: [...tr.querySelectorAll('td')].map((td) => ({ text: td.textContent.trim(), title: td.getAttribute('title') ?? '', aria: td.getAttribute('aria-label') ?? '', token: td.querySelector('.att-lens-token')?.textContent ?? '' })),
      cls: tr.className,
    })),
  );
}

/** The header's facts: term -> text, and the numbers in <strong>. */
function readFacts(frame) {
  return frame.locator('header dl').first().evaluate((dl) => {
    const out = {};
    for (const dt of dl.querySelectorAll('dt')) {
      const dd = dt.nextElementSibling;
      out[dt.textContent.trim()] = { text: dd?.textContent.trim() ?? '', strong: [...(dd?.querySelectorAll('strong') ?? [])].map((s) => s.textContent.trim()) };
    }
    return out;
  });
}

/** Waits for the editor tab titled like `re` to be the active one. */
async function activeTab(page, re) {
  await page.locator('.tabs-container .tab.active', { hasText: re }).waitFor({ timeout: 120_000 });
}

for (const theme of ['light', 'dark']) {
  describe(`Result panels, clicked through (${theme} theme)`, function () {
    let s;
    let page;
    const ref = {};
    const ws = (dir, file = 'model.onnx') => join(harness.workspace, dir, file);
    const scratch = mkdtempSync(join(tmpdir(), 'mech-ui-edit-'));

    before(async function () {
      this.timeout(240_000);
      // The CLI's numbers for the same inputs (the defaults the commands send).
      const gpt2 = ws('gpt2');
      const image = ws('clip-vision', join('images', 'red_circle.png'));
      const refs = Promise.all([
        cli('knockout', gpt2, '--prompt', PROMPT, '--sources', 'subject', '--subject', SUBJECT, '--window', String(KO_WINDOW)),
        cli('contributions', gpt2, '--prompt', PROMPT),
        cli('lens', gpt2, '--prompt', PROMPT, '--top', '5'),
        cli('decompose', ws('clip-vision'), '--image', image, '--text-model', ws('clip-text'), '--feature', 'colour', '--descriptions', DESCRIPTIONS.join(','), '--images', join(harness.workspace, 'clip-vision', 'images')),
        cli('localize', ws('encdec'), '--prompt', LOC.prompt, '--target-prompt', LOC.target, '--decoder-prompt', LOC.decoder, '--window', String(LOC.window)),
        cli('edit', ws('clip-text'), '--layer', EDIT.layer, '--source', EDIT.source, '--target', EDIT.target, '--out', join(scratch, 'edited.onnx')),
      ]);
      s = await openSession({ name: `panels-${theme}`, theme });
      page = s.page;
      await page.setViewportSize({ width: 1280, height: 800 });
      [ref.knockout, ref.contributions, ref.lens, ref.decompose, ref.localize, ref.edit] = await refs;
    });

    afterEach(async function () {
      if (this.currentTest?.state !== 'failed' || !page) return;
      await s.shot(`FAILED-${this.currentTest.title.replace(/[^\w]+/g, '-').slice(0, 60)}`).catch(() => {});
      // A failed step may leave a menu, quick input or dialog open: close them, so that the next test starts clean.
      for (let i = 0; i < 3; i++) await page.keyboard.press('Escape').catch(() => {});
    });

    after(async () => {
      await s?.close();
      rmSync(scratch, { recursive: true, force: true });
    });

    it('Attention Knockout... on gpt2: the CLI’s relative changes, baseline and p per window', async function () {
      this.timeout(240_000);
      await openFromExplorer(page, 'gpt2');
      await command(page, 'Mechanist: Attention Knockout...');
      await answer(page, /Attention knockout \(1\/4\): prompt/, PROMPT);
      // The model's own top predictions are offered; the CLI's default answer is the top one.
      await choose(page, /Attention knockout \(2\/4\)/, exact(JSON.stringify(ref.knockout.answer.text)));
      const w = await quickInput(page, /Attention knockout \(3\/4\)/);
      await w.locator('input').fill(SUBJECT); // filters the spans
      await (await pickRow(page, exact(SUBJECT))).click();
      await answer(page, /Attention knockout \(4\/4\): window/, String(KO_WINDOW));
      await activeTab(page, /knockout/i);
      const frame = await panel(page, 'Attention knockout');
      await frame.locator('canvas[role="img"]').first().waitFor({ timeout: 60_000 });
      await clearNotifications(page);
      await docShot(s, 'knockout');
      const facts = await readFacts(frame);
      near(Number(facts['p(answer)'].strong[0]), ref.knockout.baseline, 4, 'clean p(answer)');
      await tableView(frame);
      const rows = await readTable(frame, 'table.att-table');
      assert.equal(rows.length, ref.knockout.sources.length + 1, 'the whole source set, then each source token');
      assert.match(rows[0].head, new RegExp(`all ${ref.knockout.sources.length} sources`));
      assert.equal(rows[0].cells.length, ref.knockout.relativeChange.length, 'one column per layer');
      rows[0].cells.forEach((c, l) => {
        near(Number(c.text.replace('%', '')) / 100, ref.knockout.relativeChange[l], 3, `relative change, all sources, layer ${l}`);
        near(Number(/p\(answer\) (\S+)/.exec(c.title)?.[1]), ref.knockout.layers[l].p, 4, `p(answer), all sources, layer ${l}`);
      });
      await s.shot('knockout-table');
    });

    it('Head Contributions...: the CLI’s norms for every layer and head; a cell click reveals the head', async function () {
      this.timeout(180_000);
      await command(page, 'Mechanist: Head Contributions...');
      await answer(page, /Head contributions to the last token: prompt/, PROMPT);
      await activeTab(page, /contributions/i);
      const frame = await panel(page, 'Head contributions');
      await frame.locator('canvas[role="img"]').first().waitFor({ timeout: 60_000 });
      await clearNotifications(page);
      await docShot(s, 'contributions');
      await tableView(frame);
      const rows = await readTable(frame, 'table.att-table');
      const heads = ref.contributions.heads;
      assert.deepEqual(rows.map((r) => r.head), heads.map((_, l) => `Layer ${l}`));
      let n = 0;
      rows.forEach((r, l) =>
        r.cells.forEach((c, hd) => {
          near(Number(c.text), heads[l][hd], 4, `layer ${l} head ${hd}`);
          n++;
        }),
      );
      assert.equal(n, heads.length * heads[0].length, 'every head checked');
      // A click on (layer 1, head 2): its per-source bars below, and "head 2" selected in the Layer Explorer.
      await frame.locator('table.att-table').first().locator('tbody tr').nth(1).locator('td').nth(2).click();
      await frame.locator('#detail-title', { hasText: 'Layer 1 · head 2' }).waitFor({ timeout: 30_000 });
      const bars = await readTable(frame, 'table.att-bars');
      bars.forEach((b, j) => near(Number(b.cells[1].text), ref.contributions.bySource[1][2][j], 4, `layer 1 head 2, source ${j}`));
      assert.equal(await selectedInLayerExplorer(page, 'head 2'), 'head 2');
      await s.shot('contributions-revealed');
    });

    it('Logit Lens...: the CLI’s top-1 tokens and p(answer) per layer and position', async function () {
      this.timeout(180_000);
      await command(page, 'Mechanist: Logit Lens...');
      await answer(page, /Logit lens \(1\/2\): prompt/, PROMPT);
      await choose(page, /Logit lens \(2\/2\)/, exact(JSON.stringify(ref.lens.answer.text)));
      await activeTab(page, /lens/i);
      const frame = await panel(page, 'Logit lens');
      await frame.locator('table.att-lens').waitFor({ timeout: 60_000 });
      await clearNotifications(page);
      await docShot(s, 'lens');
      const top1 = await readTable(frame, 'table.att-lens');
      assert.equal(top1.length, ref.lens.layers.length, 'one row per layer');
      top1.forEach((r, l) =>
        r.cells.forEach((c, pos) => {
          const t = ref.lens.layers[l].top[pos][0];
          assert.equal(c.token, t.token.replace(/\r?\n/g, '↵').replace(/\t/g, '⇥') || '∅', `top-1 token, layer ${l} position ${pos}`);
          near(Number(/ (\S+?)(,|;)/.exec(c.aria.slice(c.token.length))?.[1]), t.p, 3, `top-1 p, layer ${l} position ${pos}`);
        }),
      );
      await tableView(frame);
      const pa = await readTable(frame, 'table.att-table:not(.att-lens)');
      pa.forEach((r, l) => r.cells.forEach((c, pos) => near(Number(c.text), ref.lens.layers[l].pAnswer[pos], 4, `p(answer), layer ${l} position ${pos}`)));
      assert.equal(pa.length * pa[0].cells.length, ref.lens.layers.length * ref.lens.tokens.length, 'every cell checked');
    });

    it('Decompose Image... on clip-vision (image, text tower, feature): the CLI’s norms and colour scores', async function () {
      this.timeout(240_000);
      await openFromExplorer(page, 'clip-vision');
      await command(page, 'Mechanist: Decompose Image...');
      await chooseModelIfAsked(page, ws('clip-vision'), /Decompose \(1\/3\)/);
      await choose(page, /Decompose \(1\/3\): image/, exact('red_circle.png'));
      await choose(page, /Decompose \(2\/3\)/, /clip-text/);
      await choose(page, /Decompose \(3\/3\)/, exact('colour'));
      await answer(page, /Descriptions of "colour"/, DESCRIPTIONS.join(', '));
      await activeTab(page, /red_circle/);
      const frame = await panel(page, 'Decomposition of red_circle.png');
      await frame.locator('canvas[role="img"]').first().waitFor({ timeout: 60_000 });
      await clearNotifications(page);
      await docShot(s, 'decompose');
      await tableView(frame);
      const rows = await readTable(frame, 'table.dec-table');
      const norms = new Map(ref.decompose.components.map((c) => [c.name, c.norm]));
      const scores = new Map(ref.decompose.scores.map((c) => [c.name, c.score]));
      assert.equal(rows.length, ref.decompose.components.length, 'one row per component');
      const names = rows.map((r) => r.cells[1].text);
      assert.deepEqual([...names].sort(), [...norms.keys()].sort(), 'the same components');
      for (const r of rows) {
        const name = r.cells[1].text;
        near(Number(r.cells[5].text), norms.get(name), 4, `norm of ${name}`);
        if (scores.has(name)) near(Number(r.cells[6].text), scores.get(name), 4, `colour score of ${name}`);
      }
      // Ranked by norm, largest first.
      const shown = rows.map((r) => Number(r.cells[5].text));
      assert.deepEqual(shown, [...shown].sort((a, b) => b - a), 'ranked by norm');
    });

    it('Localize Attribute... on encdec (prompts, decoder prompt, answer, window): the CLI’s window scores and best window', async function () {
      this.timeout(240_000);
      await openFromExplorer(page, 'encdec');
      await command(page, 'Mechanist: Localize Attribute...');
      await chooseModelIfAsked(page, ws('encdec'), /Localize \(1\/5\)/);
      await answer(page, /Localize \(1\/5\)/, LOC.prompt);
      await answer(page, /Localize \(2\/5\)/, LOC.target);
      await answer(page, /Localize \(3\/5\)/, LOC.decoder);
      await choose(page, /Localize \(4\/5\)/, /top prediction for the target prompt/);
      await answer(page, /Localize \(5\/5\)/, String(LOC.window));
      const frame = await panel(page, 'Cross-attention localization');
      await frame.locator('canvas[role="img"]').first().waitFor({ timeout: 60_000 });
      await clearNotifications(page);
      await docShot(s, 'localize');
      const facts = await readFacts(frame);
      near(Number(facts.Baselines.strong[0]), ref.localize.baseline.original, 4, 'baseline, original everywhere');
      near(Number(facts.Baselines.strong[1]), ref.localize.baseline.target, 4, 'baseline, target everywhere');
      await tableView(frame);
      const rows = await readTable(frame, 'table.loc-table');
      assert.equal(rows.length, ref.localize.scores.length, 'one row per window');
      rows.forEach((r, i) => near(Number(r.cells[2].text), ref.localize.scores[i], 4, `window ${i}`));
      assert.deepEqual(rows.flatMap((r, i) => (/\bbest\b/.test(r.cls) ? [i] : [])), [ref.localize.best.start], 'the best window is marked');
      assert.equal(rows[ref.localize.best.start].cells[1].text, ref.localize.best.layers.join(', '), 'the best window’s layers');
      // The run reveals the best window's first cross-attention in the Layer Explorer.
      assert.equal(await selectedInLayerExplorer(page, 'cross-attention'), 'cross-attention');
    });

    it('Edit Concept Here... from the Layer Explorer (right-click clip-text’s block 0 attention): the CLI’s edit; Discard edit deletes the file', async function () {
      this.timeout(240_000);
      await openFromExplorer(page, 'clip-text');
      const view = layerExplorer(page);
      const root = await waitTreeRow(view, { label: 'model.onnx', level: 1, description: 'clip-text' });
      await expand(root);
      const block = await waitTreeRow(view, { label: 'block 0', level: 2, after: Number(await root.getAttribute('data-index')) });
      await expand(block);
      const attention = await waitTreeRow(view, { label: 'attention', level: 3, after: Number(await block.getAttribute('data-index')) });
      await contextMenu(page, attention, /Edit Concept Here/, { onOpen: () => s.shot('edit-context-menu') });
      await answer(page, new RegExp(`Edit concept at ${esc(EDIT.layer)}.*\\(1/5\\)`), EDIT.source);
      await answer(page, /\(2\/5\): target concept/, EDIT.target);
      // Templates and lambda: the defaults offered (those the CLI uses).
      const templates = await quickInput(page, /\(3\/5\)/);
      assert.equal(await templates.locator('input').inputValue(), ref.edit.templates.join('; '), 'default templates');
      await templates.locator('input').press('Enter');
      const lambda = await quickInput(page, /\(4\/5\): lambda/);
      assert.equal(Number(await lambda.locator('input').inputValue()), ref.edit.lambda, 'default lambda');
      await lambda.locator('input').press('Enter');
      const out = await quickInput(page, /\(5\/5\)/);
      const file = await out.locator('input').inputValue();
      assert.match(file, new RegExp(`^${esc(join(harness.workspace, 'clip-text'))}/model\\.edited-red-circle-to-blue-circle(-\\d+)?\\.onnx$`), 'the new file is offered beside the original');
      await out.locator('input').press('Enter');
      const frame = await panel(page, 'Concept edit');
      await frame.locator('table.edit-table').first().waitFor({ timeout: 60_000 });
      await clearNotifications(page);
      await docShot(s, 'edit');
      const facts = await readFacts(frame);
      assert.match(facts.Layer.text, new RegExp(`^${esc(EDIT.layer)}`));
      near(Number(facts['Norm change'].strong[0]), ref.edit.norms.delta, 4, '‖ΔW‖');
      assert.ok(facts['Edited model'].text.startsWith(file), `edited model ${facts['Edited model'].text}`);
      assert.ok(existsSync(file), `${file} was written`);
      const rows = await readTable(frame, 'table.edit-table');
      assert.deepEqual(rows.map((r) => r.head), ref.edit.after.prompts.map((p) => p.prompt), 'the edited prompts');
      rows.forEach((r, i) => {
        const [b, a] = [ref.edit.before.prompts[i], ref.edit.after.prompts[i]];
        [b.toSource, b.toTarget, a.toSource, a.toTarget].forEach((v, k) => near(Number(r.cells[k].text), v, 3, `${a.prompt}: column ${k + 1}`));
        assert.match(r.cells[4].text, a.closerToTarget ? /^target/ : /^source/, `${a.prompt}: closer to`);
      });
      // Discard edit: VS Code asks first; the file goes, the panel says so.
      await frame.locator('vscode-button', { hasText: 'Discard edit' }).click();
      const dialog = page.locator('.monaco-dialog-box');
      await dialog.waitFor({ timeout: 30_000 });
      await s.shot('edit-discard-dialog');
      await dialog.locator('.monaco-button', { hasText: 'Delete Edited Model' }).click();
      await frame.locator('.edit-badge.gone', { hasText: 'discarded' }).waitFor({ timeout: 30_000 });
      assert.equal(existsSync(file), false, `${file} was deleted`);
      assert.ok(existsSync(ws('clip-text')), 'the original is still there');
      await s.shot('edit-discarded');
    });
  });
}
