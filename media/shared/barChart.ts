/**
 * A theme-coloured bar chart (chart.js) for the panels: one or two series over labelled
 * categories, per-bar colours (a selected or best bar stands out), optional horizontal
 * reference lines, tooltips, clicks, and a PNG export on the theme background.
 */
import { BarController, BarElement, CategoryScale, Chart, Legend, LinearScale, Tooltip } from 'chart.js';
import type { ChartConfiguration, Plugin, TooltipItem } from 'chart.js';
import { chartFont, tooltipStyle } from './heatmap';
import type { HeatmapTheme } from './heatmap';
import { toCss } from './theme';
import type { Rgba } from './theme';

Chart.register(BarController, BarElement, CategoryScale, LinearScale, Tooltip, Legend);

/** One series of bars. */
export interface BarSeries {
  label: string;
  values: number[];
  /** A colour per bar, or one for all. */
  colors: Rgba[] | Rgba;
  /** Bars drawn with a border in the focus colour. */
  outlined?: ReadonlySet<number>;
  hidden?: boolean;
}

export interface BarChartOptions {
  labels: string[];
  series: BarSeries[];
  theme: HeatmapTheme;
  /** 'y': horizontal bars (one row per label), else vertical. */
  indexAxis?: 'x' | 'y';
  valueTitle?: string;
  categoryTitle?: string;
  /** Value-axis range; default from the data (0 included). */
  min?: number;
  max?: number;
  /** Dashed horizontal (vertical for indexAxis 'y') lines at values, labelled. */
  references?: { value: number; label: string; color: Rgba }[];
  format?: (v: number) => string;
  tooltip?: (index: number, series: number) => { title: string; lines: string[] };
  onClick?: (index: number) => void;
  ariaLabel: string;
  /** Labels in the editor's monospace font. */
  monoLabels?: boolean;
  /** Show the series legend (default: when there is more than one series). */
  legend?: boolean;
}

const BAR_PX = 22;

/** A bar chart figure inside `parent`. */
export class BarChart {
  readonly element: HTMLElement;
  readonly canvas: HTMLCanvasElement;
  private readonly chart: Chart<'bar'>;

