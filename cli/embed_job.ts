/**
 * The embedding job behind `embed`: `--shard I/N` selects the I-th of N contiguous parts of the
 * input, jobs longer than `--part-lines` write resumable parts to `OUT.parts/` (a restart of the
 * same command continues after the last finished part), and a first SIGINT/SIGTERM stops after
 * the current part with status 130/143 and no OUT written (a second one stops at once).
 * @module
 */
import { writeSafetensors } from "../model/safetensors.ts";
import { digest, embedInParts, type Shard, shardRange } from "../eval/shards.ts";
import { GracefulStop } from "./signals.ts";
import { ensureFreeSpace } from "../util/disk.ts";
import { dirname, resolve } from "node:path";

/** What {@linkcode runEmbedJob} needs. */
export interface EmbedJob<T> {
  /** Every input line (validated); the job embeds this shard's part of them. */
  inputs: T[];
  out: string;
  shard?: Shard;
  /** Lines per resumable part (jobs up to this long run in one go). */
  partLines: number;
  /** Embeds some inputs, in order: [items, dim] values. */
  embed: (items: T[]) => Promise<Float32Array>;
  /** Embedding width. */
  dim: number;
  /** Written into OUT's safetensors metadata (and identifies the job's parts). */
  metadata: Record<string, string>;
  /** Further options that change the vectors (e.g. dtype): parts made without them are redone. */
  job?: Record<string, unknown>;
}

/** Runs the job; exits the process with 130/143 when a signal stopped it. */
export async function runEmbedJob<T>(job: EmbedJob<T>): Promise<void> {
  const { inputs, out, shard, partLines, dim } = job;
  const [first, end] = shard ? shardRange(inputs.length, shard.index, shard.count) : [
    0,
    inputs.length,
  ];
  const mine = inputs.slice(first, end);
  const metadata = { ...job.metadata };
  if (shard) {
    Object.assign(metadata, {
      shard: `${shard.index}/${shard.count}`,
      first_line: String(first),
      lines_total: String(inputs.length),
    });
  }
  const partsDir = `${out}.parts`;
  const multiPart = mine.length > partLines;
  const stop = new GracefulStop(() =>
    multiPart
      ? `finishing the current part (finished parts are kept in ${partsDir})`
      : "stopping without writing the output"
  );
  const t0 = performance.now();
  let emb: Float32Array | null;
  try {
    emb = multiPart
      ? await embedInParts(mine.length, (a, b) => job.embed(mine.slice(a, b)), {
        dir: partsDir,
        partLines,
        dim,
        job: { ...metadata, ...job.job, inputs: digest(mine) },
        signal: stop.signal,
        log: (line) => console.error(line),
      })
      : await job.embed(mine);
    if (stop.signal.aborted) emb = null;
    if (emb) {
      ensureFreeSpace(dirname(resolve(out)), emb.byteLength + 65536, out);
      await writeSafetensors(out, [{ name: "embeddings", shape: [mine.length, dim], data: emb }], {
        ...metadata,
      });
    }
  } finally {
    stop.dispose();
  }
  if (!emb) {
    console.error(
      multiPart
        ? `stopped (${stop.received}): finished parts are in ${partsDir}; run the same command ` +
          `again to continue`
        : `stopped (${stop.received}): no output written`,
    );
    Deno.exit(stop.exitCode);
  }
  if (multiPart) await Deno.remove(partsDir, { recursive: true });
  const secs = (performance.now() - t0) / 1000;
  const which = shard ? ` (shard ${shard.index}/${shard.count}: lines ${first}..${end - 1})` : "";
  console.error(
    `embedded ${mine.length} lines${which} in ${secs.toFixed(2)} s ` +
      `(${(mine.length / secs).toFixed(1)} embeddings/s) → ${out}`,
  );
}
