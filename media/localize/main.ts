/**
 * The localization panel's front-end: asks the host for the run (`ready`), renders it, and
 * re-renders on theme changes. Persists only UI state (LocalizeViewState).
 */
import type { LocalizeRequest, LocalizeResponses, LocalizeRun, LocalizeViewState } from '../../src/webviews/localize/protocol';
import { h } from '../shared/dom';
import { createRpc, vscodeApi } from '../shared/rpc';
import { panelShell } from '../shared/shell';
import { onThemeChange } from '../shared/theme';
import { renderRun } from './view';
import type { LocalizeActions } from './view';

const vscode = vscodeApi<LocalizeViewState>();
const rpc = createRpc<LocalizeRequest, LocalizeResponses>(vscode);
const { content, status, say, failed, exported } = panelShell('loc');

const saved = vscode.getState();
let state: LocalizeViewState = { runId: saved?.runId ?? '', view: saved?.view === 'table' ? 'table' : 'chart', selected: saved?.selected, complement: !!saved?.complement };
let run: LocalizeRun | undefined;
let dispose: (() => void) | undefined;


function update(patch: Partial<LocalizeViewState>): void {
  state = { ...state, ...patch };
  if (run) vscode.setState(state);
  render();
}

const actions: LocalizeActions = {
  select(start) {
    if (start !== state.selected) update({ selected: start });
  },
  reveal(start) {
    rpc
      .request({ method: 'reveal', start })
      .then((r) => say(r.revealed ? '' : 'That layer has no node in the Layer Explorer'))
      .catch(failed('Reveal'));
  },
  edit(start) {
    rpc
      .request({ method: 'edit', start })
      .then((r) => say(!r.started ? (r.message ?? '') : r.out ? `Edited model written: ${r.out}` : 'Concept edit closed without an edit'))
      .catch(failed('Edit'));
  },
  setState(patch) {
    const focused = document.activeElement?.textContent;
    update(patch);
    const again = [...content.querySelectorAll<HTMLElement>('vscode-button')].find((b) => b.textContent === focused);
    again?.focus();
  },
  exportData(format) {
    exported(rpc.request({ method: 'export', format }));
  },
  exportPng(pngDataUrl) {
    exported(rpc.request({ method: 'export', format: 'png', pngDataUrl }));
  },
};

function render(): void {
  if (!run) return;
  const y = window.scrollY;
  dispose?.();
  dispose = renderRun(content, run, state, actions);
  content.querySelector('.loc-header')?.append(status);
  window.scrollTo(0, y);
}

content.append(h('p', { class: 'muted' }, 'Loading localization…'));
onThemeChange(render);
rpc
  .request({ method: 'ready' })
  .then((next) => {
    run = next;
    state = { ...state, runId: next.id };
    vscode.setState(state);
    render();
  })
  .catch((e: unknown) => {
    content.replaceChildren(h('p', { class: 'error' }, `Could not load the localization: ${e instanceof Error ? e.message : String(e)}`));
  });
