/**
 * A generic, theme-coloured heatmap (chart.js + chartjs-chart-matrix) for every panel:
 * a matrix of numbers with row and column labels, marked rows, a colour scale between two
 * colours, a colour legend, tooltips, clicks, and a PNG export that includes title and legend.
 */
import { Chart, LinearScale, Tooltip } from 'chart.js';
import type { ChartConfiguration, ScriptableScaleContext, TooltipItem } from 'chart.js';
import { MatrixController, MatrixElement } from 'chartjs-chart-matrix';
import { cssVar, flatten, mix, readableOn, themeColor, toCss } from './theme';
import type { Rgba } from './theme';

Chart.register(MatrixController, MatrixElement, LinearScale, Tooltip);

/** Colours and fonts of the current VS Code theme, as the heatmap uses them. */
export interface HeatmapTheme {
  background: Rgba;
  foreground: Rgba;
  muted: Rgba;
  /** Colour of marked row labels. */
  mark: Rgba;
  focus: Rgba;
  /** Frame around the plot area. */
  border: Rgba;
  hoverBackground: Rgba;
  hoverForeground: Rgba;
  hoverBorder: Rgba;
  fontFamily: string;
  fontSize: number;
  monoFamily: string;
}

/** The chart font: the editor's family, one point smaller (at least 11 px). */
export function chartFont(theme: HeatmapTheme): { family: string; size: number } {
  return { family: theme.fontFamily, size: Math.max(11, theme.fontSize - 1) };
}

/** Tooltip colours and fonts from the theme (VS Code's hover widget), shared by every chart. */
export function tooltipStyle(theme: HeatmapTheme) {
  const font = chartFont(theme);
  return {
    displayColors: false,
    backgroundColor: toCss(theme.hoverBackground),
    titleColor: toCss(theme.hoverForeground),
    bodyColor: toCss(theme.hoverForeground),
    borderColor: toCss(theme.hoverBorder),
    borderWidth: 1,
    cornerRadius: 3,
    titleFont: { family: theme.monoFamily, size: font.size, weight: 'bold' as const },
    bodyFont: font,
  };
}

/** Reads the heatmap theme from the --vscode-* variables (call again after a theme change). */
export function readHeatmapTheme(): HeatmapTheme {
  const background = themeColor(['--vscode-editor-background', '--vscode-sideBar-background'], '#1e1e1e');
  const foreground = flatten(themeColor(['--vscode-editor-foreground', '--vscode-foreground'], '#cccccc'), background);
  const hoverBackground = flatten(themeColor(['--vscode-editorHoverWidget-background', '--vscode-editorWidget-background'], toCss(background)), background);
  return {
    background,
    foreground,
    muted: flatten(themeColor(['--vscode-descriptionForeground'], toCss(mix(background, foreground, 0.7))), background),
    mark: flatten(themeColor(['--vscode-textLink-foreground', '--vscode-charts-orange'], '#3794ff'), background),
    focus: flatten(themeColor(['--vscode-focusBorder'], '#007fd4'), background),
    border: flatten(themeColor(['--vscode-editorWidget-border', '--vscode-widget-border', '--vscode-panel-border'], toCss(mix(background, foreground, 0.25))), background),
    hoverBackground,
    hoverForeground: flatten(themeColor(['--vscode-editorHoverWidget-foreground', '--vscode-editor-foreground', '--vscode-foreground'], toCss(readableOn(hoverBackground))), hoverBackground),
    hoverBorder: flatten(themeColor(['--vscode-editorHoverWidget-border', '--vscode-widget-border', '--vscode-contrastBorder'], toCss(mix(hoverBackground, foreground, 0.3))), background),
    fontFamily: cssVar('--vscode-font-family') || 'system-ui, sans-serif',
    fontSize: parseFloat(cssVar('--vscode-font-size')) || 13,
    monoFamily: cssVar('--vscode-editor-font-family') || 'monospace',
  };
}

