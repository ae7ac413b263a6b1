/**
 * BERT's WordPiece tokenizer, as Hugging Face `tokenizers` runs it (`BertTokenizerFast`):
 * special tokens written in the text are split off first; then `BertNormalizer` (clean_text:
 * drop NUL, U+FFFD and Unicode "other" characters, whitespace → " "; handle_chinese_chars: spaces
 * around CJK ideographs; strip_accents: NFD and drop non-spacing marks, by default when
 * lowercasing; lowercase per code point), `BertPreTokenizer` (split on whitespace, isolate every
 * ASCII or Unicode punctuation character), `WordPiece` (greedy longest match with `##`
 * continuations; a word with no match, or longer than `max_input_chars_per_word` characters,
 * becomes `[UNK]`), and `[CLS] A [SEP]` / `[CLS] A [SEP] B [SEP]` with token type 1 for B.
 *
 * Loads a `tokenizer.json` with a WordPiece model, or a folder with `vocab.txt` and
 * `tokenizer_config.json` (`do_lower_case`, `strip_accents`, `tokenize_chinese_chars`).
 * @module
 */
import { join } from "node:path";
import { checkMaxLength, truncateLongestFirst } from "./truncation.ts";

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

/** BertNormalizer settings (`stripAccents` null: follow `lowercase`, as Hugging Face does). */
export interface BertNormalizerOptions {
  cleanText: boolean;
  handleChineseChars: boolean;
  stripAccents: boolean | null;
  lowercase: boolean;
}

/** Everything a WordPiece tokenizer is made from. */
export interface WordPieceParts {
  /** Token strings by id. */
  vocab: string[];
  normalizer: BertNormalizerOptions;
  unkToken: string;
  continuingSubwordPrefix: string;
  maxInputCharsPerWord: number;
  clsToken: string;
  sepToken: string;
  padToken: string;
  /** Tokens matched literally in the raw text before normalisation (special tokens). */
  specialTokens: string[];
  /** Where the tokenizer came from (for messages). */
  source: string;
}

const RE_OTHER = /^\p{C}$/u;
const RE_PUNCT = /^\p{P}$/u;
const RE_WS = /^\p{White_Space}$/u;
const RE_MN = /\p{Mn}/gu;

/** Tabs, newlines and carriage returns count as whitespace; otherwise Unicode White_Space. */
function isWhitespace(c: string): boolean {
  return c === "\t" || c === "\n" || c === "\r" || RE_WS.test(c);
}

/** Unicode category C (Cc, Cf, Cs, Co, Cn), except tab/newline/carriage return. */
function isControl(c: string): boolean {
  if (c === "\t" || c === "\n" || c === "\r") return false;
  return RE_OTHER.test(c);
}

/** ASCII punctuation (which includes symbols such as `$+<=>^`|~`) or Unicode category P. */
function isPunctuation(c: string): boolean {
  const cp = c.codePointAt(0)!;
  if (
    (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) ||
    (cp >= 123 && cp <= 126)
  ) return true;
  return RE_PUNCT.test(c);
}

/** The CJK ideograph blocks of Hugging Face tokenizers' `is_chinese_char`. */
export function isChineseChar(cp: number): boolean {
  return (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) || (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) || (cp >= 0x2b920 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0x2f800 && cp <= 0x2fa1f);
}

/** BertNormalizer on one piece of text. */
export function bertNormalize(text: string, o: BertNormalizerOptions): string {
  let s = text;
  if (o.cleanText) {
    let out = "";
    for (const c of s) {
      const cp = c.codePointAt(0)!;
      if (cp === 0 || cp === 0xfffd || isControl(c)) continue;
      out += isWhitespace(c) ? " " : c;
    }
    s = out;
  }
  if (o.handleChineseChars) {
    let out = "";
    for (const c of s) out += isChineseChar(c.codePointAt(0)!) ? ` ${c} ` : c;
    s = out;
  }
  if (o.stripAccents ?? o.lowercase) s = s.normalize("NFD").replace(RE_MN, "");
  if (o.lowercase) {
    // Per code point, as Rust's char::to_lowercase (no context-dependent final sigma).
    let out = "";
    for (const c of s) out += c.toLowerCase();
    s = out;
  }
  return s;
}

