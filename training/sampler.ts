/**
 * Batch samplers for contrastive multilingual QA training: X-X (one language per batch), X-Y
 * (query and passage in different languages), hybrid (X-X with probability α) and lang-sim
 * (hybrid whose cross-lingual pairs follow a language-similarity matrix).
 *
 * Consumption scheme (epoch-wise, without replacement): the sampler keeps one shuffled queue of
 * item indices per language (items with that language, for X-X batches) and one shared queue of
 * the items with at least two languages (for X-Y batches). A batch takes the next items of its
 * queue; an exhausted queue is reshuffled (a new epoch of that queue). An item already in the
 * batch is never taken twice: at an epoch boundary it is swapped further back in the new order,
 * so it is not lost, only delayed. All randomness comes from one seeded {@linkcode Random}, whose
 * state, the queues and the current similarity matrix make up {@linkcode BatchSampler.state}.
 *
 * Per batch: the kind (X-X with probability α(step)), then for X-X the language uniformly among
 * the languages with at least `batchSize` items; for X-Y, per pair, the query language uniformly
 * among the item's languages and the passage language uniformly among its other languages (so
 * uniform over the item's ordered pairs of distinct languages) — or, for lang-sim, with
 * probability softmax(sim[q][·] / temperature) over the item's other languages.
 * @module
 */
import type { QaDataset } from "./data.ts";
import { Random, type RandomState } from "./random.ts";

/** Which batches a sampler makes. */
export type SamplerKind = "xx" | "xy" | "hybrid" | "lang-sim";

/** One (query, passage) pair of a batch: item `itemIndex` of the dataset. */
export interface BatchPair {
  id: string;
  queryLang: string;
  passageLang: string;
  itemIndex: number;
}

/** A batch; `step` is 1-based. */
export interface Batch {
  step: number;
  kind: "xx" | "xy";
  pairs: BatchPair[];
}

/** α as a constant or a linear ramp from `from` (step 1) to `to` (step `steps` and after). */
export type AlphaSchedule =
  | { kind: "constant"; alpha: number }
  | { kind: "linear"; from: number; to: number; steps: number };

/** Options of {@linkcode BatchSampler}. */
export interface SamplerOptions {
  kind: SamplerKind;
  batchSize: number;
  /** P(X-X batch) for hybrid and lang-sim; default 0.5. */
  alpha?: number;
  /** Overrides `alpha` when given. */
  alphaSchedule?: AlphaSchedule;
  seed: number;
  /** The languages to train on (default: all of the dataset); also the similarity matrix order. */
  langs?: string[];
  /** lang-sim weights, `langs` order (rows = query language); uniform until set. */
  similarity?: number[][];
  /** lang-sim softmax temperature, default 0.1; a negative one prefers dissimilar languages. */
  similarityTemperature?: number;
  /** Where warnings go (skipped languages); default console.warn. */
  warn?: (message: string) => void;
}

/**
 * Parses an `--alpha-schedule` value: `0.5` or `constant:0.5` (constant), `0.8:0.2` or
 * `linear:0.8:0.2` (linear over the whole run: `steps` is 0 and the caller sets it to the total
 * number of steps), or `linear:0.8:0.2:1000` (reaches 0.2 at step 1000).
 *
 * @example
 * ```ts
 * import { parseAlphaSchedule } from "./sampler.ts";
 * const s = parseAlphaSchedule("0.8:0.2"); // { kind: "linear", from: 0.8, to: 0.2, steps: 0 }
 * const schedule = s.kind === "linear" ? { ...s, steps: 500 } : s;
 * ```
 */
