/**
 * Renders a decomposition run: header, the ranked components (bar chart or accessible table),
 * and the selected component's top descriptions and token heat map over the image.
 */
import '@vscode-elements/elements/dist/vscode-button/index.js';
import type { DecomposedView, TokenMap } from '../../src/engine/methods/decompose';
import type { DecomposeRun, DecomposeViewState, Ranking } from '../../src/webviews/decompose/protocol';
import { BarChart } from '../shared/barChart';
import { gridNavigation, h } from '../shared/dom';
import { readHeatmapTheme } from '../shared/heatmap';
import type { HeatmapTheme } from '../shared/heatmap';
import { mix, themeColor, toCss } from '../shared/theme';
import type { Rgba } from '../shared/theme';
import { componentLabel, componentTitle, gridRange, num, overlayAlpha, ranked } from './format';

/** What the view can ask the host (or the page) to do. */
export interface DecomposeActions {
  select(component: string, reveal: boolean): void;
  setState(patch: Partial<DecomposeViewState>): void;
  exportData(format: 'csv' | 'json'): void;
  exportPng(what: string, pngDataUrl: string): void;
}

/** Components shown in the chart before "Show all". */
const TOP = 20;

interface Palette {
  theme: HeatmapTheme;
  kind: Record<DecomposedView['kind'], Rgba>;
  positive: Rgba;
  negative: Rgba;
  selected: Rgba;
}

function palette(): Palette {
  const theme = readHeatmapTheme();
  return {
    theme,
    kind: {
      head: themeColor(['--vscode-charts-blue'], '#3794ff'),
      mlp: themeColor(['--vscode-charts-green'], '#89d185'),
      embed: themeColor(['--vscode-charts-purple'], '#b180d7'),
      bias: mix(theme.background, theme.foreground, 0.45),
    },
    positive: themeColor(['--vscode-charts-red'], '#f14c4c'),
    negative: themeColor(['--vscode-charts-blue'], '#3794ff'),
    selected: themeColor(['--vscode-charts-yellow'], '#cca700'),
  };
}

function button(label: string, onClick: () => void, attrs: Record<string, string | boolean | undefined> = {}): HTMLElement {
  const b = h('vscode-button', { secondary: true, ...attrs }, label);
  b.addEventListener('click', onClick);
  return b;
}

/** A two-state toggle button (aria-pressed). */
function toggle(label: string, pressed: boolean, onClick: () => void, title: string): HTMLElement {
  return button(label, onClick, { 'aria-pressed': pressed ? 'true' : 'false', secondary: !pressed, title });
}

/** A small colour square (styled through the CSSOM: the CSP allows no inline style attributes). */
function swatch(color: Rgba): HTMLElement {
  const sw = h('span', { class: 'dec-swatch' });
  sw.style.background = toCss(color);
  return sw;
}

const basename = (p: string): string => p.split(/[\\/]/).pop() ?? p;

