/** Progress lines: a live line on a terminal, sparse plain lines otherwise, none with --quiet. */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { formatDuration, progress } from "../cli/progress.ts";

Deno.test("plain progress: every quarter (or 30 s), then one closing line with the rate", () => {
  const lines: string[] = [];
  let t = 0;
  const p = progress("embedding", 1000, { tty: false, write: (s) => lines.push(s), now: () => t });
  for (let i = 1; i <= 1000; i++) {
    t += 10;
    p.update(i);
  }
  p.done();
  equal(lines.length, 5, lines.join("\n"));
  match(lines[0], /^embedding: 1\/1000 texts \(0%\) 100\.0 texts\/s, ETA 10 s$/);
  match(lines[1], /^embedding: 250\/1000 texts \(25%\)/);
  deepEqual(lines.at(-1), "embedding: 1000/1000 texts (100%) 100.0 texts/s, 10 s");
});

Deno.test("terminal progress rewrites one line; --quiet prints nothing", () => {
  const out: string[] = [];
  let t = 0;
  const p = progress("x", 10, { tty: true, write: (s) => out.push(s), now: () => t });
  for (let i = 1; i <= 10; i++) {
    t += 300;
    p.update(i);
  }
  p.done();
  ok(out.every((s) => s.startsWith("\r\x1b[2K")), "carriage return, clear line");
  ok(out.at(-1)!.endsWith("\n"));
  const q: string[] = [];
  const quiet = progress("x", 10, { quiet: true, write: (s) => q.push(s) });
  quiet.update(5);
  quiet.done();
  deepEqual(q, []);
  equal(formatDuration(65), "1 min 05 s");
  equal(formatDuration(3720), "1 h 02 min");
});
