/**
 * An initialisation case the mutation runner (`deno task mutants`) found untested: the padding
 * rows of the word and position tables of a fresh model are zero, and only those.
 * @module
 */
import { equal, ok } from "node:assert/strict";
import { presetConfig } from "../../model/config.ts";
import { initialValues, normalRng, randomWeights } from "../../model/init.ts";

Deno.test("initial word and position tables have a zero padding row and random other rows", () => {
  const config = presetConfig("tiny", {
    vocabSize: 30,
    hiddenSize: 16,
    numHeads: 4,
    maxPositions: 20,
  });
  const H = config.hiddenSize, pad = config.padTokenId;
  for (
    const name of ["embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight"]
  ) {
    const rows = name.startsWith("embeddings.word") ? config.vocabSize : config.maxPositions;
    const data = initialValues(name, [rows, H], config, normalRng(7));
    for (let r = 0; r < rows; r++) {
      const row = data.subarray(r * H, (r + 1) * H);
      const zeros = row.filter((v) => v === 0).length;
      if (r === pad) equal(zeros, H, `${name}: padding row ${r} must be zero`);
      else equal(zeros, 0, `${name}: row ${r} has ${zeros} zeros`);
    }
  }
  // The same holds for the whole model's weights; LayerNorm starts at 1 and biases at 0.
  for (const w of randomWeights(config, 3)) {
    if (w.name.endsWith(".bias")) ok(w.data.every((v) => v === 0), w.name);
    else if (w.name.includes("LayerNorm")) ok(w.data.every((v) => v === 1), w.name);
    else if (w.name === "embeddings.word_embeddings.weight") {
      ok(w.data.subarray(pad * H, (pad + 1) * H).every((v) => v === 0), w.name);
      ok(w.data.subarray(0, H).every((v) => v !== 0), `${w.name}: row 0`);
    }
  }
});
