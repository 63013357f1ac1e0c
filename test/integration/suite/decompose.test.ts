// In-host tests of the decomposition feature: through the extension's API on the clip-vision
// fixture (with the clip-text tower), the numbers must equal the CLI's for the same inputs
// (`mechanist decompose ... --json`), the run is stored with its kind and shown in a panel,
// and a head selected in the Layer Explorer is highlighted in the model's open panels.
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { until } from './until';
import { activatedApi, cli, fixtureDir } from './fixtures';

const TOL = 1e-5;
const DESCRIPTIONS = ['red', 'green', 'blue', 'yellow'];

interface TokenMap {
  cls: number;
  grid: number[][];
}

interface Component {
  name: string;
  kind: string;
  layer?: number;
  head?: number;
  norm: number;
  score?: number;
  descriptions?: { text: string; score: number }[];
  heatmap?: TokenMap;
  projections?: TokenMap[];
}

interface DecomposeRun {
  id: string;
  modelPath: string;
  image: string;
  imagePng: string;
  components: Component[];
  grid?: [number, number];
  descriptions?: string[];
  images?: string[];
  reconstructionError: number;
}

/** The parts of the extension's API these tests use (see MechanistApi). */
interface Api {
  decompose(modelPath: string, inputs: { image: string; textModel?: string; feature?: string; descriptions?: string[] }): Promise<DecomposeRun | undefined>;
  decomposePanels(): { runId: string; highlighted?: string; loaded: boolean }[];
  runs(): { id: string; kind: string; modelPath: string }[];
  reveal(modelPath: string, layer: number, part?: string, head?: number): Promise<boolean>;
  selection(): string | undefined;
}

interface CliOut {
  components: { name: string; norm: number }[];
  scores?: { name: string; score: number }[];
  reconstructionError: number;
  component?: { name: string; descriptions?: { text: string; score: number }[]; heatmap?: { measure: string; cls: number; grid: number[][] } };
}

function close(a: unknown, b: unknown, what: string): void {
  if (typeof a === 'number' || typeof b === 'number') {
    assert.ok(typeof a === 'number' && typeof b === 'number' && Math.abs(a - b) <= TOL * Math.max(1, Math.abs(b)), `${what}: ${String(a)} vs ${String(b)}`);
    return;
  }
  assert.ok(Array.isArray(a) && Array.isArray(b), `${what}: not arrays`);
  assert.equal(a.length, b.length, `${what}: length`);
  a.forEach((x, i) => close(x, b[i], `${what}[${i}]`));
}

const api = (): Promise<Api> => activatedApi<Api>('decompose');

describe('Decomposition', function () {
  this.timeout(120_000);
  const vision = () => path.join(fixtureDir('clip-vision'), 'model.onnx');
  const text = () => path.join(fixtureDir('clip-text'), 'model.onnx');
  const image = () => path.join(fixtureDir('clip-vision'), 'images', 'red_circle.png');
  let run: DecomposeRun | undefined;

  it('decomposes a CLIP image with the text tower: the CLI’s norms, feature scores, descriptions and heat maps', async () => {
    const mech = await api();
    const got = await mech.decompose(vision(), { image: image(), textModel: text(), feature: 'colour', descriptions: DESCRIPTIONS });
    assert.ok(got, 'decompose() returned nothing (see the error notification)');
    run = got;
    assert.ok(got.imagePng.length > 100, 'no image for the panel');
    assert.deepEqual(got.grid, [4, 4]);
    assert.equal(got.images?.length, 4, 'feature scores over the image’s folder');
    const folder = path.dirname(image());
    const base = ['decompose', vision(), '--image', image(), '--text-model', text(), '--feature', 'colour', '--descriptions', DESCRIPTIONS.join(','), '--images', folder];
    const ref = cli<CliOut>(...base);
    close(
      got.components.map((c) => c.norm),
      ref.components.map((c) => c.norm),
      'norms',
    );
    assert.deepEqual(
      got.components.map((c) => c.name),
      ref.components.map((c) => c.name),
    );
    const scores = new Map(ref.scores!.map((s) => [s.name, s.score]));
    close(
      got.components.map((c) => c.score),
      got.components.map((c) => scores.get(c.name)),
      'feature scores',
    );
    for (const name of ['blocks.1.attn.head.0', 'blocks.0.attn.head.2']) {
      const mine: Component | undefined = got.components.find((c: Component) => c.name === name);
      assert.ok(mine, name);
      const norm = cli<CliOut>(...base, '--component', name, '--heatmap').component!;
      assert.deepEqual(
        mine.descriptions!.map((d: { text: string }) => d.text),
        norm.descriptions!.map((d) => d.text),
        `${name}: description order`,
      );
      close(
        mine.descriptions!.map((d: { score: number }) => d.score),
        norm.descriptions!.map((d) => d.score),
        `${name}: description scores`,
      );
      close(mine.heatmap!.grid, norm.heatmap!.grid, `${name}: norm heat map`);
      close(mine.heatmap!.cls, norm.heatmap!.cls, `${name}: CLS`);
      const red = cli<CliOut>(...base, '--component', name, '--heatmap', '--retrieve', 'red').component!;
      close(mine.projections![0].grid, red.heatmap!.grid, `${name}: heat map of the projection onto "red"`);
    }
  });

  it('stores the run, opens its panel, and highlights a head selected in the Layer Explorer', async () => {
    const mech = await api();
    assert.ok(run, 'needs the previous test’s run');
    const id = run.id;
    assert.ok(
      mech.runs().some((r) => r.id === id && r.kind === 'decompose'),
      'the run is not in the Runs view',
    );
    await until('the decomposition panel’s webview to load and ask for its run', () => mech.decomposePanels(), (p) => p.some((x) => x.runId === id && x.loaded));
    assert.equal(await mech.reveal(vision(), 1, 'attention', 2), true, 'reveal of block 1 head 2');
    assert.equal(mech.selection(), 'head 2');
    await until('the panel to be told of the selection', () => mech.decomposePanels().find((p) => p.runId === id)?.highlighted, (h) => h === 'blocks.1.attn.head.2');
    assert.equal(await mech.reveal(vision(), 0, 'mlp'), true, 'reveal of block 0 mlp');
    await until('the panel to follow the MLP selection', () => mech.decomposePanels().find((p) => p.runId === id)?.highlighted, (h) => h === 'blocks.0.mlp');
  });

  it('a ViT without a text tower gives norms and heat maps; a language model is refused', async () => {
    const mech = await api();
    const vit = path.join(fixtureDir('vit'), 'model.onnx');
    const r = await mech.decompose(vit, { image: image() });
    assert.ok(r, 'ViT decomposition failed');
    const ref = cli<CliOut>('decompose', vit, '--image', image());
    close(
      r.components.map((c) => c.norm),
      ref.components.map((c) => c.norm),
      'ViT norms',
    );
    assert.ok(r.components.every((c) => c.score === undefined && c.descriptions === undefined));
    const gpt2 = path.join(fixtureDir('gpt2'), 'model.onnx');
    assert.equal(await mech.decompose(gpt2, { image: image() }), undefined, 'a language model has no image decomposition');
  });
});
