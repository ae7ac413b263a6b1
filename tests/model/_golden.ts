/**
 * Golden tokenisation lines (`{"text", "input_ids"}` per line, from real SentencePiece) and the
 * exact-match check used by the default suite (the in-repo subset) and by `deno task test:full`
 * (all 26,104 lines in `../shared`).
 * @module
 */
import { equal } from "node:assert/strict";

/** One golden line. */
export interface Golden {
  text: string;
  input_ids: number[];
  /** 1-based line of the full file (subset only). */
  line?: number;
}

/** Reads a golden JSONL file. */
export async function readGolden(path: string): Promise<Golden[]> {
  return (await Deno.readTextFile(path)).split("\n").filter((l) => l !== "")
    .map((l) => JSON.parse(l));
}

/** Encodes every `step`-th line; fails with the exact-match rate and the first mismatches. */
export function assertGolden(
  tok: { encode(text: string): number[] },
  lines: Golden[],
  what: string,
  step = 1,
): void {
  let checked = 0;
  const bad: string[] = [];
  for (let i = 0; i < lines.length; i += step) {
    checked++;
    const got = tok.encode(lines[i].text);
    const want = lines[i].input_ids;
    if (got.length !== want.length || got.some((v, k) => v !== want[k])) {
      bad.push(
        `line ${lines[i].line ?? i + 1} ${JSON.stringify(lines[i].text)}: got ${got}, want ${want}`,
      );
    }
  }
  const rate = (checked - bad.length) / checked;
  equal(
    bad.length,
    0,
    `${what}: exact match ${(100 * rate).toFixed(3)}% of ${checked}\n` + bad.slice(0, 3).join("\n"),
  );
}