export function parseAlphaSchedule(spec: string): AlphaSchedule {
  const bad = (why: string) =>
    new RangeError(
      `--alpha-schedule "${spec}": ${why} (expected "0.5", "constant:0.5", "0.8:0.2", ` +
        `"linear:0.8:0.2" or "linear:0.8:0.2:STEPS", alphas in [0, 1])`,
    );
  let parts = spec.trim().split(":");
  let kind: string | null = null;
  if (parts[0] === "constant" || parts[0] === "linear") [kind, ...parts] = parts;
  const nums = parts.map((p) => (p.trim() === "" ? NaN : Number(p)));
  const alpha = (x: number) => {
    if (!(x >= 0 && x <= 1)) throw bad(`alpha ${x} is not a number in [0, 1]`);
    return x;
  };
  if ((kind ?? "constant") === "constant" && nums.length === 1) {
    return { kind: "constant", alpha: alpha(nums[0]) };
  }
  if (kind !== "constant" && (nums.length === 2 || (kind === "linear" && nums.length === 3))) {
    const steps = nums.length === 3 ? nums[2] : 0;
    if (!Number.isInteger(steps) || steps < 0) throw bad(`steps ${parts[2]} is not an integer`);
    return { kind: "linear", from: alpha(nums[0]), to: alpha(nums[1]), steps };
  }
  throw bad("cannot parse");
}

/**
 * α at a 1-based `step`: linear goes from `from` at step 1 to `to` at step `steps`.
 *
 * @example
 * ```ts
 * import { alphaAt } from "./sampler.ts";
 * alphaAt({ kind: "linear", from: 1, to: 0, steps: 11 }, 6); // 0.5
 * ```
 */
export function alphaAt(schedule: AlphaSchedule, step: number): number {
  if (schedule.kind === "constant") return schedule.alpha;
  if (!(schedule.steps >= 1)) {
    throw new RangeError(
      `--alpha-schedule: linear schedule needs steps >= 1 (got ${schedule.steps}); ` +
        `set it to the number of training steps`,
    );
  }
  const t = schedule.steps === 1 ? 1 : Math.min(1, Math.max(0, (step - 1) / (schedule.steps - 1)));
  return schedule.from * (1 - t) + schedule.to * t;
}

/** A shuffled queue of item indices, reshuffled when exhausted. */
class EpochQueue {
  constructor(public items: number[], public order: number[], public pos: number) {}

  static fresh(items: number[], rng: Random): EpochQueue {
    return new EpochQueue(items, rng.shuffle([...items]), 0);
  }

  /** The next item not in `exclude`; needs items.length > exclude.size. */
  take(rng: Random, exclude: Set<number>): number {
    for (;;) {
      if (this.pos >= this.order.length) {
        this.order = rng.shuffle([...this.items]);
        this.pos = 0;
      }
      for (let j = this.pos; j < this.order.length; j++) {
        if (!exclude.has(this.order[j])) {
          [this.order[this.pos], this.order[j]] = [this.order[j], this.order[this.pos]];
          return this.order[this.pos++];
        }
      }
      // Everything left is already in the batch: start the next epoch, keep these for it.
      const left = this.order.slice(this.pos);
      const rest = rng.shuffle(this.items.filter((i) => !left.includes(i)));
      this.order = [...rest, ...left];
      this.pos = 0;
    }
  }
}

interface SamplerState {
  version: 1;
  fingerprint: string;
  step: number;
  rng: RandomState;
  xx: Record<string, { order: number[]; pos: number }>;
  xy: { order: number[]; pos: number } | null;
  similarity: number[][] | null;
}

function fnv1a(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, "0");
}

/**
 * Seeded, resumable batch sampler (see the module doc for the exact scheme).
 *
 * @example
 * ```ts
 * import { BatchSampler } from "./sampler.ts";
 * import type { QaDataset } from "./data.ts";
 * const data: QaDataset = {
 *   source: "inline",
 *   languages: ["de", "en"],
 *   items: ["a", "b", "c"].map((id) => ({
 *     id,
 *     question: { en: `q ${id}`, de: `F ${id}` },
 *     answer: { en: `a ${id}`, de: `A ${id}` },
 *   })),
 * };
 * const sampler = new BatchSampler(data, { kind: "hybrid", batchSize: 2, seed: 1 });
 * const batch = sampler.next(); // { step: 1, kind: "xx" | "xy", pairs: [...2 pairs] }
 * const saved = sampler.state();
 * const again = BatchSampler.restore(data, { kind: "hybrid", batchSize: 2, seed: 1 }, saved);
 * console.log(JSON.stringify(again.next()) === JSON.stringify(sampler.next())); // true
 * ```
 */
