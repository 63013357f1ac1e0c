/** Pieces every view of the attention panel shares: buttons, the header, token chips, heat-coloured cells. */
import '@vscode-elements/elements/dist/vscode-button/index.js';
import type { AttentionRun, AttentionViewState } from '../../src/webviews/attention/protocol';
import { h } from '../shared/dom';
import { heatColor } from '../shared/heatmap';
import type { HeatmapTheme } from '../shared/heatmap';
import { readableOn, themeColor, toCss } from '../shared/theme';
import type { Rgba } from '../shared/theme';
import { quoteToken, tokenText } from './format';

/** UI state a view reads and changes (persisted by main.ts). */
export type UiState = Omit<AttentionViewState, 'runId' | 'kind'>;

/** What a view can ask for. */
export interface ViewContext {
  theme: HeatmapTheme;
  state: UiState;
  /** Reveal a block's attention (and a head), or with part 'block' the block, in the Layer Explorer. */
  reveal(layer: number, head?: number, part?: 'block' | 'attention'): void;
  exportData(format: 'csv' | 'json'): void;
  exportPng(name: string, pngDataUrl: string): void;
  /** Changes UI state; `rerender` redraws the whole view (keeping the scroll position). */
  setState(patch: Partial<UiState>, rerender?: boolean): void;
}

/** A view: renders a run into `root` and returns a disposer. */
export type View<R extends AttentionRun> = (root: HTMLElement, run: R, ctx: ViewContext) => () => void;

/** Accent colours from the theme's chart palette. */
export const ACCENTS = {
  blue: { vars: ['--vscode-charts-blue'], fallback: '#3794ff' },
  red: { vars: ['--vscode-charts-red'], fallback: '#f14c4c' },
  orange: { vars: ['--vscode-charts-orange'], fallback: '#d18616' },
  purple: { vars: ['--vscode-charts-purple'], fallback: '#b180d7' },
  green: { vars: ['--vscode-charts-green'], fallback: '#89d185' },
};

export function accent(name: keyof typeof ACCENTS): Rgba {
  return themeColor(ACCENTS[name].vars, ACCENTS[name].fallback);
}

/** A secondary vscode-button. */
export function button(label: string, onClick: () => void, attrs: Record<string, string | boolean | undefined> = {}): HTMLElement {
  const b = h('vscode-button', { secondary: true, ...attrs }, label);
  b.addEventListener('click', onClick);
  return b;
}

/** The prompt's tokens as chips; `mark` styles some (sources, the target position). */
export function tokenChips(tokens: string[], mark: (t: number) => string | undefined, label: string): HTMLElement {
  const p = h('p', { class: 'att-tokens', 'aria-label': label });
  tokens.forEach((s, t) => {
    const cls = mark(t);
    p.append(h('span', { class: `att-token${cls ? ` ${cls}` : ''}`, title: `token ${t}: ${quoteToken(s)}` }, tokenText(s)));
  });
  return p;
}

/** The answer token as a badge (a leading space stays outside). */
export function answerBadge(text: string): HTMLElement {
  return h('span', { class: 'att-answer', title: `answer token ${quoteToken(text)}` }, tokenText(text.replace(/^\s+/, '')) || tokenText(text));
}

/** A definition list of facts: [term, ...value parts]. */
export function facts(rows: [string, ...(Node | string)[]][]): HTMLElement {
  const dl = h('dl', { class: 'facts att-facts' });
  for (const [term, ...value] of rows) dl.append(h('dt', {}, term), h('dd', {}, ...value));
  return dl;
}

/** The model row of the facts: path and the run's date. */
export function modelFact(run: AttentionRun): [string, ...(Node | string)[]] {
  const when = new Date(run.createdAt);
  return ['Model', h('span', { class: 'mono path', title: run.modelPath }, run.modelPath), h('span', { class: 'muted' }, Number.isNaN(when.getTime()) ? '' : ` · ${when.toLocaleString()}`)];
}

/** The header: title, lines (prompt, facts) and the toolbar (table toggle, CSV, JSON, extras). */
export function header(ctx: ViewContext, title: string, parts: Node[], opts: { tableToggle?: boolean; extra?: Node[] } = {}): HTMLElement {
  const toolbar = h('div', { class: 'att-toolbar', role: 'toolbar', 'aria-label': 'Actions' });
  if (opts.tableToggle !== false) {
    const table = ctx.state.view === 'table';
    toolbar.append(
      button('Table view', () => ctx.setState({ view: table ? 'chart' : 'table' }, true), { 'aria-pressed': table ? 'true' : 'false', secondary: !table, title: 'Show the numbers as tables' }),
    );
  }
  toolbar.append(
    ...(opts.extra ?? []),
    button('Export CSV', () => ctx.exportData('csv'), { title: 'Save the numbers as CSV' }),
    button('Export JSON', () => ctx.exportData('json'), { title: 'Save the run as JSON' }),
  );
  return h('header', { class: 'panel-header att-header' }, h('h1', {}, title), ...parts, toolbar);
}

/** A section with a heading row (title + buttons). */
export function section(id: string, title: string, ...buttons: Node[]): { section: HTMLElement; head: HTMLElement } {
  const head = h('div', { class: 'att-section-head' }, h('h2', { id }, title), ...buttons);
  return { section: h('section', { class: 'att-section', 'aria-labelledby': id }, head), head };
}

/** Colours a table cell like the heatmap, with readable text. */
export function paintCell(td: HTMLElement, v: number, range: [number, number], low: Rgba, high: Rgba): void {
  if (!Number.isFinite(v)) return;
  const bg = heatColor(v, range, low, high);
  td.style.backgroundColor = toCss(bg);
  td.style.color = toCss(readableOn(bg));
}
