/**
 * Logit lens: a table of layers × positions with each cell's top-1 token and p (cells whose
 * top-1 is the answer highlighted), the top-k of the focused cell below, and a heatmap (or
 * table) of p(answer) per layer and position.
 */
import type { LensRun } from '../../src/webviews/attention/protocol';
import { gridNavigation, h } from '../shared/dom';
import { Heatmap, heatColor } from '../shared/heatmap';
import type { HeatmapTheme } from '../shared/heatmap';
import { readableOn, toCss } from '../shared/theme';
import type { Rgba } from '../shared/theme';
import { accent, answerBadge, button, facts, header, modelFact, paintCell, section, tokenChips } from './common';
import type { View } from './common';
import { num, prob, quoteToken, tokenText } from './format';

function cellTitle(run: LensRun, l: number, s: number): string {
  const layer = run.layers[l];
  const top = layer.top[s].map((t, k) => `${k + 1}. ${quoteToken(t.token)} ${num(t.p)}`).join('\n');
  return `Layer ${layer.layer}, position ${s} ${quoteToken(run.tokens.strings[s])}\n${top}\np(answer ${quoteToken(run.answer.text)}) ${num(layer.pAnswer[s])}`;
}

/** The top-k of one cell, with bars, and p(answer). */
function detail(run: LensRun, l: number, s: number, high: Rgba): HTMLElement {
  const layer = run.layers[l];
  const list = h('ol', { class: 'att-topk' });
  for (const t of layer.top[s]) {
    const bar = h('span', { class: 'att-bar' });
    bar.style.width = `${Math.max(0.5, 100 * t.p)}%`;
    bar.style.backgroundColor = toCss(high);
    list.append(h('li', { class: t.id === run.answer.id ? 'att-is-answer' : undefined }, h('span', { class: 'mono att-topk-token' }, tokenText(t.token)), h('span', { class: 'num' }, num(t.p)), h('span', { class: 'att-bar-cell', 'aria-hidden': 'true' }, bar)));
  }
  const inTop = layer.top[s].some((t) => t.id === run.answer.id);
  return h('div', { class: 'att-detail', id: 'lens-detail', 'aria-live': 'polite' },
    h('h2', {}, `Layer ${layer.layer} at position ${s} ${quoteToken(run.tokens.strings[s])}: top ${run.topK}`),
    list,
    h('p', {}, `p(answer ${quoteToken(run.answer.text)}) = `, h('strong', {}, num(layer.pAnswer[s])), inTop ? '' : h('span', { class: 'muted' }, ' (not in the top list)')),
  );
}

