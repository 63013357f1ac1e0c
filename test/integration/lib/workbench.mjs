// What the UI tests do in a VS Code workbench, as a person would: run a command from the
// palette, answer quick inputs and picks, open a fixture from the Explorer's context menu,
// find tree rows, read the visible webview, reload the window, and save the screenshots the
// README shows. Waits for state, never for a fixed time, except where VS Code itself debounces.
import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { harness } from './harness.mjs';
import { waitForWorkbench } from './browser.mjs';

export const MECHANIST_ICON = '.activitybar .action-item a[aria-label^="Mechanist"], .activitybar .action-item[aria-label^="Mechanist"]';

export const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
export const exact = (s) => new RegExp(`^${esc(s)}$`);

/** The tree row whose label is exactly `label` (the first one from the top). */
export function row(scope, label) {
  return scope.locator('.monaco-list-row').filter({ has: scope.page().locator('.label-name', { hasText: exact(label) }) }).first();
}

/**
 * A tree row by its label (and level, description), the first after the row `after` (a
 * data-index) when given: trees render rows flat, so a child is found after its parent.
 * Resolves with a locator of that row (by data-index), or undefined when none is rendered.
 */
export async function treeRow(scope, { label, level, description, after = -1 }) {
  const index = await scope.evaluate(
    (el, q) => {
      const rows = [...el.querySelectorAll('.monaco-list-row')].map((r) => ({
        index: Number(r.getAttribute('data-index')),
        label: (r.querySelector('.label-name')?.textContent ?? '').trim(),
        description: (r.querySelector('.label-description')?.textContent ?? '').trim(),
        level: Number(r.getAttribute('aria-level')),
      }));
      rows.sort((a, b) => a.index - b.index);
      const hit = rows.find((r) => r.index > q.after && r.label === q.label && (q.level === undefined || r.level === q.level) && (q.description === undefined || r.description.includes(q.description)));
      return hit ? hit.index : -1;
    },
    { label, level, description, after },
  );
  return index < 0 ? undefined : scope.locator(`.monaco-list-row[data-index="${index}"]`);
}

/** Polls treeRow until the row is rendered. */
export async function waitTreeRow(scope, query, timeout = 60_000) {
  const end = Date.now() + timeout;
  for (;;) {
    const r = await treeRow(scope, query);
    if (r) return r;
    if (Date.now() > end) throw new Error(`no tree row ${JSON.stringify(query)} within ${timeout / 1000} s`);
    await scope.page().waitForTimeout(250);
  }
}

/** Expands a collapsed tree row (a click toggles it) and waits until it says so. */
export async function expand(r) {
  if ((await r.getAttribute('aria-expanded')) === 'false') {
    await r.click();
    await r.page().waitForFunction((el) => el.getAttribute('aria-expanded') === 'true', await r.elementHandle(), { timeout: 30_000 });
  }
}

/** The view pane whose header says `title`. */
export function pane(page, title) {
  return page.locator('.pane', { has: page.locator('.pane-header .title', { hasText: title }) });
}

/** The visible webview's document (two iframes deep). */
export function webviewFrame(page) {
  return page.frameLocator('iframe.webview.ready >> visible=true').frameLocator('#active-frame');
}

/**
 * Runs a command from the palette. A webview that takes focus keeps F1 to itself, or closes
 * the palette as it grabs focus: focus goes back to the workbench first, and the whole thing
 * is tried again if the palette does not stay open.
 */
export async function command(page, title) {
  const input = page.locator('.quick-input-widget input');
  const first = page.locator('.quick-input-list .monaco-list-row').first();
  for (let attempt = 1; ; attempt++) {
    await page.evaluate(() => document.activeElement?.blur());
    await page.keyboard.press('F1');
    const ok = await input
      .waitFor({ state: 'visible', timeout: 5_000 })
      .then(() => input.fill(`>${title}`, { timeout: 5_000 }))
      .then(() => first.waitFor({ state: 'visible', timeout: 10_000 }))
      .then(() => true, () => false);
    if (ok) break;
    if (attempt >= 4) throw new Error(`the command palette did not stay open (to run ${title})`);
    await page.waitForTimeout(1_000);
  }
  await page.keyboard.press('Enter');
}

/** The quick-pick row whose label matches `re` (or whose whole text does, with `{ anywhere: true }`). */
export async function pickRow(page, re, { anywhere = false, timeout = 60_000 } = {}) {
  const list = page.locator('.quick-input-widget .quick-input-list');
  const rows = list.locator('.monaco-list-row');
  const item = (anywhere ? rows.filter({ hasText: re }) : rows.filter({ has: page.locator('.label-name', { hasText: re }) })).first();
  await item.waitFor({ timeout });
  return item;
}