/** What to draw. `values[row][col]`; rows run top to bottom, columns left to right. */
export interface HeatmapOptions {
  values: number[][];
  rowLabels: string[];
  colLabels: string[];
  /** Rows drawn with a marked label (bold, `mark` colour). */
  markedRows?: ReadonlySet<number>;
  xTitle?: string;
  yTitle?: string;
  /** Colour domain [low, high]; values outside are clamped. Default: the data's extent. */
  range?: [number, number];
  /** Colours for the low and high ends of the domain. */
  low: Rgba;
  high: Rgba;
  theme: HeatmapTheme;
  /** Number format for legend and default tooltips (default: 4 decimals). */
  format?: (v: number) => string;
  /** Tooltip title and lines for a cell (default: row label, column label, value). */
  tooltip?: (row: number, col: number, value: number) => { title: string; lines: string[] };
  onClick?: (row: number, col: number) => void;
  /** Text for the canvas's aria-label (the canvas has role="img"). */
  ariaLabel: string;
  /** Caption of the colour legend, e.g. "p(answer)". */
  legendLabel?: string;
  /** Row labels in the editor's monospace font (tokens). */
  monoRowLabels?: boolean;
}

/** Row height in CSS pixels, and the space the x axis takes. */
const ROW_PX = 24;
const AXIS_PX = 52;

/** The [min, max] of a matrix (ignoring non-finite values); [0, 1] when empty. */
export function extent(values: number[][]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const row of values)
    for (const v of row) {
      if (!Number.isFinite(v)) continue;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  return lo <= hi ? [lo, hi] : [0, 1];
}

/** The colour of `v` on a scale from `low` (at range[0]) to `high` (at range[1]), clamped. */
export function heatColor(v: number, range: [number, number], low: Rgba, high: Rgba): Rgba {
  const span = range[1] - range[0];
  return mix(low, high, span > 0 ? (v - range[0]) / span : 1);
}

/** Default number format: 4 decimals. */
export const fourDecimals = (v: number): string => v.toFixed(4);

/** One heatmap figure: a canvas (role="img") plus a colour legend, inside `element`. */
export class Heatmap {
  readonly element: HTMLElement;
  readonly canvas: HTMLCanvasElement;
  private readonly legend: HTMLCanvasElement;
  private readonly chart: Chart<'matrix'>;
  private readonly range: [number, number];
  private readonly opts: HeatmapOptions;
  /** The widest the figure gets (CSS px): narrow matrices keep proportionate cells. */
  readonly maxWidth: number;