export class BatchSampler {
  /** The languages sampled from, in the order of the similarity matrix. */
  readonly langs: string[];
  /** Warnings raised while setting up (also sent to `opts.warn`). */
  readonly warnings: string[] = [];
  #data: QaDataset;
  #opts: SamplerOptions;
  #rng: Random;
  #step = 0;
  /** Per item, its languages among `langs` (sorted). */
  #itemLangs: string[][];
  #xxLangs: string[] = [];
  #xx = new Map<string, EpochQueue>();
  #xy: EpochQueue | null = null;
  #similarity: number[][] | null = null;
  #temperature: number;
  #schedule: AlphaSchedule;
  #fingerprint: string;

  constructor(data: QaDataset, opts: SamplerOptions) {
    const where = `BatchSampler(${opts.kind})`;
    if (!["xx", "xy", "hybrid", "lang-sim"].includes(opts.kind)) {
      throw new RangeError(`BatchSampler: unknown kind "${opts.kind}"`);
    }
    if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) {
      throw new RangeError(`${where}: batchSize must be an integer >= 1, got ${opts.batchSize}`);
    }
    const alpha = opts.alpha ?? 0.5;
    if (!(alpha >= 0 && alpha <= 1)) throw new RangeError(`${where}: alpha ${alpha} not in [0, 1]`);
    this.#schedule = opts.alphaSchedule ?? { kind: "constant", alpha };
    if (this.#schedule.kind === "linear") alphaAt(this.#schedule, 1); // validates steps
    this.#temperature = opts.similarityTemperature ?? 0.1;
    if (!Number.isFinite(this.#temperature) || this.#temperature === 0) {
      throw new RangeError(`${where}: similarityTemperature must be finite and non-zero`);
    }
    this.#data = data;
    this.#opts = opts;
    this.langs = opts.langs ? [...opts.langs] : [...data.languages];
    for (const lang of this.langs) {
      if (!data.languages.includes(lang)) {
        throw new RangeError(
          `${where}: language "${lang}" is not in ${data.source} (${data.languages.join(", ")})`,
        );
      }
    }
    if (new Set(this.langs).size !== this.langs.length || this.langs.length === 0) {
      throw new RangeError(`${where}: langs must be distinct and non-empty`);
    }
    const wanted = new Set(this.langs);
    this.#itemLangs = data.items.map((it) =>
      Object.keys(it.question).filter((l) => wanted.has(l) && l in it.answer).sort()
    );
    this.#fingerprint = fnv1a(JSON.stringify([
      opts.kind,
      opts.batchSize,
      opts.seed,
      this.langs,
      data.items.map((it, i) => [it.id, this.#itemLangs[i]]),
    ]));

