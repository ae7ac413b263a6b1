/**
 * A reader for SentencePiece `.model` files (the `ModelProto` protobuf): the pieces with scores and
 * types, the trainer settings that change encoding, and the normaliser spec with its
 * precompiled charsmap. Only the fields the tokenizer needs are decoded; the rest are skipped.
 * @module
 */

/** SentencePiece piece types (`ModelProto.SentencePiece.Type`). */
export const PieceType = {
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;

/** SentencePiece model types (`TrainerSpec.ModelType`). */
export const ModelType = { UNIGRAM: 1, BPE: 2, WORD: 3, CHAR: 4 } as const;

/** One vocabulary entry. */
export interface SpmPiece {
  piece: string;
  score: number;
  type: number;
}

/** The parts of a `.model` that encoding depends on. */
export interface SpmModel {
  pieces: SpmPiece[];
  trainer: {
    modelType: number;
    byteFallback: boolean;
    treatWhitespaceAsSuffix: boolean;
  };
  normalizer: {
    name: string;
    precompiledCharsmap: Uint8Array;
    addDummyPrefix: boolean;
    removeExtraWhitespaces: boolean;
    escapeWhitespaces: boolean;
  };
}

/** A protobuf wire-format cursor with bounds checks. */
class Reader {
  pos: number;
  constructor(
    readonly bytes: Uint8Array,
    readonly source: string,
    start = 0,
    readonly end = bytes.length,
  ) {
    this.pos = start;
  }

  fail(what: string): never {
    throw new Error(`${this.source}: malformed SentencePiece model at byte ${this.pos}: ${what}`);
  }

  /** A varint as [value as a float (exact below 2^53), low 32 bits]. */
  varint(): [number, number] {
    let value = 0;
    let lo = 0;
    for (let shift = 0; shift < 70; shift += 7) {
      if (this.pos >= this.end) this.fail("truncated varint");
      const b = this.bytes[this.pos++];
      value += (b & 0x7f) * 2 ** shift;
      if (shift < 32) lo = (lo | ((b & 0x7f) << shift)) >>> 0;
      if (b < 0x80) return [value, lo];
    }
    this.fail("varint longer than 10 bytes");
  }

  /** Length-delimited field: [start, end). */
  span(): [number, number] {
    const [len] = this.varint();
    if (this.pos + len > this.end) this.fail(`field of ${len} bytes runs past its message`);
    const start = this.pos;
    this.pos += len;
    return [start, this.pos];
  }

  float(): number {
    if (this.pos + 4 > this.end) this.fail("truncated float");
    const v = new DataView(this.bytes.buffer, this.bytes.byteOffset + this.pos, 4).getFloat32(
      0,
      true,
    );
    this.pos += 4;
    return v;
  }

  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.span();
    else if (wire === 5) this.pos += 4;
    else this.fail(`unsupported wire type ${wire}`);
    if (this.pos > this.end) this.fail("field runs past its message");
  }

  /** Calls `onField(field, wire)` for each field; the callback must consume it (or return false). */
  fields(onField: (field: number, wire: number) => boolean): void {
    while (this.pos < this.end) {
      const [, key] = this.varint();
      const field = key >>> 3;
      const wire = key & 7;
      if (field === 0) this.fail("field number 0");
      if (!onField(field, wire)) this.skip(wire);
    }
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Parses a SentencePiece `.model` file.
 *
 * @example
 * ```ts
 * import { parseSentencePieceModel } from "./sentencepiece_model.ts";
 * // One piece "a" (score -1, NORMAL): field 1 { field 1 "a", field 2 float -1 }.
 * const bytes = new Uint8Array([0x0a, 0x08, 0x0a, 0x01, 0x61, 0x15, 0, 0, 0x80, 0xbf]);
 * console.log(parseSentencePieceModel(bytes, "demo").pieces); // [{ piece: "a", score: -1, type: 1 }]
 * ```
 */
export function parseSentencePieceModel(bytes: Uint8Array, source: string): SpmModel {
  const model: SpmModel = {
    pieces: [],
    trainer: { modelType: ModelType.UNIGRAM, byteFallback: false, treatWhitespaceAsSuffix: false },
    normalizer: {
      name: "",
      precompiledCharsmap: new Uint8Array(0),
      addDummyPrefix: true,
      removeExtraWhitespaces: true,
      escapeWhitespaces: true,
    },
  };
  const r = new Reader(bytes, source);
  r.fields((field, wire) => {
    if (wire !== 2 || field < 1 || field > 3) return false;
    const [start, end] = r.span();
    const sub = new Reader(bytes, source, start, end);
    if (field === 1) model.pieces.push(readPiece(sub));
    else if (field === 2) readTrainer(sub, model.trainer);
    else readNormalizer(sub, model.normalizer);
    return true;
  });
  if (model.pieces.length === 0) throw new Error(`${source}: SentencePiece model has no pieces`);
  return model;
}

function readPiece(r: Reader): SpmPiece {
  const p: SpmPiece = { piece: "", score: 0, type: PieceType.NORMAL };
  let hasPiece = false;
  r.fields((field, wire) => {
    if (field === 1 && wire === 2) {
      const [s, e] = r.span();
      try {
        p.piece = utf8.decode(r.bytes.subarray(s, e));
      } catch {
        r.fail("piece is not valid UTF-8");
      }
      hasPiece = true;
    } else if (field === 2 && wire === 5) p.score = r.float();
    else if (field === 3 && wire === 0) p.type = r.varint()[1] | 0;
    else return false;
    return true;
  });
  if (!hasPiece) r.fail("a piece without text");
  return p;
}

function readTrainer(r: Reader, t: SpmModel["trainer"]): void {
  r.fields((field, wire) => {
    if (wire !== 0) return false;
    const v = r.varint()[1];
    if (field === 3) t.modelType = v | 0;
    else if (field === 24) t.treatWhitespaceAsSuffix = v !== 0;
    else if (field === 35) t.byteFallback = v !== 0;
    return true;
  });
}

function readNormalizer(r: Reader, n: SpmModel["normalizer"]): void {
  r.fields((field, wire) => {
    if (field === 1 && wire === 2) {
      const [s, e] = r.span();
      n.name = new TextDecoder().decode(r.bytes.subarray(s, e));
    } else if (field === 2 && wire === 2) {
      const [s, e] = r.span();
      n.precompiledCharsmap = r.bytes.slice(s, e);
    } else if (field >= 3 && field <= 5 && wire === 0) {
      const v = r.varint()[1] !== 0;
      if (field === 3) n.addDummyPrefix = v;
      else if (field === 4) n.removeExtraWhitespaces = v;
      else n.escapeWhitespaces = v;
    } else return false;
    return true;
  });
}