function header(run: DecomposeRun, state: DecomposeViewState, actions: DecomposeActions): HTMLElement {
  const facts = h('dl', { class: 'facts dec-facts' });
  const fact = (term: string, ...value: (Node | string)[]) => facts.append(h('dt', {}, term), h('dd', {}, ...value));
  fact('Image', h('span', { class: 'mono path', title: run.image }, run.image));
  fact('Model', h('span', { class: 'mono path', title: run.modelPath }, run.modelPath));
  fact(
    'Space',
    run.space === 'projection' ? 'CLIP joint space (after the visual projection)' : 'normalised CLS (no projection)',
    h('span', { class: 'muted' }, ` · ${run.components.length} components · ${run.tokens} tokens${run.grid ? ` (${run.grid[0]}×${run.grid[1]} patches)` : ''} · reconstruction error ${run.reconstructionError.toExponential(1)}`),
  );
  if (run.textModel) fact('Text tower', h('span', { class: 'mono path', title: run.textModel }, run.textModel));
  if (run.feature) {
    fact(
      'Feature',
      h('strong', {}, run.feature),
      ': ',
      (run.descriptions ?? []).join(', '),
      h('span', { class: 'muted' }, run.images ? ` · scored over ${run.images.length} image${run.images.length === 1 ? '' : 's'} of the folder` : ''),
    );
  }
  if (run.scoreNote) fact('Note', h('span', { class: 'muted' }, `no feature scores: ${run.scoreNote}`));
  const when = new Date(run.createdAt);
  if (!Number.isNaN(when.getTime())) fact('Run', when.toLocaleString());
  const hasScores = run.components.some((c) => c.score !== undefined);
  const toolbar = h(
    'div',
    { class: 'dec-toolbar', role: 'toolbar', 'aria-label': 'Decomposition actions' },
    h(
      'span',
      { class: 'dec-segment', role: 'group', 'aria-label': 'Rank components by' },
      toggle('Rank by norm', state.rank === 'norm', () => actions.setState({ rank: 'norm' }), 'Rank components by the norm of their contribution'),
      hasScores ? toggle(`Rank by ${run.feature ?? 'feature'} score`, state.rank === 'score', () => actions.setState({ rank: 'score' }), 'Rank components by their feature score') : null,
    ),
    toggle('Table view', state.view === 'table', () => actions.setState({ view: state.view === 'table' ? 'chart' : 'table' }), 'Show the numbers as a table'),
    button('Export CSV', () => actions.exportData('csv'), { title: 'Save every component’s numbers as CSV' }),
    button('Export JSON', () => actions.exportData('json'), { title: 'Save the run as JSON' }),
  );
  return h('header', { class: 'panel-header dec-header' }, h('h1', {}, `Decomposition of ${basename(run.image)}`), facts, toolbar);
}

/** The accessible table of components: rank, name, kind, layer, head, norm, score, best description. */
function componentTable(run: DecomposeRun, order: DecomposedView[], selected: string | undefined, actions: DecomposeActions): HTMLElement {
  const hasScores = order.some((c) => c.score !== undefined);
  const hasDesc = order.some((c) => c.descriptions?.length);
  const cols = ['#', 'Component', 'Kind', 'Layer', 'Head', 'Norm', ...(hasScores ? [`${run.feature ?? 'Feature'} score`] : []), ...(hasDesc ? ['Top description'] : [])];
  const body = h('tbody');
  const cells: HTMLElement[][] = [];
  order.forEach((c, i) => {
    const row = [
      h('td', { class: 'num' }, String(i + 1)),
      h('td', { class: 'mono' }, c.name),
      h('td', {}, c.kind),
      h('td', { class: 'num' }, c.layer === undefined || c.layer === null ? '' : String(c.layer)),
      h('td', { class: 'num' }, c.head === undefined || c.head === null ? '' : String(c.head)),
      h('td', { class: 'num' }, num(c.norm)),
      ...(hasScores ? [h('td', { class: 'num' }, num(c.score))] : []),
      ...(hasDesc ? [h('td', {}, c.descriptions?.[0] ? `${c.descriptions[0].text} (${num(c.descriptions[0].score)})` : '')] : []),
    ];
    for (const td of row) td.addEventListener('click', () => actions.select(c.name, true));
    cells.push(row);
    body.append(h('tr', { class: c.name === selected ? 'selected' : undefined, 'aria-selected': c.name === selected ? 'true' : 'false' }, ...row));
  });
  gridNavigation(cells, (r) => actions.select(order[r].name, true));
  return h(
    'div',
    { class: 'table-wrap' },
    h('table', { class: 'dec-table' }, h('caption', {}, 'Components, ranked; Enter selects a component and reveals it in the Layer Explorer.'), h('thead', {}, h('tr', {}, ...cols.map((c) => h('th', { scope: 'col' }, c)))), body),
  );
}

/** The heat map measure's grid for a component: norm (-1) or projection onto description k. */
function measureMap(c: DecomposedView, measure: number): TokenMap | undefined {
  return measure >= 0 ? (c.projections?.[measure] ?? c.heatmap) : c.heatmap;
}

/**
 * The overlay colour of a value: signed values red (toward) or blue (away) with opacity |v|;
 * norms as a spotlight (low patches dimmed with the theme background).
 */
function overlayColor(v: number, range: [number, number], signed: boolean, pal: Palette): Rgba {
  const t = overlayAlpha(v, range, signed);
  if (signed) return { ...(v >= 0 ? pal.positive : pal.negative), a: 0.75 * t };
  return { ...pal.theme.background, a: 0.85 * (1 - t) };
}

