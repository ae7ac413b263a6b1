/**
 * `tokenize --tokenizer DIR --input IN.jsonl --out OUT.jsonl [--max-length N]`: one
 * `{"text": …}` per input line in, one `{"input_ids": […]}` per line out, in order (blank lines are
 * skipped). The output is written atomically.
 * @module
 */
import { defineFlags } from "./flags.ts";
import { writeFileAtomic } from "../model/atomic_write.ts";
import { jsonlLines, readTextStrict } from "../training/data.ts";
import { loadTokenizer } from "../model/text_tokenizer.ts";

/** The flags of `tokenize`. */
export const TOKENIZE_FLAGS = defineFlags({
  command: "tokenize",
  summary: 'token ids of JSONL texts: one {"input_ids": […]} line per {"text": …} line',
  flags: {
    tokenizer: {
      type: "string",
      required: true,
      arg: "DIR",
      description: "folder with the tokenizer files (SentencePiece or WordPiece)",
    },
    input: { type: "string", required: true, arg: "IN.jsonl", description: '{"text": …} lines' },
    out: { type: "string", required: true, arg: "OUT.jsonl", description: "written atomically" },
    "max-length": {
      type: "integer",
      min: 2,
      defaultText: "no limit",
      description: "truncate to N ids, special tokens included",
      message: "tokenize: --max-length must be an integer ≥ 2, got {value}",
    },
  },
});

/**
 * Runs the `tokenize` command with its arguments (without the command name).
 *
 * @example
 * ```ts
 * import { tokenizeCommand } from "./tokenize.ts";
 * import { XlmrTokenizer } from "../model/tokenizer.ts";
 * const dir = await Deno.makeTempDir();
 * const tok = XlmrTokenizer.fromVocab([["▁hi", -1]]);
 * await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify(tok.toJson()));
 * await Deno.writeTextFile(`${dir}/in.jsonl`, '{"text": "hi"}\n');
 * await tokenizeCommand(["--tokenizer", dir, "--input", `${dir}/in.jsonl`, "--out", `${dir}/o.jsonl`]);
 * ```
 */
export async function tokenizeCommand(args: string[]): Promise<void> {
  const { tokenizer: dir, input, out, "max-length": maxLength } = TOKENIZE_FLAGS.parse(args);
  // SentencePiece or WordPiece, as the folder's own files say.
  const tok = await loadTokenizer(dir);
  // Strict UTF-8 and a line-length limit: errors name the file and line.
  const lines = jsonlLines(await readTextStrict(input), input);
  const outLines: string[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === "") return;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch (e) {
      throw new Error(`${input}:${i + 1}: not valid JSON: ${(e as Error).message}`);
    }
    const value = (row as { text?: unknown } | null)?.text;
    if (typeof value !== "string") {
      throw new TypeError(`${input}:${i + 1}: expected {"text": string}`);
    }
    outLines.push(JSON.stringify({ input_ids: tok.encode(value, maxLength) }));
  });
  await writeFileAtomic(out, outLines.map((l) => l + "\n").join(""));
}
