/**
 * A sweep stopped by its signal returns inside the variant it was training, with that variant's
 * step checkpointed; `--resume` (base.resume) then continues every variant from its own folder and
 * ends with the same weights as an uninterrupted sweep.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { presetConfig } from "../../model/config.ts";
import { initModelDir } from "../../model/init.ts";
import { runSweep, type SweepVariant } from "../../training/sweep.ts";
import { gpuTest } from "../_helpers.ts";

const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url));

gpuTest(
  "a stopped sweep resumes each variant to the uninterrupted sweep's weights",
  async (gpu) => {
    const root = await Deno.makeTempDir();
    const model = join(root, "init");
    await initModelDir(
      model,
      presetConfig("tiny", {
        vocabSize: 16002,
        hiddenSize: 32,
        numLayers: 1,
        numHeads: 2,
        intermediateSize: 64,
        maxPositions: 42,
      }),
      { seed: 3, tokenizerDir: join(FIXTURES, "tokenizer") },
    );
    const base = {
      model,
      train: join(FIXTURES, "xlmr-tiny/pairs.jsonl"),
      steps: 6,
      batchSize: 4,
      maxLength: 16,
      lr: 1e-3,
      saveEvery: 4,
      seed: 5,
      quiet: true,
    };
    const variants: SweepVariant[] = [
      { name: "xx", sampler: "xx", alpha: 0.5 },
      { name: "xy", sampler: "xy", alpha: 0.5 },
    ];
    const sweep = (out: string, extra: Record<string, unknown> = {}) =>
      runSweep(gpu, {
        base: { ...base, out, ...extra },
        variants,
        evalDir: join(FIXTURES, "xquad-r"),
        limitQuestions: 4,
      });
    const ref = await sweep(join(root, "ref"));
    equal(ref.runs.length, 2);

    // A signal that has already arrived: the first variant stops after its first step.
    const stop = new AbortController();
    stop.abort();
    const out = join(root, "run");
    const stopped = await sweep(out, { stopSignal: stop.signal });
    ok(stopped.stopped, "the sweep reports where it stopped");
    deepEqual(
      { variant: stopped.stopped.variant.name, step: stopped.stopped.step },
      { variant: "xx", step: 1 },
    );
    equal(stopped.stopped.checkpoint, join(out, "xx", "checkpoint-1"));
    equal(stopped.runs.length, 0);

    const resumed = await sweep(out, { resume: out });
    equal(resumed.runs.length, 2);
    for (const v of ["xx", "xy"]) {
      const a = await Deno.readFile(join(root, "ref", v, "model.safetensors"));
      const b = await Deno.readFile(join(out, v, "model.safetensors"));
      ok(a.length === b.length && a.every((x, i) => x === b[i]), `${v}: weights differ`);
      deepEqual(
        await Deno.readTextFile(join(out, v, "metrics.jsonl")),
        await Deno.readTextFile(join(root, "ref", v, "metrics.jsonl")),
      );
    }
    await Deno.remove(root, { recursive: true });
  },
);
