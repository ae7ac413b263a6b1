/**
 * `eval --shard I/N --save-embeddings DIR` and `eval --embeddings DIR`: an evaluation's embeddings
 * (questions and candidates, with prefixes and pairs) spread over N processes, then ranked from
 * the shards by one more run, with the same metrics as one process (within float32 noise).
 * @module
 */
import { UsageError } from "./flags.ts";
import type { EmbedFn } from "../eval/retrieval.ts";
import {
  parseShard,
  type Shard,
  type ShardOptions,
  ShardReader,
  ShardRecorder,
} from "../eval/shards.ts";

/** What the flags ask for: nothing, record one shard, or rank from the shards. */
export type EvalShardMode =
  | { kind: "none" }
  | { kind: "record"; shard: Shard; dir: string }
  | { kind: "rank"; dir: string };

/** Validates the combination of --shard, --save-embeddings and --embeddings (usage errors). */
export function evalShardMode(f: Record<string, string | boolean | undefined>): EvalShardMode {
  const shard = f.shard, save = f["save-embeddings"], from = f.embeddings;
  if (typeof from === "string") {
    if (shard !== undefined || save !== undefined) {
      throw new UsageError(
        "eval: --embeddings ranks from saved shards; drop --shard/--save-embeddings",
      );
    }
    return { kind: "rank", dir: from };
  }
  if (shard === undefined && save === undefined) return { kind: "none" };
  if (typeof shard !== "string" || typeof save !== "string") {
    throw new UsageError("eval: --shard I/N and --save-embeddings DIR go together");
  }
  try {
    return { kind: "record", shard: parseShard(shard), dir: save };
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/**
 * The embedding function the evaluation gets in each mode, and `finish` (recording: marks the
 * shard complete and returns its folder).
 */
export async function shardEmbed(
  mode: EvalShardMode,
  embed: EmbedFn,
  dim: number,
  options: ShardOptions,
): Promise<{ embed: EmbedFn; finish?: () => Promise<string> }> {
  if (mode.kind === "record") {
    const rec = new ShardRecorder(embed, mode.dir, mode.shard, dim, options);
    return { embed: rec.embed, finish: () => rec.finish() };
  }
  if (mode.kind === "rank") {
    const reader = await ShardReader.open(mode.dir, options);
    if (reader.dim !== dim) {
      throw new Error(`--embeddings ${mode.dir}: width ${reader.dim}, the model gives ${dim}`);
    }
    return { embed: reader.embed };
  }
  return { embed };
}
