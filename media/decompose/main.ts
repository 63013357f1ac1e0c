/**
 * The decomposition panel's front-end: asks the host for the run (`ready`), renders it, follows
 * `highlight` pushes (a head or MLP selected in the Layer Explorer) and theme changes. Persists
 * only UI state (DecomposeViewState).
 */
import type { DecomposeRequest, DecomposeResponses, DecomposeRun, DecomposeViewState } from '../../src/webviews/decompose/protocol';
import { h } from '../shared/dom';
import { createRpc, vscodeApi } from '../shared/rpc';
import { panelShell } from '../shared/shell';
import { onThemeChange } from '../shared/theme';
import { renderRun } from './view';
import type { DecomposeActions } from './view';

const vscode = vscodeApi<DecomposeViewState>();
const rpc = createRpc<DecomposeRequest, DecomposeResponses>(vscode);
const { content, status, say, failed, exported } = panelShell('dec');

const saved = vscode.getState();
let state: DecomposeViewState = {
  runId: saved?.runId ?? '',
  view: saved?.view === 'table' ? 'table' : 'chart',
  rank: saved?.rank === 'score' ? 'score' : 'norm',
  selected: saved?.selected,
  measure: typeof saved?.measure === 'number' ? saved.measure : -1,
  overlay: saved?.overlay !== false,
  showAll: !!saved?.showAll,
};
let run: DecomposeRun | undefined;
let pendingHighlight: string | undefined;
const img = new Image();
let dispose: (() => void) | undefined;


function update(patch: Partial<DecomposeViewState>): void {
  state = { ...state, ...patch };
  if (run) vscode.setState(state);
  render();
}

const actions: DecomposeActions = {
  select(component, reveal) {
    if (component !== state.selected) update({ selected: component });
    if (reveal)
      rpc
        .request({ method: 'reveal', component })
        .then((r) => say(r.revealed ? '' : `${component} has no node in the Layer Explorer`))
        .catch(failed('Reveal'));
  },
  setState(patch) {
    const focused = document.activeElement?.textContent;
    update(patch);
    // Keep keyboard focus on the control that was used (controls are re-created).
    const again = [...content.querySelectorAll<HTMLElement>('vscode-button, button')].find((b) => b.textContent === focused);
    again?.focus();
  },
  exportData(format) {
    exported(rpc.request({ method: 'export', format }));
  },
  exportPng(what, pngDataUrl) {
    exported(rpc.request({ method: 'export', format: 'png', what, pngDataUrl }));
  },
};

function render(): void {
  if (!run) return;
  const y = window.scrollY;
  dispose?.();
  dispose = renderRun(content, run, state, img, actions);
  content.querySelector('.dec-header')?.append(status);
  window.scrollTo(0, y);
}

function show(next: DecomposeRun): void {
  run = next;
  img.src = `data:image/png;base64,${next.imagePng}`;
  state = { ...state, runId: next.id };
  if (pendingHighlight && next.components.some((c) => c.name === pendingHighlight)) state.selected = pendingHighlight;
  pendingHighlight = undefined;
  vscode.setState(state);
  render();
}

content.append(h('p', { class: 'muted' }, 'Loading decomposition…'));
rpc.onPush((msg) => {
  if (msg.type !== 'highlight') return;
  const component = (msg as { type: 'highlight'; component: string }).component;
  if (!run) pendingHighlight = component;
  else if (run.components.some((c) => c.name === component) && component !== state.selected) {
    update({ selected: component });
    say(`${component} selected in the Layer Explorer`);
  }
});
onThemeChange(render);
rpc
  .request({ method: 'ready' })
  .then(show)
  .catch((e: unknown) => {
    content.replaceChildren(h('p', { class: 'error' }, `Could not load the decomposition: ${e instanceof Error ? e.message : String(e)}`));
  });
