/**
 * What the encoder, training, evaluation and the CLI need from a tokenizer, and the loader that
 * picks the implementation from a folder's own files (independently of the model architecture:
 * multilingual MiniLM is a BertModel with XLM-R's SentencePiece tokenizer).
 * @module
 */
import { join } from "node:path";
import { XlmrTokenizer } from "./tokenizer.ts";
import { WordPieceTokenizer } from "./wordpiece.ts";
import { exists } from "./atomic_write.ts";

/** A tokenizer: SentencePiece Unigram (XLM-R) or WordPiece (BERT). */
export interface TextTokenizer {
  /** Which algorithm. */
  readonly kind: "sentencepiece" | "wordpiece";
  readonly vocabSize: number;
  readonly padId: number;
  readonly unkId: number;
  /** Where it came from (for messages). */
  readonly source: string;
  /** Token ids of `text` without special tokens. */
  tokenize(text: string): number[];
  /** One sequence with its special tokens, cut to `maxLength`. */
  encode(text: string, maxLength?: number): number[];
  /** A sentence pair with its special tokens, cut longest-first to `maxLength`. */
  encodePair(a: string, b: string, maxLength?: number): number[];
  /** {@link encodePair} with the token type ids the model expects. */
  encodePairWithTypes(
    a: string,
    b: string,
    maxLength?: number,
  ): { ids: number[]; typeIds: number[] };
  /** Ids back to text. */
  decode(ids: number[]): string;
  idToPiece(id: number): string;
  pieceToId(piece: string): number;
}

/** Whether `dir` holds tokenizer files {@link loadTokenizer} can read. */
export async function hasTokenizerFiles(dir: string): Promise<boolean> {
  for (const f of ["tokenizer.json", "sentencepiece.bpe.model", "vocab.txt"]) {
    if (await exists(join(dir, f))) return true;
  }
  return false;
}

/**
 * The tokenizer in `dir`: `tokenizer.json` (its `model.type` decides: "Unigram" → XLM-R's
 * SentencePiece, "WordPiece" → BERT's), else `vocab.txt` (+ `tokenizer_config.json`) → WordPiece,
 * else `sentencepiece.bpe.model` → SentencePiece.
 *
 * @example
 * ```ts
 * import { loadTokenizer } from "./text_tokenizer.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/vocab.txt`, "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhi\n");
 * console.log((await loadTokenizer(dir)).encode("Hi")); // [2, 4, 3]
 * ```
 */
export async function loadTokenizer(dir: string): Promise<TextTokenizer> {
  const jsonPath = join(dir, "tokenizer.json");
  if (await exists(jsonPath)) {
    let text: string;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(await Deno.readFile(jsonPath));
    } catch (e) {
      throw new Error(
        e instanceof TypeError
          ? `${jsonPath}: not valid UTF-8`
          : `${jsonPath}: cannot read: ${(e as Error).message}`,
      );
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new Error(`${jsonPath}: not valid JSON: ${(e as Error).message}`);
    }
    const type = (json as { model?: { type?: unknown } } | null)?.model?.type;
    if (type === "WordPiece") return WordPieceTokenizer.fromTokenizerJson(json, jsonPath);
    return XlmrTokenizer.fromTokenizerJson(json, jsonPath);
  }
  if (await exists(join(dir, "vocab.txt"))) return await WordPieceTokenizer.fromVocabTxt(dir);
  if (await exists(join(dir, "sentencepiece.bpe.model"))) return await XlmrTokenizer.fromDir(dir);
  throw new Error(`${dir}: no tokenizer.json, vocab.txt or sentencepiece.bpe.model`);
}
