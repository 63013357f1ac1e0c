/**
 * The gpt2 and llama fixtures with every name that could reveal a module stripped (node names
 * emptied, weights renamed `w0, w1, ...`), as the oldest exporters write them: discovery must
 * fall back to the graph's structure and a causal trace must still equal the PyTorch reference.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openModel } from '../../src/runtime/inspect';
import { HookedModel } from '../../src/runtime/instrument/hookedModel';
import { causalTrace } from '../../src/runtime/methods/causalTrace';
import type { TraceKind } from '../../src/runtime/methods/causalTrace';
import { OnnxModel } from '../../src/runtime/onnx/model';
import { TextTokenizer } from '../../src/runtime/tokenizer';
import { expected, fixture, flat, hasFixture, maxAbsDiff } from './helpers/fixtures';

/** Writes an anonymous copy of a fixture (weights inline) into a temp folder; returns its path. */
function anonymousCopy(name: string): string {
  const model = OnnxModel.load(fixture(name));
  const g = model.graph;
  const rename = new Map(g.initializer.map((t, i) => [t.name, `w${i}`]));
  return model.withInlineWeights(() => {
    for (const t of g.initializer) t.name = rename.get(t.name)!;
    for (const n of g.node) {
      n.name = '';
      n.input = n.input.map((i) => rename.get(i) ?? i);
    }
    for (const v of g.input) v.name = rename.get(v.name) ?? v.name;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `mechanist-anon-${name}-`));
    fs.writeFileSync(path.join(dir, 'model.onnx'), model.encode());
    fs.copyFileSync(fixture(name, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
    return path.join(dir, 'model.onnx');
  });
}

for (const name of ['gpt2', 'llama']) {
  test(`${name} stripped of every name: found by structure, causal traces still equal the PyTorch references`, { skip: !hasFixture(name) && 'fixture not generated' }, async (t) => {
    const file = anonymousCopy(name);
    t.after(() => fs.rmSync(path.dirname(file), { recursive: true, force: true }));
    const exp = expected(name);
    const { model, graph, arch } = openModel(file);
    assert.equal(arch.family, name);
    assert.ok(arch.notices.some((n) => /^Blocks found from the graph's structure/.test(n)), arch.notices.join(' '));
    assert.equal(arch.layers, exp.config.layers);
    assert.equal(arch.heads, exp.config.heads);
    assert.equal(arch.kvHeads, exp.config.kv_heads ?? exp.config.heads);
    const hooked = new HookedModel(model, graph, arch);
    t.after(() => hooked.dispose());
    const tok = TextTokenizer.load(file);
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    for (const ref of exp.causalTrace as any[]) {
      const corruption =
        ref.corruption.type === 'replace'
          ? ({ type: 'replace', subject: ref.corruption.subject } as const)
          : ({ type: 'noise', noise: Float32Array.from(flat(ref.corruption.noise)), samples: ref.corruption.noise.length } as const);
      const [got] = await causalTrace(hooked, tok, { prompt: exp.prompt.text, subject: exp.prompt.subject, target: exp.prompt.answer.text, corruption, kinds: [ref.kind as TraceKind], window: ref.window });
      const label = `${ref.kind}/${ref.corruption.type}`;
      assert.equal(got.answer.id, ref.answer.id, `${label}: answer`);
      assert.ok(Math.abs(got.highScore - ref.highScore) < 1e-4, `${label}: high ${got.highScore} vs ${ref.highScore}`);
      assert.ok(Math.abs(got.lowScore - ref.lowScore) < 1e-4, `${label}: low ${got.lowScore} vs ${ref.lowScore}`);
      const diff = maxAbsDiff(flat(got.scores), flat(ref.scores));
      assert.ok(diff < 1e-4, `${label}: scores differ by ${diff} (sweep ${got.sweep.mode})`);
      t.diagnostic(`${label}: sweep ran as ${got.sweep.mode}`);
    }
  });
}
