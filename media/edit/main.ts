/**
 * The concept-edit panel's front-end: asks the host for the run (`ready`), renders it, relays
 * the buttons (open, save as, discard, reveal, export) and re-renders on `update` pushes (the
 * file moved or was discarded) and theme changes. Persists only UI state (EditViewState).
 */
import type { EditRequest, EditResponses, EditView, EditViewState } from '../../src/webviews/edit/protocol';
import { h } from '../shared/dom';
import { createRpc, vscodeApi } from '../shared/rpc';
import { panelShell } from '../shared/shell';
import { onThemeChange } from '../shared/theme';
import { renderEdit } from './view';
import type { EditActions } from './view';

const vscode = vscodeApi<EditViewState>();
const rpc = createRpc<EditRequest, EditResponses>(vscode);
const { content, status, say, failed, exported } = panelShell('edit');

let view: EditView | undefined;


const actions: EditActions = {
  open() {
    rpc
      .request({ method: 'open' })
      .then((r) => say(r.opened ? 'Opened in the Layer Explorer' : ''))
      .catch(failed('Open'));
  },
  saveAs() {
    rpc
      .request({ method: 'saveAs' })
      .then((r) => r.saved && say(`Moved to ${r.saved}`))
      .catch(failed('Save as'));
  },
  discard() {
    rpc
      .request({ method: 'discard' })
      .then((r) => r.discarded && say('The edited model was deleted'))
      .catch(failed('Discard'));
  },
  reveal() {
    rpc
      .request({ method: 'reveal' })
      .then((r) => say(r.revealed ? '' : 'That layer has no node in the Layer Explorer'))
      .catch(failed('Reveal'));
  },
  exportJson() {
    exported(rpc.request({ method: 'export', format: 'json' }));
  },
};

function render(): void {
  if (!view) return;
  const y = window.scrollY;
  // Keep keyboard focus on the same button across re-renders.
  const focused = document.activeElement?.textContent;
  renderEdit(content, view, actions);
  content.querySelector('.edit-header')?.append(status);
  if (focused) [...content.querySelectorAll<HTMLElement>('vscode-button')].find((b) => b.textContent === focused && !b.hasAttribute('disabled'))?.focus();
  window.scrollTo(0, y);
}

function show(next: EditView): void {
  view = next;
  vscode.setState({ runId: next.run.id });
  render();
}

content.append(h('p', { class: 'muted' }, 'Loading the edit…'));
rpc.onPush((msg) => {
  if (msg.type === 'update') show((msg as { type: 'update'; view: EditView }).view);
});
onThemeChange(render);
rpc
  .request({ method: 'ready' })
  .then(show)
  .catch((e: unknown) => {
    content.replaceChildren(h('p', { class: 'error' }, `Could not load the edit: ${e instanceof Error ? e.message : String(e)}`));
  });
