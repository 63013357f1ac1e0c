/** Attention patterns of a layer: one head's [query × key] heatmap, or a grid of every head. */
import type { PatternsRun } from '../../src/webviews/attention/protocol';
import { gridNavigation, h } from '../shared/dom';
import { Heatmap } from '../shared/heatmap';
import { accent, button, facts, header, modelFact, paintCell, section, tokenChips } from './common';
import type { View, ViewContext } from './common';
import { num, quoteToken, tokenText } from './format';

const label = (tokens: string[]) => tokens.map((s, i) => `${tokenText(s)} ·${i}`);

/** The head picker: all heads (grid) or one head. */
function headPicker(run: PatternsRun, ctx: ViewContext): HTMLElement {
  const select = h('select', { id: 'head-select', class: 'att-select' });
  select.append(h('option', { value: 'all' }, 'All heads (grid)'));
  run.patterns.forEach((_, i) => select.append(h('option', { value: String(i) }, `Head ${i}`)));
  select.value = String(ctx.state.head ?? 'all');
  select.addEventListener('change', () => {
    ctx.setState({ head: select.value === 'all' ? 'all' : Number(select.value) }, true);
    document.getElementById('head-select')?.focus();
  });
  return h('label', { class: 'att-picker', for: 'head-select' }, 'Show ', select);
}

function table(run: PatternsRun, head: number, ctx: ViewContext): HTMLElement {
  const tokens = run.tokens.strings;
  const low = ctx.theme.background;
  const high = accent('blue');
  const body = h('tbody');
  const cells: HTMLElement[][] = [];
  run.patterns[head].forEach((row, q) => {
    const tds = row.map((w, k) => {
      const td = h('td', { class: 'num', title: `query ${quoteToken(tokens[q])} → key ${quoteToken(tokens[k])}` }, num(w, 3));
      paintCell(td, w, [0, 1], low, high);
      td.addEventListener('click', () => ctx.reveal(run.layer, head));
      return td;
    });
    cells.push(tds);
    body.append(h('tr', {}, h('th', { scope: 'row', class: 'mono' }, `${q} ${tokenText(tokens[q])}`), ...tds));
  });
  gridNavigation(cells, () => ctx.reveal(run.layer, head));
  const head0 = h('tr', {}, h('th', { scope: 'col' }, 'Query \\ key'), ...tokens.map((s, k) => h('th', { scope: 'col', class: 'mono' }, `${k} ${tokenText(s)}`)));
  const caption = h('caption', {}, `Layer ${run.layer}, head ${head}: attention weight of each query token (rows) on each key token (columns).`);
  return h('div', { class: 'table-wrap' }, h('table', { class: 'att-table' }, caption, h('thead', {}, head0), body));
}

function figure(parent: HTMLElement, run: PatternsRun, head: number, ctx: ViewContext): Heatmap {
  const tokens = run.tokens.strings;
  const p = run.patterns[head];
  let best = { q: 0, k: 0, v: -1 };
  p.forEach((row, q) => row.forEach((v, k) => {
    if (q > 0 && k > 0 && v > best.v) best = { q, k, v };
  }));
  return new Heatmap(parent, {
    values: p,
    rowLabels: label(tokens),
    colLabels: label(tokens),
    xTitle: 'Key (attended to)',
    yTitle: 'Query',
    range: [0, 1],
    low: ctx.theme.background,
    high: accent('blue'),
    theme: ctx.theme,
    monoRowLabels: true,
    legendLabel: 'attention',
    format: (v) => num(v, 2),
    ariaLabel: `Attention pattern of layer ${run.layer}, head ${head}: ${tokens.length} query by ${tokens.length} key tokens${best.v >= 0 ? `; beyond the first token the largest weight is ${num(best.v, 3)} from ${quoteToken(tokens[best.q])} to ${quoteToken(tokens[best.k])}` : ''}.`,
    tooltip: (q, k, v) => ({ title: `${quoteToken(tokens[q])} → ${quoteToken(tokens[k])}`, lines: [`query ${q}, key ${k}`, `weight ${num(v)}`] }),
    onClick: () => ctx.reveal(run.layer, head),
  });
}

export const renderPatterns: View<PatternsRun> = (root, run, ctx) => {
  const heatmaps: Heatmap[] = [];
  const H = run.patterns.length;
  const focus = ctx.state.head === undefined || ctx.state.head === 'all' || ctx.state.head >= H ? 'all' : ctx.state.head;
  root.append(
    header(ctx, `Attention patterns · layer ${run.layer}`, [
      tokenChips(run.tokens.strings, () => undefined, 'Prompt tokens'),
      facts([['Layer', `${run.layer} · ${H} heads`], ['Tokens', String(run.tokens.strings.length)], modelFact(run)]),
    ], { extra: [headPicker(run, ctx)] }),
  );
  const heads = focus === 'all' ? run.patterns.map((_, i) => i) : [focus];
  const grid = h('div', { class: focus === 'all' ? 'att-grid' : 'att-single' });
  root.append(grid);
  if (ctx.state.view === 'table') root.insertBefore(h('p', { class: 'muted att-hint' }, 'Rows are query tokens, columns key tokens. Arrow keys move between cells; Enter reveals the head in the Layer Explorer.'), grid);
  for (const head of heads) {
    const title = `Layer ${run.layer} · head ${head}`;
    const buttons: HTMLElement[] = [];
    if (focus === 'all') buttons.push(button('Show', () => ctx.setState({ head }, true), { title: `Show head ${head} alone`, 'aria-label': `Show head ${head} alone` }));
    const { section: sec, head: top } = section(`head-${head}`, focus === 'all' ? `Head ${head}` : title, ...buttons);
    grid.append(sec);
    if (ctx.state.view === 'table') {
      sec.append(table(run, head, ctx));
      continue;
    }
    const m = figure(sec, run, head, ctx);
    heatmaps.push(m);
    if (focus !== 'all') sec.style.maxWidth = `${m.maxWidth}px`;
    top.append(button('PNG', () => ctx.exportPng(`L${run.layer}H${head}`, m.toPngDataUrl(`${title}: ${run.prompt}`)), { title: `Save head ${head}'s pattern as PNG`, 'aria-label': `Export head ${head} as PNG` }));
  }
  return () => heatmaps.forEach((m) => m.destroy());
};
