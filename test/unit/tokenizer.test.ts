// Checks that tokenizers.js (@huggingface/tokenizers) reads the fixtures' tokenizer.json files
// and gives exactly the ids tools/make_fixtures.py used for training and references.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HfTokenizer as Tokenizer } from '../../src/runtime/tokenizer';

const FIXTURES = path.join(__dirname, '../../../test/fixtures');
const TEXT_FIXTURES = ['bert', 'clip-text', 'encdec', 'gpt2', 'gpt2-external', 'llama'];

interface EncodingJson {
  text: string;
  ids: number[];
  addSpecialTokens?: boolean;
}

for (const name of TEXT_FIXTURES) {
  test(`tokenizer ${name}: tokenizers.js gives the recorded ids`, () => {
    const dir = path.join(FIXTURES, name);
    const json = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
    const tokenizer = new Tokenizer(json, {});
    const expected = JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8'));
    const encodings: EncodingJson[] = expected.tokenizer?.encodings ?? [];
    assert.ok(encodings.length > 0, 'expected.json has tokenizer.encodings');
    for (const e of encodings) {
      const ids = tokenizer.encode(e.text, { add_special_tokens: e.addSpecialTokens !== false }).ids;
      assert.deepEqual(ids, e.ids, `${name}: ${JSON.stringify(e.text)}`);
    }
  });
}
