/**
 * SentencePiece's text normaliser, reimplemented byte for byte: the `precompiled_charsmap` (a Darts
 * double-array trie over UTF-8 followed by a blob of NUL-terminated replacement strings) is applied
 * by longest-prefix match, one UTF-8 character at a time where nothing matches; then leading and
 * trailing whitespace is removed, runs of whitespace are folded, spaces become "▁" and a dummy "▁"
 * is put in front — as `normalizer.cc` does with `remove_extra_whitespaces`, `add_dummy_prefix`
 * and `escape_whitespaces`.
 * @module
 */

/** "▁" (U+2581) in UTF-8: SentencePiece's visible space. */
export const SPACE_SYMBOL = new Uint8Array([0xe2, 0x96, 0x81]);

/**
 * How the dummy "▁" is added: "always" (SentencePiece's `add_dummy_prefix`), "if-missing"
 * (Hugging Face Metaspace: only when the text does not already start with "▁"), or "never".
 */
export type DummyPrefix = "always" | "if-missing" | "never";

/** Settings of the normaliser (SentencePiece's NormalizerSpec). */
export interface NormalizerOptions {
  /** The precompiled charsmap bytes, or null for no character mapping (identity). */
  charsmap: Uint8Array | null;
  addDummyPrefix: DummyPrefix;
  /** Trim leading/trailing spaces and fold runs of spaces into one. */
  removeExtraWhitespaces: boolean;
  /** Write spaces as "▁". */
  escapeWhitespaces: boolean;
}

/**
 * The decoded charsmap: a Darts double array and the replacement strings.
 *
 * @example
 * ```ts
 * import { Charsmap } from "./precompiled_charsmap.ts";
 * // An empty trie (root only, no children) followed by an empty blob: maps nothing.
 * const bytes = new Uint8Array([4, 0, 0, 0, 0, 0, 0, 0]);
 * const cm = new Charsmap(bytes, "demo");
 * console.log(cm.longestMatch(new TextEncoder().encode("a"), 0)); // null
 * ```
 */
export class Charsmap {
  private readonly units: Uint32Array;
  private readonly normalized: Uint8Array;

  constructor(readonly bytes: Uint8Array, source: string) {
    if (bytes.length < 4) {
      throw new Error(`${source}: precompiled_charsmap is shorter than 4 bytes`);
    }
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const trieSize = dv.getUint32(0, true);
    if (trieSize % 4 !== 0 || trieSize === 0 || 4 + trieSize > bytes.length) {
      throw new Error(
        `${source}: precompiled_charsmap trie size ${trieSize} does not fit the ${bytes.length}-byte blob`,
      );
    }
    this.units = new Uint32Array(trieSize / 4);
    for (let i = 0; i < this.units.length; i++) this.units[i] = dv.getUint32(4 + 4 * i, true);
    this.normalized = bytes.slice(4 + trieSize);
  }

  /**
   * Longest key of the trie that prefixes `input[pos..]`: `{length, start, end}` where
   * `normalized[start, end)` is its replacement, or null. Darts `commonPrefixSearch`, unrolled.
   */
  longestMatch(
    input: Uint8Array,
    pos: number,
  ): { length: number; start: number; end: number } | null {
    const units = this.units;
    let node = offsetOf(units[0]);
    let bestLength = 0;
    let bestValue = 0;
    for (let i = pos; i < input.length; i++) {
      const c = input[i];
      node ^= c;
      if (node >= units.length) break;
      const unit = units[node];
      // label() keeps the leaf bit, so a leaf unit never equals a byte.
      if ((unit & 0x800000ff) >>> 0 !== c) break;
      node ^= offsetOf(unit);
      if ((unit >>> 8) & 1) {
        if (node >= units.length) break;
        bestLength = i + 1 - pos;
        bestValue = units[node] & 0x7fffffff;
      }
    }
    if (bestLength === 0) return null;
    if (bestValue >= this.normalized.length) return null;
    let end = bestValue;
    while (end < this.normalized.length && this.normalized[end] !== 0) end++;
    return { length: bestLength, start: bestValue, end };
  }

  /** The replacement bytes `[start, end)`. */
  replacement(start: number, end: number): Uint8Array {
    return this.normalized.subarray(start, end);
  }
}

/** Darts unit offset(): `(unit >> 10) << ((unit & (1 << 9)) >> 6)`. */
function offsetOf(unit: number): number {
  return ((unit >>> 10) << ((unit & (1 << 9)) >>> 6)) >>> 0;
}

