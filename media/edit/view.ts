/**
 * Renders a concept-edit run: the edit (layer, weight, norm change, time, file), the actions
 * (open, save as, discard, export), then before/after tables of the edited prompts and of the
 * unrelated ones, side by side, with changed rows highlighted (theme colours and a word).
 */
import '@vscode-elements/elements/dist/vscode-button/index.js';
import type { EncoderEditedReport, LmEditedReport, Prediction, PreservationReport } from '../../src/runtime/methods/edit';
import type { EditView } from '../../src/webviews/edit/protocol';
import { h } from '../shared/dom';
import { SHIFT_CHANGED, editedSummary, fixed, isEncoderReport, preservationChanged, preservationSummary, prob, relativeChange, timingText, token, weightText } from './format';

/** What the view can ask the host to do. */
export interface EditActions {
  open(): void;
  saveAs(): void;
  discard(): void;
  reveal(): void;
  exportJson(): void;
}

function button(label: string, onClick: () => void, attrs: Record<string, string | boolean | undefined> = {}): HTMLElement {
  const b = h('vscode-button', attrs, label);
  b.addEventListener('click', () => {
    if (!b.hasAttribute('disabled')) onClick();
  });
  return b;
}

function fileStatus(v: EditView): HTMLElement {
  const f = v.file;
  if (f.discarded) return h('span', { class: 'edit-badge gone' }, 'discarded');
  if (!f.exists) return h('span', { class: 'edit-badge gone' }, 'missing');
  return h('span', { class: 'edit-badge ok' }, f.out === v.run.result.out ? 'written' : 'moved');
}

function header(v: EditView, actions: EditActions): HTMLElement {
  const r = v.run.result;
  const facts = h('dl', { class: 'facts edit-facts' });
  const fact = (term: string, ...value: (Node | string)[]) => facts.append(h('dt', {}, term), h('dd', {}, ...value));
  const kind = r.kind === 'language-model' ? 'language model' : r.kind === 'encoder-decoder' ? 'encoder-decoder' : 'text encoder';
  const reveal = h('a', { href: '#', class: 'edit-link', title: 'Select this layer in the Layer Explorer' }, 'reveal');
  reveal.addEventListener('click', (e) => {
    e.preventDefault();
    actions.reveal();
  });
  fact('Layer', h('span', { class: 'mono' }, r.layer), h('span', { class: 'muted' }, ` · ${kind} · `), reveal);
  if (r.localisation) fact('Chosen by', h('span', { class: 'muted' }, r.localisation.method === 'causal-trace' ? `causal trace: ${r.localisation.note}` : r.localisation.note));
  // Runs stored before multi-weight edits have no `edits`.
  const edits = r.edits?.length ? r.edits : [r];
  fact(edits.length > 1 ? `Weights (${edits.length})` : 'Weight', ...edits.flatMap((e, i) => [...(i ? [h('br', {})] : []), h('span', { class: 'mono path' }, weightText(e))]));
  if (r.decoder) fact('Decoder prompt', h('span', { class: 'mono' }, JSON.stringify(r.decoder.prompt)), h('span', { class: 'muted' }, ` · ids ${r.decoder.ids.join(' ')}${r.decoder.encoder ? ` · conditioning from ${r.decoder.encoder}` : ''}`));
  fact('Norm change', '‖ΔW‖ ', h('strong', {}, fixed(r.norms.delta, 4)), ` = ${relativeChange(r)} of ‖W‖ ${fixed(r.norms.weight, 4)}`);
  fact('Keys', `${r.keys}${edits.length > 1 ? ' per weight' : ''} (${r.positions === 'last' ? 'the concept’s last token' : 'the concept’s last token and after'}, ${r.templates.length} templates) · λ ${r.lambda}${r.preserveWeight ? ` · preservation weight ${r.preserveWeight}` : ''}`);
  fact('Time', timingText(r));
  fact('Edited model', h('span', { class: 'mono path', title: v.file.out }, v.file.out), ' ', fileStatus(v));
  if (v.file.files.length > 1) fact('Also written', h('span', { class: 'mono path' }, v.file.files.filter((f) => f !== v.file.out).join(', ')));
  const when = new Date(v.run.createdAt);
  fact('Original', h('span', { class: 'mono path', title: v.run.modelPath }, v.run.modelPath), h('span', { class: 'muted' }, ` · unchanged${Number.isNaN(when.getTime()) ? '' : ` · ${when.toLocaleString()}`}`));

  const gone = !v.file.exists;
  const toolbar = h(
    'div',
    { class: 'edit-toolbar', role: 'toolbar', 'aria-label': 'Edited model actions' },
    button('Open edited model', actions.open, { disabled: gone, title: 'Open the edited model in the Layer Explorer' }),
    button('Save as…', actions.saveAs, { secondary: true, disabled: gone, title: 'Move the edited model to another file' }),
    button('Discard edit', actions.discard, { secondary: true, disabled: gone, title: 'Delete the edited model’s files (asks first; the original is never touched)' }),
    button('Export JSON', actions.exportJson, { secondary: true, title: 'Save the whole result as JSON' }),
  );
  return h(
    'header',
    { class: 'panel-header edit-header' },
    h('h1', {}, 'Concept edit'),
    h('p', { class: 'edit-concepts' }, h('span', { class: 'edit-source' }, r.source), h('span', { class: 'edit-arrow', 'aria-label': 'to' }, ' → '), h('span', { class: 'edit-target' }, r.target)),
    facts,
    toolbar,
  );
}

