/**
 * {@linkcode train} that survives a lost GPU device: wait, request a new device, reload the
 * newest checkpoint and continue.
 * @module
 */
import type { Gpu } from "../kernels/runtime.ts";
import { type StepCallback, train, type TrainOptions, type TrainResult } from "./train.ts";
import { findCheckpoint } from "./checkpoints.ts";

/** Options of {@linkcode trainWithAutoResume}. */
export interface AutoResumeOptions {
  /** Requests a new adapter and device after a loss (e.g. `() => Gpu.create()`). */
  createGpu: () => Promise<Gpu>;
  /** Recoveries before giving up (default 3). */
  retries?: number;
  /** Wait before requesting a new device, in ms (default 2000). */
  waitMs?: number;
}

/** Whether `gpu`'s device is lost (the `lost` promise settles asynchronously: give it a moment). */
async function deviceLost(gpu: Gpu, e: unknown): Promise<boolean> {
  if (/device (is )?lost|device.*destroyed/i.test((e as Error)?.message ?? "")) return true;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const lost = await Promise.race([
    gpu.device.lost.then(() => true),
    new Promise<boolean>((r) => timer = setTimeout(() => r(false), 200)),
  ]);
  clearTimeout(timer);
  return lost;
}

/**
 * {@linkcode train} that survives a lost GPU device (driver reset, sleep, an unplugged external
 * GPU): it waits, requests a new adapter and device, reloads the newest checkpoint in `opts.out`
 * (or starts over when none was written yet) and continues. Resuming replays exactly, so on the
 * same adapter the run ends byte-identical to an uninterrupted one. Started again on a run folder
 * that holds a checkpoint (a preempted job restarted by its scheduler), it continues from there.
 * Returns the result and the GPU the run ended on.
 */
export async function trainWithAutoResume(
  gpu: Gpu,
  opts: TrainOptions,
  auto: AutoResumeOptions,
  onSteps?: StepCallback,
): Promise<TrainResult & { gpu: Gpu; recoveries: number }> {
  const retries = auto.retries ?? 3;
  const waitMs = auto.waitMs ?? 2000;
  let current = gpu;
  // A restarted job (e.g. after a scheduler's preemption) continues from the newest checkpoint.
  let runOpts = opts.resume !== undefined ? opts : {
    ...opts,
    resume: await findCheckpoint(opts.out).then(() => opts.out, () => undefined),
  };
  for (let recoveries = 0;; recoveries++) {
    try {
      return { ...(await train(current, runOpts, onSteps)), gpu: current, recoveries };
    } catch (e) {
      if (recoveries >= retries || !(await deviceLost(current, e))) throw e;
      const resume = await findCheckpoint(opts.out).then(() => opts.out, () => opts.resume);
      console.error(
        `GPU device lost (${(e as Error).message}); waiting ${waitMs} ms, then a new device and ` +
          `${resume ? `the newest checkpoint in ${resume}` : "a fresh start (no checkpoint yet)"}`,
      );
      // The adapter may take a while to come back (driver reset, wake-up): retry the request.
      for (let attempt = 1;; attempt++) {
        await new Promise((r) => setTimeout(r, waitMs));
        try {
          current = await auto.createGpu();
          break;
        } catch (err) {
          if (attempt >= retries) {
            throw new Error(
              `GPU device lost and no new device after ${attempt} requests: ` +
                `${(err as Error).message}. Continue later with --resume ${opts.out}`,
            );
          }
          console.error(`no GPU device yet (${(err as Error).message}); retrying`);
        }
      }
      runOpts = { ...opts, resume };
    }
  }
}
