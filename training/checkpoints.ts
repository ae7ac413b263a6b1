/**
 * A training run's checkpoints: `checkpoint-<step>/` folders written atomically (weights, AdamW
 * moments, trainer state with SHA-256 hashes verified on resume), rotation, finding the one to
 * resume from, and trimming the logs back to it.
 * @module
 */
import { join } from "node:path";
import { createHash } from "node:crypto";
import type { Encoder } from "../model/encoder.ts";
import { configToJson, type XlmrConfig } from "../model/config.ts";
import { assertFinite, SafetensorsFile, writeSafetensors } from "../model/safetensors.ts";
import { copyTokenizerFiles } from "../model/init.ts";
import { exists, writeFileAtomic, writeJsonAtomic } from "../model/atomic_write.ts";
import { withDense, writeSentenceTransformers } from "../model/sentence_transformers.ts";
import { ensureFreeSpace } from "../util/disk.ts";
import type { Trainer } from "./trainer.ts";
import type { SelectBy } from "./validation.ts";

export interface TrainerState {
  step: number;
  sampler: unknown;
  options: Record<string, unknown>;
  modelFingerprint: string;
  /** SHA-256 (hex) of the checkpoint's files, verified on --resume. */
  sha256?: Record<string, string>;
  /** Model selection so far: the best evaluation and evaluations since it. */
  selection?: Selection;
  /** fp16 runs: the loss scaler's state after this step (see `Trainer.readLossScale`). */
  lossScale?: { scale: number; cleanSteps: number };
}

export interface Selection {
  metric: SelectBy;
  bestStep: number | null;
  bestValue: number | null;
  sinceBest: number;
}

/** Checkpoint files whose content hash trainer_state.json carries. */
export const HASHED_FILES = ["model.safetensors", "optimizer.safetensors"];

/** SHA-256 of a file in hex, streamed in 4 MiB blocks (checkpoints can be gigabytes). */
async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  const file = await Deno.open(path, { read: true });
  try {
    const buf = new Uint8Array(1 << 22);
    for (;;) {
      const n = await file.read(buf);
      if (n === null) break;
      hash.update(buf.subarray(0, n));
    }
  } finally {
    file.close();
  }
  return hash.digest("hex");
}

/** Reads trainer_state.json of a checkpoint and checks the content hashes of its files. */
export async function readTrainerState(dir: string): Promise<TrainerState> {
  const path = join(dir, "trainer_state.json");
  let state: TrainerState;
  try {
    state = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw new Error(`--resume: ${path}: not valid JSON: ${(e as Error).message}`);
  }
  if (
    state === null || typeof state !== "object" || !Number.isInteger(state.step) || state.step < 0
  ) {
    throw new Error(`--resume: ${path}: expected an object with an integer "step"`);
  }
  if (!state.sha256) {
    console.warn(`warning: ${path} carries no content hashes; the checkpoint is not verified`);
    return state;
  }
  for (const f of HASHED_FILES) {
    const want = state.sha256[f];
    const got = await sha256File(join(dir, f));
    if (want !== got) {
      throw new Error(
        `--resume: ${join(dir, f)} is corrupt: its SHA-256 is ${got}, but ${path} ` +
          `records ${want ?? "none"}`,
      );
    }
  }
  return state;
}

export function fingerprint(c: XlmrConfig): string {
  return JSON.stringify([c.vocabSize, c.hiddenSize, c.numLayers, c.numHeads, c.intermediateSize]);
}

/** Uploads a checkpoint's transformer weights into the encoder's parameters (not a Dense head). */
export async function loadTransformerWeights(encoder: Encoder, path: string): Promise<void> {
  const file = await SafetensorsFile.open(path);
  try {
    for (const p of encoder.params.list()) {
      if (p.name.startsWith("head.")) continue;
      if (!file.tensors.has(p.name)) throw new Error(`${path}: lacks ${p.name}`);
      const data = await file.readF32(p.name);
      assertFinite(data, path, p.name);
      encoder.params.upload(p.name, data);
    }
  } finally {
    file.close();
  }
}

/** Bytes of a model.safetensors holding these parameters (data plus a generous header bound). */
export function safetensorsBytes(tensors: { shape: readonly number[] }[]): number {
  return tensors.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1) * 4 + 160, 4096);
}

/** `checkpoint-<step>` (or a `.old` side copy left by a kill during a same-step replace). */
const CHECKPOINT_DIR = /^checkpoint-(\d+)(\.old)?$/;

async function isCompleteCheckpoint(dir: string): Promise<boolean> {
  return await exists(join(dir, "trainer_state.json")) &&
    await exists(join(dir, "optimizer.safetensors"));
}

