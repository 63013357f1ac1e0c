/**
 * Messages between the decomposition panel (host: panel.ts) and its webview (media/decompose).
 * The webview starts with a `ready` request and gets the run; the host pushes `highlight` when
 * a head or MLP of the same model is selected in the Layer Explorer.
 */
import type { DecomposeResult, DecomposedView } from '../../engine/methods/decompose';
import type { RequestEnvelope, ResponseEnvelope } from '../shared/rpc';

/** A stored decomposition run: the engine's result plus the run's identity. */
export interface DecomposeRun extends DecomposeResult {
  id: string;
  createdAt: string;
}

/** Requests the webview sends, with the result each gets. */
export type DecomposeRequest =
  /** First message: returns the run to show. */
  | { method: 'ready' }
  /** A component was selected: reveal its head / MLP in the Layer Explorer. */
  | { method: 'reveal'; component: string }
  /** Save the numbers (csv/json) or a picture (png, as a data URL) to a file the user picks. */
  | { method: 'export'; format: 'csv' | 'json' | 'png'; what?: string; pngDataUrl?: string };

export interface DecomposeResponses {
  ready: DecomposeRun;
  reveal: { revealed: boolean };
  export: { saved?: string };
}

export type FromWebview = RequestEnvelope<DecomposeRequest>;
export type ToWebview = ResponseEnvelope | { type: 'highlight'; component: string };

/** How the components are ranked. */
export type Ranking = 'norm' | 'score';

/** State the webview persists (UI state only; the run is restored by the host). */
export interface DecomposeViewState {
  runId: string;
  view: 'chart' | 'table';
  rank: Ranking;
  /** The selected component's name. */
  selected?: string;
  /** The heat map's measure: -1 the norm of each token's part, k the projection onto description k. */
  measure: number;
  /** Whether the heat map is drawn over the image. */
  overlay: boolean;
  /** Show every component in the bar chart (else the top ones). */
  showAll: boolean;
}

/** The Layer Explorer part of a component: a head, the attention (its bias), an MLP; undefined for the embedding. */
export function componentTarget(c: Pick<DecomposedView, 'kind' | 'layer' | 'head'>): { layer: number; part: 'attention' | 'mlp'; head?: number } | undefined {
  if (c.layer === undefined || c.layer === null) return undefined;
  if (c.kind === 'head') return { layer: c.layer, part: 'attention', head: c.head };
  if (c.kind === 'bias') return { layer: c.layer, part: 'attention' };
  if (c.kind === 'mlp') return { layer: c.layer, part: 'mlp' };
  return undefined;
}

/** The component a Layer Explorer selection stands for: `blocks.L.attn.head.H` or `blocks.L.mlp`. */
export function componentOfNode(kind: string, layer: number | undefined, head: number | undefined): string | undefined {
  if (layer === undefined) return undefined;
  if (kind === 'head' && head !== undefined) return `blocks.${layer}.attn.head.${head}`;
  if (kind === 'mlp') return `blocks.${layer}.mlp`;
  if (kind === 'attention') return `blocks.${layer}.attn.bias`;
  return undefined;
}

/** The CSV export: one row per component (norm, feature score, best description). */
export function decomposeCsv(run: DecomposeRun): string {
  const descs = run.descriptions ?? [];
  const lines = [['component', 'kind', 'layer', 'head', 'norm', 'score', ...descs.map((d) => `description:${d}`)].map(csvCell).join(',')];
  for (const c of run.components) {
    const byText = new Map((c.descriptions ?? []).map((d) => [d.text, d.score]));
    lines.push([c.name, c.kind, c.layer ?? '', c.head ?? '', c.norm, c.score ?? '', ...descs.map((d) => byText.get(d) ?? '')].map(csvCell).join(','));
  }
  return `${lines.join('\n')}\n`;
}

function csvCell(v: string | number): string {
  const s = String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}
