/**
 * Numerical guards: a step whose loss or gradient norm is not finite changes no parameter and no
 * optimiser moment (the AdamW kernel skips it on the GPU, with no read-back), and `train` stops at
 * the next read-back naming the step and the quantity, leaving the last checkpoint intact.
 */
import { equal, match, ok, rejects } from "node:assert/strict";
import { presetConfig } from "../../model/config.ts";
import { initModelDir } from "../../model/init.ts";
import { XlmrParams } from "../../model/params.ts";
import { DEFAULT_TRAINER_OPTIONS, Trainer } from "../../training/trainer.ts";
import { train } from "../../training/train.ts";
import { gpuTest } from "../_helpers.ts";
import { FIXTURES } from "./_cli.ts";

async function readAll(trainer: Trainer): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const p of trainer.params.list()) out.set(p.name, await trainer.params.read(p.name));
  for (const m of await trainer.readMoments()) out.set(m.name, m.data);
  return out;
}

gpuTest("a step with a NaN loss leaves every parameter and moment bit-identical", async (gpu) => {
  const config = presetConfig("tiny", { vocabSize: 50, maxPositions: 20, numLayers: 1 });
  const params = XlmrParams.init(gpu, config, 5);
  const trainer = new Trainer(params, DEFAULT_TRAINER_OPTIONS);
  const q = [[0, 5, 6, 2], [0, 7, 8, 2]], p = [[0, 9, 10, 2], [0, 11, 12, 2]];
  trainer.step(q, p, 1e-3);
  const [good] = await trainer.collect();
  ok(Number.isFinite(good.loss) && Number.isFinite(good.gradNorm), "the first step is finite");

  // Poison one LayerNorm weight: the forward pass, the loss and every gradient become NaN.
  const ln = "encoder.layer.0.output.LayerNorm.weight";
  const poisoned = await params.read(ln);
  poisoned[3] = NaN;
  params.upload(ln, poisoned);
  const before = await readAll(trainer);
  trainer.step(q, p, 1e-3);
  const [bad] = await trainer.collect();
  ok(!Number.isFinite(bad.loss) && !Number.isFinite(bad.gradNorm), `poisoned: ${bad.loss}`);
  const after = await readAll(trainer);
  for (const [name, data] of before) {
    const now = after.get(name)!;
    ok(data.every((x, i) => Object.is(x, now[i])), `${name} unchanged by the poisoned step`);
  }
  trainer.release();
  params.release();
});

gpuTest(
  "train stops at a non-finite step naming it, and the last checkpoint stays valid",
  async (gpu) => {
    const dir = await Deno.makeTempDir({ prefix: "nan_guard_" });
    await initModelDir(`${dir}/model`, presetConfig("tiny", { vocabSize: 16002 }), {
      seed: 2,
      tokenizerDir: `${FIXTURES}tokenizer`,
    });
    // lr 1e30 blows the weights up at step 1 (still finite), so step 2's loss overflows to NaN.
    await rejects(
      () =>
        train(gpu, {
          model: `${dir}/model`,
          train: `${FIXTURES}xlmr-tiny/pairs.jsonl`,
          out: `${dir}/run`,
          steps: 4,
          saveEvery: 1,
          batchSize: 4,
          maxLength: 12,
          lr: 1e30,
          schedule: "constant",
          quiet: true,
        }),
      (e: Error) => {
        match(e.message, /non-finite (loss|gradient norm) \(.*\) at step 2: the GPU skipped that/);
        match(e.message, /last good checkpoint is in .*run\/checkpoint-1 \(step 1\)\./);
        return true;
      },
    );
    const state = JSON.parse(await Deno.readTextFile(`${dir}/run/checkpoint-1/trainer_state.json`));
    equal(state.step, 1, "the checkpoint is the one from before the bad step");
    for (const f of ["model.safetensors", "optimizer.safetensors"]) {
      const d = await crypto.subtle.digest(
        "SHA-256",
        await Deno.readFile(`${dir}/run/checkpoint-1/${f}`),
      );
      const hex = Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
      equal(hex, state.sha256[f], `${f} matches its recorded SHA-256`);
    }
    const metrics = (await Deno.readTextFile(`${dir}/run/metrics.jsonl`)).trim().split("\n");
    equal(metrics.length, 1, "only the good step is logged");
    ok(!(await Deno.stat(`${dir}/run/model.safetensors`).catch(() => null)), "no final model");
    await Deno.remove(dir, { recursive: true });
  },
);
