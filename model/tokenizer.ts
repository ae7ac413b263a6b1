/**
 * The XLM-R tokenizer: SentencePiece's Unigram model with Viterbi decoding, reproducing the real
 * SentencePiece library id for id. It loads a Hugging Face `tokenizer.json` or a SentencePiece
 * `sentencepiece.bpe.model` (fairseq id shift: `<s>`=0 `<pad>`=1 `</s>`=2 `<unk>`=3, piece i → i+1,
 * `<mask>` last), and writes `tokenizer.json` back.
 *
 * Faithful to SentencePiece rather than to Hugging Face's approximation of it: normalisation is
 * SentencePiece's (trim, fold whitespace, dummy prefix; see precompiled_charsmap.ts), the lattice
 * is scored in float32 with SentencePiece's tie-breaking, an unknown character scores
 * `min score − 10`, and runs of unknown characters become one `<unk>`. Special tokens written
 * literally in the text ("<s>") are not recognised, as in SentencePiece itself.
 * @module
 */
import { type DummyPrefix, type NormalizerOptions, SpmNormalizer } from "./precompiled_charsmap.ts";
import { ModelType, parseSentencePieceModel, PieceType } from "./sentencepiece_model.ts";
import { checkMaxLength, truncateLongestFirst } from "./truncation.ts";

/** SentencePiece's penalty for an unknown character below the lowest piece score. */
const UNK_PENALTY = 10;

/** A Hugging Face added token as tokenizer.json lists it. */
interface AddedToken {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

/** Everything a tokenizer is made from. */
interface Parts {
  pieces: string[];
  scores: Float32Array;
  added: AddedToken[];
  unkId: number;
  bosId: number;
  eosId: number;
  padId: number;
  maskId: number;
  normalizer: NormalizerOptions;
  source: string;
}

/** Options of {@link XlmrTokenizer.fromVocab}. */
export interface FromVocabOptions {
  /**
   * Trim and fold whitespace as SentencePiece does (written to tokenizer.json as Strip + Replace).
   * Default false: no normaliser at all (`normalizer: null`), Hugging Face Metaspace semantics.
   */
  foldWhitespace?: boolean;
  /** Put "▁" in front of the text (default true). */
  addDummyPrefix?: boolean;
  /** Name used in error messages. */
  source?: string;
}

/** A byte-keyed trie of the pieces, children sorted by byte for binary search. */
class PieceTrie {
  private constructor(
    private readonly value: Int32Array,
    private readonly first: Int32Array,
    private readonly count: Int32Array,
    private readonly labels: Uint8Array,
    private readonly targets: Int32Array,
  ) {}

  static build(keys: Uint8Array[], ids: number[]): PieceTrie {
    const order = keys.map((_, i) => i).sort((a, b) => compareBytes(keys[a], keys[b]));
    const value: number[] = [];
    const first: number[] = [];
    const count: number[] = [];
    const labels: number[] = [];
    const targets: number[] = [];
    const build = (lo: number, hi: number, depth: number): number => {
      const node = value.length;
      value.push(-1);
      first.push(0);
      count.push(0);
      if (lo < hi && keys[order[lo]].length === depth) value[node] = ids[order[lo++]];
      const groups: [number, number, number][] = [];
      for (let i = lo; i < hi;) {
        const b = keys[order[i]][depth];
        let j = i + 1;
        while (j < hi && keys[order[j]][depth] === b) j++;
        groups.push([b, i, j]);
        i = j;
      }
      first[node] = labels.length;
      count[node] = groups.length;
      for (const [b] of groups) {
        labels.push(b);
        targets.push(-1);
      }
      groups.forEach(([, i, j], k) => targets[first[node] + k] = build(i, j, depth + 1));
      return node;
    };
    build(0, keys.length, 0);
    return new PieceTrie(
      Int32Array.from(value),
      Int32Array.from(first),
      Int32Array.from(count),
      Uint8Array.from(labels),
      Int32Array.from(targets),
    );
  }

  /** The id stored at `node`, or -1. */
  id(node: number): number {
    return this.value[node];
  }