/** BertPreTokenizer: whitespace-separated words, each punctuation character on its own. */
export function bertPreTokenize(text: string): string[] {
  const words: string[] = [];
  let cur = "";
  for (const c of text) {
    if (RE_WS.test(c)) {
      if (cur) words.push(cur);
      cur = "";
    } else if (isPunctuation(c)) {
      if (cur) words.push(cur);
      words.push(c);
      cur = "";
    } else cur += c;
  }
  if (cur) words.push(cur);
  return words;
}

/**
 * The WordPiece tokenizer.
 *
 * @example
 * ```ts
 * import { WordPieceTokenizer } from "./wordpiece.ts";
 * const tok = WordPieceTokenizer.fromVocab(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "##s", "!"]);
 * console.log(tok.encode("Hellos!")); // [2, 5, 6, 7, 3]
 * ```
 */
export class WordPieceTokenizer {
  /** Always "wordpiece". */
  readonly kind = "wordpiece" as const;
  readonly vocabSize: number;
  readonly padId: number;
  readonly unkId: number;
  readonly clsId: number;
  readonly sepId: number;
  readonly source: string;
  readonly normalizer: BertNormalizerOptions;
  private readonly vocab: string[];
  private readonly ids: Map<string, number>;
  private readonly prefix: string;
  private readonly maxChars: number;
  private readonly specials: { content: string; id: number }[];

  constructor(p: WordPieceParts) {
    this.source = p.source;
    this.vocab = p.vocab;
    this.vocabSize = p.vocab.length;
    this.normalizer = p.normalizer;
    this.prefix = p.continuingSubwordPrefix;
    this.maxChars = p.maxInputCharsPerWord;
    if (this.vocabSize === 0) throw new Error(`${p.source}: the vocabulary is empty`);
    if (!Number.isInteger(this.maxChars) || this.maxChars < 1) {
      throw new Error(
        `${p.source}: max_input_chars_per_word must be a positive integer, got ${this.maxChars}`,
      );
    }
    this.ids = new Map();
    p.vocab.forEach((t, i) => this.ids.set(t, i));
    const need = (what: string, token: string): number => {
      const id = this.ids.get(token);
      if (id === undefined) {
        throw new Error(`${p.source}: ${what} ${JSON.stringify(token)} is not in the vocabulary`);
      }
      return id;
    };
    this.unkId = need("unk_token", p.unkToken);
    this.clsId = need("cls token", p.clsToken);
    this.sepId = need("sep token", p.sepToken);
    this.padId = this.ids.get(p.padToken) ?? 0;
    this.specials = p.specialTokens.filter((t) => t !== "" && this.ids.has(t))
      .map((content) => ({ content, id: this.ids.get(content)! }))
      .sort((a, b) => b.content.length - a.content.length);
  }

  /**
   * A tokenizer over `vocab` (ids in order) with BERT's defaults: `[UNK]`, `[CLS]`, `[SEP]`,
   * `[PAD]`, `[MASK]` special, `##` continuations, 100 characters per word.
   */
  static fromVocab(
    vocab: string[],
    opts: Partial<BertNormalizerOptions> & { source?: string } = {},
  ): WordPieceTokenizer {
    return new WordPieceTokenizer({
      vocab,
      normalizer: {
        cleanText: opts.cleanText ?? true,
        handleChineseChars: opts.handleChineseChars ?? true,
        stripAccents: opts.stripAccents ?? null,
        lowercase: opts.lowercase ?? true,
      },
      unkToken: "[UNK]",
      continuingSubwordPrefix: "##",
      maxInputCharsPerWord: 100,
      clsToken: "[CLS]",
      sepToken: "[SEP]",
      padToken: "[PAD]",
      specialTokens: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
      source: opts.source ?? "vocabulary",
    });
  }

