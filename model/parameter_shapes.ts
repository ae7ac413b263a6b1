/**
 * The names and shapes of a model's parameters, derived from its config. Its own file so that
 * both the GPU parameter store (params.ts) and initialisation (init.ts) read it without importing
 * each other.
 * @module
 */
import type { XlmrConfig } from "./config.ts";

/** Names and shapes of every XLM-R parameter, in checkpoint order. */
export function parameterShapes(c: XlmrConfig): [string, number[]][] {
  const H = c.hiddenSize, I = c.intermediateSize;
  const out: [string, number[]][] = [
    ["embeddings.word_embeddings.weight", [c.vocabSize, H]],
    ["embeddings.position_embeddings.weight", [c.maxPositions, H]],
    ["embeddings.token_type_embeddings.weight", [c.typeVocabSize, H]],
    ["embeddings.LayerNorm.weight", [H]],
    ["embeddings.LayerNorm.bias", [H]],
  ];
  for (let l = 0; l < c.numLayers; l++) {
    const p = `encoder.layer.${l}.`;
    for (const m of ["query", "key", "value"]) {
      out.push([`${p}attention.self.${m}.weight`, [H, H]], [`${p}attention.self.${m}.bias`, [H]]);
    }
    out.push(
      [`${p}attention.output.dense.weight`, [H, H]],
      [`${p}attention.output.dense.bias`, [H]],
      [`${p}attention.output.LayerNorm.weight`, [H]],
      [`${p}attention.output.LayerNorm.bias`, [H]],
      [`${p}intermediate.dense.weight`, [I, H]],
      [`${p}intermediate.dense.bias`, [I]],
      [`${p}output.dense.weight`, [H, I]],
      [`${p}output.dense.bias`, [H]],
      [`${p}output.LayerNorm.weight`, [H]],
      [`${p}output.LayerNorm.bias`, [H]],
    );
  }
  out.push(["pooler.dense.weight", [H, H]], ["pooler.dense.bias", [H]]);
  return out;
}
