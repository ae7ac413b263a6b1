/**
 * Faults during long runs, in process: checkpoint rotation (`--save-total-limit`), the old
 * single-folder layout still resuming, eval.jsonl truncated on resume, a disk that fills up
 * mid-run (a real tmpfs where mounting is permitted, else a simulated one: tests/_small_disk.ts) and a GPU device lost mid-run (`trainWithAutoResume`): each ends
 * byte-identical to an uninterrupted run.
 */
import { deepEqual, equal, match, ok, rejects } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { presetConfig } from "../../model/config.ts";
import { initModelDir } from "../../model/init.ts";
import { Gpu } from "../../kernels/runtime.ts";
import { listCheckpoints, train, type TrainOptions } from "../../training/train.ts";
import { trainWithAutoResume } from "../../training/auto_resume.ts";
import { gpuTest } from "../_helpers.ts";
import { smallDisk } from "../_small_disk.ts";
import { freeBytes } from "../../util/disk.ts";

const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url));
const TOKENIZER = join(FIXTURES, "tokenizer");
const PAIRS = join(FIXTURES, "xlmr-tiny/pairs.jsonl");

async function tinyModel(dir: string): Promise<string> {
  const config = presetConfig("tiny", {
    vocabSize: 16002,
    hiddenSize: 32,
    numLayers: 1,
    numHeads: 2,
    intermediateSize: 64,
    maxPositions: 42,
  });
  await initModelDir(dir, config, { seed: 3, tokenizerDir: TOKENIZER });
  return dir;
}

function common(model: string): Omit<TrainOptions, "out"> {
  return {
    model,
    train: PAIRS,
    steps: 12,
    batchSize: 4,
    lr: 1e-3,
    maxLength: 16,
    saveEvery: 4,
    logEvery: 1,
    seed: 9,
    quiet: true,
  };
}

async function assertSameRun(run: string, ref: string, logs = ["metrics.jsonl", "batches.jsonl"]) {
  const a = await Deno.readFile(join(ref, "model.safetensors"));
  const b = await Deno.readFile(join(run, "model.safetensors"));
  ok(a.length === b.length && a.every((v, i) => v === b[i]), `${run}: weights differ`);
  for (const log of logs) {
    equal(
      await Deno.readTextFile(join(run, log)),
      await Deno.readTextFile(join(ref, log)),
      `${run}: ${log} differs`,
    );
  }
}

const names = async (dir: string) =>
  (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).filter((n) =>
    n.startsWith("checkpoint")
  ).sort();

gpuTest("--save-total-limit keeps exactly the newest N checkpoint-<step> folders", async (gpu) => {
  const root = await Deno.makeTempDir();
  const model = await tinyModel(join(root, "init"));
  const opts = { ...common(model), steps: 10, saveEvery: 2 };
  await train(gpu, { ...opts, out: join(root, "one") });
  deepEqual(await names(join(root, "one")), ["checkpoint-10"], "default: the newest only");
  await train(gpu, { ...opts, out: join(root, "three"), saveTotalLimit: 3 });
  deepEqual(await names(join(root, "three")), ["checkpoint-10", "checkpoint-6", "checkpoint-8"]);
  deepEqual((await listCheckpoints(join(root, "three"))).map((c) => c.step), [6, 8, 10]);

  // The old single-folder layout (`checkpoint/`) of earlier runs still resumes; the next save
  // replaces it by the rotated layout.
  const legacy = join(root, "legacy");
  await rejects(
    train(gpu, { ...opts, out: legacy }, (s) => {
      if (s.some((x) => x.step === 7)) throw new Error("simulated crash");
    }),
    /simulated crash/,
  );
  await Deno.rename(join(legacy, "checkpoint-6"), join(legacy, "checkpoint"));
  await train(gpu, { ...opts, out: legacy, resume: legacy });
  deepEqual(await names(legacy), ["checkpoint-10"]);
  await assertSameRun(legacy, join(root, "one"));
  await Deno.remove(root, { recursive: true });
});

gpuTest(
  "eval.jsonl lines past the resumed step are dropped on resume, and none is added twice",
  async (gpu) => {
    const root = await Deno.makeTempDir();
    const model = await tinyModel(join(root, "init"));
    const opts = {
      ...common(model),
      steps: 8,
      eval: join(FIXTURES, "xquad-r"),
      evalEvery: 2,
      evalLimitQuestions: 4,
    };
    await train(gpu, { ...opts, out: join(root, "ref") });
    const run = join(root, "run");
    await rejects(
      train(gpu, { ...opts, out: run }, (s) => {
        if (s.some((x) => x.step === 7)) throw new Error("simulated crash");
      }),
      /simulated crash/,
    );
    const steps = async (dir: string) =>
      (await Deno.readTextFile(join(dir, "eval.jsonl"))).trim().split("\n").map((l) =>
        JSON.parse(l).step
      );
    deepEqual(await steps(run), [2, 4, 6], "the eval at step 6 was written before the crash");
    await train(gpu, { ...opts, out: run, resume: run });
    deepEqual(await steps(run), [2, 4, 6, 8]);
    await assertSameRun(run, join(root, "ref"));
    // Same reports, line for line, apart from the wall-clock timings.
    const reports = async (dir: string) =>
      (await Deno.readTextFile(join(dir, "eval.jsonl"))).trim().split("\n").map((l) => {
        const { timing: _, ...report } = JSON.parse(l);
        return report;
      });
    deepEqual(await reports(run), await reports(join(root, "ref")));
    // Resuming the finished run re-finishes it without a second evaluation of step 8.
    await train(gpu, { ...opts, out: run, resume: run });
    deepEqual(await steps(run), [2, 4, 6, 8]);
    await assertSameRun(run, join(root, "ref"));
    await Deno.remove(root, { recursive: true });
  },
);