/** Paints the lens table to a canvas (PNG export): header row of positions, one row per layer. */
function tablePng(run: LensRun, theme: HeatmapTheme, high: Rgba, answerColor: Rgba, title: string): string {
  const dpr = Math.max(1, window.devicePixelRatio || 1);
  const S = run.tokens.strings.length;
  const L = run.layers.length;
  const cw = 92;
  const rh = 38;
  const lw = 64;
  const pad = 16;
  const titleH = 30;
  const out = document.createElement('canvas');
  out.width = (pad * 2 + lw + cw * S) * dpr;
  out.height = (pad * 2 + titleH + rh * (L + 1)) * dpr;
  const ctx = out.getContext('2d');
  if (!ctx) return '';
  ctx.scale(dpr, dpr);
  ctx.fillStyle = toCss(theme.background);
  ctx.fillRect(0, 0, out.width, out.height);
  ctx.textBaseline = 'middle';
  ctx.fillStyle = toCss(theme.foreground);
  ctx.font = `600 ${theme.fontSize * 1.1}px ${theme.fontFamily}`;
  ctx.fillText(title, pad, pad + titleH / 2);
  const y0 = pad + titleH;
  const clip = (s: string, w: number) => {
    let t = s;
    while (t.length > 1 && ctx.measureText(t).width > w) t = t.slice(0, -1);
    return t === s ? s : `${t.slice(0, -1)}…`;
  };
  ctx.textAlign = 'center';
  ctx.font = `${theme.fontSize}px ${theme.monoFamily}`;
  ctx.fillStyle = toCss(theme.muted);
  run.tokens.strings.forEach((s, i) => ctx.fillText(clip(`${tokenText(s)}`, cw - 8), pad + lw + cw * i + cw / 2, y0 + rh / 2));
  run.layers.forEach((layer, r) => {
    const y = y0 + rh * (r + 1);
    ctx.textAlign = 'left';
    ctx.font = `${theme.fontSize}px ${theme.fontFamily}`;
    ctx.fillStyle = toCss(theme.foreground);
    ctx.fillText(`Layer ${layer.layer}`, pad, y + rh / 2);
    layer.top.forEach((top, s) => {
      const x = pad + lw + cw * s;
      const bg = heatColor(top[0]?.p ?? 0, [0, 1], theme.background, high);
      ctx.fillStyle = toCss(bg);
      ctx.fillRect(x, y, cw, rh);
      ctx.strokeStyle = toCss(theme.border);
      ctx.lineWidth = 1;
      ctx.strokeRect(x + 0.5, y + 0.5, cw - 1, rh - 1);
      const isAnswer = top[0]?.id === run.answer.id;
      if (isAnswer) {
        ctx.strokeStyle = toCss(answerColor);
        ctx.lineWidth = 2;
        ctx.setLineDash([4, 3]);
        ctx.strokeRect(x + 3, y + 3, cw - 6, rh - 6);
        ctx.setLineDash([]);
      }
      const fg = readableOn(bg);
      ctx.fillStyle = toCss(fg);
      ctx.textAlign = 'center';
      ctx.font = `${isAnswer ? '600 ' : ''}${theme.fontSize}px ${theme.monoFamily}`;
      ctx.fillText(clip(tokenText(top[0]?.token ?? ''), cw - 8), x + cw / 2, y + rh / 2 - 7);
      ctx.font = `${theme.fontSize * 0.85}px ${theme.fontFamily}`;
      ctx.fillText(prob(top[0]?.p ?? NaN), x + cw / 2, y + rh / 2 + 9);
    });
  });
  return out.toDataURL('image/png');
}

