/**
 * The attention panel's front-end: asks the host for the run (`ready`), renders it with the
 * view of its kind (patterns, knockout, contributions, lens), and re-renders on `update`
 * pushes (another run, or a head to focus) and theme changes. Persists only UI state.
 */
import type { AttentionRequest, AttentionResponses, AttentionRun, AttentionViewState, Focus } from '../../src/webviews/attention/protocol';
import { h } from '../shared/dom';
import { readHeatmapTheme } from '../shared/heatmap';
import { createRpc, vscodeApi } from '../shared/rpc';
import { panelShell } from '../shared/shell';
import { onThemeChange } from '../shared/theme';
import type { UiState, View, ViewContext } from './common';
import { renderContributions } from './contributions';
import { renderKnockout } from './knockout';
import { renderLens } from './lens';
import { renderPatterns } from './patterns';

const vscode = vscodeApi<AttentionViewState>();
const rpc = createRpc<AttentionRequest, AttentionResponses>(vscode);
const { content, status, failed, exported } = panelShell('att');

const saved = vscode.getState();
let state: UiState = { view: saved?.view === 'table' ? 'table' : 'chart', head: saved?.head, cell: saved?.cell };
let run: AttentionRun | undefined;
let dispose: (() => void) | undefined;


function persist(): void {
  if (run) vscode.setState({ runId: run.id, kind: run.kind, ...state });
}

const VIEWS: { [K in AttentionRun['kind']]: View<Extract<AttentionRun, { kind: K }>> } = {
  patterns: renderPatterns,
  knockout: renderKnockout,
  contributions: renderContributions,
  lens: renderLens,
};

const ctx: ViewContext = {
  theme: readHeatmapTheme(),
  get state() {
    return state;
  },
  reveal(layer, head, part) {
    rpc.request({ method: 'reveal', layer, head, part }).catch(failed('Reveal'));
  },
  exportData(format) {
    exported(rpc.request({ method: 'export', format }));
  },
  exportPng(name, pngDataUrl) {
    exported(rpc.request({ method: 'export', format: 'png', name, pngDataUrl }));
  },
  setState(patch, rerender = false) {
    const toggled = patch.view !== undefined && patch.view !== state.view;
    state = { ...state, ...patch };
    persist();
    if (!rerender) return;
    render();
    if (toggled) {
      // Keep keyboard focus on the toggle (it is re-created; Lit renders it asynchronously).
      const toggle = content.querySelector<HTMLElementTagNameMap['vscode-button']>('vscode-button[aria-pressed]');
      if (toggle) void toggle.updateComplete.then(() => toggle.focus());
    }
  },
};

function render(): void {
  if (!run) return;
  const y = window.scrollY;
  dispose?.();
  content.replaceChildren();
  ctx.theme = readHeatmapTheme();
  dispose = (VIEWS[run.kind] as View<AttentionRun>)(content, run, ctx);
  // Export results show next to the buttons that caused them.
  content.querySelector('.att-header')?.append(status);
  window.scrollTo(0, y);
}

function show(next: AttentionRun, focus?: Focus): void {
  const same = run?.id === next.id || (saved?.runId === next.id && !run);
  run = next;
  if (!same) state = { view: state.view };
  if (focus?.head !== undefined) state.head = focus.head;
  if (focus?.layer !== undefined && next.kind === 'contributions') {
    const row = next.heads[focus.layer] ?? [];
    state.cell = [focus.layer, row.indexOf(Math.max(...row))];
  }
  persist();
  render();
}

content.append(h('p', { class: 'muted' }, 'Loading…'));
rpc.onPush((msg) => {
  if (msg.type === 'update') {
    const m = msg as { type: 'update'; run: AttentionRun; focus?: Focus };
    show(m.run, m.focus);
  }
});
onThemeChange(render);
rpc
  .request({ method: 'ready' })
  .then((r) => show(r.run, r.focus))
  .catch((e: unknown) => {
    content.replaceChildren(h('p', { class: 'error' }, `Could not load the run: ${e instanceof Error ? e.message : String(e)}`));
  });
