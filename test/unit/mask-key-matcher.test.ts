// The byte trie member names are matched with: the same answer as folding the name and looking
// it up, for every spelling, prefix, extension and raw length cap.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileKeyMatcher, matchKey } from '../../gateway/masking/key-matcher.js';
import { foldName } from '../../gateway/masking/names.js';

const NAMES = ['sessionkey', 'session', 'phone', 'idcard', 'id', '', '手机号', 'a'];

/** What the rewriter matched before the trie: fold, cap the raw length, look up. */
function expected(names: readonly string[], folds: boolean, maxRaw: number, raw: string): string | undefined {
  if (Buffer.byteLength(raw) > maxRaw) return undefined;
  const canon = folds ? foldName(raw) : raw;
  return names.includes(canon) ? canon : undefined;
}

/** A deterministic pseudo-random stream (an LCG), so that a failure can be replayed. */
function rng(seed: number): () => number {
  let x = seed;
  return () => (x = (x * 1103515245 + 12345) >>> 0) / 2 ** 32;
}

test('the trie agrees with folding and lookup on spellings, prefixes, extensions and separators', () => {
  const alphabet = ['s', 'e', 'S', 'E', 'i', 'o', 'n', 'k', 'y', 'K', 'Y', '_', '-', 'p', 'h', 'd', 'c', 'a', 'r', 'I', 'D', '手', '机', '号', 'x', '0'];
  for (const folds of [true, false]) {
    const maxRaw = folds ? 2 * 10 + 2 : 10;
    const m = compileKeyMatcher(NAMES, folds, maxRaw);
    const next = rng(folds ? 7 : 11);
    const samples = ['session_key', 'SESSION_KEY', 'sessionKey', 'session-key', 's_e_s_s_i_o_n_k_e_y', 'sessio', 'sessionkeys', '_', '', 'ID', 'Id_', 'idcard', 'id_card', '手机号', '手机', 'A', '-a-'];
    for (let k = 0; k < 4000; k++) {
      let s = '';
      const len = Math.floor(next() * 14);
      for (let c = 0; c < len; c++) s += alphabet[Math.floor(next() * alphabet.length)];
      samples.push(s);
    }
    for (const raw of samples) {
      const buf = Buffer.from(`"${raw}"`);
      assert.equal(matchKey(m, buf, 1, buf.length - 1), expected(NAMES, folds, maxRaw, raw), `${folds ? 'folded' : 'exact'}: ${JSON.stringify(raw)}`);
    }
  }
});

test('a raw name longer than the cap is not matched even when it folds to a rule name', () => {
  const m = compileKeyMatcher(['phone'], true, 12);
  const at = (raw: string): string | undefined => matchKey(m, Buffer.from(raw), 0, Buffer.byteLength(raw));
  assert.equal(at('p_h_o_n_e'), 'phone');
  assert.equal(at('p__h__o__n__e'), undefined);
});
