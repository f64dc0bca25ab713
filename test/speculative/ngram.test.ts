// The n-gram proposer against a plain transcription of prompt lookup: over the history (the
// sequence's tokens, then the token just chosen), the longest suffix of n = ngramMax..ngramMin
// tokens that occurred earlier with a token after it, at its most recent such occurrence; the
// draft is what followed it, up to max tokens and the end of the history. The proposer reads the
// sequence's own token array (no copy per step) while the sequence grows and drops rejected drafts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { NgramProposer } from "../../src/speculative/ngram.ts";
import type { Proposer } from "../../src/speculative/proposer.ts";

function reference(history: readonly number[], nMin: number, nMax: number, max: number): number[] {
  const len = history.length;
  for (let n = Math.min(nMax, len); n >= nMin; n--) {
    for (let e = len - 2; e >= n - 1; e--) {
      let same = true;
      for (let i = 0; i < n && same; i++) same = history[e - i] === history[len - 1 - i];
      if (same) return history.slice(e + 1, Math.min(len, e + 1 + max));
    }
  }
  return [];
}

test("n-gram proposals equal the plain lookup while the sequence grows and rejected drafts are rolled back", () => {
  let s = 7;
  const rand = (n: number): number => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 8) % n;
  for (const [nMin, nMax] of [[1, 1], [2, 4], [1, 6]] as const) {
    const p: Proposer = new NgramProposer({ ngramMin: nMin, ngramMax: nMax });
    const cells: number[] = []; // the sequence's cached tokens (the array the driver passes)
    let next = rand(5);
    let drafted = 0;
    for (let step = 0; step < 400; step++) {
      const max = 1 + rand(8);
      const d = p.propose({ tokens: cells, next, max, pMin: 0 });
      assert.deepEqual(d.tokens, reference([...cells, next], nMin, nMax, max), `n ${nMin}..${nMax} step ${step}`);
      assert.equal(d.probs.length, d.tokens.length);
      drafted += d.tokens.length;
      // The pass evaluates next and the draft; a random prefix of the draft is kept (the rest is
      // rolled back), then the target's own token is chosen (a small alphabet: repeats are common).
      cells.push(next, ...d.tokens);
      const keep = cells.length - d.tokens.length + rand(d.tokens.length + 1);
      cells.length = keep;
      p.rollback(keep);
      next = rand(step % 50 < 25 ? 4 : 40);
    }
    assert.ok(drafted > 100, `drafts were proposed (${drafted})`);
  }
});
