/**
 * What the attention commands (patterns, knockout, contributions, logit lens) ask and how they
 * run: the prompt (the last one used on the model offered again), the answer (the model's own
 * top predictions offered), knockout sources and window.
 */
import * as vscode from 'vscode';
import type { EngineClient } from '../engine/client';
import type { OpenedModel } from '../engine/protocol';
import type { KnockoutSources } from '../runtime/methods/attention';
import type { RunStore } from '../runStore';
import { promptSpans } from './causalTrace';

/** The prompt last asked per model (and when), newer than a stored run's or not. */
const asked = new Map<string, { prompt: string; at: number }>();

/** Remembers the prompt used on a model. */
export function rememberPrompt(modelPath: string, prompt: string): void {
  asked.set(modelPath, { prompt, at: Date.now() });
}

/** The prompt last used on a model: asked by any of these commands, or of its newest stored run of any method. */
export function lastPrompt(runs: RunStore, modelPath: string): string | undefined {
  const mem = asked.get(modelPath);
  const newest = runs.list().find((r) => r.modelPath === modelPath);
  if (newest && (!mem || Date.parse(newest.createdAt) > mem.at)) {
    const data = runs.get<{ prompt?: unknown }>(newest.id)?.data;
    if (typeof data?.prompt === 'string' && data.prompt) return data.prompt;
  }
  return mem?.prompt;
}

/** Asks for a prompt, offering the last one used on the model; undefined when cancelled. */
export async function askPrompt(runs: RunStore, model: OpenedModel, title: string, hint = 'e.g. "The Eiffel Tower is located in the city of"'): Promise<string | undefined> {
  const prompt = await vscode.window.showInputBox({
    title,
    prompt: `A prompt for the model, ${hint}`,
    value: lastPrompt(runs, model.path) ?? '',
    ignoreFocusOut: true,
    validateInput: (v) => (v.trim() ? undefined : 'Enter a prompt'),
  });
  if (!prompt) return undefined;
  rememberPrompt(model.path, prompt);
  return prompt;
}

/** Asks for the answer to watch, offering the model's top predictions; `{}` means the top-1, undefined a cancel. */
export async function askTarget(engine: EngineClient, model: OpenedModel, prompt: string, title: string): Promise<{ target?: string } | undefined> {
  const predictions = await engine.request('predict', { id: model.id, prompt, top: 5 });
  const pick = await vscode.window.showQuickPick(
    [
      ...predictions.tokens.map((t, i) => ({ label: JSON.stringify(t.text), description: `p = ${t.p.toFixed(4)}${i === 0 ? ' · the model’s top prediction' : ''}`, target: t.text as string | undefined })),
      { label: '$(edit) Type a target…', description: 'its first token is scored', target: undefined },
    ],
    { title, ignoreFocusOut: true },
  );
  if (!pick) return undefined;
  if (pick.target !== undefined) return { target: pick.target };
  const typed = await vscode.window.showInputBox({ title: 'Target (a continuation of the prompt, e.g. " Paris")', ignoreFocusOut: true });
  if (typed === undefined) return undefined;
  return typed ? { target: typed } : {};
}

/** Parses token positions: a half-open span `a:b` or indices `i, j, ...`; undefined when malformed. */
export function parsePositions(text: string): number[] | undefined {
  const s = text.trim();
  const span = /^(\d+)\s*:\s*(\d+)$/.exec(s);
  if (span) {
    const [a, b] = [Number(span[1]), Number(span[2])];
    return b > a ? Array.from({ length: b - a }, (_, i) => a + i) : undefined;
  }
  const parts = s.split(/[\s,]+/).filter(Boolean);
  if (!parts.length || !parts.every((p) => /^\d+$/.test(p))) return undefined;
  return [...new Set(parts.map(Number))].sort((a, b) => a - b);
}

/** Asks which source tokens lose their edge to the last token: a span of the prompt's words, or token indices. */
export async function askSources(engine: EngineClient, model: OpenedModel, prompt: string, title: string): Promise<{ sources: KnockoutSources; label: string } | undefined> {
  const pick = await vscode.window.showQuickPick(
    [
      ...promptSpans(prompt).map((s) => ({ label: s, description: 'subject span', span: s as string | undefined })),
      { label: '$(list-ordered) Token indices…', description: 'e.g. 2,3 or 2:4', span: undefined },
    ],
    { title, placeHolder: 'The tokens the last token may no longer attend to (e.g. the subject)', ignoreFocusOut: true },
  );
  if (!pick) return undefined;
  if (pick.span !== undefined) return { sources: { type: 'subject', subject: pick.span }, label: pick.span };
  const { strings } = await engine.request('tokenize', { id: model.id, text: prompt });
  const listing = strings.map((s, i) => `${i}:${JSON.stringify(s)}`).join(' ');
  const typed = await vscode.window.showInputBox({
    title: 'Source token indices (i,j,… or a half-open span a:b)',
    prompt: listing,
    ignoreFocusOut: true,
    validateInput: (v) => {
      const p = parsePositions(v);
      if (!p) return 'Enter indices like 2,3 or a span like 2:4';
      const bad = p.find((i) => i >= strings.length);
      return bad === undefined ? undefined : `The prompt has tokens 0..${strings.length - 1}`;
    },
  });
  const positions = typed === undefined ? undefined : parsePositions(typed);
  if (!positions) return undefined;
  return { sources: { type: 'positions', positions }, label: positions.map((i) => JSON.stringify(strings[i])).join(' ') };
}

/** Asks the knockout window (layers blocked around each layer); undefined when cancelled. */
export async function askWindow(title: string, initial = 9): Promise<number | undefined> {
  const v = await vscode.window.showInputBox({
    title,
    prompt: 'Layers blocked together around each layer, [l − k/2, l + k − k/2) clipped (Geva et al. use 9)',
    value: String(initial),
    ignoreFocusOut: true,
    validateInput: (s) => (/^\s*[1-9]\d*\s*$/.test(s) ? undefined : 'A positive integer'),
  });
  return v === undefined ? undefined : Number(v);
}

