/** VS Code theme colours read at runtime from the --vscode-* CSS variables, and theme-change events. */

/** An sRGB colour with alpha in [0, 1]. */
export interface Rgba {
  r: number;
  g: number;
  b: number;
  a: number;
}

let probe: CanvasRenderingContext2D | null | undefined;

/** Parses any CSS colour the browser understands (hex, rgb(), named...) via a canvas; undefined if invalid. */
export function parseColor(css: string): Rgba | undefined {
  const value = css.trim();
  if (!value) return undefined;
  probe ??= document.createElement('canvas').getContext('2d');
  if (!probe) return undefined;
  // A sentinel first: an invalid colour leaves fillStyle unchanged.
  probe.fillStyle = '#010203';
  probe.fillStyle = value;
  const out = String(probe.fillStyle);
  if (out === '#010203' && value.toLowerCase() !== '#010203') return undefined;
  const hex = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(out);
  if (hex) return { r: parseInt(hex[1], 16), g: parseInt(hex[2], 16), b: parseInt(hex[3], 16), a: 1 };
  const rgba = /^rgba?\(([^)]+)\)$/.exec(out);
  if (rgba) {
    const [r, g, b, a = 1] = rgba[1].split(',').map((s) => parseFloat(s));
    return { r, g, b, a };
  }
  return undefined;
}

/** The value of a CSS custom property on <html>/<body> (VS Code sets them on <html>), or ''. */
export function cssVar(name: string): string {
  return getComputedStyle(document.body).getPropertyValue(name).trim() || getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

/** The first of the given variables that holds a valid colour, else the fallback. */
export function themeColor(names: string[], fallback: string): Rgba {
  for (const n of names) {
    const c = parseColor(cssVar(n));
    if (c) return c;
  }
  return parseColor(fallback) ?? { r: 128, g: 128, b: 128, a: 1 };
}

/** `c` painted over an opaque `under` (for theme colours with alpha). */
export function flatten(c: Rgba, under: Rgba): Rgba {
  return { r: c.r * c.a + under.r * (1 - c.a), g: c.g * c.a + under.g * (1 - c.a), b: c.b * c.a + under.b * (1 - c.a), a: 1 };
}

/** Linear interpolation between two colours, t in [0, 1] (clamped). */
export function mix(a: Rgba, b: Rgba, t: number): Rgba {
  const u = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0));
  return { r: a.r + (b.r - a.r) * u, g: a.g + (b.g - a.g) * u, b: a.b + (b.b - a.b) * u, a: a.a + (b.a - a.a) * u };
}

/** A CSS rgba() string. */
export function toCss(c: Rgba): string {
  return `rgba(${Math.round(c.r)}, ${Math.round(c.g)}, ${Math.round(c.b)}, ${+c.a.toFixed(3)})`;
}

/** WCAG relative luminance of an opaque colour. */
export function luminance(c: Rgba): number {
  const ch = (v: number) => {
    const s = v / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * ch(c.r) + 0.7152 * ch(c.g) + 0.0722 * ch(c.b);
}

/** Black or white, whichever has the higher contrast ratio on `bg` (they tie at luminance ~0.179). */
export function readableOn(bg: Rgba): Rgba {
  const l = luminance(bg);
  return (l + 0.05) / 0.05 > 1.05 / (l + 0.05) ? { r: 0, g: 0, b: 0, a: 1 } : { r: 255, g: 255, b: 255, a: 1 };
}

/** 'light' | 'dark' | 'high-contrast' | 'high-contrast-light' from VS Code's body classes. */
export function themeKind(): string {
  const cl = document.body.classList;
  if (cl.contains('vscode-high-contrast-light')) return 'high-contrast-light';
  if (cl.contains('vscode-high-contrast')) return 'high-contrast';
  if (cl.contains('vscode-light')) return 'light';
  return 'dark';
}

/** Calls `listener` when VS Code switches theme (body class or the inline variables on <html> change). */
export function onThemeChange(listener: () => void): () => void {
  let timer: number | undefined;
  const fire = () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(listener, 30);
  };
  const observer = new MutationObserver(fire);
  observer.observe(document.body, { attributes: true, attributeFilter: ['class'] });
  observer.observe(document.documentElement, { attributes: true, attributeFilter: ['style', 'class'] });
  return () => observer.disconnect();
}
