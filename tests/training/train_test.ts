import { deepEqual, ok, rejects } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { presetConfig } from "../../model/config.ts";
import { initModelDir } from "../../model/init.ts";
import { train } from "../../training/train.ts";
import { SafetensorsFile } from "../../model/safetensors.ts";
import { gpuTest } from "../_helpers.ts";

const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url));
const TOKENIZER = join(FIXTURES, "tokenizer");
const PAIRS = join(FIXTURES, "xlmr-tiny/pairs.jsonl");

async function tinyModel(dir: string, seed = 3): Promise<string> {
  const config = presetConfig("tiny", {
    vocabSize: 16002,
    hiddenSize: 32,
    numLayers: 1,
    numHeads: 2,
    intermediateSize: 64,
    maxPositions: 42,
  });
  await initModelDir(dir, config, { seed, tokenizerDir: TOKENIZER });
  return dir;
}

gpuTest("a run killed after a checkpoint resumes to the same parameters and logs", async (gpu) => {
  const root = await Deno.makeTempDir();
  const model = await tinyModel(join(root, "init"));
  const common = {
    model,
    train: PAIRS,
    steps: 8,
    batchSize: 6,
    lr: 1e-3,
    maxLength: 32,
    saveEvery: 4,
    logEvery: 1,
    seed: 9,
    quiet: true,
  };
  await train(gpu, { ...common, out: join(root, "straight") });
  // Interrupt after step 6: the checkpoint of step 4 is the last complete one.
  await rejects(
    train(gpu, { ...common, out: join(root, "interrupted") }, (stats) => {
      if (stats.some((s) => s.step === 6)) throw new Error("simulated crash");
    }),
    /simulated crash/,
  );
  const state = JSON.parse(
    await Deno.readTextFile(join(root, "interrupted/checkpoint-4/trainer_state.json")),
  );
  deepEqual(state.step, 4);
  await train(gpu, {
    ...common,
    out: join(root, "interrupted"),
    resume: join(root, "interrupted"),
  });
  const a = await Deno.readFile(join(root, "straight/model.safetensors"));
  const b = await Deno.readFile(join(root, "interrupted/model.safetensors"));
  ok(a.length === b.length && a.every((v, i) => v === b[i]), "resumed weights differ");
  for (const log of ["metrics.jsonl", "batches.jsonl"]) {
    deepEqual(
      await Deno.readTextFile(join(root, "interrupted", log)),
      await Deno.readTextFile(join(root, "straight", log)),
      `${log} differs after resume`,
    );
  }
  await Deno.remove(root, { recursive: true });
});

gpuTest(
  "training a tiny model on XQuAD-R pairs lowers the loss and raises in-batch accuracy",
  async (gpu) => {
    const root = await Deno.makeTempDir();
    const model = await tinyModel(join(root, "init"), 5);
    // Mean pooling learns from a random start within a CI budget; CLS needs many more steps.
    const steps = 100;
    const r = await train(gpu, {
      model,
      train: join(FIXTURES, "xquad-r"),
      langs: ["de", "en"],
      out: join(root, "run"),
      sampler: "hybrid",
      steps,
      batchSize: 8,
      lr: 5e-3,
      warmupSteps: 10,
      pooling: "mean",
      maxLength: 32,
      logEvery: 20,
      seed: 1,
      quiet: true,
    });
    deepEqual(r.stats.length, steps);
    const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const first = r.stats.slice(0, 20), last = r.stats.slice(-20);
    const loss0 = avg(first.map((s) => s.loss)), loss1 = avg(last.map((s) => s.loss));
    const acc0 = avg(first.map((s) => s.accuracy)), acc1 = avg(last.map((s) => s.accuracy));
    ok(loss1 < loss0 - 0.1, `loss ${loss0.toFixed(3)} → ${loss1.toFixed(3)}`);
    ok(acc1 > acc0 + 0.05, `in-batch accuracy ${acc0.toFixed(2)} → ${acc1.toFixed(2)}`);
    const lines = (await Deno.readTextFile(join(root, "run/metrics.jsonl"))).trim().split("\n");
    deepEqual(lines.length, steps);
    const line = JSON.parse(lines[0]);
    for (const key of ["step", "loss", "lr", "grad_norm", "kind"]) {
      ok(
        key in line,
        `metrics lack ${key}`,
      );
    }
    await Deno.remove(root, { recursive: true });
  },
);

gpuTest("a resume directory made for another model is refused", async (gpu) => {
  const root = await Deno.makeTempDir();
  const model = await tinyModel(join(root, "init"));
  await train(gpu, {
    model,
    train: PAIRS,
    out: join(root, "run"),
    steps: 2,
    batchSize: 4,
    maxLength: 16,
    quiet: true,
  });
  const other = join(root, "other");
  await initModelDir(
    other,
    presetConfig("tiny", {
      vocabSize: 16002,
      hiddenSize: 16,
      numLayers: 1,
      numHeads: 2,
      intermediateSize: 32,
      maxPositions: 42,
    }),
    { tokenizerDir: TOKENIZER },
  );
  await rejects(
    train(gpu, {
      model: other,
      train: PAIRS,
      out: join(root, "run"),
      steps: 4,
      batchSize: 4,
      maxLength: 16,
      resume: join(root, "run"),
      quiet: true,
    }),
    /another model/,
  );
  await Deno.remove(root, { recursive: true });
});

gpuTest(
  "lang-sim training measures language similarity from the model and evaluates during training",
  async (gpu) => {
    const root = await Deno.makeTempDir();
    const model = await tinyModel(join(root, "init"));
    const r = await train(gpu, {
      model,
      train: PAIRS,
      out: join(root, "run"),
      sampler: "lang-sim",
      similarityEvery: 2,
      steps: 4,
      batchSize: 4,
      maxLength: 16,
      logEvery: 2,
      eval: join(FIXTURES, "xquad-r"),
      evalEvery: 2,
      evalLimitQuestions: 5,
      quiet: true,
    });
    deepEqual(r.stats.length, 4);
    deepEqual(r.evals.map((e) => e.step), [2, 4]);
    const lines = (await Deno.readTextFile(join(root, "run/eval.jsonl"))).trim().split("\n");
    deepEqual(lines.length, 2);
    const first = JSON.parse(lines[0]);
    ok(first.step === 2 && first.map.monolingual > 0 && first.map.monolingual <= 1, lines[0]);
    await Deno.remove(root, { recursive: true });
  },
);

gpuTest(
  "--freeze-embeddings leaves the word table untouched while the encoder trains",
  async (gpu) => {
    const root = await Deno.makeTempDir();
    const model = await tinyModel(join(root, "init"));
    await train(gpu, {
      model,
      train: PAIRS,
      out: join(root, "run"),
      steps: 3,
      batchSize: 4,
      maxLength: 16,
      lr: 1e-2,
      freezeEmbeddings: true,
      quiet: true,
    });
    const before = await SafetensorsFile.open(join(model, "model.safetensors"));
    const after = await SafetensorsFile.open(join(root, "run/model.safetensors"));
    const same = async (name: string) => {
      const a = await before.readF32(name), b = await after.readF32(name);
      return a.every((v, i) => v === b[i]);
    };
    ok(await same("embeddings.word_embeddings.weight"), "word embeddings changed");
    ok(
      await same("pooler.dense.weight"),
      "the pooler is not reached by the loss and must not move",
    );
    ok(!(await same("encoder.layer.0.attention.self.query.weight")), "the encoder did not train");
    ok(!(await same("embeddings.position_embeddings.weight")), "position embeddings did not train");
    before.close();
    after.close();
    await Deno.remove(root, { recursive: true });
  },
);
