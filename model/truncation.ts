/**
 * Length limits shared by the SentencePiece and WordPiece tokenizers: the maxLength check and
 * Hugging Face tokenizers' "longest_first" truncation of a sentence pair.
 * @module
 */

/** Throws naming `op` unless `maxLength` is an integer ≥ `min` (room for the special tokens). */
export function checkMaxLength(maxLength: number, min: number, op: string): void {
  if (!Number.isInteger(maxLength) || maxLength < min) {
    throw new RangeError(`${op}: maxLength must be an integer ≥ ${min}, got ${maxLength}`);
  }
}

/** Hugging Face tokenizers' pair truncation for "longest_first", `budget` = max − specials. */
export function truncateLongestFirst(
  a: number[],
  b: number[],
  budget: number,
): [number[], number[]] {
  if (a.length + b.length <= budget) return [a, b];
  let n1 = a.length;
  let n2 = b.length;
  const swap = n1 > n2;
  if (swap) [n1, n2] = [n2, n1];
  n2 = n1 > budget ? n1 : Math.max(n1, budget - n1);
  if (n1 + n2 > budget) {
    n1 = Math.floor(budget / 2);
    n2 = n1 + (budget % 2);
  }
  if (swap) [n1, n2] = [n2, n1];
  return [a.slice(0, n1), b.slice(0, n2)];
}