  /** The child of `node` along byte `b`, or -1. */
  child(node: number, b: number): number {
    let lo = this.first[node];
    let hi = lo + this.count[node] - 1;
    const labels = this.labels;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const l = labels[mid];
      if (l === b) return this.targets[mid];
      if (l < b) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** SentencePiece's OneCharLen: UTF-8 length from the lead byte. */
function oneCharLen(b: number): number {
  const hi = b >> 4;
  return hi < 12 ? 1 : hi < 14 ? 2 : hi === 14 ? 3 : 4;
}

function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

function fromBase64(text: string, where: string): Uint8Array {
  try {
    const bin = atob(text);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  } catch {
    throw new Error(`${where}: not valid base64`);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

const SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"];

/** XLM-R's special tokens, as its tokenizer.json lists them (`<mask>` strips left space). */
function xlmrAddedTokens(maskId: number): AddedToken[] {
  return ["<s>", "<pad>", "</s>", "<unk>"].map((content, id): AddedToken => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  })).concat([{
    id: maskId,
    content: "<mask>",
    single_word: false,
    lstrip: true,
    rstrip: false,
    normalized: false,
    special: true,
  }]);
}

/**
 * The XLM-R tokenizer (SentencePiece Unigram).
 *
 * @example
 * ```ts
 * import { XlmrTokenizer } from "./tokenizer.ts";
 * const tok = XlmrTokenizer.fromVocab([["▁hello", -1], ["▁world", -2], ["▁", -3]]);
 * console.log(tok.encode("hello world")); // [0, 4, 5, 2]
 * ```
 */
export class XlmrTokenizer {
  /** Always "sentencepiece" (see {@link TextTokenizer}). */
  readonly kind = "sentencepiece" as const;
  readonly vocabSize: number;
  readonly padId: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly unkId: number;
  /** The `<mask>` id, or -1 when the vocabulary has none. */
  readonly maskId: number;
  /** Where the tokenizer came from (for messages). */
  readonly source: string;
  private readonly pieces: string[];
  private readonly scores: Float32Array;
  private readonly added: AddedToken[];
  private readonly normalizer: SpmNormalizer;
  private readonly trie: PieceTrie;
  private readonly unkScore: number;
  private pieceIds: Map<string, number> | null = null;

  private constructor(p: Parts) {
    this.pieces = p.pieces;
    this.scores = p.scores;
    this.added = p.added;
    this.vocabSize = p.pieces.length;
    this.unkId = p.unkId;
    this.bosId = p.bosId;
    this.eosId = p.eosId;
    this.padId = p.padId;
    this.maskId = p.maskId;
    this.source = p.source;
    for (const [what, id] of [["<unk>", p.unkId], ["<s>", p.bosId], ["</s>", p.eosId]] as const) {
      if (!(Number.isInteger(id) && id >= 0 && id < this.vocabSize)) {
        throw new Error(
          `${p.source}: ${what} id ${id} is outside the vocabulary (${this.vocabSize})`,
        );
      }
    }
    this.normalizer = new SpmNormalizer(p.normalizer, p.source);
    // Special tokens (and <unk>) are never matched inside text, as SentencePiece's control pieces.
    const special = new Set(p.added.filter((t) => t.special).map((t) => t.id));
    special.add(p.unkId);
    const enc = new TextEncoder();
    const keys: Uint8Array[] = [];
    const ids: number[] = [];
    const seen = new Map<string, number>();
    let minScore = Infinity;
    for (let id = 0; id < p.pieces.length; id++) {
      if (special.has(id)) continue;
      const piece = p.pieces[id];
      if (piece === "") throw new Error(`${p.source}: piece ${id} is empty`);
      const dup = seen.get(piece);
      if (dup !== undefined) {
        throw new Error(
          `${p.source}: piece ${JSON.stringify(piece)} appears twice (ids ${dup}, ${id})`,
        );
      }
      seen.set(piece, id);
      if (!Number.isFinite(p.scores[id])) {
        throw new Error(
          `${p.source}: piece ${id} ${JSON.stringify(piece)} has score ${p.scores[id]}`,
        );
      }
      keys.push(enc.encode(piece));
      ids.push(id);
      minScore = Math.min(minScore, p.scores[id]);
    }
    if (keys.length === 0) throw new Error(`${p.source}: the vocabulary has no ordinary pieces`);
    this.unkScore = Math.fround(minScore - UNK_PENALTY);
    this.trie = PieceTrie.build(keys, ids);
  }

  /**
   * Loads `dir/tokenizer.json`, or else `dir/sentencepiece.bpe.model`.
   *
   * @example
   * ```ts
   * import { XlmrTokenizer } from "./tokenizer.ts";
   * const dir = await Deno.makeTempDir();
   * const tok = XlmrTokenizer.fromVocab([["▁a", -1]]);
   * await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify(tok.toJson()));
   * console.log((await XlmrTokenizer.fromDir(dir)).vocabSize); // 6
   * ```
   */
  static async fromDir(dir: string): Promise<XlmrTokenizer> {
    const jsonPath = `${dir}/tokenizer.json`;
    const spmPath = `${dir}/sentencepiece.bpe.model`;
    let text: string | null = null;
    try {
      const bytes = await Deno.readFile(jsonPath);
      try {
        text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
      } catch {
        throw new Error(`${jsonPath}: not valid UTF-8`);
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) {
        throw new Error(
          (e as Error).message.startsWith(jsonPath)
            ? (e as Error).message
            : `${jsonPath}: cannot read: ${(e as Error).message}`,
        );
      }
    }
    if (text !== null) {
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch (e) {
        throw new Error(`${jsonPath}: not valid JSON: ${(e as Error).message}`);
      }
      return XlmrTokenizer.fromTokenizerJson(json, jsonPath);
    }
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(spmPath);
    } catch {
      throw new Error(`${dir}: no tokenizer.json or sentencepiece.bpe.model`);
    }
    return XlmrTokenizer.fromSentencePieceModel(bytes, spmPath);
  }

  /**
   * Reads a Hugging Face tokenizer.json with a Unigram model (as XLM-R's). Supported normalisers:
   * null, Precompiled, and a Sequence of Precompiled / Replace(" {2,}") / Strip — the last two
   * switch on SentencePiece's whitespace trimming and folding. The pre-tokeniser must be Metaspace.
   *
   * @example
   * ```ts
   * import { XlmrTokenizer } from "./tokenizer.ts";
   * const json = XlmrTokenizer.fromVocab([["▁a", -1]]).toJson();
   * console.log(XlmrTokenizer.fromTokenizerJson(json, "demo").tokenize("a")); // [4]
   * ```
   */
  static fromTokenizerJson(json: unknown, source: string): XlmrTokenizer {
    if (!isObject(json)) throw new Error(`${source}: tokenizer.json must be a JSON object`);
    const model = json.model;
    if (!isObject(model)) throw new Error(`${source}: model must be an object`);
    if (model.type !== "Unigram") {
      throw new Error(
        `${source}: model.type ${
          JSON.stringify(model.type)
        } is not supported (only "Unigram", the SentencePiece model XLM-R uses)`,
      );
    }
    if (model.byte_fallback === true) {
      throw new Error(`${source}: model.byte_fallback is not supported`);
    }
    if (!Array.isArray(model.vocab)) throw new Error(`${source}: model.vocab must be an array`);
    const pieces: string[] = [];
    const scoreList: number[] = [];
    model.vocab.forEach((entry, i) => {
      if (
        !Array.isArray(entry) || entry.length !== 2 || typeof entry[0] !== "string" ||
        typeof entry[1] !== "number"
      ) {
        throw new Error(`${source}: model.vocab[${i}] must be [piece, score]`);
      }
      pieces.push(entry[0]);
      scoreList.push(entry[1]);
    });
    const added: AddedToken[] = [];
    const addedList = json.added_tokens ?? [];
    if (!Array.isArray(addedList)) throw new Error(`${source}: added_tokens must be an array`);
    addedList.forEach((t, i) => {
      if (!isObject(t) || !Number.isInteger(t.id) || typeof t.content !== "string") {
        throw new Error(`${source}: added_tokens[${i}] must have an integer id and a content`);
      }
      const id = t.id as number;
      if (id < 0 || id > pieces.length) {
        throw new Error(`${source}: added_tokens[${i}] id ${id} is outside the vocabulary`);
      }
      if (t.special !== true) {
        throw new Error(
          `${source}: added_tokens[${i}] ${
            JSON.stringify(t.content)
          } is not special; non-special added tokens are not supported`,
        );
      }
      if (id === pieces.length) {
        pieces.push(t.content);
        scoreList.push(0);
      } else if (pieces[id] !== t.content) {
        throw new Error(
          `${source}: added_tokens[${i}] ${JSON.stringify(t.content)} has id ${id}, ` +
            `which model.vocab calls ${JSON.stringify(pieces[id])}`,
        );
      }
      added.push({
        id,
        content: t.content,
        single_word: t.single_word === true,
        lstrip: t.lstrip === true,
        rstrip: t.rstrip === true,
        normalized: t.normalized === true,
        special: true,
      });
    });
    const unkId = model.unk_id;
    if (!Number.isInteger(unkId) || (unkId as number) < 0 || (unkId as number) >= pieces.length) {
      throw new Error(`${source}: model.unk_id ${JSON.stringify(unkId)} is not a vocabulary id`);
    }
    const idOf = (content: string, required: boolean): number => {
      const t = added.find((a) => a.content === content);
      if (t) return t.id;
      const i = pieces.indexOf(content);
      if (i < 0 && required) throw new Error(`${source}: the vocabulary has no ${content} token`);
      return i;
    };
    const normalizer = parseNormalizer(json.normalizer, `${source}: normalizer`);
    normalizer.addDummyPrefix = parseMetaspace(
      json.pre_tokenizer,
      `${source}: pre_tokenizer`,
      normalizer.removeExtraWhitespaces,
    );
    return new XlmrTokenizer({
      pieces,
      scores: Float32Array.from(scoreList),
      added,
      unkId: unkId as number,
      bosId: idOf("<s>", true),
      eosId: idOf("</s>", true),
      padId: idOf("<pad>", true),
      maskId: idOf("<mask>", false),
      normalizer,
      source,
    });
  }

  /**
   * Reads a SentencePiece `.model` (Unigram, XLM-R layout: pieces 0–2 are `<unk>`, `<s>`, `</s>`)
   * and applies the fairseq id shift.
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * import { XlmrTokenizer } from "./tokenizer.ts";
   * // A four-piece model as protobuf: each piece is field 1 {1: text, 2: float32 score, 3: type}.
   * const piece = (text: string, score: number, type: number) => {
   *   const t = new TextEncoder().encode(text);
   *   const body = [0x0a, t.length, ...t, 0x15, ...new Uint8Array(new Float32Array([score]).buffer)];
   *   return [0x0a, body.length + 2, ...body, 0x18, type];
   * };
   * const bytes = Uint8Array.from([
   *   ...piece("<unk>", 0, 2), ...piece("<s>", 0, 3), ...piece("</s>", 0, 3), ...piece("\u2581hi", -1, 1),
   * ]);
   * const tok = XlmrTokenizer.fromSentencePieceModel(bytes, "tiny.model");
   * // fairseq layout: <s>=0 <pad>=1 </s>=2 <unk>=3, then the pieces shifted by one, <mask> last.
   * equal(tok.vocabSize, 6);
   * equal(tok.encode("hi").join(" "), "0 4 2");
   * ```
   */
  static fromSentencePieceModel(bytes: Uint8Array, source: string): XlmrTokenizer {
    const spm = parseSentencePieceModel(bytes, source);
    if (spm.trainer.modelType !== ModelType.UNIGRAM) {
      const name = Object.entries(ModelType).find(([, v]) => v === spm.trainer.modelType)?.[0] ??
        String(spm.trainer.modelType);
      throw new Error(
        `${source}: SentencePiece model type ${name} is not supported (only UNIGRAM)`,
      );
    }
    if (spm.trainer.byteFallback) throw new Error(`${source}: byte_fallback is not supported`);
    if (spm.trainer.treatWhitespaceAsSuffix) {
      throw new Error(`${source}: treat_whitespace_as_suffix is not supported`);
    }
    if (!spm.normalizer.escapeWhitespaces) {
      throw new Error(`${source}: escape_whitespaces = false is not supported`);
    }
    const layout = [["<unk>", PieceType.UNKNOWN], ["<s>", PieceType.CONTROL], [
      "</s>",
      PieceType.CONTROL,
    ]] as const;
    layout.forEach(([piece, type], i) => {
      const p = spm.pieces[i];
      if (!p || p.piece !== piece || p.type !== type) {
        throw new Error(
          `${source}: piece ${i} must be ${piece} (XLM-R layout), got ${JSON.stringify(p?.piece)}`,
        );
      }
    });
    const n = spm.pieces.length;
    const pieces = ["<s>", "<pad>", "</s>", "<unk>"];
    const scores = new Float32Array(n + 2);
    const added = xlmrAddedTokens(n + 1);
    for (let i = 3; i < n; i++) {
      const p = spm.pieces[i];
      if (p.type === PieceType.USER_DEFINED || p.type === PieceType.BYTE) {
        throw new Error(
          `${source}: piece ${i} ${JSON.stringify(p.piece)} has type ${
            p.type === PieceType.BYTE ? "BYTE" : "USER_DEFINED"
          }, which is not supported`,
        );
      }
      pieces.push(p.piece);
      scores[i + 1] = p.score;
      // Control and unused pieces exist but never match text: treat them as special.
      if (p.type !== PieceType.NORMAL) {
        added.push({
          id: i + 1,
          content: p.piece,
          single_word: false,
          lstrip: false,
          rstrip: false,
          normalized: false,
          special: true,
        });
      }
    }
    pieces.push("<mask>");
    added.sort((a, b) => a.id - b.id);
    const cm = spm.normalizer.precompiledCharsmap;
    return new XlmrTokenizer({
      pieces,
      scores,
      added,
      unkId: 3,
      bosId: 0,
      eosId: 2,
      padId: 1,
      maskId: n + 1,
      normalizer: {
        charsmap: cm.length > 0 ? cm : null,
        addDummyPrefix: spm.normalizer.addDummyPrefix ? "always" : "never",
        removeExtraWhitespaces: spm.normalizer.removeExtraWhitespaces,
        escapeWhitespaces: true,
      },
      source,
    });
  }

  /**
   * Builds a Unigram tokenizer from `(piece, log probability)` pairs with XLM-R's special tokens:
   * `<s>`=0 `<pad>`=1 `</s>`=2 `<unk>`=3, the pieces from 4 in the order given, `<mask>` last.
   * No character normalisation.
   *
   * @example
   * ```ts
   * import { XlmrTokenizer } from "./tokenizer.ts";
   * const tok = XlmrTokenizer.fromVocab([["▁ba", -2], ["▁", -3], ["b", -4], ["a", -4]]);
   * console.log(tok.tokenize("baab")); // [4, 7, 6]
   * ```
   */
  static fromVocab(pieces: [string, number][], opts: FromVocabOptions = {}): XlmrTokenizer {
    const source = opts.source ?? "fromVocab";
    const all = ["<s>", "<pad>", "</s>", "<unk>"];
    const scores = [0, 0, 0, 0];
    pieces.forEach((entry, i) => {
      if (!Array.isArray(entry) || typeof entry[0] !== "string" || typeof entry[1] !== "number") {
        throw new TypeError(`${source}: pieces[${i}] must be [piece, score]`);
      }
      if (entry[0] === "" || SPECIALS.includes(entry[0])) {
        throw new TypeError(`${source}: pieces[${i}] ${JSON.stringify(entry[0])} is reserved`);
      }
      all.push(entry[0]);
      scores.push(entry[1]);
    });
    all.push("<mask>");
    scores.push(0);
    return new XlmrTokenizer({
      pieces: all,
      scores: Float32Array.from(scores),
      added: xlmrAddedTokens(all.length - 1),
      unkId: 3,
      bosId: 0,
      eosId: 2,
      padId: 1,
      maskId: all.length - 1,
      normalizer: {
        charsmap: null,
        addDummyPrefix: opts.addDummyPrefix === false
          ? "never"
          : opts.foldWhitespace
          ? "always"
          : "if-missing",
        removeExtraWhitespaces: opts.foldWhitespace === true,
        escapeWhitespaces: true,
      },
      source,
    });
  }

  /** The text after normalisation ("▁" for spaces, dummy prefix included). */
  normalize(text: string): string {
    return this.normalizer.normalize(text);
  }

  /** The piece string of `id`. */
  idToPiece(id: number): string {
    const p = this.pieces[id];
    if (p === undefined) throw new RangeError(`${this.source}: id ${id} is outside the vocabulary`);
    return p;
  }

  /** The id of a piece, or -1. */
  pieceToId(piece: string): number {
    this.pieceIds ??= new Map(this.pieces.map((p, i) => [p, i]));
    return this.pieceIds.get(piece) ?? -1;
  }

  /**
   * The piece ids of `text`, without special tokens.
   *
   * @example
   * ```ts
   * import { XlmrTokenizer } from "./tokenizer.ts";
   * const tok = XlmrTokenizer.fromVocab([["▁a", -1], ["b", -2]]);
   * console.log(tok.tokenize("ab c")); // [4, 5, 3]
   * ```
   */
  tokenize(text: string): number[] {
    if (typeof text !== "string") throw new TypeError(`tokenize: text must be a string`);
    return this.viterbi(this.normalizer.normalizeToBytes(text));
  }

  /**
   * `<s> pieces </s>`; with `maxLength`, the pieces are cut so that the whole fits, keeping `</s>`.
   *
   * @example
   * ```ts
   * import { XlmrTokenizer } from "./tokenizer.ts";
   * const tok = XlmrTokenizer.fromVocab([["▁a", -1]]);
   * console.log(tok.encode("a a a", 4)); // [0, 4, 4, 2]
   * ```
   */
  encode(text: string, maxLength?: number): number[] {
    let ids = this.tokenize(text);
    if (maxLength !== undefined) {
      checkMaxLength(maxLength, 2, "encode");
      if (ids.length > maxLength - 2) ids = ids.slice(0, maxLength - 2);
    }
    return [this.bosId, ...ids, this.eosId];
  }

  /**
   * `<s> A </s></s> B </s>`; with `maxLength`, tokens are removed from the longer side first
   * (Hugging Face "longest_first").
   *
   * @example
   * ```ts
   * import { XlmrTokenizer } from "./tokenizer.ts";
   * const tok = XlmrTokenizer.fromVocab([["▁a", -1], ["▁b", -1]]);
   * console.log(tok.encodePair("a a a", "b", 7)); // [0, 4, 4, 2, 2, 5, 2]
   * ```
   */
  encodePair(a: string, b: string, maxLength?: number): number[] {
    let ia = this.tokenize(a);
    let ib = this.tokenize(b);
    if (maxLength !== undefined) {
      checkMaxLength(maxLength, 4, "encodePair");
      [ia, ib] = truncateLongestFirst(ia, ib, maxLength - 4);
    }
    return [this.bosId, ...ia, this.eosId, this.eosId, ...ib, this.eosId];
  }

  /**
   * {@link encodePair} with token type ids, which XLM-R's tokenizer sets to 0 throughout (as
   * Hugging Face's XLMRobertaTokenizer does, also under a BertModel such as multilingual MiniLM).
   */
  encodePairWithTypes(
    a: string,
    b: string,
    maxLength?: number,
  ): { ids: number[]; typeIds: number[] } {
    const ids = this.encodePair(a, b, maxLength);
    return { ids, typeIds: new Array(ids.length).fill(0) };
  }

  /**
   * Pieces back to text (special tokens dropped, "▁" → space, the dummy prefix removed).
   *
   * @example
   * ```ts
   * import { XlmrTokenizer } from "./tokenizer.ts";
   * const tok = XlmrTokenizer.fromVocab([["▁hi", -1]]);
   * console.log(tok.decode(tok.encode("hi hi"))); // "hi hi"
   * ```
   */
  decode(ids: number[]): string {
    const special = new Set(this.added.map((t) => t.id));
    special.delete(this.unkId);
    const text = ids.filter((id) => !special.has(id)).map((id) => this.idToPiece(id)).join("")
      .replaceAll("\u2581", " ");
    return text.startsWith(" ") ? text.slice(1) : text;
  }

  /**
   * A Hugging Face tokenizer.json for this tokenizer; {@link fromTokenizerJson} reads it back to
   * the same tokenizer.
   *
   * @example
   * ```ts
   * import { XlmrTokenizer } from "./tokenizer.ts";
   * const json = XlmrTokenizer.fromVocab([["▁a", -1]]).toJson() as { model: { type: string } };
   * console.log(json.model.type); // "Unigram"
   * ```
   */
  toJson(): unknown {
    const opts = this.normalizer.options;
    const fold = [
      { type: "Replace", pattern: { Regex: " {2,}" }, content: " " },
    ];
    const precompiled = opts.charsmap
      ? [{ type: "Precompiled", precompiled_charsmap: toBase64(opts.charsmap) }]
      : [];
    let normalizer: unknown = null;
    if (opts.removeExtraWhitespaces) {
      normalizer = {
        type: "Sequence",
        normalizers: opts.charsmap
          ? [...precompiled, ...fold]
          : [{ type: "Strip", strip_left: true, strip_right: true }, ...fold],
      };
    } else if (opts.charsmap) normalizer = precompiled[0];
    const metaspace = {
      type: "Metaspace",
      replacement: "\u2581",
      prepend_scheme: opts.addDummyPrefix === "never" ? "never" : "always",
      split: true,
    };
    const bos = this.pieces[this.bosId];
    const eos = this.pieces[this.eosId];
    const seq = (id: "A" | "B") => ({ Sequence: { id, type_id: 0 } });
    const sp = (id: string) => ({ SpecialToken: { id, type_id: 0 } });
    return {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: this.added.map((t) => ({ ...t })),
      normalizer,
      pre_tokenizer: metaspace,
      post_processor: {
        type: "TemplateProcessing",
        single: [sp(bos), seq("A"), sp(eos)],
        pair: [sp(bos), seq("A"), sp(eos), sp(eos), seq("B"), sp(eos)],
        special_tokens: {
          [bos]: { id: bos, ids: [this.bosId], tokens: [bos] },
          [eos]: { id: eos, ids: [this.eosId], tokens: [eos] },
        },
      },
      decoder: { ...metaspace },
      model: {
        type: "Unigram",
        unk_id: this.unkId,
        vocab: this.pieces.map((p, i) => [p, this.scores[i]]),
        byte_fallback: false,
      },
    };
  }

  /** SentencePiece's Viterbi over the normalised bytes, then unknown runs merged. */
  private viterbi(text: Uint8Array): number[] {
    const n = text.length;
    if (n === 0) return [];
    const score = new Float64Array(n + 1);
    const from = new Int32Array(n + 1).fill(-1);
    const best = new Int32Array(n + 1);
    const trie = this.trie;
    const scores = this.scores;
    for (let start = 0; start < n;) {
      const base = score[start];
      const mblen = Math.min(oneCharLen(text[start]), n - start);
      let hasSingle = false;
      let node = 0;
      for (let k = start; k < n;) {
        node = trie.child(node, text[k++]);
        if (node < 0) break;
        const id = trie.id(node);
        if (id < 0) continue;
        // As SentencePiece's EncodeOptimized: the candidate is a double (exact sum of two
        // floats) compared with the float stored so far, then stored rounded to float. Ties
        // between equal-scoring paths are decided by that rounding, so keep it exactly.
        const cand = scores[id] + base;
        if (from[k] === -1 || cand > score[k]) {
          score[k] = Math.fround(cand);
          from[k] = start;
          best[k] = id;
        }
        if (k - start === mblen) hasSingle = true;
      }
      if (!hasSingle) {
        const k = start + mblen;
        const cand = Math.fround(this.unkScore + base);
        if (from[k] === -1 || cand > score[k]) {
          score[k] = cand;
          from[k] = start;
          best[k] = this.unkId;
        }
      }
      start += mblen;
    }
    const ids: number[] = [];
    for (let end = n; end > 0; end = from[end]) ids.push(best[end]);
    ids.reverse();
    // Consecutive unknown pieces become one.
    const out: number[] = [];
    for (const id of ids) {
      if (id === this.unkId && out.length > 0 && out[out.length - 1] === this.unkId) continue;
      out.push(id);
    }
    return out;
  }
}

/** tokenizer.json normaliser → SentencePiece normaliser settings (dummy prefix set later). */
function parseNormalizer(spec: unknown, where: string): NormalizerOptions {
  const out: NormalizerOptions = {
    charsmap: null,
    addDummyPrefix: "always",
    removeExtraWhitespaces: false,
    escapeWhitespaces: true,
  };
  if (spec === null || spec === undefined) return out;
  const list = isObject(spec) && spec.type === "Sequence" ? spec.normalizers : [spec];
  if (!Array.isArray(list)) throw new Error(`${where}: Sequence.normalizers must be an array`);
  list.forEach((n, i) => {
    const at = `${where}[${i}]`;
    if (!isObject(n)) throw new Error(`${at}: must be an object`);
    if (n.type === "Precompiled") {
      const cm = n.precompiled_charsmap;
      if (cm === null || cm === "" || cm === undefined) return;
      if (typeof cm !== "string") throw new Error(`${at}: precompiled_charsmap must be base64`);
      out.charsmap = fromBase64(cm, `${at}.precompiled_charsmap`);
    } else if (n.type === "Replace") {
      // The converter's rendering of SentencePiece's remove_extra_whitespaces.
      const pattern = isObject(n.pattern) ? (n.pattern.Regex ?? n.pattern.String) : undefined;
      if (pattern !== " {2,}" || (n.content !== " " && n.content !== "\u2581")) {
        throw new Error(
          `${at}: only Replace(" {2,}" → " ") is supported, got ${
            JSON.stringify({ pattern: n.pattern, content: n.content })
          }`,
        );
      }
      out.removeExtraWhitespaces = true;
    } else if (n.type === "Strip") {
      out.removeExtraWhitespaces = true;
    } else {
      throw new Error(
        `${at}: normalizer type ${JSON.stringify(n.type)} is not supported ` +
          `(Precompiled, Replace, Strip)`,
      );
    }
  });
  return out;
}

/** The Metaspace pre-tokeniser's dummy prefix, in our normaliser's terms. */
function parseMetaspace(spec: unknown, where: string, spmWhitespace: boolean): DummyPrefix {
  if (!isObject(spec) || spec.type !== "Metaspace") {
    throw new Error(
      `${where}: must be Metaspace (SentencePiece-style), got ${
        JSON.stringify(isObject(spec) ? spec.type : spec)
      }`,
    );
  }
  if (spec.replacement !== undefined && spec.replacement !== "\u2581") {
    throw new Error(`${where}: replacement ${JSON.stringify(spec.replacement)} is not "▁"`);
  }
  const scheme = spec.prepend_scheme ?? (spec.add_prefix_space === false ? "never" : "always");
  if (scheme === "never") return "never";
  if (scheme !== "always" && scheme !== "first") {
    throw new Error(`${where}: prepend_scheme ${JSON.stringify(scheme)} is not supported`);
  }
  // With SentencePiece's trimming the text never starts with a space, so the two agree.
  return spmWhitespace ? "always" : "if-missing";
}