  /**
   * Reads a Hugging Face tokenizer.json with a WordPiece model, a BertNormalizer (or none), a
   * BertPreTokenizer and a TemplateProcessing or BertProcessing post-processor.
   */
  static fromTokenizerJson(json: unknown, source: string): WordPieceTokenizer {
    if (!isObject(json)) throw new Error(`${source}: tokenizer.json must be a JSON object`);
    const model = json.model;
    if (!isObject(model)) throw new Error(`${source}: model must be an object`);
    if (model.type !== "WordPiece") {
      throw new Error(
        `${source}: model.type ${JSON.stringify(model.type)} is not "WordPiece"`,
      );
    }
    if (!isObject(model.vocab)) throw new Error(`${source}: model.vocab must be an object`);
    const entries = Object.entries(model.vocab);
    const vocab: string[] = new Array(entries.length);
    for (const [tok, id] of entries) {
      if (!Number.isInteger(id) || (id as number) < 0 || (id as number) >= entries.length) {
        throw new Error(
          `${source}: model.vocab[${JSON.stringify(tok)}] = ${
            JSON.stringify(id)
          } is not an id in 0..${entries.length - 1}`,
        );
      }
      if (vocab[id as number] !== undefined) {
        throw new Error(`${source}: model.vocab gives id ${id} twice`);
      }
      vocab[id as number] = tok;
    }
    const str = (v: unknown, name: string, dflt: string): string => {
      if (v === undefined || v === null) return dflt;
      if (typeof v !== "string") throw new Error(`${source}: model.${name} must be a string`);
      return v;
    };
    const n = json.normalizer;
    let normalizer: BertNormalizerOptions;
    if (n === null || n === undefined) {
      normalizer = {
        cleanText: false,
        handleChineseChars: false,
        stripAccents: false,
        lowercase: false,
      };
    } else if (isObject(n) && n.type === "BertNormalizer") {
      const flag = (k: string, dflt: boolean) => {
        const v = n[k];
        if (v === undefined) return dflt;
        if (typeof v !== "boolean") throw new Error(`${source}: normalizer.${k} must be a boolean`);
        return v;
      };
      const sa = n.strip_accents;
      if (sa !== undefined && sa !== null && typeof sa !== "boolean") {
        throw new Error(`${source}: normalizer.strip_accents must be a boolean or null`);
      }
      normalizer = {
        cleanText: flag("clean_text", true),
        handleChineseChars: flag("handle_chinese_chars", true),
        stripAccents: (sa as boolean | null | undefined) ?? null,
        lowercase: flag("lowercase", true),
      };
    } else {
      throw new Error(
        `${source}: normalizer ${
          JSON.stringify(isObject(n) ? n.type : n)
        } is not supported with WordPiece (only BertNormalizer)`,
      );
    }
    const pre = json.pre_tokenizer;
    if (!isObject(pre) || pre.type !== "BertPreTokenizer") {
      throw new Error(
        `${source}: pre_tokenizer ${
          JSON.stringify(isObject(pre) ? pre.type : pre)
        } is not supported with WordPiece (only BertPreTokenizer)`,
      );
    }
    const unkToken = str(model.unk_token, "unk_token", "[UNK]");
    const maxChars = model.max_input_chars_per_word ?? 100;
    if (typeof maxChars !== "number") {
      throw new Error(`${source}: model.max_input_chars_per_word must be a number`);
    }
    const [clsToken, sepToken] = parsePostProcessor(json.post_processor, source);
    const added = json.added_tokens ?? [];
    if (!Array.isArray(added)) throw new Error(`${source}: added_tokens must be an array`);
    const specialTokens: string[] = [];
    let padToken = "[PAD]";
    for (const [i, t] of added.entries()) {
      if (!isObject(t) || typeof t.content !== "string" || !Number.isInteger(t.id)) {
        throw new Error(`${source}: added_tokens[${i}] must have a string content and an id`);
      }
      if (vocab[t.id as number] !== t.content) {
        throw new Error(
          `${source}: added_tokens[${i}] ${JSON.stringify(t.content)} has id ${t.id}, ` +
            `which the vocabulary gives to ${JSON.stringify(vocab[t.id as number])}`,
        );
      }
      specialTokens.push(t.content);
      if (/pad/i.test(t.content)) padToken = t.content;
    }
    if (isObject(json.padding) && typeof json.padding.pad_token === "string") {
      padToken = json.padding.pad_token;
    }
    return new WordPieceTokenizer({
      vocab,
      normalizer,
      unkToken,
      continuingSubwordPrefix: str(
        model.continuing_subword_prefix,
        "continuing_subword_prefix",
        "##",
      ),
      maxInputCharsPerWord: maxChars,
      clsToken,
      sepToken,
      padToken,
      specialTokens,
      source,
    });
  }

