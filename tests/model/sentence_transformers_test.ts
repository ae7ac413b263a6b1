/**
 * sentence-transformers folders: the LaBSE-layout fixture (Transformer → Pooling(cls) →
 * Dense(64→64, tanh) → Normalize, saved by sentence-transformers 6) in its own form and rewritten
 * in the older form, against what `SentenceTransformer(dir).encode` returned; the writer's round
 * trip; and the errors.
 */
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Encoder } from "../../model/encoder.ts";
import {
  newSentenceTransformers,
  readSentenceTransformers,
  writeSentenceTransformers,
} from "../../model/sentence_transformers.ts";
import { gpuTest } from "../_helpers.ts";

const FIX = fileURLToPath(new URL("../fixtures/bert-tiny/", import.meta.url));
const ST = FIX + "st-model";
const verbose = Deno.env.get("TEST_VERBOSE");

// The issue's bar: 1e-5 absolute against sentence-transformers' float32 output. Measured on
// lavapipe: worst absolute error 2.1e-7 (new form and old form alike), so 1e-5 is ~50× the noise;
// outputs are unit vectors, so this is also a relative bound.
const ST_TOL = 1e-5;

async function copyDir(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    if (e.isDirectory) await copyDir(join(from, e.name), join(to, e.name));
    else await Deno.copyFile(join(from, e.name), join(to, e.name));
  }
}

/** The fixture rewritten as older sentence-transformers versions save it (keys from its README). */
async function oldForm(): Promise<string> {
  const dir = await Deno.makeTempDir();
  await copyDir(ST, dir);
  const modules = JSON.parse(await Deno.readTextFile(join(dir, "modules.json")));
  for (const m of modules) {
    m.type = `sentence_transformers.models.${m.type.split(".").at(-1)}`;
  }
  await Deno.writeTextFile(join(dir, "modules.json"), JSON.stringify(modules));
  await Deno.writeTextFile(
    join(dir, "1_Pooling/config.json"),
    JSON.stringify({
      word_embedding_dimension: 64,
      pooling_mode_cls_token: true,
      pooling_mode_mean_tokens: false,
      pooling_mode_max_tokens: false,
      pooling_mode_mean_sqrt_len_tokens: false,
    }),
  );
  await Deno.writeTextFile(
    join(dir, "2_Dense/config.json"),
    JSON.stringify({
      in_features: 64,
      out_features: 64,
      bias: true,
      activation_function: "torch.nn.modules.activation.Tanh",
    }),
  );
  await Deno.writeTextFile(join(dir, "3_Normalize/config.json"), "{}");
  await Deno.writeTextFile(
    join(dir, "sentence_bert_config.json"),
    JSON.stringify({ max_seq_length: 100, do_lower_case: false }),
  );
  // The old form keeps its limit in sentence_bert_config.json, not in the tokenizer's config.
  const tc = JSON.parse(await Deno.readTextFile(join(dir, "tokenizer_config.json")));
  delete tc.model_max_length;
  delete tc.max_length;
  await Deno.writeTextFile(join(dir, "tokenizer_config.json"), JSON.stringify(tc));
  return dir;
}

async function expected(): Promise<{ texts: string[]; want: number[][] }> {
  return {
    texts: JSON.parse(await Deno.readTextFile(FIX + "st_texts.json")),
    want: JSON.parse(await Deno.readTextFile(FIX + "st_expected.json")),
  };
}

function worstAbs(got: Float32Array, want: number[][]): number {
  const D = want[0].length;
  equal(got.length, want.length * D);
  let worst = 0;
  want.forEach((row, i) =>
    row.forEach((v, k) => worst = Math.max(worst, Math.abs(got[i * D + k] - v)))
  );
  return worst;
}

for (const form of ["sentence-transformers 6", "older"] as const) {
  gpuTest(`the ${form} ST folder embeds within 1e-5 of SentenceTransformer.encode`, async (gpu) => {
    const dir = form === "older" ? await oldForm() : ST;
    const st = await readSentenceTransformers(dir);
    equal(st?.pooling, "cls");
    equal(st?.dense.length, 1);
    equal(st?.dense[0].activation, "tanh");
    equal(st?.normalize, true);
    equal(st?.maxSeqLength, 100);
    const enc = await Encoder.load(gpu, dir);
    const { texts, want } = await expected();
    // No pooling and no max length given: the folder's own pipeline and max_seq_length.
    const got = await enc.embed(texts.map((text) => ({ text })), { batchSize: 7 });
    const e = worstAbs(got, want);
    if (verbose) console.log(`${form}: worst absolute error ${e}`);
    ok(e <= ST_TOL, `worst absolute error ${e} > ${ST_TOL}`);
    enc.release();
  });
}