/** Draws the image with the token map over it. */
function drawOverlay(canvas: HTMLCanvasElement, img: HTMLImageElement, run: DecomposeRun, map: TokenMap | undefined, signed: boolean, overlay: boolean, pal: Palette): void {
  const ctx = canvas.getContext('2d');
  if (!ctx) return;
  const size = canvas.width;
  ctx.fillStyle = toCss(pal.theme.background);
  ctx.fillRect(0, 0, size, canvas.height);
  ctx.imageSmoothingEnabled = img.naturalWidth >= size / 2;
  ctx.drawImage(img, 0, 0, size, canvas.height);
  if (!map || !run.grid || !overlay) return;
  const [rows, cols] = run.grid;
  const cw = size / cols;
  const ch = canvas.height / rows;
  const range = gridRange(map.grid);
  for (let y = 0; y < rows; y++)
    for (let x = 0; x < cols; x++) {
      ctx.fillStyle = toCss(overlayColor(map.grid[y][x], range, signed, pal));
      ctx.fillRect(x * cw, y * ch, cw, ch);
    }
  ctx.strokeStyle = toCss({ ...pal.theme.foreground, a: 0.25 });
  ctx.lineWidth = 1;
  for (let i = 1; i < cols; i++) {
    ctx.beginPath();
    ctx.moveTo(Math.round(i * cw) + 0.5, 0);
    ctx.lineTo(Math.round(i * cw) + 0.5, canvas.height);
    ctx.stroke();
  }
  for (let i = 1; i < rows; i++) {
    ctx.beginPath();
    ctx.moveTo(0, Math.round(i * ch) + 0.5);
    ctx.lineTo(size, Math.round(i * ch) + 0.5);
    ctx.stroke();
  }
}

/** The legend under the heat map: a gradient from the low to the high value. */
function legend(range: [number, number], signed: boolean, pal: Palette, label: string): HTMLElement {
  const bar = document.createElement('canvas');
  bar.className = 'heatmap-legend-bar';
  bar.width = 256;
  bar.height = 1;
  const ctx = bar.getContext('2d');
  if (ctx) {
    for (let i = 0; i < 256; i++) {
      const v = range[0] + ((range[1] - range[0]) * i) / 255;
      // Over a mid grey, as the patches are over the image.
      ctx.fillStyle = toCss(mix(pal.theme.background, pal.theme.foreground, 0.6));
      ctx.fillRect(i, 0, 1, 1);
      ctx.fillStyle = toCss(overlayColor(v, range, signed, pal));
      ctx.fillRect(i, 0, 1, 1);
    }
  }
  return h('div', { class: 'dec-legend', 'aria-hidden': 'true' }, h('div', { class: 'heatmap-legend-label' }, label), h('div', { class: 'heatmap-legend' }, h('span', { class: 'heatmap-legend-value' }, num(range[0])), bar, h('span', { class: 'heatmap-legend-value' }, num(range[1]))));
}

/** The token map as a table (rows × columns of patches). */
function mapTable(map: TokenMap, caption: string): HTMLElement {
  const cols = map.grid[0]?.length ?? 0;
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { class: 'dec-map-table' },
      h('caption', {}, caption),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Row'), ...Array.from({ length: cols }, (_, x) => h('th', { scope: 'col' }, `Col ${x}`)))),
      h('tbody', {}, ...map.grid.map((row, y) => h('tr', {}, h('th', { scope: 'row' }, String(y)), ...row.map((v) => h('td', { class: 'num' }, num(v)))))),
    ),
  );
}