  /**
   * Reads `vocab.txt` (one token per line, id = line number) and, when present,
   * `tokenizer_config.json` (`do_lower_case` default true, `strip_accents`,
   * `tokenize_chinese_chars` default true, the special token names), as `BertTokenizerFast`
   * builds itself from them.
   */
  static async fromVocabTxt(dir: string): Promise<WordPieceTokenizer> {
    const vocabPath = join(dir, "vocab.txt");
    const text = await readUtf8(vocabPath);
    const lines = text.split("\n");
    if (lines.at(-1) === "") lines.pop();
    const vocab = lines.map((l) => l.replace(/\s+$/u, ""));
    if (vocab.length === 0) throw new Error(`${vocabPath}: the vocabulary is empty`);
    const cfgPath = join(dir, "tokenizer_config.json");
    let cfg: Record<string, unknown> = {};
    let cfgText: string | null = null;
    try {
      cfgText = await readUtf8(cfgPath);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    if (cfgText !== null) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(cfgText);
      } catch (e) {
        throw new Error(`${cfgPath}: not valid JSON: ${(e as Error).message}`);
      }
      if (!isObject(parsed)) throw new Error(`${cfgPath}: must be a JSON object`);
      cfg = parsed;
    }
    const flag = (k: string, dflt: boolean | null): boolean | null => {
      const v = cfg[k];
      if (v === undefined || v === null) return dflt;
      if (typeof v !== "boolean") throw new Error(`${cfgPath}: ${k} must be a boolean`);
      return v;
    };
    const token = (k: string, dflt: string): string => {
      const v = cfg[k];
      if (v === undefined || v === null) return dflt;
      if (typeof v === "string") return v;
      if (isObject(v) && typeof v.content === "string") return v.content;
      throw new Error(`${cfgPath}: ${k} must be a string`);
    };
    const names = {
      unk: token("unk_token", "[UNK]"),
      cls: token("cls_token", "[CLS]"),
      sep: token("sep_token", "[SEP]"),
      pad: token("pad_token", "[PAD]"),
      mask: token("mask_token", "[MASK]"),
    };
    // A duplicated line keeps its last id (the constructor's map), as the Python dictionary does.
    return new WordPieceTokenizer({
      vocab,
      normalizer: {
        cleanText: true,
        handleChineseChars: flag("tokenize_chinese_chars", true)!,
        stripAccents: flag("strip_accents", null),
        lowercase: flag("do_lower_case", true)!,
      },
      unkToken: names.unk,
      continuingSubwordPrefix: "##",
      maxInputCharsPerWord: 100,
      clsToken: names.cls,
      sepToken: names.sep,
      padToken: names.pad,
      specialTokens: [names.pad, names.unk, names.cls, names.sep, names.mask],
      source: vocabPath,
    });
  }

  /** Loads `dir/tokenizer.json` when it holds a WordPiece model, else `dir/vocab.txt`. */
  static async fromDir(dir: string): Promise<WordPieceTokenizer> {
    const jsonPath = join(dir, "tokenizer.json");
    let text: string | null = null;
    try {
      text = await readUtf8(jsonPath);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    if (text === null) return await WordPieceTokenizer.fromVocabTxt(dir);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new Error(`${jsonPath}: not valid JSON: ${(e as Error).message}`);
    }
    return WordPieceTokenizer.fromTokenizerJson(json, jsonPath);
  }

  /** The token string of `id`. */
  idToPiece(id: number): string {
    const p = this.vocab[id];
    if (p === undefined) throw new RangeError(`${this.source}: id ${id} is outside the vocabulary`);
    return p;
  }

  /** The id of a token, or -1. */
  pieceToId(piece: string): number {
    return this.ids.get(piece) ?? -1;
  }

  /** The text after BertNormalizer. */
  normalize(text: string): string {
    return bertNormalize(text, this.normalizer);
  }

  /** WordPiece ids of one pre-tokenised word. */
  private wordIds(word: string, out: number[]): void {
    const chars = [...word];
    if (chars.length > this.maxChars) {
      out.push(this.unkId);
      return;
    }
    const start0 = out.length;
    let start = 0;
    while (start < chars.length) {
      let end = chars.length;
      let found = -1;
      while (start < end) {
        let sub = chars.slice(start, end).join("");
        if (start > 0) sub = this.prefix + sub;
        const id = this.ids.get(sub);
        if (id !== undefined) {
          found = id;
          break;
        }
        end--;
      }
      if (found < 0) {
        out.length = start0;
        out.push(this.unkId);
        return;
      }
      out.push(found);
      start = end;
    }
  }

  /**
   * The token ids of `text`, without `[CLS]`/`[SEP]`.
   *
   * @example
   * ```ts
   * import { WordPieceTokenizer } from "./wordpiece.ts";
   * const tok = WordPieceTokenizer.fromVocab(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "##b"]);
   * console.log(tok.tokenize("ab x")); // [5, 6, 1]
   * ```
   */
  tokenize(text: string): number[] {
    if (typeof text !== "string") throw new TypeError(`tokenize: text must be a string`);
    const out: number[] = [];
    for (const part of this.splitSpecial(text)) {
      if (typeof part === "number") {
        out.push(part);
        continue;
      }
      for (const w of bertPreTokenize(this.normalize(part))) this.wordIds(w, out);
    }
    return out;
  }

  /** The text cut around special tokens written literally in it (ids in their place). */
  private splitSpecial(text: string): (string | number)[] {
    if (this.specials.length === 0) return [text];
    const parts: (string | number)[] = [];
    let from = 0, i = 0;
    while (i < text.length) {
      if (text[i] === "[" || this.specials.some((s) => s.content[0] === text[i])) {
        const hit = this.specials.find((s) => text.startsWith(s.content, i));
        if (hit) {
          if (i > from) parts.push(text.slice(from, i));
          parts.push(hit.id);
          i += hit.content.length;
          from = i;
          continue;
        }
      }
      i++;
    }
    if (from < text.length) parts.push(text.slice(from));
    return parts;
  }

  /**
   * `[CLS] tokens [SEP]`; with `maxLength`, the tokens are cut so that the whole fits.
   */
  encode(text: string, maxLength?: number): number[] {
    let ids = this.tokenize(text);
    if (maxLength !== undefined) {
      checkMaxLength(maxLength, 2, "encode");
      if (ids.length > maxLength - 2) ids = ids.slice(0, maxLength - 2);
    }
    return [this.clsId, ...ids, this.sepId];
  }

  /**
   * `[CLS] A [SEP] B [SEP]`; with `maxLength`, tokens are removed from the longer side first
   * (Hugging Face "longest_first").
   */
  encodePair(a: string, b: string, maxLength?: number): number[] {
    return this.encodePairWithTypes(a, b, maxLength).ids;
  }

  /**
   * {@link encodePair} with BERT's token type ids: 0 for `[CLS] A [SEP]`, 1 for `B [SEP]`.
   *
   * @example
   * ```ts
   * import { WordPieceTokenizer } from "./wordpiece.ts";
   * const tok = WordPieceTokenizer.fromVocab(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"]);
   * console.log(tok.encodePairWithTypes("a", "b b")); // { ids: [2, 5, 3, 6, 6, 3], typeIds: [0, 0, 0, 1, 1, 1] }
   * ```
   */
  encodePairWithTypes(
    a: string,
    b: string,
    maxLength?: number,
  ): { ids: number[]; typeIds: number[] } {
    let ia = this.tokenize(a);
    let ib = this.tokenize(b);
    if (maxLength !== undefined) {
      checkMaxLength(maxLength, 3, "encodePair");
      [ia, ib] = truncateLongestFirst(ia, ib, maxLength - 3);
    }
    const ids = [this.clsId, ...ia, this.sepId, ...ib, this.sepId];
    const typeIds = ids.map((_, i) => (i < ia.length + 2 ? 0 : 1));
    return { ids, typeIds };
  }

  /** Tokens back to text: specials dropped, `##` pieces joined to the previous word. */
  decode(ids: number[]): string {
    const special = new Set(this.specials.map((s) => s.id));
    special.delete(this.unkId);
    let s = "";
    for (const id of ids) {
      if (special.has(id)) continue;
      const t = this.idToPiece(id);
      if (t.startsWith(this.prefix)) s += t.slice(this.prefix.length);
      else s += (s === "" ? "" : " ") + t;
    }
    return s;
  }
}

