/**
 * Renders a localization run: header (prompts, answer, baselines), a bar chart over window
 * starts with the best window highlighted (or an accessible table), the selected window's
 * layers, and the buttons that reveal it and open the concept edit on its K/V projections.
 */
import '@vscode-elements/elements/dist/vscode-button/index.js';
import type { LocalizeResult } from '../../src/runtime/methods/localize';
import type { LocalizeRun, LocalizeViewState } from '../../src/webviews/localize/protocol';
import { windowOf } from '../../src/webviews/localize/protocol';
import { BarChart } from '../shared/barChart';
import { gridNavigation, h } from '../shared/dom';
import { readHeatmapTheme } from '../shared/heatmap';
import { mix, themeColor } from '../shared/theme';

export interface LocalizeActions {
  select(start: number): void;
  reveal(start: number): void;
  edit(start: number): void;
  setState(patch: Partial<LocalizeViewState>): void;
  exportData(format: 'csv' | 'json'): void;
  exportPng(pngDataUrl: string): void;
}

function button(label: string, onClick: () => void, attrs: Record<string, string | boolean | undefined> = {}): HTMLElement {
  const b = h('vscode-button', { secondary: true, ...attrs }, label);
  b.addEventListener('click', onClick);
  return b;
}

/** Four decimals. */
export function num(v: number | undefined): string {
  return v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(4);
}

/** "blocks 2–3" for a window. */
export function windowLabel(r: Pick<LocalizeResult, 'blocks' | 'layers' | 'modules' | 'window'>, start: number): string {
  const b = windowOf(r, start).blocks;
  return b.length === 1 ? `block ${b[0]}` : `blocks ${b[0]}–${b[b.length - 1]}`;
}

/** What the score means. */
export function metricText(r: LocalizeResult): string {
  return r.metric === 'probability' ? `p(${JSON.stringify(r.answer?.text ?? '?')})` : 'cosine similarity with the target output';
}

function header(run: LocalizeRun, state: LocalizeViewState, actions: LocalizeActions): HTMLElement {
  const r = run.result;
  const facts = h('dl', { class: 'facts loc-facts' });
  const fact = (term: string, ...value: (Node | string)[]) => facts.append(h('dt', {}, term), h('dd', {}, ...value));
  fact('Original', h('span', { class: 'mono' }, run.prompt), r.originalAnswer ? h('span', { class: 'muted' }, ` → top prediction ${JSON.stringify(r.originalAnswer.text)}`) : '');
  fact('Target', h('span', { class: 'mono' }, run.targetPrompt));
  if (run.decoderPrompt) fact('Decoder prompt', h('span', { class: 'mono' }, run.decoderPrompt));
  fact('Score', metricText(r), r.answer ? h('span', { class: 'muted' }, ` (answer token id ${r.answer.id})`) : '');
  fact('Baselines', 'original everywhere ', h('strong', {}, num(r.baseline.original)), ' · target everywhere ', h('strong', {}, num(r.baseline.target)));
  fact('Windows', `${r.window} consecutive of ${r.layers.length} cross-attention layers`);
  fact('Model', h('span', { class: 'mono path', title: run.modelPath }, run.modelPath));
  if (run.encoderPath) fact('Encoder', h('span', { class: 'mono path', title: run.encoderPath }, run.encoderPath));
  const when = new Date(run.createdAt);
  if (!Number.isNaN(when.getTime())) fact('Run', when.toLocaleString());
  const toolbar = h(
    'div',
    { class: 'loc-toolbar', role: 'toolbar', 'aria-label': 'Localization actions' },
    button('Table view', () => actions.setState({ view: state.view === 'table' ? 'chart' : 'table' }), { 'aria-pressed': state.view === 'table' ? 'true' : 'false', secondary: state.view !== 'table', title: 'Show the numbers as a table' }),
    button('Show complement', () => actions.setState({ complement: !state.complement }), { 'aria-pressed': state.complement ? 'true' : 'false', secondary: !state.complement, title: 'Also show each window’s complement: every other layer on the target' }),
    button('Export CSV', () => actions.exportData('csv'), { title: 'Save the scores as CSV' }),
    button('Export JSON', () => actions.exportData('json'), { title: 'Save the run as JSON' }),
  );
  return h('header', { class: 'panel-header loc-header' }, h('h1', {}, 'Cross-attention localization'), facts, toolbar);
}

