/**
 * Sweeps over seeds and resumed sweeps: every variant trains once per seed (`<variant>/seed-<s>/`,
 * the seed really used), the table and sweep.json give mean ± sample std over the seeds computed
 * from the per-seed reports; a resumed sweep skips finished runs (not trained again, same
 * numbers) and trains a missing one to the weights of the uninterrupted sweep.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { presetConfig } from "../../model/config.ts";
import { initModelDir } from "../../model/init.ts";
import { meanStd, runSweep, type SweepVariant } from "../../training/sweep.ts";
import { gpuTest } from "../_helpers.ts";

const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url));

gpuTest(
  "sweep --seeds: one run per variant and seed, mean ± std; resume skips finished runs",
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
    const out = join(root, "sweep");
    const variants: SweepVariant[] = [
      { name: "xx", sampler: "xx", alpha: 0.5 },
      { name: "xy", sampler: "xy", alpha: 0.5 },
    ];
    const sweep = (extra: Record<string, unknown> = {}) =>
      runSweep(gpu, {
        base: {
          model,
          train: join(FIXTURES, "xlmr-tiny/pairs.jsonl"),
          out,
          steps: 3,
          batchSize: 4,
          maxLength: 16,
          lr: 1e-2,
          quiet: true,
          ...extra,
        },
        variants,
        evalDir: join(FIXTURES, "xquad-r"),
        limitQuestions: 4,
        seeds: [1, 2, 3],
      });
    const r = await sweep();
    equal(r.runs.length, 6);
    for (const run of r.runs) {
      const dir = join(out, run.variant.name, `seed-${run.seed}`);
      const summary = JSON.parse(await Deno.readTextFile(join(dir, "train_summary.json")));
      equal(summary.options.seed, run.seed, `${dir} trained with another seed`);
    }
    // The seeds give different runs (different batches).
    const xy = r.runs.filter((x) => x.variant.name === "xy").map((x) => x.lastLoss);
    ok(new Set(xy).size === 3, `three seeds, losses ${xy}`);
    // Aggregates from the per-seed reports.
    equal(r.aggregates?.length, 2);
    for (const a of r.aggregates!) {
      const mine = r.runs.filter((x) => x.variant === a.variant);
      deepEqual(a.seeds, [1, 2, 3]);
      const multi = meanStd(mine.map((x) => x.report.map.multilingual!));
      equal(a.mean.multi, multi.mean);
      equal(a.std.multi, multi.std);
      const losses = mine.map((x) => x.lastLoss);
      const m = losses.reduce((s, v) => s + v, 0) / 3;
      const sd = Math.sqrt(losses.reduce((s, v) => s + (v - m) ** 2, 0) / 2);
      ok(Math.abs(a.mean.last_loss - m) < 1e-12 && Math.abs(a.std.last_loss - sd) < 1e-12);
      ok(r.table.includes(`| ${a.variant.name} (3 seeds) | `), r.table);
    }
    ok(/± \d/.test(r.table), r.table);
    const json = JSON.parse(await Deno.readTextFile(join(out, "sweep.json")));
    equal(json.runs.length, 6);
    equal(json.aggregates[1].std.multi, r.aggregates![1].std.multi);

    // Resumed with one run missing: the five finished ones are skipped (their files untouched),
    // the missing one trains again to the same weights.
    const kept = join(out, "xx", "seed-2", "model.safetensors");
    const keptTime = (await Deno.stat(kept)).mtime!.getTime();
    const redo = join(out, "xy", "seed-3");
    const before = await Deno.readFile(join(redo, "model.safetensors"));
    await Deno.remove(redo, { recursive: true });
    const again = await sweep({ resume: out });
    deepEqual(
      again.runs.map((x) => `${x.variant.name}/${x.seed}:${x.skipped ? "skipped" : "trained"}`),
      ["xx/1", "xx/2", "xx/3", "xy/1", "xy/2"].map((s) => `${s}:skipped`).concat("xy/3:trained"),
    );
    equal((await Deno.stat(kept)).mtime!.getTime(), keptTime, "a finished run was rewritten");
    const after = await Deno.readFile(join(redo, "model.safetensors"));
    ok(before.length === after.length && before.every((v, i) => v === after[i]), "xy/3 differs");
    equal(again.table, r.table);
    await Deno.remove(root, { recursive: true });
  },
);
