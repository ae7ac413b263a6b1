/**
 * Validation, model selection and the leakage guard of `train`:
 * - the `--val-fraction` split is disjoint by id and keeps every item whole;
 * - `Trainer.evaluateLoss` equals the float64 reference loss and changes nothing;
 * - a run's logged `val_loss` equals the float64 reference on the same validation batches;
 * - early stopping stops, its model is the best checkpoint by the metric (kept by rotation), the
 *   last weights are under `last/`, and a resumed run is byte-identical;
 * - the leakage guard warns, and refuses under `strictLeakage` before anything is written.
 */
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadConfig, presetConfig } from "../../model/config.ts";
import { initModelDir } from "../../model/init.ts";
import { SafetensorsFile } from "../../model/safetensors.ts";
import { loadTokenizer } from "../../model/text_tokenizer.ts";
import { referenceLoss, type RefWeights } from "../../model/xlmr_reference.ts";
import { loadQaData, type QaDataset } from "../../training/data.ts";
import { DEFAULT_TRAINER_OPTIONS, Trainer } from "../../training/trainer.ts";
import { train } from "../../training/train.ts";
import {
  findLeakage,
  LeakageError,
  normaliseText,
  splitByFraction,
  validationBatches,
} from "../../training/validation.ts";
import { freshSeed, gpuTest, rng, seededTest } from "../_helpers.ts";
import {
  perturbedWeights,
  randomSeqs,
  refWeights,
  tinyConfig,
  uploadWeights,
} from "../model/_tiny.ts";

const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url));
const TOKENIZER = join(FIXTURES, "tokenizer");
const PAIRS = join(FIXTURES, "xlmr-tiny/pairs.jsonl");
const XQUAD_R = join(FIXTURES, "xquad-r");
const verbose = Deno.env.get("TEST_VERBOSE");

// Loss against the float64 reference: the trainer's own loss test measured ≤ 2.3e-7 relative on
// these shapes (trainer_options_test.ts); evaluateLoss and a run's val_loss, the same computation
// without the backward, measured here ≤ 3.6e-7 over 6 seeds (TEST_VERBOSE=1). Limit ~14×.
const LOSS_TOL = 5e-6;

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

async function readRef(path: string): Promise<RefWeights> {
  const f = await SafetensorsFile.open(path);
  const w: RefWeights = new Map();
  for (const name of f.tensors.keys()) w.set(name, Float64Array.from(await f.readF32(name)));
  f.close();
  return w;
}

