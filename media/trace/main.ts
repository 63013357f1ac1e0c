/**
 * The causal-trace panel's front-end: asks the host for the run (`ready`), renders it, and
 * re-renders on `update` pushes and theme changes. Persists only UI state (TraceViewState).
 */
import type { TraceRequest, TraceResponses, TraceRun, TraceViewState } from '../../src/webviews/trace/protocol';
import { h } from '../shared/dom';
import { createRpc, vscodeApi } from '../shared/rpc';
import { panelShell } from '../shared/shell';
import { onThemeChange } from '../shared/theme';
import { renderRun } from './view';
import type { TraceActions } from './view';

const vscode = vscodeApi<TraceViewState>();
const rpc = createRpc<TraceRequest, TraceResponses>(vscode);
const { content, status, failed, exported } = panelShell('trace');

let view: TraceViewState['view'] = vscode.getState()?.view === 'table' ? 'table' : 'chart';
let run: TraceRun | undefined;
let dispose: (() => void) | undefined;


function persist(): void {
  if (run) vscode.setState({ runId: run.id, view });
}

const actions: TraceActions = {
  reveal(kind, layer, token) {
    rpc.request({ method: 'reveal', kind, layer, token }).catch(failed('Reveal'));
  },
  exportData(format) {
    exported(rpc.request({ method: 'export', format }));
  },
  exportPng(kind, pngDataUrl) {
    exported(rpc.request({ method: 'export', format: 'png', kind, pngDataUrl }));
  },
  setView(next) {
    view = next;
    persist();
    render();
    // Keep keyboard focus on the toggle (it is re-created; Lit renders it asynchronously).
    const toggle = content.querySelector<HTMLElementTagNameMap['vscode-button']>('vscode-button[aria-pressed]');
    if (toggle) void toggle.updateComplete.then(() => toggle.focus());
  },
};

function render(): void {
  if (!run) return;
  const y = window.scrollY;
  dispose?.();
  dispose = renderRun(content, run, view, actions);
  // Export results show next to the buttons that caused them.
  content.querySelector('.trace-header')?.append(status);
  window.scrollTo(0, y);
}

function show(next: TraceRun): void {
  run = next;
  persist();
  render();
}

content.append(h('p', { class: 'muted' }, 'Loading trace…'));
rpc.onPush((msg) => {
  if (msg.type === 'update') show((msg as { type: 'update'; run: TraceRun }).run);
});
onThemeChange(render);
rpc
  .request({ method: 'ready' })
  .then(show)
  .catch((e: unknown) => {
    content.replaceChildren(h('p', { class: 'error' }, `Could not load the trace: ${e instanceof Error ? e.message : String(e)}`));
  });
