/**
 * JSONL input for the commands: every line parsed, errors naming the file and line.
 * @module
 */
import { jsonlLines, readTextStrict } from "../training/data.ts";

/**
 * Parses a JSONL file into objects; blank lines are skipped.
 *
 * @example
 * ```ts ignore
 * const rows = await readJsonl("in.jsonl");
 * ```
 */
export async function readJsonl(
  path: string,
): Promise<{ line: number; value: Record<string, unknown> }[]> {
  const text = await readTextStrict(path);
  const out: { line: number; value: Record<string, unknown> }[] = [];
  jsonlLines(text, path).forEach((raw, i) => {
    if (raw.trim() === "") return;
    let v: unknown;
    try {
      v = JSON.parse(raw);
    } catch (e) {
      throw new Error(`${path}:${i + 1}: not JSON: ${(e as Error).message}`);
    }
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
      throw new Error(`${path}:${i + 1}: expected a JSON object`);
    }
    out.push({ line: i + 1, value: v as Record<string, unknown> });
  });
  if (out.length === 0) throw new Error(`${path}: no lines`);
  return out;
}