gpuTest(
  "an explicit --pooling keeps its meaning: the transformer pooled, no Dense, no Normalize",
  async (gpu) => {
    const enc = await Encoder.load(gpu, ST);
    const { texts, want } = await expected();
    const raw = await enc.embed(texts.map((text) => ({ text })), {
      pooling: "cls",
      maxLength: 100,
    });
    const H = enc.config.hiddenSize;
    equal(enc.embeddingDim("cls"), H);
    // Dense + tanh + Normalize on the raw output in float64 gives sentence-transformers' vectors.
    const d = enc.st!.dense[0];
    const head = new Float32Array(raw.length);
    for (let i = 0; i < texts.length; i++) {
      const y = new Float64Array(d.outFeatures);
      for (let o = 0; o < d.outFeatures; o++) {
        let s = d.bias![o];
        for (let k = 0; k < H; k++) s += raw[i * H + k] * d.weight[o * H + k];
        y[o] = Math.tanh(s);
      }
      const n = Math.hypot(...y);
      y.forEach((v, o) => head[i * d.outFeatures + o] = v / n);
    }
    ok(worstAbs(head, want) <= ST_TOL);
    // The raw cls vectors are not unit vectors.
    ok(Math.abs(Math.hypot(...raw.subarray(0, H)) - 1) > 0.1);
    enc.release();
  },
);

Deno.test("the writer round-trips both forms and makes new folders sentence-transformers reads", async () => {
  for (const src of [ST, await oldForm()]) {
    const st = (await readSentenceTransformers(src))!;
    const out = await Deno.makeTempDir();
    await writeSentenceTransformers(out, st);
    const back = (await readSentenceTransformers(out))!;
    deepEqual(back.modules.map((m) => [m.type, m.path]), st.modules.map((m) => [m.type, m.path]));
    deepEqual(
      { ...back, modules: null, maxSeqLength: null },
      { ...st, modules: null, maxSeqLength: null },
    );
    equal(back.maxSeqLength, 100);
    // Each module's config keeps the keys of the form it was read in.
    const pool = JSON.parse(await Deno.readTextFile(join(out, "1_Pooling/config.json")));
    deepEqual(Object.keys(pool).sort(), Object.keys(st.modules[1].config).sort());
  }
  const fresh = newSentenceTransformers({ pooling: "mean", hiddenSize: 8, normalize: true });
  const out = await Deno.makeTempDir();
  await writeSentenceTransformers(out, fresh);
  deepEqual(
    JSON.parse(await Deno.readTextFile(join(out, "1_Pooling/config.json"))),
    { embedding_dimension: 8, pooling_mode: "mean", include_prompt: true },
  );
  const back = (await readSentenceTransformers(out))!;
  equal(back.pooling, "mean");
  equal(back.normalize, true);
  deepEqual(back.modules.map((m) => m.path), ["", "1_Pooling", "2_Normalize"]);
});

Deno.test("unsupported ST folders fail naming the file", async () => {
  const edit = async (rel: string, change: (j: Record<string, unknown>) => unknown) => {
    const dir = await Deno.makeTempDir();
    await copyDir(ST, dir);
    const p = join(dir, rel);
    await Deno.writeTextFile(p, JSON.stringify(change(JSON.parse(await Deno.readTextFile(p)))));
    return dir;
  };
  await rejects(
    readSentenceTransformers(
      await edit("1_Pooling/config.json", (j) => ({ ...j, pooling_mode: "max" })),
    ),
    /1_Pooling\/config.json: pooling \["max"\] is not supported/,
  );
  await rejects(
    readSentenceTransformers(
      await edit("2_Dense/config.json", (j) => ({ ...j, activation_function: "torch.nn.ReLU" })),
    ),
    /2_Dense\/config.json: activation_function "torch.nn.ReLU" is not supported/,
  );
  await rejects(
    readSentenceTransformers(await edit("2_Dense/config.json", (j) => ({ ...j, in_features: 32 }))),
    /linear.weight has shape \[64,64\], expected \[64, 32\]/,
  );
  await rejects(
    readSentenceTransformers(
      await edit("modules.json", (j) => (j as unknown as unknown[]).slice(1)),
    ),
    /modules.json: module order Pooling Dense Normalize is not supported/,
  );
  await rejects(
    readSentenceTransformers(
      await edit(
        "modules.json",
        (j) => [...(j as unknown as unknown[]), { type: "x.y.LayerNorm", path: "4" }],
      ),
    ),
    /modules.json\[4\]: module type "x.y.LayerNorm" is not supported/,
  );
  equal(await readSentenceTransformers(dirname(ST)), null);
});