export const renderLens: View<LensRun> = (root, run, ctx) => {
  const heatmaps: Heatmap[] = [];
  const tokens = run.tokens.strings;
  const S = tokens.length;
  const L = run.layers.length;
  const high = accent('purple');
  const last = run.layers[L - 1];
  const firstAnswer = run.layers.findIndex((l) => l.top[S - 1]?.[0]?.id === run.answer.id);
  root.append(
    header(ctx, 'Logit lens', [
      tokenChips(tokens, () => undefined, 'Prompt tokens'),
      facts([
        ['Answer', answerBadge(run.answer.text), h('span', { class: 'muted' }, ` id ${run.answer.id}`)],
        ['p(answer)', 'at the last position after the final layer ', h('strong', {}, num(last?.pAnswer[S - 1] ?? NaN))],
        ['First top-1', firstAnswer < 0 ? 'the answer is never the top-1 token at the last position' : `layer ${run.layers[firstAnswer].layer} is the first whose top-1 at the last position is the answer`],
        modelFact(run),
      ]),
    ]),
  );

  // Top-1 table.
  const { section: sec, head } = section('lens-title', `Top-1 token per layer and position (top ${run.topK} on focus)`);
  root.append(sec);
  const body = h('tbody');
  const cells: HTMLElement[][] = [];
  const at = ctx.state.cell && ctx.state.cell[0] < L && ctx.state.cell[1] < S ? ctx.state.cell : [L - 1, S - 1];
  let shown = detail(run, at[0], at[1], high);
  const select = (l: number, s: number) => {
    if (ctx.state.cell?.[0] === l && ctx.state.cell?.[1] === s && shown.isConnected) return;
    const next = detail(run, l, s, high);
    shown.replaceWith(next);
    shown = next;
    for (const row of cells) for (const c of row) c.classList.remove('att-selected');
    cells[l]?.[s]?.classList.add('att-selected');
    ctx.setState({ cell: [l, s] });
  };
  run.layers.forEach((layer, l) => {
    const tds = layer.top.map((top, s) => {
      const t = top[0];
      const isAnswer = t?.id === run.answer.id;
      const td = h('td', { class: `att-lens-cell${isAnswer ? ' att-is-answer' : ''}`, title: cellTitle(run, l, s), 'aria-label': `${tokenText(t?.token ?? '')} ${num(t?.p ?? NaN, 3)}${isAnswer ? ', the answer' : ''}; p(answer) ${num(layer.pAnswer[s], 3)}` },
        h('span', { class: 'mono att-lens-token' }, tokenText(t?.token ?? '')), h('span', { class: 'att-lens-p' }, prob(t?.p ?? NaN)));
      paintCell(td, t?.p ?? NaN, [0, 1], ctx.theme.background, high);
      td.addEventListener('focus', () => select(l, s));
      td.addEventListener('click', () => select(l, s));
      td.addEventListener('dblclick', () => ctx.reveal(layer.layer, undefined, 'block'));
      return td;
    });
    cells.push(tds);
    body.append(h('tr', {}, h('th', { scope: 'row' }, `Layer ${layer.layer}`), ...tds));
  });
  gridNavigation(cells, (l) => ctx.reveal(run.layers[l].layer, undefined, 'block'));
  cells[at[0]]?.[at[1]]?.classList.add('att-selected');
  const thead = h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Layer'), ...tokens.map((s, i) => h('th', { scope: 'col', class: 'mono', title: `position ${i}` }, tokenText(s)))));
  const caption = h('caption', {}, `Each cell: the top-1 next token read from that layer's residual stream at that position, and its probability; cells whose top-1 is the answer ${quoteToken(run.answer.text)} have a dashed outline. Arrow keys move; the focused cell's top ${run.topK} show below; Enter or a double click reveals the layer in the Layer Explorer.`);
  sec.append(h('div', { class: 'table-wrap' }, h('table', { class: 'att-table att-lens' }, caption, thead, body)), shown);
  head.append(button('Export PNG', () => ctx.exportPng('top1', tablePng(run, ctx.theme, high, accent('green'), `Logit lens: ${run.prompt}`)), { title: 'Save the table as PNG' }));

  // p(answer) per layer and position.
  const { section: sec2, head: head2 } = section('lens-answer-title', `p(answer ${quoteToken(run.answer.text)}) per layer and position`);
  root.append(sec2);
  const pa = run.layers.map((l) => l.pAnswer);
  if (ctx.state.view === 'table') {
    const b2 = h('tbody');
    const c2: HTMLElement[][] = [];
    run.layers.forEach((layer) => {
      const tds = layer.pAnswer.map((v) => {
        const td = h('td', { class: 'num' }, num(v));
        paintCell(td, v, [0, 1], ctx.theme.background, accent('green'));
        return td;
      });
      c2.push(tds);
      b2.append(h('tr', {}, h('th', { scope: 'row' }, `Layer ${layer.layer}`), ...tds));
    });
    gridNavigation(c2, (l) => ctx.reveal(run.layers[l].layer, undefined, 'block'));
    sec2.append(h('div', { class: 'table-wrap' }, h('table', { class: 'att-table' }, h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Layer'), ...tokens.map((s) => h('th', { scope: 'col', class: 'mono' }, tokenText(s))))), b2)));
  } else {
    const m = new Heatmap(sec2, {
      values: pa,
      rowLabels: run.layers.map((l) => `L${l.layer}`),
      colLabels: tokens.map((s) => tokenText(s)),
      xTitle: 'Position',
      yTitle: 'Layer',
      range: [0, 1],
      low: ctx.theme.background,
      high: accent('green'),
      theme: ctx.theme,
      legendLabel: 'p(answer)',
      format: (v) => num(v, 2),
      ariaLabel: `p(answer) per layer and position, ${L} layers by ${S} positions; at the last position after the final layer ${num(last?.pAnswer[S - 1] ?? NaN)}.`,
      tooltip: (l, s, v) => ({ title: `Layer ${run.layers[l].layer} · ${quoteToken(tokens[s])}`, lines: [`p(answer) ${num(v)}`, `top-1 ${quoteToken(run.layers[l].top[s][0]?.token ?? '')} ${num(run.layers[l].top[s][0]?.p ?? NaN)}`] }),
      onClick: (l) => ctx.reveal(run.layers[l].layer, undefined, 'block'),
    });
    heatmaps.push(m);
    sec2.style.maxWidth = `${m.maxWidth}px`;
    head2.append(button('Export PNG', () => ctx.exportPng('p-answer', m.toPngDataUrl(`Logit lens p(answer ${quoteToken(run.answer.text)}): ${run.prompt}`)), { title: 'Save the heatmap as PNG' }));
  }
  return () => heatmaps.forEach((x) => x.destroy());
};