/** The complete `checkpoint-<step>` folders of a run directory, oldest first. */
export async function listCheckpoints(out: string): Promise<{ step: number; dir: string }[]> {
  const found: { step: number; dir: string; old: boolean }[] = [];
  try {
    for await (const e of Deno.readDir(out)) {
      const m = e.isDirectory ? CHECKPOINT_DIR.exec(e.name) : null;
      if (m && await isCompleteCheckpoint(join(out, e.name))) {
        found.push({ step: Number(m[1]), dir: join(out, e.name), old: m[2] !== undefined });
      }
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  // A side copy only counts when its step has no complete checkpoint of its own.
  const steps = new Set(found.filter((c) => !c.old).map((c) => c.step));
  return found.filter((c) => !c.old || !steps.has(c.step))
    .sort((a, b) => a.step - b.step)
    .map(({ step, dir }) => ({ step, dir }));
}

/**
 * Writes `out/checkpoint-<step>/` atomically: everything goes to a fresh directory that is then
 * renamed into place, so a crash leaves every earlier checkpoint complete. Free space is checked
 * against the checkpoint's planned size first; a failed write removes its temporary directory.
 * Afterwards only the newest `keep` checkpoints remain (and the old single `checkpoint/` layout
 * is dropped). Returns the checkpoint's path.
 */
export async function saveCheckpoint(
  out: string,
  encoder: Encoder,
  trainer: Trainer,
  state: TrainerState,
  tokenizerDir: string,
  keep: number,
  protect?: number | null,
): Promise<string> {
  const final = join(out, `checkpoint-${state.step}`);
  // Directories left by a run killed mid-write are incomplete by construction: drop them.
  for await (const e of Deno.readDir(out)) {
    if (e.isDirectory && e.name.startsWith("checkpoint.tmp-")) {
      await Deno.remove(join(out, e.name), { recursive: true });
    }
  }
  const moments = await trainer.readMoments();
  const lossScale = await trainer.readLossScale();
  const tmp = join(out, `checkpoint.tmp-${crypto.randomUUID().slice(0, 8)}`);
  await Deno.mkdir(tmp, { recursive: true });
  try {
    await writeJsonAtomic(join(tmp, "config.json"), configToJson(encoder.config));
    await copyTokenizerFiles(tokenizerDir, tmp);
    const planned = safetensorsBytes([...encoder.params.byName.values()]) +
      safetensorsBytes(moments) + 65536;
    ensureFreeSpace(
      out,
      planned,
      `the checkpoint at step ${state.step}`,
      `. Nothing was lost: free some space and continue with --resume ${out}`,
    );
    await encoder.params.save(join(tmp, "model.safetensors"));
    // A sentence-transformers source: its modules (with the Dense weights as trained so far), so
    // that --resume rebuilds the same pipeline.
    if (encoder.st) {
      await writeSentenceTransformers(tmp, withDense(encoder.st, await encoder.params.readHead()));
    }
    await writeSafetensors(join(tmp, "optimizer.safetensors"), moments);
    const sha256: Record<string, string> = {};
    for (const f of HASHED_FILES) sha256[f] = await sha256File(join(tmp, f));
    await writeJsonAtomic(
      join(tmp, "trainer_state.json"),
      { ...state, ...(lossScale ? { lossScale } : {}), sha256 },
    );
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
  if (await exists(final)) {
    // The same step saved again (a resumed run stopped before its next step): swap via a side
    // copy that listCheckpoints still accepts if a kill lands between the renames.
    const old = `${final}.old`;
    await Deno.remove(old, { recursive: true }).catch(() => {});
    await Deno.rename(final, old);
    await Deno.rename(tmp, final);
    await Deno.remove(old, { recursive: true });
  } else {
    await Deno.rename(tmp, final);
  }
  const all = await listCheckpoints(out);
  // The newest `keep`, and the best one of model selection (`protect`) wherever it lies.
  for (const c of all.slice(0, Math.max(0, all.length - keep))) {
    if (c.step !== protect) await Deno.remove(c.dir, { recursive: true });
  }
  for (const legacy of ["checkpoint", "checkpoint.old"]) {
    await Deno.remove(join(out, legacy), { recursive: true }).catch(() => {});
  }
  return final;
}

/**
 * The checkpoint to resume from: `dir` itself when it is one, else the newest complete
 * `checkpoint-<step>/` in it, else the old single-folder layout (`checkpoint/`, `checkpoint.old/`).
 */
export async function findCheckpoint(dir: string): Promise<string> {
  if (await isCompleteCheckpoint(dir)) return dir;
  const rotated = await listCheckpoints(dir);
  if (rotated.length > 0) return rotated.at(-1)!.dir;
  for (const c of [join(dir, "checkpoint"), join(dir, "checkpoint.old")]) {
    if (await isCompleteCheckpoint(c)) return c;
  }
  throw new Error(
    `--resume ${dir}: no complete checkpoint (trainer_state.json + optimizer.safetensors)`,
  );
}

/**
 * Drops the lines of a JSONL log past `step` (and a torn last line), atomically. Returns the step
 * of the last line kept (-1 when none is, or there is no log).
 */
export async function truncateLog(path: string, step: number): Promise<number> {
  if (!(await exists(path))) return -1;
  const lines = (await Deno.readTextFile(path)).split("\n").filter((l) => l.trim());
  // A kill during an append can leave a torn last line: drop lines that do not parse.
  const stepOf = (l: string) => {
    try {
      return (JSON.parse(l) as { step: number }).step;
    } catch {
      return Infinity;
    }
  };
  const kept = lines.filter((l) => stepOf(l) <= step);
  await writeFileAtomic(path, kept.length ? kept.join("\n") + "\n" : "");
  return kept.length ? stepOf(kept[kept.length - 1]) : -1;
}
