/**
 * Mixed-precision training (`train --fp16`): it follows the f32 run on the tiny fixture, resumes
 * byte for byte with its loss scale, and skips overflowing steps as GradScaler does.
 * @module
 */
import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { UsageError } from "../../cli/flags.ts";
import { TRAIN_SPEC, trainOptionsFromFlags } from "../../cli/train.ts";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Encoder } from "../../model/encoder.ts";
import { XlmrTokenizer } from "../../model/tokenizer.ts";
import { train } from "../../training/train.ts";
import { DEFAULT_TRAINER_OPTIONS, Trainer } from "../../training/trainer.ts";
import { gpuTest } from "../_helpers.ts";

const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url));
const MODEL = join(FIXTURES, "xlmr-tiny/model");
const TOKENIZER = join(FIXTURES, "tokenizer");
const PAIRS = join(FIXTURES, "xlmr-tiny/pairs.jsonl");
const verbose = !!Deno.env.get("TEST_VERBOSE");
// The bound: each of 10 fp16 steps within 2% of the f32 run's loss. Measured here: at
// most 0.06% (f16 rounding of weights and activations, ~5e-4 relative, compounding over steps).
const STEP_TOL = 0.02;

async function metrics(dir: string): Promise<Record<string, unknown>[]> {
  const text = await Deno.readTextFile(join(dir, "metrics.jsonl"));
  return text.trim().split("\n").map((l) => JSON.parse(l));
}

const COMMON = {
  model: MODEL,
  tokenizer: TOKENIZER,
  train: PAIRS,
  batchSize: 6,
  lr: 1e-3,
  maxLength: 48,
  logEvery: 1,
  seed: 4,
  quiet: true,
};

gpuTest(
  "10 fp16 steps on the tiny fixture follow the f32 losses within 2% per step",
  async (gpu) => {
    const root = await Deno.makeTempDir();
    await train(gpu, { ...COMMON, steps: 10, out: join(root, "f32") });
    await train(gpu, { ...COMMON, steps: 10, out: join(root, "fp16"), fp16: true });
    const a = await metrics(join(root, "f32")), b = await metrics(join(root, "fp16"));
    equal(b.length, 10);
    let worst = 0, differs = false;
    for (let i = 0; i < 10; i++) {
      const la = a[i].loss as number, lb = b[i].loss as number;
      const e = Math.abs(lb - la) / la;
      worst = Math.max(worst, e);
      if (lb !== la) differs = true;
      ok(e <= STEP_TOL, `step ${i + 1}: fp16 loss ${lb} vs f32 ${la} (relative ${e})`);
      equal(b[i].loss_scale, 65536, `step ${i + 1} logs the loss scale`);
      ok(!("skipped" in b[i]) && !("loss_scale" in a[i]));
    }
    ok(differs, "the fp16 run has the f32 run's exact losses: f16 storage did not happen");
    if (verbose) console.log(`fp16 vs f32 over 10 steps: worst loss difference ${worst}`);
    await Deno.remove(root, { recursive: true });
  },
);

gpuTest("an fp16 run killed after a checkpoint resumes byte for byte, loss scale included", async (
  gpu,
) => {
  const root = await Deno.makeTempDir();
  // A growth window of 3 changes the scale mid-run, so a resume that forgot the scaler's state
  // (scale or clean-step count) logs other scales and, at step 7 onward, skips nothing the same.
  const common = {
    ...COMMON,
    steps: 8,
    saveEvery: 4,
    fp16: true,
    lossScale: { init: 1024, growthInterval: 3 },
  };
  await train(gpu, { ...common, out: join(root, "straight") });
  let crashed = false;
  try {
    await train(gpu, { ...common, out: join(root, "cut") }, (stats) => {
      if (stats.some((s) => s.step === 6)) throw new Error("simulated crash");
    });
  } catch (e) {
    crashed = (e as Error).message === "simulated crash";
  }
  ok(crashed, "the first run did not crash as planned");
  const state = JSON.parse(
    await Deno.readTextFile(join(root, "cut/checkpoint-4/trainer_state.json")),
  );
  // Four clean steps with a window of 3: doubled once (after step 3), one clean step since.
  deepEqual(state.lossScale, { scale: 2048, cleanSteps: 1 });
  equal(state.options.fp16, true);
  await train(gpu, { ...common, out: join(root, "cut"), resume: join(root, "cut") });
  const a = await Deno.readFile(join(root, "straight/model.safetensors"));
  const b = await Deno.readFile(join(root, "cut/model.safetensors"));
  ok(a.length === b.length && a.every((v, i) => v === b[i]), "resumed weights differ");
  const m = await metrics(join(root, "straight"));
  deepEqual(m.map((l) => l.loss_scale), [1024, 1024, 1024, 2048, 2048, 2048, 4096, 4096]);
  deepEqual(
    await Deno.readTextFile(join(root, "cut/metrics.jsonl")),
    await Deno.readTextFile(join(root, "straight/metrics.jsonl")),
    "metrics.jsonl differs after resume",
  );
  await Deno.remove(root, { recursive: true });
});