function table(run: LocalizeRun, selected: number, complement: boolean, actions: LocalizeActions): HTMLElement {
  const r = run.result;
  const body = h('tbody');
  const cells: HTMLElement[][] = [];
  r.scores.forEach((s, i) => {
    const row = [h('td', {}, windowLabel(r, i)), h('td', { class: 'mono' }, windowOf(r, i).layers.join(', ')), h('td', { class: 'num' }, num(s)), ...(complement ? [h('td', { class: 'num' }, num(r.complement[i]))] : []), h('td', {}, i === r.best.start ? 'best' : '')];
    for (const td of row) td.addEventListener('click', () => actions.select(i));
    cells.push(row);
    body.append(h('tr', { class: [i === selected ? 'selected' : '', i === r.best.start ? 'best' : ''].join(' ').trim() || undefined, 'aria-selected': i === selected ? 'true' : 'false' }, ...row));
  });
  gridNavigation(cells, (i) => actions.select(i));
  const cols = ['Window', 'Layers', `${metricText(r)} with the window on the target`, ...(complement ? ['Complement'] : []), ''];
  return h(
    'div',
    { class: 'table-wrap' },
    h('table', { class: 'loc-table' }, h('caption', {}, 'One row per window of consecutive cross-attention layers; Enter selects a window.'), h('thead', {}, h('tr', {}, ...cols.map((c) => h('th', { scope: 'col' }, c)))), body),
  );
}

/** Renders `run` into `root`; returns a function that disposes the chart. */
export function renderRun(root: HTMLElement, run: LocalizeRun, state: LocalizeViewState, actions: LocalizeActions): () => void {
  const r = run.result;
  const theme = readHeatmapTheme();
  const selected = state.selected !== undefined && state.selected >= 0 && state.selected < r.scores.length ? state.selected : r.best.start;
  root.replaceChildren(header(run, state, actions));
  const section = h('section', { class: 'loc-result', 'aria-labelledby': 'loc-title' });
  const head = h('div', { class: 'loc-section-head' }, h('h2', { id: 'loc-title' }, `${metricText(r)} with one window of cross-attention layers fed the target prompt`));
  section.append(head);
  root.append(section);
  let chart: BarChart | undefined;
  if (state.view === 'table') section.append(table(run, selected, state.complement, actions));
  else {
    const accent = themeColor(['--vscode-charts-orange'], '#d18616');
    const plain = themeColor(['--vscode-charts-blue'], '#3794ff');
    const labels = r.scores.map((_, i) => windowLabel(r, i));
    chart = new BarChart(section, {
      labels,
      series: [
        { label: 'window on the target', values: r.scores, colors: r.scores.map((_, i) => (i === r.best.start ? accent : plain)), outlined: new Set([selected]) },
        ...(state.complement ? [{ label: 'complement on the target', values: r.complement, colors: mix(theme.background, theme.muted, 0.55) }] : []),
      ],
      theme,
      valueTitle: metricText(r),
      categoryTitle: 'Cross-attention layers fed the target conditioning',
      min: r.metric === 'probability' ? 0 : undefined,
      max: r.metric === 'probability' ? 1 : undefined,
      references: [
        { value: r.baseline.target, label: `target everywhere ${num(r.baseline.target)}`, color: accent },
        { value: r.baseline.original, label: `original everywhere ${num(r.baseline.original)}`, color: theme.muted },
      ],
      ariaLabel: `Bar chart of ${metricText(r)} per window: ${r.scores.map((s, i) => `${labels[i]} ${num(s)}`).join(', ')}. Best: ${labels[r.best.start]}.`,
      tooltip: (i, series) => ({
        title: labels[i],
        lines: [...windowOf(r, i).layers, series === 0 ? `window on the target: ${num(r.scores[i])}` : `complement on the target: ${num(r.complement[i])}`, ...(i === r.best.start ? ['best window'] : []), 'Click: select and reveal'],
      }),
      onClick: (i) => {
        actions.select(i);
        actions.reveal(i);
      },
    });
    const c = chart;
    head.append(button('Export PNG', () => actions.exportPng(c.toPngDataUrl(`Localization: ${run.prompt} → ${run.targetPrompt}`)), { title: 'Save the chart as PNG' }));
  }
  const w = windowOf(r, selected);
  const best = selected === r.best.start;
  section.append(
    h(
      'div',
      { class: `loc-window${best ? ' best' : ''}` },
      h('h3', {}, `${best ? 'Best window' : 'Selected window'}: ${windowLabel(r, selected)}`, h('span', { class: 'muted' }, ` · ${num(r.scores[selected])}`)),
      h('ul', { class: 'loc-layers' }, ...w.layers.map((l, i) => h('li', {}, h('span', { class: 'mono' }, l), h('span', { class: 'muted' }, ` ${w.modules[i]}`)))),
      h(
        'div',
        { class: 'loc-toolbar' },
        button('Edit concept in these layers', () => actions.edit(selected), { secondary: false, title: 'Open the closed-form concept edit on these layers’ K and V projections' }),
        button('Reveal in Layer Explorer', () => actions.reveal(selected), { title: 'Select the window’s first cross-attention in the Layer Explorer' }),
      ),
    ),
  );
  return () => chart?.destroy();
}