async function sameBytes(a: string, b: string): Promise<boolean> {
  const x = await Deno.readFile(a), y = await Deno.readFile(b);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

async function evalLines(dir: string): Promise<Record<string, number>[]> {
  return (await Deno.readTextFile(join(dir, "eval.jsonl"))).trim().split("\n").map((l) =>
    JSON.parse(l)
  );
}

seededTest("--val-fraction holds out whole items: disjoint by id, nothing lost", async () => {
  const data = await loadQaData(PAIRS);
  for (const fraction of [0.1, 0.25, 0.5]) {
    const seed = freshSeed(`split ${fraction}`);
    const { train: t, val } = splitByFraction(data, fraction, seed);
    const tIds = new Set(t.items.map((it) => it.id));
    const vIds = val.items.map((it) => it.id);
    ok(vIds.every((id) => !tIds.has(id)), "a validation id is also a training id");
    equal(t.items.length + val.items.length, data.items.length);
    equal(val.items.length, Math.round(fraction * data.items.length));
    // Every held-out item keeps all its translations (none of them is trained on).
    const byId = new Map(data.items.map((it) => [it.id, it]));
    for (const it of val.items) deepEqual(it, byId.get(it.id));
    // Seeded: the same seed gives the same split, another seed (almost surely) another one.
    deepEqual(splitByFraction(data, fraction, seed).val.items.map((it) => it.id), vIds);
    const other = splitByFraction(data, fraction, seed + 1).val.items.map((it) => it.id);
    ok(JSON.stringify(other) !== JSON.stringify(vIds), "the split ignores the seed");
  }
});

seededTest("leakage: shared ids and texts equal after NFKC, case folding and spaces", () => {
  const mk = (items: [string, string, string][]): QaDataset => ({
    source: "inline",
    languages: ["en"],
    items: items.map(([id, q, a]) => ({ id, question: { en: q }, answer: { en: a } })),
  });
  equal(normaliseText("  Ｈｅｌｌｏ\t WORLD\n"), "hello world");
  const evalSet = mk([["e1", "Where is the river?", "The river flows."]]);
  const l = findLeakage(
    mk([
      ["e1", "unrelated", "unrelated too"], // same id
      ["t2", "WHERE  is the\u00a0river?", "other"], // same question after normalisation
      ["t3", "fine", "ｔｈｅ river flows."], // same answer (full-width letters)
      ["t4", "Where is the sea?", "The sea is wide."], // no overlap
    ]),
    evalSet,
    "--eval x",
  );
  deepEqual(l.sharedIds, ["e1"]);
  deepEqual(l.sharedTexts.map((s) => s.id), ["t2", "t3"]);
});

gpuTest("Trainer.evaluateLoss equals the float64 reference and updates nothing", async (gpu) => {
  const seed = freshSeed("evaluateLoss");
  const config = tinyConfig();
  const weights = perturbedWeights(config, seed);
  const params = uploadWeights(gpu, config, weights);
  const r = rng(seed + 1);
  const batches = [
    { queries: randomSeqs(r, [6, 4, 9], config.vocabSize) },
    { queries: randomSeqs(r, [5, 7, 3, 8], config.vocabSize) },
  ].map((b) => ({
    ...b,
    passages: randomSeqs(r, [...b.queries.map(() => 5), 7], config.vocabSize), // + 1 negative
  }));
  const opts = { pooling: "mean" as const, temperature: 0.2, symmetric: true };
  const trainer = new Trainer(params, { ...DEFAULT_TRAINER_OPTIONS, ...opts });
  const before = await params.read("encoder.layer.0.attention.self.query.weight");
  const got = await trainer.evaluateLoss(batches);
  const ref = refWeights(weights);
  let worst = 0;
  got.forEach((g, i) => {
    const want = referenceLoss(ref, config, batches[i].queries, batches[i].passages, opts);
    const err = Math.abs(g.loss - want) / want;
    worst = Math.max(worst, err);
    ok(err <= LOSS_TOL, `batch ${i}: loss ${g.loss} vs reference ${want} (${err})`);
    ok(g.accuracy >= 0 && g.accuracy <= 1, `accuracy ${g.accuracy}`);
  });
  if (verbose) console.log(`evaluateLoss: relative error ${worst}`);
  equal(trainer.stepCount, 0);
  const after = await params.read("encoder.layer.0.attention.self.query.weight");
  ok(before.every((v, i) => v === after[i]), "evaluateLoss changed a weight");
  trainer.release();
  params.release();
});

gpuTest("a run's val_loss is the float64 reference loss on its validation batches", async (gpu) => {
  const root = await Deno.makeTempDir();
  const model = await tinyModel(join(root, "init"));
  const seed = freshSeed("val run");
  const o = {
    model,
    train: PAIRS,
    out: join(root, "run"),
    valFraction: 0.2,
    sampler: "hybrid" as const,
    pooling: "mean" as const, // learns fast from a random start: a loss away from ln(batch)
    steps: 4,
    batchSize: 6,
    lr: 1e-2,
    maxLength: 24,
    evalEvery: 2,
    hardNegatives: 0,
    seed,
    quiet: true,
    queryPrefix: "Query: ",
    passagePrefix: "Passage: ",
  };
  await train(gpu, o);
  const lines = await evalLines(o.out);
  deepEqual(lines.map((l) => l.step), [2, 4]);
  const metrics = (await Deno.readTextFile(join(o.out, "metrics.jsonl"))).trim().split("\n");
  equal(metrics.length, 4, "metrics.jsonl: one line per optimiser step");
  // The same split and batches, from the same seed, scored by the reference on the final model.
  const { val } = splitByFraction(await loadQaData(PAIRS), o.valFraction, seed);
  const tok = await loadTokenizer(TOKENIZER);
  const batches = validationBatches(val, {
    kind: o.sampler,
    batchSize: o.batchSize,
    seed,
    hardNegatives: 0,
    query: (t) => tok.encode(o.queryPrefix + t, o.maxLength),
    passage: (t) => tok.encode(o.passagePrefix + t, o.maxLength),
  });
  equal(lines[1].val_batches, batches.length);
  const w = await readRef(join(o.out, "model.safetensors"));
  const config = await loadConfig(o.out);
  const refOpts = { pooling: "mean" as const, temperature: 0.05, symmetric: false };
  const meanLoss = (bs: typeof batches) =>
    bs.reduce((s, b) => s + referenceLoss(w, config, b.queries, b.passages, refOpts), 0) /
    bs.length;
  const want = meanLoss(batches);
  const err = Math.abs(lines[1].val_loss - want) / want;
  if (verbose) console.log(`val_loss ${lines[1].val_loss} vs ${want}: ${err}`);
  ok(err <= LOSS_TOL, `val_loss ${lines[1].val_loss} vs reference ${want} (${err})`);
  // The check tells batches apart: other validation batches give a loss outside the tolerance.
  const other = meanLoss(validationBatches(val, {
    kind: o.sampler,
    batchSize: o.batchSize,
    seed: seed + 1,
    hardNegatives: 0,
    query: (t) => tok.encode(o.queryPrefix + t, o.maxLength),
    passage: (t) => tok.encode(o.passagePrefix + t, o.maxLength),
  }));
  ok(Math.abs(other - want) / want > 20 * LOSS_TOL, `other batches: ${other} vs ${want}`);
  await Deno.remove(root, { recursive: true });
});

gpuTest(
  "early stopping: the model is the best checkpoint by val_loss, the last under last/, and a " +
    "resumed run is byte-identical",
  async (gpu) => {
    const root = await Deno.makeTempDir();
    const model = await tinyModel(join(root, "init"), 4);
    // A learning rate high enough that the validation loss stops improving within the budget.
    const common = {
      model,
      train: PAIRS,
      valFraction: 0.25,
      steps: 40,
      batchSize: 6,
      lr: 3e-2,
      maxLength: 24,
      evalEvery: 2,
      earlyStoppingPatience: 2,
      saveEvery: 4,
      saveTotalLimit: 1,
      logEvery: 1,
      seed: 11,
      quiet: true,
    };
    const out = join(root, "straight");
    const r = await train(gpu, { ...common, out });
    ok(r.best, "no best checkpoint");
    const best = r.best!;
    ok(best.stoppedEarly && r.steps < common.steps, `did not stop early (${r.steps} steps)`);
    const lines = await evalLines(out);
    const losses = lines.map((l) => l.val_loss);
    const minAt = lines[losses.indexOf(Math.min(...losses))].step;
    equal(best.step, minAt, "the best step is not the lowest val_loss");
    equal(best.metric, "val_loss");
    // Stopped after `patience` evaluations without improvement.
    equal(r.steps, best.step + common.earlyStoppingPatience * common.evalEvery);
    ok(
      await sameBytes(
        join(out, "model.safetensors"),
        join(out, `checkpoint-${best.step}`, "model.safetensors"),
      ),
      "the run's model is not the best checkpoint",
    );
    ok(
      await sameBytes(
        join(out, "last/model.safetensors"),
        join(out, `checkpoint-${r.steps}`, "model.safetensors"),
      ),
      "last/ is not the last weights",
    );
    ok(!(await sameBytes(join(out, "model.safetensors"), join(out, "last/model.safetensors"))));
    const kept = [];
    for await (const e of Deno.readDir(out)) {
      if (e.name.startsWith("checkpoint-")) kept.push(e.name);
    }
    deepEqual(kept.sort(), [`checkpoint-${best.step}`, `checkpoint-${r.steps}`].sort());
    const summary = JSON.parse(await Deno.readTextFile(join(out, "train_summary.json")));
    ok(summary.best_step === best.step && summary.stopped_early === true, JSON.stringify(summary));
    const metrics = (await Deno.readTextFile(join(out, "metrics.jsonl"))).trim().split("\n");
    equal(metrics.length, r.steps);

    // Killed two steps after the first checkpoint, resumed: the same files.
    const again = join(root, "resumed");
    await rejects(
      train(gpu, { ...common, out: again }, (stats) => {
        if (stats.some((s) => s.step === 6)) throw new Error("simulated crash");
      }),
      /simulated crash/,
    );
    const r2 = await train(gpu, { ...common, out: again, resume: again });
    deepEqual(r2.best, best);
    for (const f of ["model.safetensors", "last/model.safetensors"]) {
      ok(await sameBytes(join(out, f), join(again, f)), `${f} differs after resume`);
    }
    for (const f of ["eval.jsonl", "metrics.jsonl", "batches.jsonl"]) {
      equal(await Deno.readTextFile(join(again, f)), await Deno.readTextFile(join(out, f)), f);
    }
    await Deno.remove(root, { recursive: true });
  },
);

gpuTest(
  "--select-by multi_map keeps the checkpoint with the highest multilingual mAP",
  async (gpu) => {
    const root = await Deno.makeTempDir();
    const model = await tinyModel(join(root, "init"), 6);
    const out = join(root, "run");
    const r = await train(gpu, {
      model,
      train: PAIRS,
      out,
      steps: 6,
      batchSize: 6,
      lr: 3e-2,
      maxLength: 24,
      eval: XQUAD_R,
      evalEvery: 2,
      evalLimitQuestions: 6,
      selectBy: "multi_map",
      seed: 5,
      quiet: true,
    });
    const lines = await evalLines(out) as unknown as {
      step: number;
      map: { multilingual: number };
    }[];
    deepEqual(lines.map((l) => l.step), [2, 4, 6]);
    const maps = lines.map((l) => l.map.multilingual);
    const bestAt = lines[maps.indexOf(Math.max(...maps))].step; // first maximum wins (strict >)
    equal(r.best?.step, bestAt);
    ok(
      await sameBytes(
        join(out, "model.safetensors"),
        join(out, `checkpoint-${bestAt}`, "model.safetensors"),
      ),
      "the run's model is not the best checkpoint",
    );
    await Deno.remove(root, { recursive: true });
  },
);

gpuTest(
  "leakage with --eval: a warning, or under strictLeakage a refusal that writes nothing",
  async (gpu) => {
    const root = await Deno.makeTempDir();
    const model = await tinyModel(join(root, "init"));
    const o = {
      model,
      train: PAIRS, // taken from the XQuAD-R fixture: every id is also an evaluation id
      eval: XQUAD_R,
      evalLimitQuestions: 3,
      steps: 1,
      batchSize: 4,
      maxLength: 16,
      quiet: true,
    };
    const strictOut = join(root, "strict");
    await rejects(
      train(gpu, { ...o, out: strictOut, strictLeakage: true }),
      (e: Error) =>
        e instanceof LeakageError &&
        /120 training item\(s\) share an id with --eval/.test(e.message),
    );
    await rejects(Deno.stat(strictOut), Deno.errors.NotFound, "a refused run wrote its --out");
    const warnings: string[] = [];
    const warn = console.warn;
    console.warn = (...a: unknown[]) => warnings.push(a.join(" "));
    try {
      await train(gpu, { ...o, out: join(root, "warned") });
    } finally {
      console.warn = warn;
    }
    ok(
      warnings.some((w) => /^warning: leakage: .*share an id with --eval/.test(w)),
      warnings.join("\n"),
    );
    await Deno.remove(root, { recursive: true });
  },
);

async function cli(...args: string[]): Promise<{ code: number; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", fileURLToPath(new URL("../../cli.ts", import.meta.url)), ...args],
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp", NO_COLOR: "1" },
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

gpuTest(
  "cli train: selection and leakage usage errors exit 2 naming the flag, nothing written",
  async () => {
    const root = await Deno.makeTempDir();
    const model = await tinyModel(join(root, "init"));
    const base = ["train", "--model", model, "--train", PAIRS, "--steps", "1", "--batch-size", "4"];
    const cases: [string[], RegExp][] = [
      [["--select-by", "val_loss", "--eval-every", "1"], /--select-by val_loss needs --val/],
      [["--val-fraction", "0.2", "--early-stopping-patience", "2"], /needs --eval-every/],
      [["--select-by", "cross_map", "--val-fraction", "0.2"], /--select-by cross_map needs --eval/],
      [["--val", PAIRS, "--val-fraction", "0.2"], /--val or --val-fraction, not both/],
      [["--val-fraction", "1"], /--val-fraction/],
      [["--select-by", "loss"], /--select-by: expected one of/],
      [["--eval", XQUAD_R, "--strict-leakage"], /share an id with --eval .*\n.*--strict-leakage/],
    ];
    for (const [i, [flags, want]] of cases.entries()) {
      const out = join(root, `out${i}`);
      const r = await cli(...base, "--out", out, ...flags);
      equal(r.code, 2, `${flags.join(" ")}: exit ${r.code}\n${r.stderr}`);
      ok(want.test(r.stderr), `${flags.join(" ")}: ${r.stderr}`);
      await rejects(Deno.stat(out), Deno.errors.NotFound, `${flags.join(" ")} wrote ${out}`);
    }
    await Deno.remove(root, { recursive: true });
  },
);
