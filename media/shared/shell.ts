/**
 * The page every panel's front-end starts from: a content area and a status line (role
 * "status") where export results and errors are said.
 */
import { h } from './dom';

export interface Shell {
  content: HTMLElement;
  status: HTMLElement;
  /** Shows a message in the status line (styled as an error when `error`). */
  say(text: string, error?: boolean): void;
  /** A rejection handler that says "<what> failed: <reason>". */
  failed(what: string): (e: unknown) => void;
  /** Says where an export request saved its file ("Saved <path>"), or why it failed. */
  exported(request: Promise<{ saved?: string }>): void;
}

/** Fills #app with `<div class={prefix}>` and `<p class={prefix}-status>`. */
export function panelShell(prefix: string): Shell {
  const app = document.getElementById('app') ?? document.body.appendChild(h('main', { id: 'app' }));
  const content = h('div', { class: prefix });
  const status = h('p', { class: `${prefix}-status`, role: 'status' });
  app.replaceChildren(content, status);
  const say = (text: string, error = false): void => {
    status.textContent = text;
    status.classList.toggle('error', error);
  };
  const failed = (what: string) => (e: unknown) => say(`${what} failed: ${e instanceof Error ? e.message : String(e)}`, true);
  const exported = (request: Promise<{ saved?: string }>): void => {
    request.then((r) => r.saved && say(`Saved ${r.saved}`)).catch(failed('Export'));
  };
  return { content, status, say, failed, exported };
}
