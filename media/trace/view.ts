/** Renders a causal-trace run: header, one heatmap (or accessible table) per kind, export buttons. */
import '@vscode-elements/elements/dist/vscode-button/index.js';
import type { TraceKind, TraceResult } from '../../src/runtime/methods/causalTrace';
import type { TraceRun } from '../../src/webviews/trace/protocol';
import { gridNavigation, h } from '../shared/dom';
import { Heatmap, heatColor, readHeatmapTheme } from '../shared/heatmap';
import type { HeatmapTheme } from '../shared/heatmap';
import { readableOn, themeColor, toCss } from '../shared/theme';
import type { Rgba } from '../shared/theme';
import { ariaSummary, byToken, corruptionText, isSubject, kindName, kindTitle, layerAxisTitle, quoteToken, restoredText, score, tokenLabel } from './format';

/** What the view can ask the host to do. */
export interface TraceActions {
  reveal(kind: TraceKind, layer: number, token: number): void;
  exportData(format: 'csv' | 'json'): void;
  exportPng(kind: TraceKind, pngDataUrl: string): void;
  setView(view: 'chart' | 'table'): void;
}

/** The high-end colour of each kind, ROME's palette (Purples, Greens, Reds) from the theme's chart colours. */
const ACCENT: Record<TraceKind, { vars: string[]; fallback: string }> = {
  residual: { vars: ['--vscode-charts-purple'], fallback: '#b180d7' },
  mlp: { vars: ['--vscode-charts-green'], fallback: '#89d185' },
  attn: { vars: ['--vscode-charts-red'], fallback: '#f14c4c' },
};

function accent(kind: TraceKind): Rgba {
  return themeColor(ACCENT[kind].vars, ACCENT[kind].fallback);
}

function button(label: string, onClick: () => void, attrs: Record<string, string | boolean | undefined> = {}): HTMLElement {
  const b = h('vscode-button', { secondary: true, ...attrs }, label);
  b.addEventListener('click', onClick);
  return b;
}

/** The prompt with the subject highlighted and the answer appended. */
function promptLine(run: TraceRun, answer: string | undefined): HTMLElement {
  const p = h('p', { class: 'trace-prompt' });
  const i = run.subject ? run.prompt.indexOf(run.subject) : -1;
  if (i < 0) p.append(run.prompt);
  else p.append(run.prompt.slice(0, i), h('mark', { class: 'trace-subject' }, run.subject), run.prompt.slice(i + run.subject.length));
  if (answer !== undefined) {
    // A leading space of the answer token goes outside the badge.
    const lead = /^\s+/.exec(answer)?.[0] ?? '';
    p.append(lead ? ' ' : '', h('span', { class: 'trace-answer', title: `answer token ${quoteToken(answer)}` }, answer.slice(lead.length) || answer));
  }
  return p;
}

function header(run: TraceRun, view: 'chart' | 'table', actions: TraceActions): HTMLElement {
  const first = run.results[0];
  const facts = h('dl', { class: 'facts trace-facts' });
  const fact = (term: string, ...value: (Node | string)[]) => facts.append(h('dt', {}, term), h('dd', {}, ...value));
  if (first) {
    const [s0, s1] = first.subjectRange;
    fact('Subject', h('span', { class: 'mono' }, run.subject), h('span', { class: 'muted' }, ` tokens ${s0}–${s1 - 1}`));
    fact('Answer', h('span', { class: 'mono' }, quoteToken(first.answer.text)), h('span', { class: 'muted' }, ` id ${first.answer.id}`));
    fact('p(answer)', 'clean ', h('strong', {}, score(first.highScore)), ' → corrupted ', h('strong', {}, score(first.lowScore)));
    fact('Corruption', corruptionText(first.corruption));
  }
  const when = new Date(run.createdAt);
  fact('Model', h('span', { class: 'mono path', title: run.modelPath }, run.modelPath), h('span', { class: 'muted' }, Number.isNaN(when.getTime()) ? '' : ` · ${when.toLocaleString()}`));

  const toggle = button('Table view', () => actions.setView(view === 'table' ? 'chart' : 'table'), {
    'aria-pressed': view === 'table' ? 'true' : 'false',
    secondary: view !== 'table',
    title: 'Show the numbers as tables',
  });
  const toolbar = h(
    'div',
    { class: 'trace-toolbar', role: 'toolbar', 'aria-label': 'Trace actions' },
    toggle,
    button('Export CSV', () => actions.exportData('csv'), { title: 'Save all scores as CSV' }),
    button('Export JSON', () => actions.exportData('json'), { title: 'Save the run as JSON' }),
  );
  return h('header', { class: 'panel-header trace-header' }, h('h1', {}, 'Causal trace'), promptLine(run, first?.answer.text), facts, toolbar);
}