function detail(run: DecomposeRun, c: DecomposedView, state: DecomposeViewState, pal: Palette, img: HTMLImageElement, actions: DecomposeActions): HTMLElement {
  const section = h('section', { class: 'dec-detail', 'aria-labelledby': 'dec-detail-title' });
  const facts = [`norm ${num(c.norm)}`, c.score !== undefined ? `${run.feature ?? 'feature'} score ${num(c.score)}` : ''].filter(Boolean).join(' · ');
  section.append(h('h2', { id: 'dec-detail-title' }, componentTitle(c), ' ', h('span', { class: 'mono muted' }, c.name)), h('p', { class: 'muted dec-detail-facts' }, facts));

  const descs = c.descriptions ?? [];
  const measure = state.measure >= 0 && c.projections?.[state.measure] ? state.measure : -1;
  if (descs.length) {
    const max = Math.max(1e-12, ...descs.map((d) => Math.abs(d.score)));
    const list = h('ol', { class: 'dec-descs', 'aria-label': 'Top descriptions' });
    for (const d of descs) {
      const k = run.descriptions?.indexOf(d.text) ?? -1;
      const bar = h('span', { class: `dec-desc-bar ${d.score < 0 ? 'neg' : 'pos'}` });
      bar.style.width = `${(50 * Math.abs(d.score)) / max}%`;
      const item = h(
        'li',
        { class: measure === k ? 'active' : undefined },
        h('button', { class: 'dec-desc', title: c.heatmap ? `Heat map of the projection onto “${d.text}”` : d.text, 'aria-pressed': measure === k ? 'true' : 'false', disabled: !c.projections }, h('span', { class: 'dec-desc-text' }, d.text), h('span', { class: 'dec-desc-track' }, bar), h('span', { class: 'dec-desc-score' }, num(d.score))),
      );
      item.querySelector('button')?.addEventListener('click', () => actions.setState({ measure: measure === k ? -1 : k }));
      list.append(item);
    }
    section.append(h('h3', {}, 'Top descriptions'), h('p', { class: 'muted dec-hint' }, 'Projection of the component onto each description’s text embedding, less its mean over the folder’s images.'), list);
  }

  const map = measureMap(c, measure);
  const signed = measure >= 0;
  const what = signed ? `projection onto “${run.descriptions?.[measure]}”` : 'norm of each token’s part';
  section.append(h('h3', {}, 'Heat map over the image'));
  const figure = h('div', { class: 'dec-figure' });
  const canvas = document.createElement('canvas');
  canvas.width = 256;
  canvas.height = Math.round((256 * run.imageSize[1]) / run.imageSize[0]);
  canvas.className = 'dec-image';
  canvas.setAttribute('role', 'img');
  canvas.setAttribute('aria-label', map ? `${basename(run.image)} with the ${what} of ${c.name} over its ${run.grid?.[0]}×${run.grid?.[1]} patches` : basename(run.image));
  const draw = () => drawOverlay(canvas, img, run, map, signed, state.overlay, pal);
  if (img.complete) draw();
  else img.addEventListener('load', draw, { once: true });
  figure.append(canvas);
  section.append(figure);
  if (map) {
    const range = gridRange(map.grid);
    section.append(legend(range, signed, pal, signed ? `${what} (red: toward, blue: away)` : `${what} (dimmed: low)`), h('p', { class: 'muted dec-hint' }, `CLS token (not drawn): ${num(map.cls)}`));
    const tools = h(
      'div',
      { class: 'dec-toolbar' },
      toggle('Overlay', state.overlay, () => actions.setState({ overlay: !state.overlay }), 'Show the heat map over the image'),
      signed ? button('Show norm', () => actions.setState({ measure: -1 }), { title: 'Heat map of each token’s norm' }) : null,
      button('Export PNG', () => actions.exportPng(`${c.name}${signed ? `-${run.descriptions?.[measure]}` : ''}`, figurePng(canvas, pal, `${c.name}: ${what}`)), { title: 'Save the image with the heat map as PNG' }),
    );
    section.append(tools);
    if (state.view === 'table') section.append(mapTable(map, `${c.name}: ${what}, per patch (row, column); CLS ${num(map.cls)}`));
  } else {
    section.append(h('p', { class: 'muted' }, c.kind === 'head' ? 'The patch tokens do not form a square grid: no heat map.' : 'Only attention heads split over tokens: select a head for a heat map.'));
  }
  return section;
}

/** The image canvas with a title, on the theme background. */
function figurePng(canvas: HTMLCanvasElement, pal: Palette, title: string): string {
  const pad = 16;
  const titleH = 28;
  const out = document.createElement('canvas');
  out.width = Math.max(canvas.width + 2 * pad, 420);
  out.height = canvas.height + titleH + 2 * pad;
  const ctx = out.getContext('2d');
  if (!ctx) return canvas.toDataURL('image/png');
  ctx.fillStyle = toCss(pal.theme.background);
  ctx.fillRect(0, 0, out.width, out.height);
  ctx.fillStyle = toCss(pal.theme.foreground);
  ctx.textBaseline = 'middle';
  ctx.font = `600 ${pal.theme.fontSize * 1.05}px ${pal.theme.fontFamily}`;
  ctx.fillText(title, pad, pad + titleH / 2);
  ctx.drawImage(canvas, pad, pad + titleH);
  return out.toDataURL('image/png');
}