/** Top-k predictions as chips; `mark` (the target's answer) is outlined. */
function chips(preds: Prediction[], mark?: number, compare?: Prediction[]): HTMLElement {
  const list = h('ol', { class: 'edit-chips' });
  preds.forEach((p, i) => {
    const changed = i === 0 && compare && compare[0]?.id !== p.id;
    list.append(h('li', { class: ['edit-chip', p.id === mark ? 'expected' : '', changed ? 'changed' : ''].filter(Boolean).join(' '), title: `${token(p.text)} id ${p.id}: p = ${p.p}` }, h('span', { class: 'mono' }, token(p.text)), ' ', h('span', { class: 'muted' }, prob(p.p))));
  });
  return list;
}

/** A cosine in [-1, 1] with a small bar. */
function cosCell(v: number, accent: 'source' | 'target'): HTMLElement {
  const w = Math.max(0, Math.min(1, (v + 1) / 2)) * 100;
  const bar = h('span', { class: `edit-bar ${accent}`, 'aria-hidden': 'true' });
  // CSSOM, not a style attribute: the CSP allows no inline styles.
  bar.style.setProperty('--w', `${w.toFixed(1)}%`);
  return h('td', { class: 'num' }, bar, fixed(v));
}

function table(caption: string, head: HTMLElement[], rows: HTMLElement[]): HTMLElement {
  return h('div', { class: 'edit-scroll', tabindex: 0, role: 'region', 'aria-label': caption }, h('table', { class: 'edit-table' }, h('caption', {}, caption), h('thead', {}, ...head), h('tbody', {}, ...rows)));
}

function th(text: string, attrs: Record<string, string | number> = {}): HTMLElement {
  return h('th', { scope: 'col', ...attrs }, text);
}

function state(text: string, cls: string): HTMLElement {
  return h('span', { class: `edit-state ${cls}` }, text);
}

function editedEncoder(before: EncoderEditedReport, after: EncoderEditedReport): HTMLElement {
  const head = [
    h('tr', {}, h('th', { scope: 'col', rowspan: 2 }, 'Prompt'), th('Before', { colspan: 2, class: 'group' }), th('After', { colspan: 2, class: 'group' }), h('th', { scope: 'col', rowspan: 2 }, 'Closer to')),
    h('tr', {}, th('cos to source'), th('cos to target'), th('cos to source'), th('cos to target')),
  ];
  const rows = after.prompts.map((a, i) => {
    const b = before.prompts[i];
    const changed = !!b && b.closerToTarget !== a.closerToTarget;
    return h(
      'tr',
      { class: changed ? (a.closerToTarget ? 'row-gained' : 'row-lost') : '' },
      h('th', { scope: 'row', class: 'mono' }, a.prompt),
      cosCell(b?.toSource ?? NaN, 'source'),
      cosCell(b?.toTarget ?? NaN, 'target'),
      cosCell(a.toSource, 'source'),
      cosCell(a.toTarget, 'target'),
      h('td', {}, a.closerToTarget ? state(changed ? 'target (changed)' : 'target', 'good') : state(changed ? 'source (changed)' : 'source', changed ? 'bad' : 'same')),
    );
  });
  return table('Cosine of each edited prompt’s embedding to the original model’s embeddings of the same template filled with the source and with the target', head, rows);
}

