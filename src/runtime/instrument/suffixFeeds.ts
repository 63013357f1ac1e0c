/** Feeds of suffix.ts's inputs: off (scalar placeholders), or on with each point's prefix. */
import type { HostTensor } from '../tensor';
import { placeholder } from './placeholder';
import type { RestartInfo } from './restart';
import { SUFFIX_INPUT } from './suffix';

/** `past` (prefix by input name) turns suffix runs on; points of blocks before `startBlock` are skipped and get placeholders. */
export function suffixFeeds(info: RestartInfo, past?: Record<string, HostTensor>, startBlock = 0): Record<string, HostTensor> {
  if (!info.suffix) return {};
  const feeds: Record<string, HostTensor> = { [SUFFIX_INPUT]: { type: 'bool', data: Uint8Array.of(past ? 1 : 0), dims: [] } };
  for (const p of info.suffix.kv) {
    const v = past?.[p.input];
    if (past && !v && p.block >= startBlock) throw new Error(`a suffix run from block ${startBlock} needs the prefix ${p.input}`);
    feeds[p.input] = v ?? placeholder(p.elemType ?? info.floatType);
  }
  return feeds;
}