  constructor(parent: HTMLElement, opts: HeatmapOptions) {
    this.opts = opts;
    const { values, rowLabels, colLabels, theme } = opts;
    const rows = rowLabels.length;
    const cols = colLabels.length;
    const format = opts.format ?? fourDecimals;
    const range = (this.range = opts.range ?? extent(values));
    const marked = opts.markedRows ?? new Set<number>();

    this.element = document.createElement('div');
    this.element.className = 'heatmap';
    const wrap = document.createElement('div');
    wrap.className = 'heatmap-canvas';
    // Cells stay roughly proportionate: a narrow matrix does not stretch over a wide panel.
    wrap.style.height = `${rows * ROW_PX + AXIS_PX}px`;
    this.maxWidth = Math.max(360, 200 + cols * 64);
    this.element.style.maxWidth = `${this.maxWidth}px`;
    this.canvas = document.createElement('canvas');
    this.canvas.setAttribute('role', 'img');
    this.canvas.setAttribute('aria-label', opts.ariaLabel);
    wrap.append(this.canvas);

    const legendRow = document.createElement('div');
    legendRow.className = 'heatmap-legend';
    legendRow.setAttribute('aria-hidden', 'true');
    const label = document.createElement('span');
    label.className = 'heatmap-legend-label';
    label.textContent = opts.legendLabel ?? '';
    const lo = document.createElement('span');
    lo.className = 'heatmap-legend-value';
    lo.textContent = format(range[0]);
    this.legend = document.createElement('canvas');
    this.legend.className = 'heatmap-legend-bar';
    this.legend.width = 256;
    this.legend.height = 1;
    this.paintGradient(this.legend.getContext('2d'), 0, 0, 256, 1);
    const hi = document.createElement('span');
    hi.className = 'heatmap-legend-value';
    hi.textContent = format(range[1]);
    legendRow.append(label, lo, this.legend, hi);
    this.element.append(wrap, legendRow);
    parent.append(this.element);

    const data: { x: number; y: number; v: number }[] = [];
    const colors: string[] = [];
    for (let r = 0; r < rows; r++)
      for (let c = 0; c < cols; c++) {
        const v = values[r]?.[c] ?? NaN;
        data.push({ x: c, y: r, v });
        colors.push(Number.isFinite(v) ? toCss(heatColor(v, range, opts.low, opts.high)) : 'transparent');
      }
    const at = (i: number): [number, number] => [Math.floor(i / cols), i % cols];
    const valueAt = (i: number) => data[i]?.v ?? NaN;
    const fg = toCss(theme.foreground);
    const muted = toCss(theme.muted);
    const font = chartFont(theme);
    const tickLabel = (labels: string[], v: number | string) => labels[Number(v)] ?? '';

    const config: ChartConfiguration<'matrix'> = {
      type: 'matrix',
      data: {
        datasets: [
          {
            data,
            backgroundColor: colors,
            borderWidth: 0,
            hoverBackgroundColor: colors,
            hoverBorderWidth: 2,
            hoverBorderColor: toCss(theme.focus),
            // +1: neighbouring cells overlap by a pixel, so no anti-aliased seams show between them.
            width: ({ chart }) => (chart.chartArea ? chart.chartArea.width / cols + 1 : 0),
            height: ({ chart }) => (chart.chartArea ? chart.chartArea.height / rows + 1 : 0),
          },
        ],
      },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        layout: { padding: { top: 4, right: 8 } },
        font,
        color: fg,
        onClick: (_event, elements) => {
          const el = elements[0];
          if (el && opts.onClick) opts.onClick(...at(el.index));
        },
        onHover: (_event, elements, chart) => {
          chart.canvas.style.cursor = elements.length && opts.onClick ? 'pointer' : 'default';
        },
        plugins: {
          tooltip: {
            ...tooltipStyle(theme),
            callbacks: {
              title: (items: TooltipItem<'matrix'>[]) => {
                const i = items[0]?.dataIndex ?? 0;
                const [r, c] = at(i);
                return opts.tooltip ? opts.tooltip(r, c, valueAt(i)).title : `${rowLabels[r]} · ${colLabels[c]}`;
              },
              label: (item: TooltipItem<'matrix'>) => {
                const [r, c] = at(item.dataIndex);
                return opts.tooltip ? opts.tooltip(r, c, valueAt(item.dataIndex)).lines : [format(valueAt(item.dataIndex))];
              },
            },
          },
        },
        scales: {
          x: {
            type: 'linear',
            min: -0.5,
            max: cols - 0.5,
            offset: false,
            grid: { display: false },
            border: { display: false },
            afterBuildTicks: (axis) => {
              axis.ticks = colLabels.map((_, i) => ({ value: i }));
            },
            ticks: { color: muted, font, maxRotation: 0, autoSkip: true, callback: (v) => tickLabel(colLabels, v) },
            title: { display: !!opts.xTitle, text: opts.xTitle ?? '', color: muted, font },
          },
          y: {
            type: 'linear',
            reverse: true,
            min: -0.5,
            max: rows - 0.5,
            offset: false,
            grid: { display: false },
            border: { display: false },
            afterBuildTicks: (axis) => {
              axis.ticks = rowLabels.map((_, i) => ({ value: i }));
            },
            ticks: {
              autoSkip: false,
              callback: (v) => tickLabel(rowLabels, v),
              color: (ctx: ScriptableScaleContext) => (marked.has(ctx.tick?.value) ? toCss(theme.mark) : fg),
              font: (ctx: ScriptableScaleContext) => ({
                family: opts.monoRowLabels ? theme.monoFamily : theme.fontFamily,
                size: font.size,
                weight: marked.has(ctx.tick?.value) ? 'bold' : 'normal',
              }),
            },
            title: { display: !!opts.yTitle, text: opts.yTitle ?? '', color: muted, font },
          },
        },
      },
    };
    config.plugins = [
      {
        id: 'heatmapFrame',
        afterDatasetsDraw: (chart) => {
          const { left, top, width, height } = chart.chartArea;
          const ctx = chart.ctx;
          ctx.save();
          ctx.strokeStyle = toCss(theme.border);
          ctx.lineWidth = 1;
          ctx.strokeRect(Math.round(left) - 0.5, Math.round(top) - 0.5, Math.round(width) + 1, Math.round(height) + 1);
          ctx.restore();
        },
      },
    ];
    this.chart = new Chart(this.canvas, config);
  }

  /** The colour domain in use. */
  get colorRange(): [number, number] {
    return this.range;
  }

  /** A PNG (data URL) of the figure on the theme background, with an optional title and the legend. */
  toPngDataUrl(title?: string): string {
    // No hover state (tooltip, highlighted cell) in the picture.
    this.chart.tooltip?.setActiveElements([], { x: 0, y: 0 });
    this.chart.setActiveElements([]);
    this.chart.update('none');
    const src = this.canvas;
    const dpr = src.clientWidth ? src.width / src.clientWidth : 1;
    const { theme } = this.opts;
    const format = this.opts.format ?? fourDecimals;
    const pad = 16 * dpr;
    const titleH = title ? 28 * dpr : 0;
    const legendH = 32 * dpr;
    const out = document.createElement('canvas');
    out.width = src.width + 2 * pad;
    out.height = pad + titleH + src.height + legendH + pad;
    const ctx = out.getContext('2d');
    if (!ctx) return src.toDataURL('image/png');
    ctx.fillStyle = toCss(theme.background);
    ctx.fillRect(0, 0, out.width, out.height);
    ctx.textBaseline = 'middle';
    if (title) {
      ctx.fillStyle = toCss(theme.foreground);
      ctx.font = `600 ${theme.fontSize * 1.1 * dpr}px ${theme.fontFamily}`;
      ctx.fillText(title, pad, pad + titleH / 2);
    }
    ctx.drawImage(src, pad, pad + titleH);
    const y = pad + titleH + src.height + legendH / 2;
    ctx.font = `${theme.fontSize * dpr}px ${theme.fontFamily}`;
    let x = pad;
    const text = (s: string, color: Rgba) => {
      ctx.fillStyle = toCss(color);
      ctx.fillText(s, x, y);
      x += ctx.measureText(s).width + 8 * dpr;
    };
    if (this.opts.legendLabel) text(this.opts.legendLabel, theme.muted);
    text(format(this.range[0]), theme.foreground);
    const barW = Math.min(200 * dpr, out.width - x - 80 * dpr);
    this.paintGradient(ctx, x, y - 5 * dpr, barW, 10 * dpr);
    ctx.strokeStyle = toCss(theme.border);
    ctx.lineWidth = dpr;
    ctx.strokeRect(x, y - 5 * dpr, barW, 10 * dpr);
    x += barW + 8 * dpr;
    text(format(this.range[1]), theme.foreground);
    return out.toDataURL('image/png');
  }

  destroy(): void {
    this.chart.destroy();
    this.element.remove();
  }

  private paintGradient(ctx: CanvasRenderingContext2D | null, x: number, y: number, w: number, h: number): void {
    if (!ctx) return;
    const n = Math.max(1, Math.round(w));
    for (let i = 0; i < n; i++) {
      ctx.fillStyle = toCss(mix(this.opts.low, this.opts.high, n > 1 ? i / (n - 1) : 1));
      ctx.fillRect(x + (i * w) / n, y, w / n + 0.5, h);
    }
  }
}