function editedLm(before: LmEditedReport, after: LmEditedReport): HTMLElement {
  const head = [h('tr', {}, th('Prompt'), th('Before: top predictions'), th('After: top predictions'), th('p(target’s answer)'), th('Predicts it'))];
  const rows = after.prompts.map((a, i) => {
    const b = before.prompts[i];
    const changed = !!b && b.top[0]?.id !== a.top[0]?.id;
    return h(
      'tr',
      { class: changed ? (a.hit ? 'row-gained' : 'row-changed') : '' },
      h('th', { scope: 'row', class: 'mono' }, a.prompt),
      h('td', {}, b ? chips(b.top, b.expected.id) : '–'),
      h('td', {}, chips(a.top, a.expected.id, b?.top)),
      h('td', { class: 'num' }, h('span', { class: 'mono' }, token(a.expected.text)), ' ', prob(b?.pExpected ?? NaN), ' → ', h('strong', {}, prob(a.pExpected))),
      h('td', {}, a.hit ? state(b?.hit ? 'yes' : 'yes (changed)', 'good') : state(changed ? 'no (changed)' : 'no', changed ? 'bad' : 'same')),
    );
  });
  return table('Top predictions after each edited prompt, before and after; the target’s answer (its top prediction on the same template) is outlined', head, rows);
}

function preservation(p: PreservationReport): HTMLElement {
  if (p.kind === 'language-model') {
    const head = [h('tr', {}, th('Prompt'), th('Before: top predictions'), th('After: top predictions'), th('Top prediction'))];
    const rows = p.prompts.map((x) =>
      h('tr', { class: x.kept ? '' : 'row-lost' }, h('th', { scope: 'row', class: 'mono' }, x.prompt), h('td', {}, chips(x.before)), h('td', {}, chips(x.after, undefined, x.before)), h('td', {}, x.kept ? state('kept', 'good') : state('changed', 'bad'))),
    );
    return table('Top predictions after each unrelated prompt, before and after the edit', head, rows);
  }
  const head = [h('tr', {}, th('Prompt'), th('cos(after, before)'), th('relative shift'), th('Embedding'))];
  const rows = p.prompts.map((x) => {
    const changed = x.shift > SHIFT_CHANGED;
    return h('tr', { class: changed ? 'row-lost' : '' }, h('th', { scope: 'row', class: 'mono' }, x.prompt), h('td', { class: 'num' }, fixed(x.cosine, 4)), h('td', { class: 'num' }, fixed(x.shift, 4)), h('td', {}, changed ? state('changed', 'bad') : state('kept', 'good')));
  });
  return table(`Each unrelated prompt’s embedding after the edit against before (changed: relative shift over ${SHIFT_CHANGED})`, head, rows);
}

/** Renders the view into `root`. */
export function renderEdit(root: HTMLElement, v: EditView, actions: EditActions): void {
  const r = v.run.result;
  const edited = isEncoderReport(r.before) && isEncoderReport(r.after) ? editedEncoder(r.before, r.after) : !isEncoderReport(r.before) && !isEncoderReport(r.after) ? editedLm(r.before, r.after) : h('p', {}, 'Unknown report');
  const changed = preservationChanged(r.preservation);
  root.replaceChildren(
    header(v, actions),
    h(
      'div',
      { class: 'edit-compare' },
      h('section', { class: 'edit-section', 'aria-labelledby': 'edit-edited' }, h('h2', { id: 'edit-edited' }, 'Edited prompts'), h('p', { class: 'edit-summary' }, editedSummary(r)), edited),
      h(
        'section',
        { class: 'edit-section', 'aria-labelledby': 'edit-unrelated' },
        h('h2', { id: 'edit-unrelated' }, 'Unrelated prompts'),
        h('p', { class: 'edit-summary' }, preservationSummary(r.preservation), changed ? h('span', { class: 'edit-state bad' }, ` · ${changed} changed`) : ''),
        preservation(r.preservation),
      ),
    ),
    r.notes.length ? h('section', { class: 'edit-notes' }, h('h2', {}, 'Notes'), h('ul', {}, ...r.notes.map((n) => h('li', {}, n)))) : '',
  );
}
