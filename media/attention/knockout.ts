/** Knockout sweep: rows = the whole source set, then each source token; columns = layers; cells = relative change of p(answer). */
import type { KnockoutRun } from '../../src/webviews/attention/protocol';
import { gridNavigation, h } from '../shared/dom';
import { Heatmap } from '../shared/heatmap';
import { accent, answerBadge, button, facts, header, modelFact, paintCell, section, tokenChips } from './common';
import type { View, ViewContext } from './common';
import { num, pct, quoteToken, tokenText } from './format';

/** Row labels: "all sources", then each source token. */
function rowLabels(run: KnockoutRun): string[] {
  return run.rows.map((r, i) => (i === 0 && run.rows.length > 1 ? `all ${r.sources.length} sources` : r.sources.map((s) => `${tokenText(run.tokens.strings[s])} ·${s}`).join(' ')));
}

/** Colour domain: from the largest drop (red) to no change (background); increases show as no change (the numbers say +). */
function colorRange(run: KnockoutRun): [number, number] {
  let lo = 0;
  for (const r of run.rows) for (const v of r.relativeChange) if (Number.isFinite(v) && v < lo) lo = v;
  return [lo < 0 ? lo : -1e-9, 0];
}

function windowText(run: KnockoutRun, l: number): string {
  const [lo, hi] = run.windows[l];
  return hi - lo === 1 ? `layer ${lo} blocked` : `layers ${lo}–${hi - 1} blocked (centre ${l})`;
}

function table(run: KnockoutRun, labels: string[], range: [number, number], ctx: ViewContext): HTMLElement {
  const low = accent('red');
  const high = ctx.theme.background;
  const layers = run.windows.length;
  const body = h('tbody');
  const cells: HTMLElement[][] = [];
  run.rows.forEach((r, i) => {
    const tds = r.relativeChange.map((v, l) => {
      const td = h('td', { class: 'num', title: `${windowText(run, l)}: p(answer) ${num(r.p[l])}` }, pct(v));
      paintCell(td, Math.min(v, 0), range, low, high);
      td.addEventListener('click', () => ctx.reveal(l));
      return td;
    });
    cells.push(tds);
    body.append(h('tr', { class: i === 0 ? 'att-total' : undefined }, h('th', { scope: 'row', class: 'mono' }, labels[i]), ...tds));
  });
  gridNavigation(cells, (_, l) => ctx.reveal(l));
  const head = h('tr', {}, h('th', { scope: 'col' }, 'Blocked sources'), ...Array.from({ length: layers }, (_, l) => h('th', { scope: 'col' }, `Layer ${l}`)));
  const caption = h('caption', {}, `Relative change of p(answer) when the last token cannot attend to the sources in the window of ${run.window} layers around each layer.`);
  return h('div', { class: 'table-wrap' }, h('table', { class: 'att-table' }, caption, h('thead', {}, head), body));
}

export const renderKnockout: View<KnockoutRun> = (root, run, ctx) => {
  const heatmaps: Heatmap[] = [];
  const tokens = run.tokens.strings;
  const sources = new Set(run.rows[0]?.sources ?? []);
  const labels = rowLabels(run);
  const range = colorRange(run);
  const promptLine = tokenChips(tokens, (t) => (t === run.from ? 'att-target' : sources.has(t) ? 'att-source' : undefined), 'Prompt tokens: blocked sources and the target position marked');
  root.append(
    header(ctx, 'Attention knockout', [
      promptLine,
      facts([
        ['Answer', answerBadge(run.answer.text), h('span', { class: 'muted' }, ` id ${run.answer.id}`)],
        ['p(answer)', 'clean ', h('strong', {}, num(run.baseline))],
        ['Blocked', `${quoteToken(tokens[run.from])} (position ${run.from}) from ${run.sourcesLabel} (positions ${[...sources].join(', ')})`],
        ['Window', run.window === 1 ? '1 layer (each layer alone)' : `${run.window} layers around each layer`],
        modelFact(run),
      ]),
    ]),
  );
  const title = `Relative change of p(answer), window ${run.window}`;
  const { section: sec, head } = section('knockout-title', title);
  root.append(sec);
  if (ctx.state.view === 'table') {
    sec.append(h('p', { class: 'muted att-hint' }, 'Arrow keys move between cells; Enter reveals the layer in the Layer Explorer.'), table(run, labels, range, ctx));
    return () => undefined;
  }
  const worst = run.rows[0]?.relativeChange.reduce((b, v, l, a) => (v < a[b] ? l : b), 0) ?? 0;
  const m = new Heatmap(sec, {
    values: run.rows.map((r) => r.relativeChange),
    rowLabels: labels,
    colLabels: run.windows.map((_, l) => String(l)),
    markedRows: new Set(run.rows.length > 1 ? [0] : []),
    xTitle: `Centre of ${run.window} blocked layers`,
    range,
    low: accent('red'),
    high: ctx.theme.background,
    theme: ctx.theme,
    monoRowLabels: true,
    legendLabel: 'Δp / p',
    format: (v) => pct(v, 0),
    ariaLabel: `Knockout heatmap, ${run.rows.length} source rows by ${run.windows.length} layers; blocking all sources changes p(answer) most around layer ${worst}, by ${pct(run.rows[0]?.relativeChange[worst] ?? NaN)}.`,
    tooltip: (i, l, v) => ({ title: labels[i], lines: [windowText(run, l), `p(answer) ${num(run.rows[i].p[l])} (clean ${num(run.baseline)})`, `change ${pct(v)}`] }),
    onClick: (_, l) => ctx.reveal(l),
  });
  heatmaps.push(m);
  sec.style.maxWidth = `${m.maxWidth}px`;
  head.append(button('Export PNG', () => ctx.exportPng('heatmap', m.toPngDataUrl(`Knockout of ${run.sourcesLabel}: ${title}`)), { title: 'Save the heatmap as PNG' }));
  return () => heatmaps.forEach((x) => x.destroy());
};
