/** Head contributions: a layers × heads heatmap of norms; a selected head's per-source-token norms as bars. */
import type { ContributionsRun } from '../../src/webviews/attention/protocol';
import { gridNavigation, h } from '../shared/dom';
import { Heatmap } from '../shared/heatmap';
import { accent, button, facts, header, modelFact, paintCell, section, tokenChips } from './common';
import type { View, ViewContext } from './common';
import { num, quoteToken, tokenText } from './format';

/** The strongest (layer, head). */
function strongest(run: ContributionsRun): [number, number] {
  let best: [number, number] = [0, 0];
  run.heads.forEach((row, l) => row.forEach((v, hd) => {
    if (v > (run.heads[best[0]]?.[best[1]] ?? -Infinity)) best = [l, hd];
  }));
  return best;
}

/** The per-source bars of one head, as a table (token, position, norm, bar). */
function detail(run: ContributionsRun, layer: number, head: number): HTMLElement {
  const norms = run.bySource[layer]?.[head] ?? [];
  const max = Math.max(...norms, 1e-12);
  const body = h('tbody');
  norms.forEach((v, j) => {
    const bar = h('span', { class: 'att-bar' });
    bar.style.width = `${(100 * v) / max}%`;
    body.append(
      h('tr', { class: j === run.position ? 'att-target-row' : undefined },
        h('th', { scope: 'row', class: 'mono' }, tokenText(run.tokens.strings[j])),
        h('td', { class: 'num muted' }, String(j)),
        h('td', { class: 'num' }, num(v)),
        h('td', { class: 'att-bar-cell', 'aria-hidden': 'true' }, bar)),
    );
  });
  const total = run.heads[layer]?.[head] ?? NaN;
  return h('div', { class: 'att-detail', id: 'contrib-detail' },
    h('h2', { id: 'detail-title' }, `Layer ${layer} · head ${head}: per source token`),
    h('p', { class: 'muted' }, `‖head output‖ at ${quoteToken(run.tokens.strings[run.position])} = ${num(total)}; each row is ‖A[h][t][j] · v_j W_O‖ for source token j. Output bias ‖b_O‖ of layer ${layer}: ${num(run.outputBiasNorm[layer] ?? NaN)}.`),
    h('table', { class: 'att-table att-bars', 'aria-labelledby': 'detail-title' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Source'), h('th', { scope: 'col' }, 'Pos'), h('th', { scope: 'col' }, 'Norm'), h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Bar')))),
      body),
  );
}

function table(run: ContributionsRun, range: [number, number], ctx: ViewContext, select: (l: number, hd: number) => void): HTMLElement {
  const low = ctx.theme.background;
  const high = accent('orange');
  const H = run.heads[0]?.length ?? 0;
  const body = h('tbody');
  const cells: HTMLElement[][] = [];
  run.heads.forEach((row, l) => {
    const tds = row.map((v, hd) => {
      const td = h('td', { class: 'num' }, num(v));
      paintCell(td, v, range, low, high);
      td.addEventListener('click', () => select(l, hd));
      return td;
    });
    cells.push(tds);
    body.append(h('tr', {}, h('th', { scope: 'row' }, `Layer ${l}`), ...tds));
  });
  gridNavigation(cells, select);
  const head = h('tr', {}, h('th', { scope: 'col' }, 'Layer'), ...Array.from({ length: H }, (_, hd) => h('th', { scope: 'col' }, `Head ${hd}`)));
  const caption = h('caption', {}, `Norm of each head's contribution to the residual stream at ${quoteToken(run.tokens.strings[run.position])}.`);
  return h('div', { class: 'table-wrap' }, h('table', { class: 'att-table' }, caption, h('thead', {}, head), body));
}

export const renderContributions: View<ContributionsRun> = (root, run, ctx) => {
  const heatmaps: Heatmap[] = [];
  const tokens = run.tokens.strings;
  const H = run.heads[0]?.length ?? 0;
  const best = strongest(run);
  root.append(
    header(ctx, 'Head contributions', [
      tokenChips(tokens, (t) => (t === run.position ? 'att-target' : undefined), 'Prompt tokens: the target position marked'),
      facts([
        ['Position', `${quoteToken(tokens[run.position])} (token ${run.position})`],
        ['Strongest', `layer ${best[0]}, head ${best[1]}: ${num(run.heads[best[0]]?.[best[1]] ?? NaN)}`],
        modelFact(run),
      ]),
    ]),
  );
  const range: [number, number] = [0, Math.max(1e-12, ...run.heads.flat())];
  const title = `‖contribution‖ to ${quoteToken(tokens[run.position])}`;
  const { section: sec, head } = section('contrib-title', `${title} (layers × heads)`);
  root.append(sec);
  const at = ctx.state.cell && ctx.state.cell[0] < run.heads.length && ctx.state.cell[1] < H ? ctx.state.cell : best;
  let shown = detail(run, at[0], at[1]);
  const select = (l: number, hd: number) => {
    const next = detail(run, l, hd);
    shown.replaceWith(next);
    shown = next;
    ctx.setState({ cell: [l, hd] });
    ctx.reveal(l, hd);
  };
  if (ctx.state.view === 'table') {
    sec.append(h('p', { class: 'muted att-hint' }, 'Arrow keys move between cells; Enter shows the head’s sources below and reveals it in the Layer Explorer.'), table(run, range, ctx, select));
  } else {
    const m = new Heatmap(sec, {
      values: run.heads,
      rowLabels: run.heads.map((_, l) => `L${l}`),
      colLabels: Array.from({ length: H }, (_, hd) => `H${hd}`),
      xTitle: 'Head',
      yTitle: 'Layer',
      range,
      low: ctx.theme.background,
      high: accent('orange'),
      theme: ctx.theme,
      legendLabel: '‖contribution‖',
      format: (v) => num(v, 3),
      ariaLabel: `Head contribution norms, ${run.heads.length} layers by ${H} heads; strongest layer ${best[0]} head ${best[1]}.`,
      tooltip: (l, hd, v) => {
        const src = run.bySource[l][hd];
        const top = src.map((x, j) => [x, j]).sort((a, b) => b[0] - a[0]).slice(0, 3);
        return { title: `Layer ${l} · head ${hd}`, lines: [`‖contribution‖ ${num(v)}`, ...top.map(([x, j]) => `${quoteToken(tokens[j])} ${num(x)}`)] };
      },
      onClick: select,
    });
    heatmaps.push(m);
    sec.style.maxWidth = `${m.maxWidth}px`;
    head.append(button('Export PNG', () => ctx.exportPng('heads', m.toPngDataUrl(`Head contributions: ${title}`)), { title: 'Save the heatmap as PNG' }));
  }
  root.append(shown);
  return () => heatmaps.forEach((x) => x.destroy());
};
