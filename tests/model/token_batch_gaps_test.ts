/**
 * A makeTokenBatch case the mutation runner (`deno task mutants`) found untested: the longest
 * sequence the position table allows.
 * @module
 */
import { deepEqual, equal, throws } from "node:assert/strict";
import { presetConfig } from "../../model/config.ts";
import { makeTokenBatch } from "../../model/xlmr.ts";

Deno.test("makeTokenBatch accepts maxPositions − pad − 1 tokens and refuses one more", () => {
  // Positions run pad + 1 .. pad + n, so the last real token of the longest sequence sits in the
  // last row of the position table.
  const config = presetConfig("tiny", { vocabSize: 50, maxPositions: 12 });
  const pad = config.padTokenId;
  const longest = config.maxPositions - pad - 1;
  const seq = (n: number) => Array.from({ length: n }, (_, i) => (i === 0 ? 0 : 5 + (i % 40)));
  const b = makeTokenBatch([seq(longest), seq(3)], config);
  equal(b.seq, longest);
  equal(Math.max(...b.positions), config.maxPositions - 1);
  deepEqual([...b.positions.slice(0, 3)], [pad + 1, pad + 2, pad + 3]);
  // The short row's padding takes the padding position and mask 0.
  deepEqual([...b.positions.slice(longest + 3, longest + 5)], [pad, pad]);
  deepEqual([...b.mask.slice(longest + 2, longest + 4)], [1, 0]);
  throws(
    () => makeTokenBatch([seq(3), seq(longest + 1)], config),
    new RegExp(
      `sequence 1 has ${longest + 1} tokens; the position table allows at most ${longest}`,
    ),
  );
});