/** Waits for the quick input titled like `re`. */
export async function quickInput(page, re, timeout = 90_000) {
  const w = page.locator('.quick-input-widget');
  await w.locator('.quick-input-title', { hasText: re }).waitFor({ timeout });
  return w;
}

/** Answers an input box titled like `title`: replaces its value with `value`, then Enter. */
export async function answer(page, title, value) {
  const w = await quickInput(page, title);
  const input = w.locator('input');
  await input.fill(value);
  await input.press('Enter');
  // Gone: the next step's title replaces it, or the widget hides.
  await w.locator('.quick-input-title', { hasText: title }).waitFor({ state: 'hidden', timeout: 30_000 }).catch(() => {});
}

/** Chooses, in the quick pick titled like `title`, the row matching `re` (a click). */
export async function choose(page, title, re, opts) {
  await quickInput(page, title);
  const item = await pickRow(page, re, opts);
  await item.click();
  return item;
}

/** "Mechanist: which model?" when several are open: picks the one at `modelPath`; nothing when not asked. */
export async function chooseModelIfAsked(page, modelPath, next) {
  const which = page.locator('.quick-input-widget .quick-input-title', { hasText: /which model\?/ });
  const then = page.locator('.quick-input-widget .quick-input-title', { hasText: next });
  await which.or(then).first().waitFor({ timeout: 60_000 });
  if (await which.isVisible()) await (await pickRow(page, new RegExp(esc(modelPath)), { anywhere: true })).click();
}

/** Dismisses every notification toast (keeps screenshots clean). */
export async function clearNotifications(page) {
  await command(page, 'Notifications: Clear All Notifications').catch(() => {});
  await page.locator('.notification-toast').first().waitFor({ state: 'detached', timeout: 5_000 }).catch(() => {});
}

/** The Layer Explorer pane. */
export function layerExplorer(page) {
  return pane(page, /Layer Explorer/i);
}

/** Waits until the Layer Explorer's selected row is labelled `label`; returns the label. */
export async function selectedInLayerExplorer(page, label) {
  const sel = layerExplorer(page).locator('.monaco-list-row[aria-selected="true"]').filter({ has: page.locator('.label-name', { hasText: exact(label) }) });
  await sel.first().waitFor({ timeout: 30_000 });
  return (await sel.first().locator('.label-name').textContent()).trim();
}

/** Clicks an item of the open context menu (its own events, then the keyboard, when the click misses); whether that worked (false: the menu stayed open, or it was not the expected menu). */
async function clickMenuItem(page, re, onOpen) {
  const menu = page.locator('.context-view .monaco-menu');
  await menu.waitFor({ timeout: 30_000 });
  const item = menu.locator('.action-item:not(.disabled) .action-label', { hasText: re }).first();
  // A menu without the item is another target's (the tree moved under the pointer): not ours.
  if (!(await item.waitFor({ timeout: 5_000 }).then(() => true, () => false))) return false;
  await onOpen?.();
  const closed = (ms) => menu.waitFor({ state: 'detached', timeout: ms }).then(() => true, () => false);
  const clicked = await item.click({ timeout: 5_000 }).then(() => true, () => false);
  if (clicked && (await closed(10_000))) return true;
  // The click missed (a layer over the menu took it, or a busy workbench dropped it): the
  // item's own mouse events, which the menu acts on wherever the pointer is.
  if (await menu.isVisible().catch(() => false)) {
    for (const type of ['mousedown', 'mouseup', 'click']) await item.dispatchEvent(type, { button: 0 }).catch(() => {});
    if (await closed(3_000)) return true;
  }
  // Last, the keyboard, with focus moved into the menu first (a webview may hold it).
  if (await menu.isVisible().catch(() => false)) {
    await menu.focus().catch(() => {});
    for (let i = 0; i < 40; i++) {
      const text = await menu.locator('.action-item.focused').textContent({ timeout: 500 }).catch(() => '');
      if (re.test(text ?? '')) break;
      await page.keyboard.press('ArrowDown');
    }
    await page.keyboard.press('Enter');
  }
  return closed(10_000);
}

/**
 * Right-clicks `target` (a locator, or a function finding it) and chooses the context-menu item matching `re`. A busy workbench
 * sometimes leaves the menu open (a webview that had focus keeps the keys): the menu is then
 * closed and opened again, with focus back on the workbench first. `onOpen` runs while the
 * menu shows (a screenshot).
 */