    const bs = opts.batchSize;
    const needXx = opts.kind === "xx" || (opts.kind !== "xy" && this.#mayBe(true));
    const needXy = opts.kind === "xy" || (opts.kind !== "xx" && this.#mayBe(false));
    const perLang = new Map(this.langs.map((l) => [l, [] as number[]]));
    const multi: number[] = [];
    this.#itemLangs.forEach((ls, i) => {
      for (const l of ls) perLang.get(l)!.push(i);
      if (ls.length >= 2) multi.push(i);
    });
    const usable = this.#itemLangs.filter((ls) => ls.length > 0).length;
    if (usable < bs) {
      throw new RangeError(
        `${where}: batch size ${bs} is larger than the ${usable} items available in ` +
          `${this.langs.join(", ")}`,
      );
    }
    this.#rng = new Random(opts.seed);
    if (needXx) {
      for (const lang of this.langs) {
        const n = perLang.get(lang)!.length;
        if (n >= bs) this.#xxLangs.push(lang);
        else {
          this.#warn(
            `${where}: skipping language "${lang}" for X-X batches: ${n} items < batch size ${bs}`,
          );
        }
      }
      if (this.#xxLangs.length === 0) {
        throw new RangeError(
          `${where}: no language has batch size ${bs} items for X-X batches (` +
            this.langs.map((l) => `${l}: ${perLang.get(l)!.length}`).join(", ") + ")",
        );
      }
      for (const lang of this.#xxLangs) {
        this.#xx.set(lang, EpochQueue.fresh(perLang.get(lang)!, this.#rng));
      }
    }
    if (needXy) {
      if (this.langs.length < 2) {
        throw new RangeError(
          `${where}: X-Y batches need at least 2 languages, got ${this.langs.join(", ")}`,
        );
      }
      if (multi.length < bs) {
        throw new RangeError(
          `${where}: batch size ${bs} is larger than the ${multi.length} items with at least ` +
            `two of the languages ${this.langs.join(", ")} (needed for X-Y batches)`,
        );
      }
      this.#xy = EpochQueue.fresh(multi, this.#rng);
    }
    if (opts.similarity) this.setSimilarity(opts.similarity);
  }

  /** Whether the α schedule can give an X-X (`xx` true) or an X-Y batch. */
  #mayBe(xx: boolean): boolean {
    const s = this.#schedule;
    const ends = s.kind === "constant" ? [s.alpha] : [s.from, s.to];
    return xx ? ends.some((a) => a > 0) : ends.some((a) => a < 1);
  }

  #warn(message: string): void {
    this.warnings.push(message);
    (this.#opts.warn ?? console.warn)(message);
  }

  /** Batches in one pass over the distinct usable items: ceil(items / batchSize). */
  epochSize(): number {
    const usable = this.#itemLangs.filter((ls) => ls.length > 0).length;
    return Math.ceil(usable / this.#opts.batchSize);
  }

  /** The current lang-sim matrix (null: uniform). */
  get similarity(): number[][] | null {
    return this.#similarity?.map((r) => [...r]) ?? null;
  }

  /**
   * Sets the lang-sim similarity matrix (`langs` × `langs`, rows = query language). Passage
   * languages are drawn with probability softmax(sim[q][p] / temperature) over the item's other
   * languages; the diagonal is never used.
   */
  setSimilarity(matrix: number[][]): void {
    const n = this.langs.length;
    if (
      !Array.isArray(matrix) || matrix.length !== n ||
      !matrix.every((r) => Array.isArray(r) && r.length === n && r.every(Number.isFinite))
    ) {
      throw new RangeError(
        `BatchSampler.setSimilarity: expected a finite ${n}×${n} matrix for ` +
          `[${this.langs.join(", ")}], got ${
            Array.isArray(matrix) ? `${matrix.length} rows` : typeof matrix
          }`,
      );
    }
    this.#similarity = matrix.map((r) => [...r]);
  }

  /** α for a 1-based step (1 for `xx`, 0 for `xy`). */
  alpha(step: number): number {
    if (this.#opts.kind === "xx") return 1;
    if (this.#opts.kind === "xy") return 0;
    return alphaAt(this.#schedule, step);
  }

  /** The next batch. */
  next(): Batch {
    const step = ++this.#step;
    const bs = this.#opts.batchSize;
    const kind = this.#opts.kind;
    const isXx = kind === "xx" ||
      (kind !== "xy" && this.#rng.float() < this.alpha(step));
    const taken = new Set<number>();
    const pairs: BatchPair[] = [];
    if (isXx) {
      const lang = this.#rng.pick(this.#xxLangs);
      const queue = this.#xx.get(lang)!;
      for (let k = 0; k < bs; k++) {
        const i = queue.take(this.#rng, taken);
        taken.add(i);
        pairs.push({
          id: this.#data.items[i].id,
          queryLang: lang,
          passageLang: lang,
          itemIndex: i,
        });
      }
      return { step, kind: "xx", pairs };
    }
    for (let k = 0; k < bs; k++) {
      const i = this.#xy!.take(this.#rng, taken);
      taken.add(i);
      const ls = this.#itemLangs[i];
      const queryLang = this.#rng.pick(ls);
      const others = ls.filter((l) => l !== queryLang);
      const passageLang = others[this.#pickPassage(queryLang, others)];
      pairs.push({ id: this.#data.items[i].id, queryLang, passageLang, itemIndex: i });
    }
    return { step, kind: "xy", pairs };
  }

  #pickPassage(queryLang: string, others: string[]): number {
    if (this.#opts.kind !== "lang-sim" || !this.#similarity) return this.#rng.int(others.length);
    const row = this.#similarity[this.langs.indexOf(queryLang)];
    const logits = others.map((l) => row[this.langs.indexOf(l)] / this.#temperature);
    const max = Math.max(...logits);
    return this.#rng.weighted(logits.map((x) => Math.exp(x - max)));
  }

  /** Everything needed to continue identically (plain JSON). */
  state(): unknown {
    const q = (e: EpochQueue) => ({ order: [...e.order], pos: e.pos });
    const s: SamplerState = {
      version: 1,
      fingerprint: this.#fingerprint,
      step: this.#step,
      rng: this.#rng.state(),
      xx: Object.fromEntries([...this.#xx].map(([l, e]) => [l, q(e)])),
      xy: this.#xy ? q(this.#xy) : null,
      similarity: this.similarity,
    };
    return s;
  }

  /**
   * A sampler continuing from `state` (from {@linkcode BatchSampler.state}); `data` and the
   * options that shape batches (kind, batch size, seed, langs) must be the ones it was made with.
   */
  static restore(data: QaDataset, opts: SamplerOptions, state: unknown): BatchSampler {
    const s = state as SamplerState;
    const sampler = new BatchSampler(data, { ...opts, warn: () => {} });
    sampler.#opts = opts;
    if (!s || s.version !== 1 || typeof s.step !== "number") {
      throw new TypeError("BatchSampler.restore: not a sampler state (version 1)");
    }
    if (s.fingerprint !== sampler.#fingerprint) {
      throw new RangeError(
        "BatchSampler.restore: the state was made with other data or options " +
          "(kind, batch size, seed, langs or items differ)",
      );
    }
    const load = (e: EpochQueue, saved: { order: number[]; pos: number } | undefined) => {
      const want = [...e.items].sort((a, b) => a - b);
      const ok = saved && Array.isArray(saved.order) && saved.order.length === want.length &&
        [...saved.order].sort((a, b) => a - b).every((v, k) => v === want[k]) &&
        Number.isInteger(saved.pos) && saved.pos >= 0 && saved.pos <= saved.order.length;
      if (!ok) throw new TypeError("BatchSampler.restore: a queue in the state is corrupt");
      e.order = [...saved.order];
      e.pos = saved.pos;
    };
    for (const [lang, e] of sampler.#xx) load(e, s.xx?.[lang]);
    if (sampler.#xy) load(sampler.#xy, s.xy ?? undefined);
    sampler.#rng = Random.restore(s.rng);
    sampler.#step = s.step;
    sampler.#similarity = null;
    if (s.similarity) sampler.setSimilarity(s.similarity);
    return sampler;
  }
}

/** A batch in the `train` log / replay format (snake_case keys). */
export interface BatchJson {
  step: number;
  kind: "xx" | "xy";
  pairs: { id: string; query_lang: string; passage_lang: string }[];
}

/**
 * The `train` log line of a batch: `{"step","kind","pairs":[{"id","query_lang","passage_lang"}]}`.
 *
 * @example
 * ```ts
 * import { batchToJson } from "./sampler.ts";
 * const line = JSON.stringify(batchToJson({
 *   step: 1,
 *   kind: "xy",
 *   pairs: [{ id: "q1", queryLang: "en", passageLang: "de", itemIndex: 0 }],
 * }));
 * // {"step":1,"kind":"xy","pairs":[{"id":"q1","query_lang":"en","passage_lang":"de"}]}
 * ```
 */
export function batchToJson(batch: Batch): BatchJson {
  return {
    step: batch.step,
    kind: batch.kind,
    pairs: batch.pairs.map((p) => ({
      id: p.id,
      query_lang: p.queryLang,
      passage_lang: p.passageLang,
    })),
  };
}

/**
 * Reads a `train` log line back into a {@linkcode Batch} of `data` (for replaying batches),
 * checking that every id exists and has both languages, and that ids are unique in the batch.
 *
 * @example
 * ```ts
 * import { batchFromJson } from "./sampler.ts";
 * import type { QaDataset } from "./data.ts";
 * const data: QaDataset = {
 *   source: "inline",
 *   languages: ["en"],
 *   items: [{ id: "q1", question: { en: "Who?" }, answer: { en: "Me." } }],
 * };
 * const line = '{"step":1,"kind":"xx","pairs":[{"id":"q1","query_lang":"en","passage_lang":"en"}]}';
 * batchFromJson(JSON.parse(line), data).pairs[0].itemIndex; // 0
 * ```
 */
export function batchFromJson(json: unknown, data: QaDataset): Batch {
  const j = json as BatchJson;
  const where = `batchFromJson(step ${j?.step})`;
  if (
    !j || !Number.isInteger(j.step) || (j.kind !== "xx" && j.kind !== "xy") ||
    !Array.isArray(j.pairs)
  ) {
    throw new TypeError(`${where}: expected {"step": int, "kind": "xx"|"xy", "pairs": [...]}`);
  }
  const index = new Map(data.items.map((it, i) => [it.id, i]));
  const seen = new Set<string>();
  const pairs = j.pairs.map((p, k) => {
    const i = index.get(p?.id);
    if (i === undefined) throw new RangeError(`${where}: pairs[${k}] id "${p?.id}" not in data`);
    if (seen.has(p.id)) throw new RangeError(`${where}: id "${p.id}" twice in one batch`);
    seen.add(p.id);
    const it = data.items[i];
    for (const lang of [p.query_lang, p.passage_lang]) {
      if (!(lang in it.question) || !(lang in it.answer)) {
        throw new RangeError(`${where}: item "${p.id}" has no language "${lang}"`);
      }
    }
    return { id: p.id, queryLang: p.query_lang, passageLang: p.passage_lang, itemIndex: i };
  });
  return { step: j.step, kind: j.kind, pairs };
}

/**
 * A lang-sim matrix in `langs` order from a similarity file's JSON: either
 * `{"langs": [...], "matrix": [[...]]}` (any language order, reordered here) or nested weights
 * `{"en": {"de": 0.9, ...}, ...}` (the diagonal may be left out). Every off-diagonal pair of `langs`
 * must be present.
 *
 * @example
 * ```ts
 * import { similarityFromJson } from "./sampler.ts";
 * similarityFromJson({ en: { de: 0.9 }, de: { en: 0.8 } }, ["de", "en"]); // [[0, 0.8], [0.9, 0]]
 * ```
 */
export function similarityFromJson(json: unknown, langs: string[]): number[][] {
  const where = "similarity file";
  const j = json as Record<string, unknown>;
  let get: (q: string, p: string) => unknown;
  if (j && Array.isArray(j.langs) && Array.isArray(j.matrix)) {
    const order = j.langs as string[];
    const m = j.matrix as unknown[][];
    if (
      m.length !== order.length || !m.every((r) => Array.isArray(r) && r.length === order.length)
    ) {
      throw new RangeError(
        `${where}: "matrix" must be ${order.length}×${order.length} like "langs"`,
      );
    }
    get = (q, p) =>
      order.includes(q) && order.includes(p) ? m[order.indexOf(q)][order.indexOf(p)] : undefined;
  } else if (j && typeof j === "object" && !Array.isArray(j)) {
    get = (q, p) => (j[q] as Record<string, unknown> | undefined)?.[p];
  } else {
    throw new TypeError(`${where}: expected {"langs", "matrix"} or {query: {passage: weight}}`);
  }
  return langs.map((q) =>
    langs.map((p) => {
      const w = get(q, p);
      if (q === p && w === undefined) return 0;
      if (typeof w !== "number" || !Number.isFinite(w)) {
        throw new RangeError(`${where}: no finite weight for ${q} → ${p}`);
      }
      return w;
    })
  );
}

/**
 * A 0/1 similarity matrix from language groups (`groups.json` of the synthetic corpus:
 * `{group: [langs]}`): 1 within a group, 0 across groups.
 *
 * @example
 * ```ts
 * import { similarityFromGroups } from "./sampler.ts";
 * similarityFromGroups({ g1: ["a", "b"], g2: ["c"] }, ["a", "b", "c"]);
 * // [[1, 1, 0], [1, 1, 0], [0, 0, 1]]
 * ```
 */
export function similarityFromGroups(
  groups: Record<string, string[]>,
  langs: string[],
): number[][] {
  const groupOf = new Map<string, string>();
  for (const [g, ls] of Object.entries(groups)) for (const l of ls) groupOf.set(l, g);
  for (const l of langs) {
    if (!groupOf.has(l)) throw new RangeError(`similarityFromGroups: "${l}" is in no group`);
  }
  return langs.map((q) => langs.map((p) => (groupOf.get(q) === groupOf.get(p) ? 1 : 0)));
}
