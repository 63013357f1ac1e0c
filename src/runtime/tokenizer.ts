/**
 * Tokenizers: a Hugging Face `tokenizer.json` (beside the model, or given) read by
 * @huggingface/tokenizers, plus what interpretability methods need on top: per-token strings
 * and the token span of a substring (as ROME's find_token_range does it, by decoding).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Tokenizer as HfTokenizerType } from '@huggingface/tokenizers' with { 'resolution-mode': 'import' };
import { InputError } from './feeds';

// The package ships CommonJS for require(); its types are declared as ESM, hence the split import.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const hf = require('@huggingface/tokenizers') as { Tokenizer: new (json: object, config: object) => HfTokenizerType };

/** The tokenizers.js class itself. */
export const HfTokenizer = hf.Tokenizer;

export class TextTokenizer {
  private constructor(
    private readonly tok: HfTokenizerType,
    /** Where it was read from. */
    readonly file: string,
  ) {}

  /** Reads `file`, or `tokenizer.json` beside `modelFile`; a clear InputError when absent or unreadable. */
  static load(modelFile: string, file?: string): TextTokenizer {
    const p = file ? path.resolve(file) : path.join(path.dirname(path.resolve(modelFile)), 'tokenizer.json');
    let json: object;
    try {
      json = JSON.parse(fs.readFileSync(p, 'utf8')) as object;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        throw new InputError(file ? `tokenizer file ${p} does not exist` : `no tokenizer.json next to the model (${path.dirname(p)}); pass one with --tokenizer <tokenizer.json>`);
      }
      throw new InputError(`cannot read tokenizer ${p}: ${(e as Error).message}`);
    }
    const configFile = path.join(path.dirname(p), 'tokenizer_config.json');
    const config = fs.existsSync(configFile) ? (JSON.parse(fs.readFileSync(configFile, 'utf8')) as object) : {};
    try {
      return new TextTokenizer(new hf.Tokenizer(json, config), p);
    } catch (e) {
      throw new InputError(`${p} is not a tokenizer.json that @huggingface/tokenizers can read: ${(e as Error).message}`);
    }
  }

  /** Token ids of a text (with the tokenizer's special tokens, e.g. LLaMA's BOS, unless told not to). */
  encode(text: string, addSpecialTokens = true): number[] {
    return this.tok.encode(text, { add_special_tokens: addSpecialTokens }).ids;
  }

  decode(ids: number[]): string {
    return this.tok.decode(ids, { skip_special_tokens: false });
  }

  /** The text of each token (special tokens included). */
  tokenStrings(ids: number[]): string[] {
    return ids.map((id) => this.tok.decode([id], { skip_special_tokens: false }));
  }

  /**
   * The tokens [start, end) covering the first occurrence of `sub` in the decoded prompt;
   * an InputError when the prompt does not contain it.
   */
  findSpan(ids: number[], sub: string): [number, number] {
    const pieces = this.tokenStrings(ids);
    const whole = pieces.join('');
    const at = whole.indexOf(sub);
    if (sub.length === 0 || at < 0) throw new InputError(`the subject "${sub}" does not occur in the prompt "${whole}"`);
    let pos = 0;
    let start = -1;
    let end = -1;
    for (let i = 0; i < pieces.length; i++) {
      const next = pos + pieces[i].length;
      if (start < 0 && next > at) start = i;
      if (start >= 0 && next >= at + sub.length) {
        end = i + 1;
        break;
      }
      pos = next;
    }
    return [start, end];
  }

  /** The first token of `target` as a continuation of `prompt`. */
  continuationToken(prompt: string, target: string): number {
    const p = this.encode(prompt);
    const full = this.encode(prompt + target);
    let i = 0;
    while (i < p.length && i < full.length && p[i] === full[i]) i++;
    // The prompt's last token may merge with the target; then the continuation starts at the first difference.
    if (i >= full.length) throw new InputError(`the target "${target}" adds no token after the prompt`);
    if (i < p.length) {
      const alone = this.encode(target, false);
      if (!alone.length) throw new InputError(`the target "${target}" encodes to no tokens`);
      return alone[0];
    }
    return full[i];
  }
}
