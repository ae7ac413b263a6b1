/**
 * Strict text-file reading shared by every loader: invalid UTF-8 and absurd JSONL lines fail
 * naming the file and line.
 * @module
 */

/** Longest JSONL line accepted (UTF-16 units); a longer one is a corrupt or wrong file. */
export const MAX_LINE_CHARS = 1 << 22;

/**
 * Reads a UTF-8 text file strictly: invalid bytes throw an error naming the file, the line and the
 * byte offset (Deno.readTextFile would silently turn them into U+FFFD).
 *
 * @example
 * ```ts
 * import { readTextStrict } from "./text_file.ts";
 * const path = await Deno.makeTempFile();
 * await Deno.writeFile(path, new Uint8Array([0x61, 0x0a, 0xff]));
 * try {
 *   await readTextStrict(path);
 * } catch (e) {
 *   console.log((e as Error).message); // …:2: invalid UTF-8 at byte 2
 * }
 * ```
 */
export async function readTextStrict(path: string): Promise<string> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new Error(`${path}: cannot read: ${(e as Error).message}`);
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    const at = firstInvalidUtf8(bytes);
    let line = 1;
    for (let i = 0; i < at; i++) if (bytes[i] === 0x0a) line++;
    throw new TypeError(`${path}:${line}: invalid UTF-8 at byte ${at}`);
  }
}

/** Offset of the first byte that starts an invalid UTF-8 sequence (RFC 3629), or the length. */
function firstInvalidUtf8(b: Uint8Array): number {
  const cont = (i: number) => i < b.length && (b[i] & 0xc0) === 0x80;
  for (let i = 0; i < b.length;) {
    const c = b[i];
    let n = 0, lo = 0x80, hi = 0xbf;
    if (c < 0x80) n = 1;
    else if (c >= 0xc2 && c <= 0xdf) n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
      [n, lo, hi] = [3, c === 0xe0 ? 0xa0 : 0x80, c === 0xed ? 0x9f : 0xbf];
    } else if (c >= 0xf0 && c <= 0xf4) {
      [n, lo, hi] = [4, c === 0xf0 ? 0x90 : 0x80, c === 0xf4 ? 0x8f : 0xbf];
    } else return i;
    if (n > 1 && !(i + 1 < b.length && b[i + 1] >= lo && b[i + 1] <= hi)) return i;
    for (let k = 2; k < n; k++) if (!cont(i + k)) return i;
    i += n;
  }
  return b.length;
}

/**
 * Splits JSONL text into lines, refusing a line longer than {@linkcode MAX_LINE_CHARS} with an
 * error naming the file and line.
 *
 * @example
 * ```ts
 * import { jsonlLines } from "./text_file.ts";
 * console.log(jsonlLines("a\r\nb\n", "x.jsonl")); // ["a", "b", ""]
 * ```
 */
export function jsonlLines(text: string, path: string): string[] {
  const lines = text.split(/\r?\n/);
  lines.forEach((l, i) => {
    if (l.length > MAX_LINE_CHARS) {
      throw new RangeError(
        `${path}:${i + 1}: line is ${l.length} characters long (limit ${MAX_LINE_CHARS})`,
      );
    }
  });
  return lines;
}