gpuTest(
  "an overflowing fp16 step is skipped on the GPU, halves the scale, and training goes on",
  async (gpu) => {
    const enc = await Encoder.load(gpu, MODEL, TOKENIZER);
    const tok = await XlmrTokenizer.fromDir(TOKENIZER);
    const qs = ["what is it?", "who was there?", "when?"].map((t) => tok.encode(t, 32));
    const ps = ["it is a test.", "nobody was there.", "yesterday."].map((t) => tok.encode(t, 32));
    // 2^100 times any gradient overflows f32's squares in the norm: a non-finite norm.
    const trainer = new Trainer(enc.params, {
      ...DEFAULT_TRAINER_OPTIONS,
      fp16: true,
      lossScale: { init: 2 ** 100, growthInterval: 2000 },
    });
    const name = "encoder.layer.0.attention.self.query.weight";
    const before = await enc.params.read(name);
    trainer.step(qs, ps, 1e-3);
    const [s1] = await trainer.collect();
    equal(s1.skipped, true);
    equal(s1.lossScale, 2 ** 100);
    ok(Number.isFinite(s1.loss), `the loss stays finite: ${s1.loss}`);
    const same = await enc.params.read(name);
    ok(same.every((v, i) => Object.is(v, before[i])), "a skipped step changed the weights");
    deepEqual(await trainer.readLossScale(), { scale: 2 ** 99, cleanSteps: 0 });
    // A workable scale: the next step updates and counts as clean.
    trainer.writeLossScale({ scale: 65536, cleanSteps: 0 }, "test");
    trainer.step(qs, ps, 1e-3);
    const [s2] = await trainer.collect();
    equal(s2.skipped, false);
    equal(s2.lossScale, 65536);
    ok(Number.isFinite(s2.gradNorm) && s2.gradNorm > 0);
    const after = await enc.params.read(name);
    ok(after.some((v, i) => v !== before[i]), "a clean step left the weights as they were");
    deepEqual(await trainer.readLossScale(), { scale: 65536, cleanSteps: 1 });
    trainer.release();
    enc.release();
  },
);

gpuTest("train with fp16 logs a skipped step and finishes instead of stopping", async (gpu) => {
  const root = await Deno.makeTempDir();
  // 2^70: the first steps overflow f32 in the norm; each halves the scale until one fits.
  await train(gpu, {
    ...COMMON,
    steps: 12,
    out: join(root, "run"),
    fp16: true,
    lossScale: { init: 2 ** 70, growthInterval: 2000 },
  });
  const m = await metrics(join(root, "run"));
  equal(m.length, 12);
  const skipped = m.filter((l) => l.skipped === true).length;
  ok(skipped >= 1 && skipped < 12, `${skipped} of 12 steps skipped`);
  equal(m[0].skipped, true, "2^70 overflows at the first step");
  equal(m[0].loss_scale, 2 ** 70);
  // Each skipped step halves the next step's scale; clean ones keep it (window 2000).
  for (let i = 1; i < m.length; i++) {
    const want = (m[i - 1].loss_scale as number) * (m[i - 1].skipped ? 0.5 : 1);
    equal(m[i].loss_scale, want, `step ${i + 1}'s loss scale`);
  }
  ok(m.every((l) => l.skipped ? l.grad_norm === null : Number.isFinite(l.grad_norm)));
  await Deno.remove(root, { recursive: true });
});

Deno.test("--fp16 and its loss-scale flags reach the trainer; without --fp16 they are refused", () => {
  const base = ["--model", "m", "--train", "t", "--out", "o"];
  const parse = (...extra: string[]) =>
    trainOptionsFromFlags("train", TRAIN_SPEC.parseRaw([...base, ...extra]));
  const o = parse("--fp16", "--loss-scale", "1024", "--loss-scale-window", "50");
  equal(o.fp16, true);
  deepEqual(o.lossScale, { init: 1024, growthInterval: 50 });
  equal(parse("--fp16").lossScale, undefined, "defaults stay the trainer's");
  equal(parse().fp16, undefined);
  for (const flag of ["--loss-scale", "--loss-scale-window"]) {
    throws(
      () => parse(flag, "8"),
      (e) => e instanceof UsageError && e.message === `${flag}: only applies with --fp16`,
    );
  }
  throws(() => parse("--fp16", "--loss-scale-window", "0"), /--loss-scale-window/);
});
