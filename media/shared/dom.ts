/** Tiny DOM builder for the webviews (no innerHTML: text is always text). */

type Child = Node | string | null | undefined | false;

/** `h('p', {class: 'x'}, 'text', child)`: attributes set with setAttribute, children appended as nodes or text. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs?: Record<string, string | number | boolean | undefined>, ...children: Child[]): HTMLElementTagNameMap[K];
export function h(tag: string, attrs?: Record<string, string | number | boolean | undefined>, ...children: Child[]): HTMLElement;
export function h(tag: string, attrs: Record<string, string | number | boolean | undefined> = {}, ...children: Child[]): HTMLElement {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

/** A keyboard-navigable grid: arrow keys, Home/End, Ctrl+Home/End move focus between `cells[row][col]` (roving tabindex). */
export function gridNavigation(cells: HTMLElement[][], onActivate?: (row: number, col: number) => void): void {
  const rows = cells.length;
  cells.forEach((row, r) =>
    row.forEach((cell, c) => {
      cell.tabIndex = r === 0 && c === 0 ? 0 : -1;
      cell.addEventListener('focus', () => {
        for (const line of cells) for (const other of line) if (other !== cell) other.tabIndex = -1;
        cell.tabIndex = 0;
      });
      cell.addEventListener('keydown', (e) => {
        let nr = r;
        let nc = c;
        const cols = cells[r].length;
        switch (e.key) {
          case 'ArrowUp': nr = Math.max(0, r - 1); break;
          case 'ArrowDown': nr = Math.min(rows - 1, r + 1); break;
          case 'ArrowLeft': nc = Math.max(0, c - 1); break;
          case 'ArrowRight': nc = Math.min(cols - 1, c + 1); break;
          case 'Home': nc = 0; if (e.ctrlKey) nr = 0; break;
          case 'End': nc = cols - 1; if (e.ctrlKey) nr = rows - 1; break;
          case 'Enter':
          case ' ':
            if (onActivate) {
              e.preventDefault();
              onActivate(r, c);
            }
            return;
          default:
            return;
        }
        e.preventDefault();
        const target = cells[nr]?.[Math.min(nc, (cells[nr]?.length ?? 1) - 1)];
        target?.focus();
      });
    }),
  );
}