/** The [CLS] and [SEP] token strings of a TemplateProcessing or BertProcessing post-processor. */
function parsePostProcessor(pp: unknown, source: string): [string, string] {
  if (pp === null || pp === undefined) return ["[CLS]", "[SEP]"];
  if (!isObject(pp)) throw new Error(`${source}: post_processor must be an object`);
  if (pp.type === "BertProcessing") {
    const cls = pp.cls, sep = pp.sep;
    if (
      !Array.isArray(cls) || !Array.isArray(sep) || typeof cls[0] !== "string" ||
      typeof sep[0] !== "string"
    ) {
      throw new Error(`${source}: BertProcessing needs cls and sep as [token, id]`);
    }
    return [cls[0], sep[0]];
  }
  if (pp.type === "TemplateProcessing") {
    const single = pp.single;
    const special = (x: unknown) =>
      isObject(x) && isObject(x.SpecialToken) && typeof x.SpecialToken.id === "string"
        ? x.SpecialToken.id
        : null;
    const isSeq = (x: unknown) => isObject(x) && isObject(x.Sequence);
    if (
      !Array.isArray(single) || single.length !== 3 || special(single[0]) === null ||
      !isSeq(single[1]) || special(single[2]) === null
    ) {
      throw new Error(
        `${source}: TemplateProcessing: only the "[CLS] $A [SEP]" layout is supported, got ${
          JSON.stringify(single)
        }`,
      );
    }
    const cls = special(single[0])!, sep = special(single[2])!;
    const pair = pp.pair;
    if (pair !== undefined) {
      const ok = Array.isArray(pair) && pair.length === 5 && special(pair[0]) === cls &&
        isSeq(pair[1]) && special(pair[2]) === sep && isSeq(pair[3]) && special(pair[4]) === sep;
      if (!ok) {
        throw new Error(
          `${source}: TemplateProcessing: only the "[CLS] $A [SEP] $B:1 [SEP]:1" pair layout is ` +
            `supported`,
        );
      }
    }
    const specials = isObject(pp.special_tokens) ? pp.special_tokens : {};
    const content = (name: string) => {
      const t = specials[name];
      return isObject(t) && Array.isArray(t.tokens) && typeof t.tokens[0] === "string"
        ? t.tokens[0]
        : name;
    };
    return [content(cls), content(sep)];
  }
  throw new Error(
    `${source}: post_processor ${
      JSON.stringify(pp.type)
    } is not supported with WordPiece (TemplateProcessing or BertProcessing)`,
  );
}

async function readUtf8(path: string): Promise<string> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw e;
    throw new Error(`${path}: cannot read: ${(e as Error).message}`);
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new Error(`${path}: not valid UTF-8`);
  }
}