/** Renders `run` into `root`; returns a function that disposes the charts. */
export function renderRun(root: HTMLElement, run: DecomposeRun, state: DecomposeViewState, img: HTMLImageElement, actions: DecomposeActions): () => void {
  const pal = palette();
  const rank: Ranking = state.rank === 'score' && run.components.some((c) => c.score !== undefined) ? 'score' : 'norm';
  const order = ranked(run.components, rank);
  const selected = run.components.find((c) => c.name === state.selected) ?? order.find((c) => c.kind === 'head') ?? order[0];
  root.replaceChildren(header(run, { ...state, rank }, actions));
  const body = h('div', { class: 'dec-body' });
  root.append(body);
  const list = h('section', { class: 'dec-components', 'aria-labelledby': 'dec-components-title' });
  const title = rank === 'score' ? `Components by ${run.feature ?? 'feature'} score` : 'Components by norm';
  const head = h('div', { class: 'dec-section-head' }, h('h2', { id: 'dec-components-title' }, title));
  list.append(head);
  body.append(list);
  let chart: BarChart | undefined;
  if (state.view === 'table') list.append(componentTable(run, order, selected?.name, actions));
  else {
    const shown = state.showAll || order.length <= TOP + 4 ? order : order.slice(0, TOP);
    if (shown.length < order.length && selected && !shown.includes(selected)) shown.push(selected);
    const values = shown.map((c) => (rank === 'score' ? (c.score ?? 0) : c.norm));
    chart = new BarChart(list, {
      labels: shown.map(componentLabel),
      series: [{ label: rank === 'score' ? 'score' : 'norm', values, colors: shown.map((c) => (c === selected ? pal.selected : pal.kind[c.kind])), outlined: new Set(shown.flatMap((c, i) => (c === selected ? [i] : []))) }],
      theme: pal.theme,
      indexAxis: 'y',
      valueTitle: rank === 'score' ? `${run.feature ?? 'feature'} score (mean correlation)` : 'norm of the contribution',
      monoLabels: true,
      ariaLabel: `${title}: ${shown
        .slice(0, 5)
        .map((c) => `${componentLabel(c)} ${num(rank === 'score' ? c.score : c.norm)}`)
        .join(', ')}${shown.length > 5 ? ', …' : ''}. The table view lists every component.`,
      tooltip: (i) => {
        const c = shown[i];
        const top = c.descriptions?.[0];
        return { title: c.name, lines: [`norm ${num(c.norm)}`, ...(c.score !== undefined ? [`score ${num(c.score)}`] : []), ...(top ? [`top description: ${top.text}`] : []), 'Click: select and reveal'] };
      },
      onClick: (i) => actions.select(shown[i].name, true),
    });
    const legendRow = h(
      'div',
      { class: 'dec-kinds', 'aria-hidden': 'true' },
      ...(['head', 'mlp', 'embed', 'bias'] as const)
        .filter((k) => run.components.some((c) => c.kind === k))
        .map((k) => h('span', {}, swatch(pal.kind[k]), { head: 'head', mlp: 'MLP', embed: 'embedding', bias: 'attention bias' }[k])),
      h('span', {}, swatch(pal.selected), 'selected'),
    );
    list.append(legendRow);
    const tools = h('div', { class: 'dec-toolbar' });
    if (order.length > TOP + 4) tools.append(toggle(state.showAll ? `Top ${TOP}` : `Show all ${order.length}`, false, () => actions.setState({ showAll: !state.showAll }), 'How many components the chart shows'));
    const c = chart;
    tools.append(button('Export PNG', () => actions.exportPng(rank === 'score' ? 'scores' : 'norms', c.toPngDataUrl(`${title} · ${basename(run.image)}`)), { title: 'Save the chart as PNG' }));
    head.append(tools);
  }
  if (selected) body.append(detail(run, selected, state, pal, img, actions));
  return () => chart?.destroy();
}
