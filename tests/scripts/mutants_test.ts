/**
 * The mutation runner's pure parts: counting occurrences, validating the mutant list and
 * classifying `deno test` output (caught only on an AssertionError, never on other failures).
 * @module
 */
import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { applyProblem, classify, countOccurrences, parseMutants } from "../../scripts/mutants.ts";

const FAILED = `running 4 tests from ./a_test.ts
assert fails ... FAILED (2ms)
type error ... FAILED (403µs)
passes ... ok (60µs)

 ERRORS 

assert fails => ./a_test.ts:2:6
error: AssertionError: 1 == 2
Deno.test("assert fails", () => { equal(1, 2); });
    at file:///tmp/a_test.ts:2:35

type error => ./a_test.ts:3:6
error: TypeError: Cannot read properties of null (reading 'x')
    at file:///tmp/a_test.ts:3:47

 FAILURES 

assert fails => ./a_test.ts:2:6
type error => ./a_test.ts:3:6

FAILED | 1 passed | 2 failed (16ms)

error: Test failed`;

Deno.test("classify: an AssertionError among the failures is a kill", () => {
  const c = classify(FAILED, 1, false);
  equal(c.status, "caught");
  deepEqual(c.excerpt, ["assert fails => ./a_test.ts:2:6: error: AssertionError: 1 == 2"]);
});

Deno.test("classify: failures without an assertion, crashes and timeouts are errors", () => {
  const noAssert = FAILED.replace("error: AssertionError: 1 == 2", "error: NotFound: no such file");
  const c = classify(noAssert, 1, false);
  equal(c.status, "error");
  ok(c.reason!.includes("2 test(s) failed, none on an assertion"), c.reason);
  ok(c.excerpt.some((l) => l.includes("NotFound")));
  // An AssertionError printed by a passing test's output is not a failure.
  const logged = "running 1 test from ./x_test.ts\nAssertionError: just a log\n" +
    "x ... ok (1ms)\n\nok | 1 passed | 0 failed (2ms)\n";
  equal(classify(logged, 0, false).status, "missed");
  const parse = "error: SyntaxError: Expected ',', got ';'\n    at file:///tmp/m.ts:41:58\n";
  const p = classify(parse, 1, false);
  equal(p.status, "error");
  ok(p.reason!.startsWith("no test summary line"));
  equal(p.excerpt[0], "error: SyntaxError: Expected ',', got ';'");
  equal(classify(logged, 0, true).status, "error");
  equal(classify(logged, 0, true).reason, "timeout");
  // A passing summary with a failing exit code (e.g. a leak report) is not a clean pass.
  equal(classify(logged, 1, false).status, "error");
  equal(classify("ok | 0 passed | 0 failed (0ms)\n", 0, false).status, "error");
});

Deno.test("classify: uncaught assertion errors and colours are understood", () => {
  const uncaught =
    " ERRORS \n\n./t_test.ts (uncaught error)\nerror: (in promise) AssertionError: x\n\n" +
    " FAILURES \n\nFAILED | 0 passed | 1 failed (0ms)\n";
  equal(classify(uncaught, 1, false).status, "caught");
  const coloured = "\x1b[0m\x1b[32mok\x1b[0m | 3 passed (2 steps) | 0 failed \x1b[0m(1s)\n";
  equal(classify(coloured, 0, false).status, "missed");
});

Deno.test("countOccurrences and applyProblem: a mutant must apply exactly once", () => {
  equal(countOccurrences("aaa", "aa"), 2);
  equal(countOccurrences("abc", "d"), 0);
  const m = { id: "x", file: "f.ts", find: "a < b", replace: "a <= b", why: "", tests: ["t.ts"] };
  equal(applyProblem("if (a < b) {}", m), null);
  equal(applyProblem("if (a > b) {}", m), "invalid: text not found");
  equal(applyProblem("a < b; a < b", m), "invalid: text ambiguous (2 occurrences)");
  equal(applyProblem(null, m), "invalid: file not found (f.ts)");
});

Deno.test("parseMutants names every malformed entry", () => {
  const good = { id: "a", file: "f.ts", find: "x", replace: "y", why: "w", tests: ["t.ts"] };
  deepEqual(parseMutants(JSON.stringify([good]), "m.json"), [good]);
  throws(
    () =>
      parseMutants(
        JSON.stringify([
          good,
          good,
          { ...good, id: "b", tests: [] },
          { ...good, id: "c", find: "y" },
          { ...good, id: "d", file: "../x.ts", extra: 1 },
        ]),
        "m.json",
      ),
    (e: Error) => {
      for (
        const want of [
          "m.json[1] (a): duplicate id",
          'm.json[2] (b): "tests" must be a non-empty list',
          'm.json[3] (c): "replace" equals "find"',
          "m.json[4] (d): unknown field(s) extra",
          "m.json[4] (d): ../x.ts must be relative",
        ]
      ) ok(e.message.includes(want), `${want} not in ${e.message}`);
      return true;
    },
  );
  throws(() => parseMutants("{}", "m.json"), /expected a JSON array/);
});