gpuTest(
  "a disk that fills up mid-run: the checkpoint is refused with the bytes needed, nothing is lost, resume is byte-identical",
  async (gpu) => {
    const root = await Deno.makeTempDir();
    const model = await tinyModel(join(root, "init"));
    await train(gpu, { ...common(model), out: join(root, "ref") });
    const disk = await smallDisk(32 << 20);
    try {
      const run = join(disk.dir, "run");
      const ballast = join(disk.dir, "ballast");
      // After the checkpoint of step 4, something else fills the disk up to 1 MiB.
      const fill = async () => {
        await Deno.writeFile(ballast, new Uint8Array(freeBytes(disk.dir)! - (1 << 20)));
      };
      const err = await train(gpu, { ...common(model), out: run }, async (s) => {
        if (s.some((x) => x.step === 5)) await fill();
      }).then(() => null, (e: Error) => e);
      ok(err, "the run must fail");
      match(
        err.message,
        new RegExp(
          `no space left for the checkpoint at step 8: it needs \\d+ bytes \\([\\d.]+ MiB\\) in ` +
            `${run}, but only \\d+ bytes \\([\\d.]+ MiB\\) are free. Nothing was lost: free some ` +
            `space and continue with --resume ${run}`,
        ),
      );
      deepEqual(await names(run), ["checkpoint-4"], "no half-written checkpoint is left");
      await Deno.remove(ballast);
      await train(gpu, { ...common(model), out: run, resume: run });
      await assertSameRun(run, join(root, "ref"));
    } finally {
      await disk.release();
    }

    // A write that fails halfway although the space check passed (here: the file system runs
    // out of inodes): the temporary checkpoint folder is removed, the previous one kept. Only a
    // real file system can fail a write.
    const small = await smallDisk(32 << 20, ",nr_inodes=64");
    if (!small.real) {
      console.log("mount -t tmpfs is not permitted here: the failed-write half needs it (root)");
      await small.release();
      await Deno.remove(root, { recursive: true });
      return;
    }
    try {
      const run = join(small.dir, "run");
      const fill = async () => {
        for (let i = 0;; i++) {
          try {
            await Deno.writeFile(join(small.dir, `inode-${i}`), new Uint8Array());
          } catch {
            break;
          }
        }
        await Deno.remove(join(small.dir, "inode-0")); // room for the tmp folder only
      };
      const err = await train(gpu, { ...common(model), out: run }, async (s) => {
        if (s.some((x) => x.step === 5)) await fill();
      }).then(() => null, (e: Error) => e);
      ok(err);
      match(err.message, /No space left on device/);
      deepEqual(await names(run), ["checkpoint-4"], "the temporary checkpoint folder is removed");
      for await (const e of Deno.readDir(small.dir)) {
        if (e.name.startsWith("inode-")) await Deno.remove(join(small.dir, e.name));
      }
      await train(gpu, { ...common(model), out: run, resume: run });
      await assertSameRun(run, join(root, "ref"));
    } finally {
      await small.release();
    }
    await Deno.remove(root, { recursive: true });
  },
);

gpuTest(
  "a GPU device lost mid-run: --auto-resume gets a new device, reloads the checkpoint and ends byte-identical",
  async (gpu) => {
    const root = await Deno.makeTempDir();
    const model = await tinyModel(join(root, "init"));
    await train(gpu, { ...common(model), out: join(root, "ref") });
    const first = await Gpu.create();
    let destroyed = false;
    let requests = 0;
    const r = await trainWithAutoResume(
      first,
      { ...common(model), out: join(root, "run") },
      {
        // The adapter is not back at the first request (driver reset): the request is retried.
        createGpu: () =>
          requests++ === 0 ? Promise.reject(new Error("no adapter yet")) : Gpu.create(),
        waitMs: 10,
      },
      (s) => {
        if (!destroyed && s.some((x) => x.step === 6)) {
          destroyed = true;
          first.device.destroy();
        }
      },
    );
    ok(destroyed);
    equal(r.recoveries, 1);
    equal(requests, 2, "one failed device request, then a new device");
    ok(r.gpu !== first, "a new device");
    await assertSameRun(join(root, "run"), join(root, "ref"));
    r.gpu.destroy();

    // A job restarted by its scheduler (same command, no --resume) continues from its checkpoint.
    const crashed = join(root, "crashed");
    await rejects(
      train(gpu, { ...common(model), out: crashed }, (s) => {
        if (s.some((x) => x.step === 6)) throw new Error("preempted");
      }),
      /preempted/,
    );
    const again = await trainWithAutoResume(gpu, { ...common(model), out: crashed }, {
      createGpu: () => Gpu.create(),
    });
    equal(again.stats[0].step, 5, "continued after checkpoint-4");
    await assertSameRun(crashed, join(root, "ref"));
    await Deno.remove(root, { recursive: true });
  },
);