/** The accessible table of one result: rows = tokens, columns = layers, cells coloured like the heatmap. */
function table(r: TraceResult, low: Rgba, high: Rgba, actions: TraceActions): HTMLElement {
  const tokens = r.inputTokens.strings.length;
  const layers = r.scores.length;
  const range: [number, number] = [r.lowScore, r.highScore];
  const head = h('tr', {}, h('th', { scope: 'col' }, 'Token'), ...Array.from({ length: layers }, (_, l) => h('th', { scope: 'col' }, `Layer ${l}`)));
  const cells: HTMLElement[][] = [];
  const body = h('tbody');
  for (let t = 0; t < tokens; t++) {
    const row: HTMLElement[] = [];
    for (let l = 0; l < layers; l++) {
      const v = r.scores[l]?.[t] ?? NaN;
      const td = h('td', { class: 'num' }, score(v));
      const bg = heatColor(v, range, low, high);
      td.style.backgroundColor = toCss(bg);
      td.style.color = toCss(readableOn(bg));
      td.addEventListener('click', () => actions.reveal(r.kind, l, t));
      row.push(td);
    }
    cells.push(row);
    body.append(h('tr', { class: isSubject(r, t) ? 'subject' : undefined }, h('th', { scope: 'row', class: 'mono' }, tokenLabel(r, t)), ...row));
  }
  gridNavigation(cells, (t, l) => actions.reveal(r.kind, l, t));
  const caption = h('caption', { class: 'visually-hidden' }, `${kindTitle(r)}: p(answer) with one (token, layer) restored; rows are tokens (subject tokens marked *), columns are layers.`);
  return h('div', { class: 'table-wrap' }, h('table', { class: 'trace-table' }, caption, h('thead', {}, head), body));
}

/** Renders `run` into `root`; returns a function that disposes the charts. */
export function renderRun(root: HTMLElement, run: TraceRun, view: 'chart' | 'table', actions: TraceActions): () => void {
  const theme: HeatmapTheme = readHeatmapTheme();
  const heatmaps: Heatmap[] = [];
  root.replaceChildren(header(run, view, actions));
  if (!run.results.length) root.append(h('p', { class: 'muted' }, 'This run has no results.'));
  else if (view === 'table')
    root.append(h('p', { class: 'muted trace-hint' }, 'p(answer) with one (token, layer) restored; subject tokens marked *. Arrow keys move between cells, Enter reveals the layer.'));
  for (const r of run.results) {
    const titleId = `title-${r.kind}`;
    const tokens = r.inputTokens.strings.length;
    const low = theme.background;
    const high = accent(r.kind);
    const section = h('section', { class: 'trace-result', 'aria-labelledby': titleId });
    const head = h('div', { class: 'trace-result-head' }, h('h2', { id: titleId }, kindTitle(r)));
    section.append(head);
    root.append(section);
    if (view === 'table') {
      section.append(table(r, low, high, actions));
      continue;
    }
    const heatmap = new Heatmap(section, {
      values: byToken(r.scores, tokens),
      rowLabels: r.inputTokens.strings.map((_, t) => tokenLabel(r, t)),
      colLabels: r.scores.map((_, l) => String(l)),
      markedRows: new Set(Array.from({ length: r.subjectRange[1] - r.subjectRange[0] }, (_, i) => r.subjectRange[0] + i)),
      xTitle: layerAxisTitle(r),
      range: [r.lowScore, r.highScore],
      low,
      high,
      theme,
      monoRowLabels: true,
      legendLabel: 'p(answer)',
      ariaLabel: ariaSummary(r),
      tooltip: (t, l, v) => ({
        title: `${quoteToken(r.inputTokens.strings[t] ?? '')}${isSubject(r, t) ? ' (subject)' : ''}`,
        lines: [restoredText(r, l), `p(answer) ${score(v)}`],
      }),
      onClick: (t, l) => actions.reveal(r.kind, l, t),
    });
    heatmaps.push(heatmap);
    section.style.maxWidth = `${heatmap.maxWidth}px`;
    head.append(button('Export PNG', () => actions.exportPng(r.kind, heatmap.toPngDataUrl(kindTitle(r))), { title: `Save the ${kindName(r.kind)} heatmap as PNG` }));
  }
  return () => heatmaps.forEach((m) => m.destroy());
}
