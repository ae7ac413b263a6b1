/**
 * Number formatting for tables and reports.
 * @module
 */

/**
 * A metric for a table: `x.toFixed(digits)`, or "n/a" when the setting had no queries.
 *
 * @example
 * ```ts
 * import { fixed } from "./format.ts";
 * console.log(fixed(0.61234, 3), fixed(null, 3)); // "0.612" "n/a"
 * ```
 */
export function fixed(x: number | null | undefined, digits: number): string {
  return typeof x === "number" && Number.isFinite(x) ? x.toFixed(digits) : "n/a";
}