export async function contextMenu(page, targetOrFind, re, { onOpen } = {}) {
  for (let attempt = 1; ; attempt++) {
    // (A function finds the target afresh each time: tree rows are addressed by index, which
    // moves when a folder above expands.)
    const target = typeof targetOrFind === 'function' ? await targetOrFind() : targetOrFind;
    await page.evaluate(() => document.activeElement?.blur());
    // (Let an expanding tree settle under the pointer before the right-click.)
    await target.scrollIntoViewIfNeeded().catch(() => {});
    await target.hover().catch(() => {});
    await page.waitForTimeout(attempt * 300);
    await target.click({ button: 'right' });
    if (await clickMenuItem(page, re, onOpen)) return;
    if (attempt >= 4) throw new Error(`the context menu did not offer or did not take ${re}`);
    await page.keyboard.press('Escape');
    await page.locator('.context-view .monaco-menu').waitFor({ state: 'detached', timeout: 10_000 }).catch(() => {});
  }
}

/**
 * Opens `<dir>/<file>` of the workspace as a person would: the Explorer (shown first), the
 * folder expanded, right-click on the file > Mechanist: Open Model; waits until the Layer
 * Explorer selects the new model's row (labelled with the file, described by its family, as
 * `mechanist inspect` names it).
 */
export async function openFromExplorer(page, dir, file = 'model.onnx') {
  const { family } = await cli('inspect', join(harness.workspace, dir, file));
  const explorer = page.locator('.explorer-folders-view');
  // The Explorer's activity-bar icon (clicked only when the Explorer is not showing: a click on
  // the active one hides the side bar); again if a busy workbench lost the click.
  for (let attempt = 1; !(await explorer.isVisible()); attempt++) {
    if (attempt > 3) throw new Error('the Explorer did not show');
    await page.locator('.activitybar .action-item a[aria-label^="Explorer"], .activitybar .action-item[aria-label^="Explorer"]').first().click();
    await explorer.waitFor({ timeout: 20_000 }).catch(() => {});
  }
  await expand(await waitTreeRow(explorer, { label: dir, level: 1 }));
  const find = async () => {
    const folder = await waitTreeRow(explorer, { label: dir, level: 1 });
    const at = Number(await folder.getAttribute('data-index'));
    return waitTreeRow(explorer, { label: file, level: 2, after: at }, 30_000);
  };
  await find();
  await page.locator(MECHANIST_ICON).first().waitFor({ timeout: 60_000 });
  await contextMenu(page, find, /Open Model/);
  // Opening focuses the Layer Explorer and reveals (selects) the model's row.
  const view = layerExplorer(page);
  await view.waitFor({ timeout: 90_000 });
  const root = view
    .locator('.monaco-list-row[aria-level="1"][aria-selected="true"]')
    .filter({ has: page.locator('.label-name', { hasText: exact(file) }) })
    .filter({ has: page.locator('.label-description', { hasText: new RegExp(`^${esc(family)} · `) }) });
  await root.first().waitFor({ timeout: 90_000 });
  return root.first();
}

/** `mechanist <args> --json` from the repository's CLI, parsed (asynchronously; progress on stderr is dropped). */
export async function cli(...args) {
  const { stdout } = await promisify(execFile)(process.execPath, [join(harness.repoRoot, 'bin', 'mechanist.js'), ...args, '--json'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return JSON.parse(stdout);
}

/** Developer: Reload Window, then waits for the new workbench. */
export async function reloadWindow(page) {
  await page.evaluate(() => (window.__mechanistBeforeReload = true));
  await command(page, 'Developer: Reload Window');
  // The old document goes away (the check may land mid-navigation: try again).
  for (let i = 0; ; i++) {
    const gone = await page.waitForFunction(() => !window.__mechanistBeforeReload, null, { timeout: 60_000 }).then(() => true, (e) => (i < 5 ? false : Promise.reject(e)));
    if (gone) break;
  }
  await waitForWorkbench(page, 120_000);
}

/**
 * Saves the README's picture of a panel: `<artifacts>/screenshots/<name>-<theme>.png`, the
 * editor area only (`part: 'window'` for the whole window, 'sidebar' for the side bar; the
 * top `maxHeight` pixels of it when given).
 * `npm run test:integration -- --update-docs` copies them to docs/screenshot-<name>-<theme>.png.
 */
export async function docShot(s, name, { part = 'editor', maxHeight = Infinity } = {}) {
  const page = s.page;
  await page.mouse.move(4, 4); // no hover over the panel
  await page.waitForTimeout(300); // tooltips and hovers fade out
  const dir = join(harness.artifacts, 'screenshots');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}-${s.theme}.png`);
  if (part === 'window') {
    await page.screenshot({ path });
    return path;
  }
  const box = await page.locator(part === 'sidebar' ? '.part.sidebar' : '.part.editor').first().boundingBox();
  if (!box) throw new Error(`no ${part} part to photograph`);
  await page.screenshot({ path, clip: { ...box, height: Math.min(box.height, maxHeight) } });
  return path;
}
