// In-host integration tests: they run inside VS Code's extension host with the real
// `vscode` API, against the extension under development.
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { until } from './until';
import { fixtureDir, repoRoot } from './fixtures';

const EXTENSION_ID = 'mechanist.mechanist';

/** One node of the Layer Explorer, fully expanded (the extension's treeSnapshot()). */
interface TreeNode {
  label: string;
  description?: string;
  contextValue?: string;
  children: TreeNode[];
}

/** What the extension's activate() returns. */
interface MechanistApi {
  models(): { path: string; family: string; layers: number; heads: number }[];
  treeSnapshot(): Promise<TreeNode[]>;
}

interface Expected {
  family: string;
  layers: number;
  heads: number;
  source: string;
}

/** First numeric value among keys (expected.json's field names are the fixture generator's). */
function pick(obj: Record<string, unknown>, keys: string[]): number | undefined {
  for (const k of keys) {
    const v = obj[k];
    if (typeof v === 'number') return v;
  }
  return undefined;
}

/**
 * Expected family and counts: test/fixtures/gpt2/expected.json when it has them, else the
 * CLI (`mechanist inspect <model> --json`), which reads the model with the same runtime but
 * outside VS Code.
 */
function expectedFor(model: string): Expected {
  const expectedJson = path.join(path.dirname(model), 'expected.json');
  const fixtureJson = path.join(repoRoot(), 'test', 'fixtures', 'gpt2', 'expected.json');
  for (const file of [expectedJson, fixtureJson]) {
    if (!fs.existsSync(file)) continue;
    const data = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
    const scopes = [data, ...['config', 'architecture', 'inspect', 'model'].map((k) => data[k]).filter((v): v is Record<string, unknown> => typeof v === 'object' && v !== null)];
    for (const s of scopes) {
      const layers = pick(s, ['layers', 'n_layer', 'n_layers', 'num_layers', 'num_hidden_layers', 'blocks']);
      const heads = pick(s, ['heads', 'n_head', 'n_heads', 'num_heads', 'num_attention_heads']);
      if (layers !== undefined && heads !== undefined) {
        const family = typeof s.family === 'string' ? s.family : 'gpt2';
        return { family, layers, heads, source: file };
      }
    }
  }
  const cli = path.join(repoRoot(), 'bin', 'mechanist.js');
  const out = execFileSync(process.execPath, [cli, 'inspect', model, '--json'], { encoding: 'utf8', env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' } });
  const info = JSON.parse(out) as { family: string; layers: number; heads: number };
  assert.equal(typeof info.layers, 'number', `mechanist inspect --json gave no "layers": ${out.slice(0, 200)}`);
  assert.equal(typeof info.heads, 'number', `mechanist inspect --json gave no "heads": ${out.slice(0, 200)}`);
  return { family: info.family, layers: info.layers, heads: info.heads, source: 'mechanist inspect --json' };
}

function find(nodes: TreeNode[], pred: (n: TreeNode) => boolean): TreeNode[] {
  return nodes.flatMap((n) => [...(pred(n) ? [n] : []), ...find(n.children ?? [], pred)]);
}

async function api(): Promise<MechanistApi> {
  const ext = vscode.extensions.getExtension<MechanistApi>(EXTENSION_ID);
  assert.ok(ext, `extension ${EXTENSION_ID} is not loaded`);
  const exports = await ext.activate();
  assert.ok(exports && typeof exports.models === 'function' && typeof exports.treeSnapshot === 'function', 'activate() must return { models(), treeSnapshot() }');
  return exports;
}

describe('Mechanist extension', () => {
  it('is present and activates', async () => {
    const ext = vscode.extensions.getExtension(EXTENSION_ID);
    assert.ok(ext, `extension ${EXTENSION_ID} is not loaded`);
    await ext.activate();
    assert.equal(ext.isActive, true);
  });

  it('registers every mechanist.* command it contributes', async () => {
    await api();
    const ext = vscode.extensions.getExtension(EXTENSION_ID)!;
    const contributed = ((ext.packageJSON.contributes?.commands ?? []) as { command: string }[]).map((c) => c.command);
    assert.ok(contributed.length > 0, 'package.json contributes no commands');
    const registered = new Set(await vscode.commands.getCommands(true));
    const missing = contributed.filter((c) => !registered.has(c));
    assert.deepEqual(missing, [], `contributed but not registered: ${missing.join(', ')}`);
    assert.ok(registered.has('mechanist.openModel'), 'mechanist.openModel is not registered');
  });

  it('opens the gpt2 fixture: models() and the Layer Explorer show its blocks and heads', async function () {
    this.timeout(120_000);
    const model = path.join(fixtureDir('gpt2'), 'model.onnx');
    const expected = expectedFor(model);
    const mech = await api();
    await vscode.commands.executeCommand('mechanist.openModel', vscode.Uri.file(model));

    const models = await until('models() to list the gpt2 fixture', () => mech.models(), (m) => m.some((x) => path.resolve(x.path) === path.resolve(model)));
    const mine = models.filter((x) => path.resolve(x.path) === path.resolve(model));
    assert.equal(mine.length, 1, `models() lists the fixture ${mine.length} times`);
    assert.equal(mine[0].family, expected.family, `family (expected from ${expected.source})`);
    assert.equal(mine[0].layers, expected.layers, `layers (expected from ${expected.source})`);
    assert.equal(mine[0].heads, expected.heads, `heads (expected from ${expected.source})`);

    const tree = await until('treeSnapshot() to show the model', () => mech.treeSnapshot(), (t) => t.some((n) => n.label === path.basename(model)));
    const root = tree.find((n) => n.label === path.basename(model))!;
    const blocks = root.children.filter((n) => /^block \d+$/.test(n.label));
    assert.deepEqual(
      blocks.map((b) => b.label),
      Array.from({ length: expected.layers }, (_, i) => `block ${i}`),
      'blocks under the model',
    );
    for (const block of blocks) {
      const attention = block.children.find((n) => n.label === 'attention');
      assert.ok(attention, `${block.label} has no attention node`);
      assert.deepEqual(
        attention.children.filter((n) => /^head \d+$/.test(n.label)).map((n) => n.label),
        Array.from({ length: expected.heads }, (_, i) => `head ${i}`),
        `heads of ${block.label}`,
      );
      assert.ok(block.children.some((n) => n.label === 'mlp'), `${block.label} has no mlp node`);
    }
    const heads = find([root], (n) => /^head \d+$/.test(n.label));
    assert.equal(heads.length, expected.layers * expected.heads, 'heads in the whole tree');
  });
});
