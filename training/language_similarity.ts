/**
 * Language similarity as the model itself sees it: the cosine similarity of per-language mean
 * embeddings of the same (parallel) answers. The `lang-sim` sampler refreshes its pair weights
 * from this every N steps.
 * @module
 */
import type { Encoder } from "../model/encoder.ts";
import type { Pooling } from "../model/xlmr.ts";
import type { QaDataset } from "./data.ts";

/**
 * A [L, L] cosine-similarity matrix over `data.languages` (or `langs`), from up to `sample`
 * items per language.
 *
 * @example
 * ```ts ignore
 * const sim = await languageSimilarity(encoder, data, { pooling: "cls", maxLength: 64 });
 * console.log(sim[0][0]); // 1
 * ```
 */
export async function languageSimilarity(
  encoder: Encoder,
  data: QaDataset,
  opts: { pooling: Pooling; maxLength: number; sample?: number; langs?: string[] },
): Promise<number[][]> {
  const langs = opts.langs ?? data.languages;
  const H = encoder.config.hiddenSize;
  const sample = opts.sample ?? 64;
  const means: Float64Array[] = [];
  for (const lang of langs) {
    const texts = data.items.filter((it) => it.answer[lang] !== undefined).slice(0, sample)
      .map((it) => ({ text: it.answer[lang] }));
    const mean = new Float64Array(H);
    if (texts.length > 0) {
      const emb = await encoder.embed(texts, { pooling: opts.pooling, maxLength: opts.maxLength });
      for (let i = 0; i < texts.length; i++) {
        let norm = 0;
        for (let h = 0; h < H; h++) norm += emb[i * H + h] ** 2;
        norm = Math.sqrt(norm) || 1;
        for (let h = 0; h < H; h++) mean[h] += emb[i * H + h] / norm / texts.length;
      }
    }
    means.push(mean);
  }
  const cos = (a: Float64Array, b: Float64Array) => {
    let ab = 0, aa = 0, bb = 0;
    for (let h = 0; h < H; h++) {
      ab += a[h] * b[h];
      aa += a[h] * a[h];
      bb += b[h] * b[h];
    }
    return ab / (Math.sqrt(aa * bb) || 1);
  };
  return means.map((a) => means.map((b) => cos(a, b)));
}