/** Length of a valid UTF-8 character at `pos`, or 0 when malformed (SentencePiece's check). */
function validCharLength(b: Uint8Array, pos: number): number {
  const c = b[pos];
  if (c < 0x80) return 1;
  const cont = (i: number) => i < b.length && (b[i] & 0xc0) === 0x80;
  if (c >= 0xc2 && c <= 0xdf) return cont(pos + 1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    if (!cont(pos + 1) || !cont(pos + 2)) return 0;
    const cp = ((c & 0x0f) << 12) | ((b[pos + 1] & 0x3f) << 6) | (b[pos + 2] & 0x3f);
    return cp >= 0x800 && (cp < 0xd800 || cp > 0xdfff) ? 3 : 0;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    if (!cont(pos + 1) || !cont(pos + 2) || !cont(pos + 3)) return 0;
    const cp = ((c & 0x07) << 18) | ((b[pos + 1] & 0x3f) << 12) | ((b[pos + 2] & 0x3f) << 6) |
      (b[pos + 3] & 0x3f);
    return cp >= 0x10000 && cp <= 0x10ffff ? 4 : 0;
  }
  return 0;
}

const REPLACEMENT_CHAR = new Uint8Array([0xef, 0xbf, 0xbd]);
const ONE_SPACE = new Uint8Array([0x20]);

/** A growable byte buffer. */
class Bytes {
  buf = new Uint8Array(256);
  length = 0;
  push(b: number): void {
    if (this.length === this.buf.length) {
      const next = new Uint8Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.length++] = b;
  }
  pushAll(bytes: Uint8Array): void {
    for (let i = 0; i < bytes.length; i++) this.push(bytes[i]);
  }
  endsWith(bytes: Uint8Array): boolean {
    if (this.length < bytes.length) return false;
    for (let i = 0; i < bytes.length; i++) {
      if (this.buf[this.length - bytes.length + i] !== bytes[i]) return false;
    }
    return true;
  }
}

/**
 * SentencePiece's normaliser over UTF-8 bytes.
 *
 * @example
 * ```ts
 * import { SpmNormalizer } from "./precompiled_charsmap.ts";
 * const norm = new SpmNormalizer({
 *   charsmap: null,
 *   addDummyPrefix: "always",
 *   removeExtraWhitespaces: true,
 *   escapeWhitespaces: true,
 * }, "demo");
 * console.log(norm.normalize("  hello   world ")); // "▁hello▁world"
 * ```
 */
export class SpmNormalizer {
  private readonly charsmap: Charsmap | null;
  private readonly encoder = new TextEncoder();
  private readonly decoder = new TextDecoder();

  constructor(readonly options: NormalizerOptions, source: string) {
    this.charsmap = options.charsmap && options.charsmap.length > 0
      ? new Charsmap(options.charsmap, source)
      : null;
  }

  /** Normalises `text` and returns it as a string. */
  normalize(text: string): string {
    return this.decoder.decode(this.normalizeToBytes(text));
  }

  /** Normalises `text` to UTF-8 bytes. */
  normalizeToBytes(text: string): Uint8Array {
    return this.normalizeBytes(this.encoder.encode(text));
  }

  /** SentencePiece `Normalizer::Normalize` on UTF-8 input. */
  normalizeBytes(input: Uint8Array): Uint8Array {
    const { removeExtraWhitespaces: removeExtra, escapeWhitespaces: escape } = this.options;
    const space = escape ? SPACE_SYMBOL : ONE_SPACE;
    const out = new Bytes();
    let pos = 0;
    if (removeExtra) {
      // Skip leading characters that normalise to exactly one space.
      while (pos < input.length) {
        const [sp, consumed] = this.prefix(input, pos);
        if (sp.length !== 1 || sp[0] !== 0x20) break;
        pos += consumed;
      }
    }
    if (pos >= input.length) return new Uint8Array(0);
    if (this.options.addDummyPrefix === "always") out.pushAll(space);
    let isPrevSpace = removeExtra;
    while (pos < input.length) {
      const [sp, consumed] = this.prefix(input, pos);
      let i = 0;
      if (isPrevSpace) { while (i < sp.length && sp[i] === 0x20) i++; }
      if (i < sp.length) {
        for (; i < sp.length; i++) {
          if (escape && sp[i] === 0x20) out.pushAll(SPACE_SYMBOL);
          else out.push(sp[i]);
        }
        isPrevSpace = sp[sp.length - 1] === 0x20;
      }
      pos += consumed;
      if (!removeExtra) isPrevSpace = false;
    }
    if (removeExtra) { while (out.endsWith(space)) out.length -= space.length; }
    let result = out.buf.subarray(0, out.length);
    if (this.options.addDummyPrefix === "if-missing" && result.length > 0) {
      const starts = result[0] === space[0] &&
        (space.length === 1 || (result[1] === space[1] && result[2] === space[2]));
      if (!starts) {
        const withPrefix = new Uint8Array(result.length + space.length);
        withPrefix.set(space);
        withPrefix.set(result, space.length);
        result = withPrefix;
      }
    }
    return result;
  }

  /** `NormalizePrefix`: the replacement of the longest rule at `pos` and the bytes it consumes. */
  private prefix(input: Uint8Array, pos: number): [Uint8Array, number] {
    const m = this.charsmap?.longestMatch(input, pos);
    if (m) return [this.charsmap!.replacement(m.start, m.end), m.length];
    const len = validCharLength(input, pos);
    if (len === 0) return [REPLACEMENT_CHAR, 1];
    return [input.subarray(pos, pos + len), len];
  }
}
