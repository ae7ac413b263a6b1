/**
 * Held-out validation for a training run: the split (disjoint by `id`, so no translation of a
 * validation item is trained on), the fixed validation batches, model selection by a metric,
 * and the leakage guard between training data and the evaluation sets.
 * @module
 */
import { loadQaData, type QaDataset, type QaItem } from "./data.ts";
import { Random } from "./random.ts";
import { type AlphaSchedule, BatchSampler, type SamplerOptions } from "./sampler.ts";

/** What `--select-by` ranks checkpoints by. */
export type SelectBy = "val_loss" | "multi_map" | "mono_map" | "cross_map";

/** Whether `a` is better than `b` for `metric` (lower loss, higher mAP); strict. */
export function isBetter(metric: SelectBy, a: number, b: number | null): boolean {
  if (!Number.isFinite(a)) return false;
  if (b === null) return true;
  return metric === "val_loss" ? a < b : a > b;
}

/** The value of `metric` in an eval.jsonl line (`{step, val_loss?, map?: {…}}`); null if absent. */
export function metricOf(metric: SelectBy, line: Record<string, unknown>): number | null {
  if (metric === "val_loss") return typeof line.val_loss === "number" ? line.val_loss : null;
  const key = { multi_map: "multilingual", mono_map: "monolingual", cross_map: "crosslingual" }[
    metric
  ];
  const map = line.map as Record<string, number | null> | undefined;
  const v = map?.[key];
  return typeof v === "number" ? v : null;
}

/**
 * Splits `data` into training and validation items by a seeded shuffle of the items: `fraction`
 * of them (rounded, at least 1, at most all but 1) are held out. Items are whole `id`s with all
 * their languages, so the two sides share no id. Both keep the original item order.
 */
export function splitByFraction(
  data: QaDataset,
  fraction: number,
  seed: number,
): { train: QaDataset; val: QaDataset } {
  if (!(fraction > 0 && fraction < 1)) {
    throw new RangeError(`--val-fraction: ${fraction} is not in (0, 1)`);
  }
  const n = data.items.length;
  if (n < 2) throw new RangeError(`--val-fraction: ${data.source} has ${n} item(s), needs ≥ 2`);
  const k = Math.min(n - 1, Math.max(1, Math.round(fraction * n)));
  // Its own stream (not the sampler's), so the split does not depend on anything else.
  const order = new Random(seed ^ 0x5eed7a1).shuffle([...Array(n).keys()]);
  const held = new Set(order.slice(0, k));
  const pick = (keep: boolean, what: string): QaDataset => {
    const items = data.items.filter((_, i) => held.has(i) === keep);
    return { items, languages: languagesOf(items), source: `${data.source} (${what})` };
  };
  return { train: pick(false, "training split"), val: pick(true, "validation split") };
}

function languagesOf(items: QaItem[]): string[] {
  const langs = new Set<string>();
  for (const it of items) for (const l of Object.keys(it.question)) langs.add(l);
  return [...langs].sort();
}

/** One validation batch as token ids: B queries, then B positives and any hard negatives. */
export interface ValidationBatch {
  kind: "xx" | "xy";
  queries: number[][];
  passages: number[][];
}

/**
 * The fixed validation batches: `count` batches drawn by a sampler of the training kind on the
 * validation items (its own seed; α constant at the schedule's mean, so the X-X : X-Y mix is the
 * training run's), with hard negatives as in training. The batch size is the training one, or
 * the number of validation items when there are fewer.
 */
export function validationBatches(
  val: QaDataset,
  opts: SamplerOptions & {
    count?: number;
    hardNegatives: number;
    query: (text: string) => number[];
    passage: (text: string) => number[];
  },
): ValidationBatch[] {
  const usable =
    val.items.filter((it) =>
      Object.keys(it.question).some((l) => !opts.langs || opts.langs.includes(l))
    ).length;
  const batchSize = Math.min(opts.batchSize, usable);
  const langs = opts.langs?.filter((l) => val.languages.includes(l));
  let sampler: BatchSampler;
  try {
    sampler = new BatchSampler(val, {
      kind: opts.kind,
      batchSize,
      alpha: meanAlpha(opts.alphaSchedule, opts.alpha ?? 0.5),
      seed: (opts.seed + 0x76a1) >>> 0,
      langs,
      similarity: undefined,
      warn: () => {},
    });
  } catch (e) {
    throw new RangeError(`validation set: ${(e as Error).message}`);
  }
  const count = opts.count ?? Math.max(1, Math.ceil(usable / batchSize));
  const out: ValidationBatch[] = [];
  for (let b = 0; b < count; b++) {
    const batch = sampler.next();
    const queries: number[][] = [], passages: number[][] = [], negs: number[][] = [];
    for (const pair of batch.pairs) {
      const item = val.items[pair.itemIndex];
      queries.push(opts.query(item.question[pair.queryLang]));
      passages.push(opts.passage(item.answer[pair.passageLang]));
      const pool = item.negatives?.[pair.passageLang] ?? [];
      for (let k = 0; k < Math.min(opts.hardNegatives, pool.length); k++) {
        negs.push(opts.passage(pool[k]));
      }
    }
    out.push({ kind: batch.kind, queries, passages: [...passages, ...negs] });
  }
  return out;
}

