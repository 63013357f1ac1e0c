/** Pure text helpers of the concept-edit panel: numbers, tokens, summaries. */
import type { EditResult, EncoderEditedReport, LmEditedReport, PreservationReport } from '../../src/runtime/methods/edit';

/** A fixed number of decimals, or – when not finite. */
export function fixed(v: number, digits = 3): string {
  return Number.isFinite(v) ? v.toFixed(digits) : '–';
}

/** A probability: 0.412, or 3.1e-5 when tiny. */
export function prob(p: number): string {
  if (!Number.isFinite(p)) return '–';
  return p !== 0 && p < 0.001 ? p.toExponential(1) : p.toFixed(3);
}

/** Seconds: 0.378 s, 12.4 s, or 850 ms below a tenth. */
export function seconds(s: number): string {
  if (!Number.isFinite(s)) return '–';
  return s < 0.1 ? `${(s * 1000).toFixed(s < 0.01 ? 1 : 0)} ms` : `${s.toFixed(s < 10 ? 3 : 1)} s`;
}

/** A token made visible: newlines and tabs as symbols, spaces kept, empty as ∅, quoted. */
export function token(s: string): string {
  const t = s.replace(/\r?\n/g, '↵').replace(/\t/g, '⇥');
  return `'${t.length ? t : '∅'}'`;
}

/** Is this an encoder report (cosines) rather than a language-model one (predictions)? */
export function isEncoderReport(r: LmEditedReport | EncoderEditedReport): r is EncoderEditedReport {
  return 'closer' in r;
}

/** ‖ΔW‖ relative to ‖W‖, as a percentage. */
export function relativeChange(r: Pick<EditResult, 'norms'>): string {
  return r.norms.weight > 0 ? `${((100 * r.norms.delta) / r.norms.weight).toFixed(1)} %` : '–';
}

/** One line on the edited prompts: how many behave like the target before and after. */
export function editedSummary(r: Pick<EditResult, 'before' | 'after'>): string {
  const b = r.before;
  const a = r.after;
  if (isEncoderReport(b) && isEncoderReport(a)) return `${a.closer}/${a.prompts.length} closer to the target than to the source after the edit (${b.closer}/${b.prompts.length} before); mean cosine to the target ${fixed(b.meanToTarget)} → ${fixed(a.meanToTarget)}`;
  if (!isEncoderReport(b) && !isEncoderReport(a)) return `${a.hits}/${a.prompts.length} predict the target’s answer after the edit (${b.hits}/${b.prompts.length} before)`;
  return '';
}

/** One line on the unrelated prompts. */
export function preservationSummary(p: PreservationReport): string {
  if (p.kind === 'language-model') return `${p.kept}/${p.prompts.length} keep their top prediction`;
  return `lowest cosine to the original embedding ${fixed(p.minCosine, 4)}, largest relative shift ${fixed(p.maxShift, 4)}`;
}

/** An unrelated encoder prompt counts as changed when its embedding moved noticeably. */
export const SHIFT_CHANGED = 0.05;

/** The number of unrelated prompts whose output changed (top-1 for language models, a shift over SHIFT_CHANGED for encoders). */
export function preservationChanged(p: PreservationReport): number {
  return p.kind === 'language-model' ? p.prompts.length - p.kept : p.prompts.filter((x) => x.shift > SHIFT_CHANGED).length;
}

/** The edited weight's description: name, shape, dtype, layout. */
export function weightText(r: Pick<EditResult, 'weight' | 'weightShape' | 'dtype' | 'layout'>): string {
  return `${r.weight} · ${r.weightShape.join(' × ')} ${r.dtype} (${r.layout === 'out-in' ? '[out, in]' : '[in, out]'})`;
}

/** The timing line: the edit proper, then its parts and the evaluation. */
export function timingText(r: Pick<EditResult, 'seconds' | 'timings'>): string {
  const t = r.timings;
  const parts = [`keys ${seconds(t.keys)}`, `solve ${seconds(t.update)}`, `write ${seconds(t.write)}`];
  const extra = [t.localise > 0.05 ? `localisation ${seconds(t.localise)}` : '', `evaluation ${seconds(t.evaluate)}`].filter(Boolean);
  return `${seconds(r.seconds)} (${parts.join(', ')}); ${extra.join(', ')}`;
}
