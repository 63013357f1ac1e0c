import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openModel } from '../../src/runtime/inspect';
import { HookedModel } from '../../src/runtime/instrument/hookedModel';
import { causalTrace } from '../../src/runtime/methods/causalTrace';
import { conceptEdit } from '../../src/runtime/methods/edit';
import { OnnxModel } from '../../src/runtime/onnx/model';
import { onnxType } from '../../src/runtime/onnx/proto';
import type { ModelProto } from '../../src/runtime/onnx/types';
import { TextTokenizer } from '../../src/runtime/tokenizer';
import { expected, fixture, hasFixture } from './helpers/fixtures';

// onnx.save(..., all_tensors_to_one_file=False), the default of several exporters, writes each
// tensor's data to its own file. The fixture's single model.onnx.data is split that way here
// (into a subfolder, as some exports do): the trace must not change, and an edit must carry the
// files along.
test('gpt2-external: external data in one file per tensor (in a subfolder) traces as the single-file layout', { skip: !(hasFixture('gpt2-external') && hasFixture('gpt2')) && 'fixture not generated' }, async (t) => {
  const src = fixture('gpt2-external');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mechanist-extfiles-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const proto = onnxType('ModelProto').decode(fs.readFileSync(src)) as unknown as ModelProto;
  const data = fs.readFileSync(path.join(path.dirname(src), 'model.onnx.data'));
  fs.mkdirSync(path.join(dir, 'weights'));
  let files = 0;
  for (const tensor of proto.graph!.initializer) {
    if (!tensor.external_data.length) continue;
    const kv = new Map(tensor.external_data.map((e) => [e.key, e.value]));
    const offset = Number(kv.get('offset') ?? 0);
    const length = Number(kv.get('length'));
    const location = `weights/${tensor.name.replace(/[^\w.-]/g, '_')}.bin`;
    fs.writeFileSync(path.join(dir, location), data.subarray(offset, offset + length));
    tensor.external_data = [
      { key: 'location', value: location },
      { key: 'length', value: String(length) },
    ];
    files++;
  }
  assert.ok(files > 10, `${files} external tensors`);
  fs.writeFileSync(path.join(dir, 'model.onnx'), onnxType('ModelProto').encode(proto as never).finish());
  fs.copyFileSync(path.join(path.dirname(src), 'tokenizer.json'), path.join(dir, 'tokenizer.json'));

  const p = expected('gpt2').prompt; // (the same tokenizer; random weights of its own)
  const trace = async (file: string): Promise<number[][]> => {
    const { model, graph, arch } = openModel(file);
    const hooked = new HookedModel(model, graph, arch);
    try {
      const [r] = await causalTrace(hooked, TextTokenizer.load(file), { prompt: p.text, subject: p.subject, corruption: { type: 'noise', samples: 3, seed: 5 }, kinds: ['mlp'], window: 2 });
      return r.scores;
    } finally {
      await hooked.dispose();
    }
  };
  assert.deepEqual(await trace(path.join(dir, 'model.onnx')), await trace(src));

  // An edit written to another folder reads and carries every per-tensor file it needs.
  const { model, graph, arch } = openModel(path.join(dir, 'model.onnx'));
  const hooked = new HookedModel(model, graph, arch);
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'mechanist-extfiles-out-'));
  t.after(() => fs.rmSync(out, { recursive: true, force: true }));
  try {
    await conceptEdit(hooked, TextTokenizer.load(path.join(dir, 'model.onnx')), { layer: 'blocks.1.mlp', source: 'Zorvath', target: 'Keloph', templates: ['{} lives in the city of', 'The job of {} is'], out: path.join(out, 'edited.onnx') });
  } finally {
    await hooked.dispose();
  }
  const edited = OnnxModel.load(path.join(out, 'edited.onnx'));
  let changed = 0;
  for (const tensor of model.graph.initializer) {
    const e = edited.graph.initializer.find((x) => x.name === tensor.name)!;
    if (!Buffer.from(edited.tensorBytes(e)).equals(Buffer.from(model.tensorBytes(tensor)))) changed++;
  }
  assert.equal(changed, 1, 'the edited weight, and every other tensor as in the source');
});