  constructor(
    parent: HTMLElement,
    private readonly opts: BarChartOptions,
  ) {
    const { theme, labels } = opts;
    const horizontal = opts.indexAxis === 'y';
    this.element = document.createElement('div');
    this.element.className = 'bar-chart';
    const wrap = document.createElement('div');
    wrap.className = 'bar-chart-canvas';
    wrap.style.position = 'relative';
    wrap.style.height = horizontal ? `${Math.max(120, labels.length * BAR_PX + 64)}px` : '280px';
    this.canvas = document.createElement('canvas');
    this.canvas.setAttribute('role', 'img');
    this.canvas.setAttribute('aria-label', opts.ariaLabel);
    wrap.append(this.canvas);
    this.element.append(wrap);
    parent.append(this.element);

    const fg = toCss(theme.foreground);
    const muted = toCss(theme.muted);
    const grid = toCss({ ...theme.border, a: 0.35 });
    const font = chartFont(theme);
    const format = opts.format ?? ((v: number) => v.toFixed(4));
    const valueAxis = horizontal ? 'x' : 'y';
    const categoryAxis = horizontal ? 'y' : 'x';
    const references = opts.references ?? [];

    const config: ChartConfiguration<'bar'> = {
      type: 'bar',
      data: {
        labels,
        datasets: opts.series.map((s) => {
          const colors = Array.isArray(s.colors) ? s.colors.map(toCss) : toCss(s.colors);
          return {
            label: s.label,
            data: s.values,
            hidden: s.hidden,
            backgroundColor: colors,
            hoverBackgroundColor: colors,
            borderColor: labels.map((_, i) => (s.outlined?.has(i) ? toCss(theme.focus) : 'transparent')),
            borderWidth: labels.map((_, i) => (s.outlined?.has(i) ? 2 : 0)),
            barPercentage: 0.85,
            categoryPercentage: 0.85,
          };
        }),
      },
      options: {
        indexAxis: opts.indexAxis ?? 'x',
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        font,
        color: fg,
        layout: { padding: { top: 4, right: 12 } },
        onClick: (_e, elements) => {
          const el = elements[0];
          if (el && opts.onClick) opts.onClick(el.index);
        },
        onHover: (_e, elements, chart) => {
          chart.canvas.style.cursor = elements.length && opts.onClick ? 'pointer' : 'default';
        },
        plugins: {
          legend: {
            display: opts.legend ?? opts.series.length > 1,
            labels: { color: fg, font, boxWidth: 12, boxHeight: 12 },
          },
          tooltip: {
            ...tooltipStyle(theme),
            callbacks: {
              title: (items: TooltipItem<'bar'>[]) => {
                const it = items[0];
                if (!it) return '';
                return opts.tooltip ? opts.tooltip(it.dataIndex, it.datasetIndex).title : labels[it.dataIndex];
              },
              label: (it: TooltipItem<'bar'>) => (opts.tooltip ? opts.tooltip(it.dataIndex, it.datasetIndex).lines : [`${opts.series[it.datasetIndex].label}: ${format(Number(it.raw))}`]),
            },
          },
        },
        scales: {
          [valueAxis]: {
            type: 'linear',
            min: opts.min,
            max: opts.max,
            beginAtZero: true,
            grid: { color: grid },
            border: { color: toCss(theme.border) },
            ticks: { color: muted, font },
            title: { display: !!opts.valueTitle, text: opts.valueTitle ?? '', color: muted, font },
          },
          [categoryAxis]: {
            type: 'category',
            grid: { display: false },
            border: { color: toCss(theme.border) },
            ticks: { color: fg, font: { ...font, family: opts.monoLabels ? theme.monoFamily : theme.fontFamily }, autoSkip: false, maxRotation: horizontal ? 0 : 45 },
            title: { display: !!opts.categoryTitle, text: opts.categoryTitle ?? '', color: muted, font },
          },
        },
      },
    };
    const referencePlugin: Plugin<'bar'> = {
      id: 'barReferences',
      afterDatasetsDraw: (chart) => {
        if (!references.length) return;
        const scale = chart.scales[valueAxis];
        const { left, right, top, bottom } = chart.chartArea;
        const ctx = chart.ctx;
        ctx.save();
        ctx.setLineDash([5, 4]);
        ctx.lineWidth = 1;
        ctx.font = `${font.size}px ${font.family}`;
        for (const r of references) {
          const p = scale.getPixelForValue(r.value);
          ctx.strokeStyle = toCss(r.color);
          ctx.fillStyle = toCss(r.color);
          ctx.beginPath();
          if (horizontal) {
            ctx.moveTo(p, top);
            ctx.lineTo(p, bottom);
          } else {
            ctx.moveTo(left, p);
            ctx.lineTo(right, p);
          }
          ctx.stroke();
          ctx.textAlign = 'right';
          ctx.textBaseline = 'bottom';
          if (horizontal) ctx.fillText(r.label, p - 4, bottom - 2);
          else ctx.fillText(r.label, right - 4, p - 3);
        }
        ctx.restore();
      },
    };
    config.plugins = [referencePlugin];
    this.chart = new Chart(this.canvas, config);
  }

  /** A PNG (data URL) of the chart on the theme background with an optional title. */
  toPngDataUrl(title?: string): string {
    this.chart.tooltip?.setActiveElements([], { x: 0, y: 0 });
    this.chart.setActiveElements([]);
    this.chart.update('none');
    const src = this.canvas;
    const dpr = src.clientWidth ? src.width / src.clientWidth : 1;
    const { theme } = this.opts;
    const pad = 16 * dpr;
    const titleH = title ? 28 * dpr : 0;
    const out = document.createElement('canvas');
    out.width = src.width + 2 * pad;
    out.height = src.height + titleH + 2 * pad;
    const ctx = out.getContext('2d');
    if (!ctx) return src.toDataURL('image/png');
    ctx.fillStyle = toCss(theme.background);
    ctx.fillRect(0, 0, out.width, out.height);
    if (title) {
      ctx.fillStyle = toCss(theme.foreground);
      ctx.textBaseline = 'middle';
      ctx.font = `600 ${theme.fontSize * 1.1 * dpr}px ${theme.fontFamily}`;
      ctx.fillText(title, pad, pad + titleH / 2);
    }
    ctx.drawImage(src, pad, pad + titleH);
    return out.toDataURL('image/png');
  }

  destroy(): void {
    this.chart.destroy();
    this.element.remove();
  }
}