function meanAlpha(s: AlphaSchedule | undefined, alpha: number): number {
  if (!s) return alpha;
  return s.kind === "constant" ? s.alpha : (s.from + s.to) / 2;
}

/** Text as the leakage guard compares it: NFKC, case-folded, whitespace collapsed. */
export function normaliseText(s: string): string {
  return s.normalize("NFKC").toLowerCase().normalize("NFKC").replace(/\s+/gu, " ").trim();
}

/** Overlap between training items and one evaluation set. */
export interface Leakage {
  /** The evaluation set (flag and path), e.g. `--eval data/xquad-r`. */
  against: string;
  /** Training ids that are also evaluation ids. */
  sharedIds: string[];
  /** Training ids one of whose texts equals (normalised) an evaluation text, with that text. */
  sharedTexts: { id: string; text: string }[];
}

/**
 * Training items that share an id, or a normalised question/answer text, with the evaluation
 * items (their questions, answers and, for LAReQA sets, the other candidate sentences).
 */
export function findLeakage(train: QaDataset, evalSet: QaDataset, against: string): Leakage {
  const ids = new Set(evalSet.items.map((it) => it.id));
  const texts = new Set<string>();
  for (const it of evalSet.items) {
    for (const t of Object.values(it.question)) texts.add(normaliseText(t));
    for (const t of Object.values(it.answer)) texts.add(normaliseText(t));
    for (const list of Object.values(it.negatives ?? {})) {
      for (const t of list) texts.add(normaliseText(t));
    }
  }
  const sharedIds: string[] = [];
  const sharedTexts: { id: string; text: string }[] = [];
  for (const it of train.items) {
    if (ids.has(it.id)) sharedIds.push(it.id);
    const hit = [...Object.values(it.question), ...Object.values(it.answer)]
      .find((t) => texts.has(normaliseText(t)));
    if (hit !== undefined) sharedTexts.push({ id: it.id, text: hit });
  }
  return { against, sharedIds, sharedTexts };
}

/** A one-paragraph description of `l`; null when there is no overlap. */
export function describeLeakage(l: Leakage, trainSource: string): string | null {
  if (l.sharedIds.length === 0 && l.sharedTexts.length === 0) return null;
  const parts: string[] = [];
  const clip = (s: string) => s.length > 60 ? `${s.slice(0, 57)}…` : s;
  if (l.sharedIds.length) {
    parts.push(
      `${l.sharedIds.length} training item(s) share an id with ${l.against} (e.g. ${
        l.sharedIds.slice(0, 3).map((s) => JSON.stringify(s)).join(", ")
      })`,
    );
  }
  if (l.sharedTexts.length) {
    const e = l.sharedTexts[0];
    parts.push(
      `${l.sharedTexts.length} training item(s) share a normalised text with ${l.against} ` +
        `(e.g. id ${JSON.stringify(e.id)}: ${JSON.stringify(clip(e.text))})`,
    );
  }
  return `leakage: ${trainSource}: ${parts.join("; ")}`;
}

/** Thrown by `train` under `strictLeakage` when the training data overlaps an evaluation set. */
export class LeakageError extends Error {}

/**
 * The training and validation sets of a run: `val` loaded from its own file (languages as
 * `langs`), or `valFraction` of the training items held out; null without either.
 */
export async function holdOut(
  data: QaDataset,
  o: { val?: string; valFraction?: number; seed: number; langs?: string[] },
): Promise<{ data: QaDataset; val: QaDataset | null }> {
  if (o.val !== undefined && o.valFraction !== undefined) {
    throw new RangeError("give --val or --val-fraction, not both");
  }
  if (o.valFraction !== undefined) {
    const { train, val } = splitByFraction(data, o.valFraction, o.seed);
    return { data: train, val };
  }
  if (o.val !== undefined) {
    try {
      return { data, val: await loadQaData(o.val, { langs: o.langs }) };
    } catch (e) {
      throw new Error(`--val ${o.val}: ${(e as Error).message}`);
    }
  }
  return { data, val: null };
}

/**
 * Warns (on stderr) when training items share ids or normalised texts with the validation set
 * or the `--eval` set; with `strictLeakage` throws {@linkcode LeakageError} instead.
 */
export async function guardLeakage(
  data: QaDataset,
  val: QaDataset | null,
  o: { eval?: string; val?: string; valFraction?: number; strictLeakage?: boolean },
): Promise<Leakage[]> {
  const checks: Leakage[] = [];
  if (val) {
    const against = o.val !== undefined ? `--val ${o.val}` : `the --val-fraction split`;
    checks.push(findLeakage(data, val, against));
  }
  if (o.eval !== undefined) {
    let evalSet: QaDataset;
    try {
      evalSet = await loadQaData(o.eval);
    } catch (e) {
      throw new Error(`--eval ${o.eval}: ${(e as Error).message}`);
    }
    checks.push(findLeakage(data, evalSet, `--eval ${o.eval}`));
  }
  const messages = checks.map((l) => describeLeakage(l, data.source)).filter((m) => m !== null);
  if (messages.length && o.strictLeakage) {
    throw new LeakageError(`${messages.join("\n")}\n--strict-leakage: refusing to train`);
  }
  for (const m of messages) console.warn(`warning: ${m}`);
  return checks;
}
