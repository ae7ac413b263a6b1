/**
 * End to end: the real commands (`deno run -A cli.ts …` as subprocesses) given hostile files exit
 * with status 1 and one error line naming the file and the place, and create or change no output.
 */
import { equal, match, ok } from "node:assert/strict";
import { presetConfig } from "../../model/config.ts";
import { initModelDir } from "../../model/init.ts";
import { writeSafetensors } from "../../model/safetensors.ts";
import { parameterShapes } from "../../model/params.ts";
import { FIXTURES, runCli, snapshot } from "./_cli.ts";

const config = presetConfig("tiny", { vocabSize: 40, maxPositions: 20 });

/** Runs a command that must fail; checks the message and that nothing under `dir` changed. */
async function mustFail(args: string[], dir: string, want: RegExp): Promise<void> {
  const before = await snapshot(dir);
  const r = await runCli(args);
  equal(r.code, 1, `${args[0]} exits 1; stderr: ${r.stderr}`);
  match(r.stderr, want);
  const after = await snapshot(dir);
  ok(
    after.size === before.size && [...before].every(([p, v]) => after.get(p) === v),
    `${args[0]}: no file created or changed (${[...after.keys()].filter((p) => !before.has(p))})`,
  );
}

Deno.test("cli commands refuse hostile inputs naming file and place, writing nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cli_hostile_" });
  const model = `${dir}/model`;
  await initModelDir(model, config, { seed: 1 });
  await Deno.writeTextFile(`${dir}/ids.jsonl`, '{"input_ids": [0, 5, 2]}\n');

  // embed: a truncated checkpoint.
  const truncated = `${dir}/truncated`;
  await initModelDir(truncated, config, { seed: 1 });
  const bytes = await Deno.readFile(`${truncated}/model.safetensors`);
  await Deno.writeFile(`${truncated}/model.safetensors`, bytes.subarray(0, bytes.length - 100));
  await mustFail(
    ["embed", "--model", truncated, "--input", `${dir}/ids.jsonl`, "--out", `${dir}/e.safetensors`],
    dir,
    /truncated\/model.safetensors: tensor "pooler.dense.bias": data_offsets .* run past the data/,
  );

  // embed: a NaN weight.
  const nan = `${dir}/nan`;
  await initModelDir(nan, config, { seed: 1 });
  await writeSafetensors(
    `${nan}/model.safetensors`,
    parameterShapes(config).map(([name, shape]) => {
      const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
      if (name === "encoder.layer.0.attention.self.key.weight") data[3] = NaN;
      return { name, shape, data };
    }),
  );
  await mustFail(
    ["embed", "--model", nan, "--input", `${dir}/ids.jsonl`, "--out", `${dir}/e.safetensors`],
    dir,
    /nan: tensor "encoder.layer.0.attention.self.key.weight" holds NaN at flat index 3/,
  );

  // embed: input with invalid UTF-8 on line 2.
  await Deno.writeFile(
    `${dir}/bad.jsonl`,
    new Uint8Array([...new TextEncoder().encode('{"text": "a"}\n{"text": "'), 0xff, 0x22, 0x7d]),
  );
  await mustFail(
    ["embed", "--model", model, "--input", `${dir}/bad.jsonl`, "--out", `${dir}/e.safetensors`],
    dir,
    /bad.jsonl:2: invalid UTF-8 at byte 24/,
  );

  // tokenize: the same file.
  await mustFail(
    [
      "tokenize",
      "--tokenizer",
      `${FIXTURES}tokenizer`,
      "--input",
      `${dir}/bad.jsonl`,
      "--out",
      `${dir}/t.jsonl`,
    ],
    dir,
    /bad.jsonl:2: invalid UTF-8/,
  );

  // train: a JSONL line with an empty question object; the output directory is not created.
  await Deno.writeTextFile(
    `${dir}/pairs.jsonl`,
    '{"id": 1, "question": {"en": "a"}, "answer": {"en": "b"}}\n' +
      '{"id": 2, "question": {}, "answer": {}}\n',
  );
  await mustFail(
    ["train", "--model", model, "--train", `${dir}/pairs.jsonl`, "--out", `${dir}/run`],
    dir,
    /pairs.jsonl:2: "question" has no language/,
  );

  // eval: a LAReQA file whose sentence break runs past its context.
  await Deno.mkdir(`${dir}/lareqa`);
  await Deno.writeTextFile(
    `${dir}/lareqa/en.json`,
    JSON.stringify({
      data: [{ paragraphs: [{ context: "A.", sentence_breaks: [[0, 7]], qas: [] }] }],
    }),
  );
  await mustFail(
    ["eval", "--model", model, "--dataset", `${dir}/lareqa`, "--out", `${dir}/r.json`],
    dir,
    /lareqa\/en.json: data\[0\].paragraphs\[0\].sentence_breaks\[0\]/,
  );

  // init: an absurd config is refused with its byte size; the directory is not created.
  await Deno.writeTextFile(
    `${dir}/huge.json`,
    JSON.stringify({ vocab_size: 5_000_000, hidden_size: 8192, num_attention_heads: 64 }),
  );
  await mustFail(
    ["init", "--out", `${dir}/huge`, "--config", `${dir}/huge.json`],
    dir,
    /huge.json: the model would need \d+ bytes \([\d.]+ GiB\)/,
  );
  await Deno.writeTextFile(`${dir}/broken.json`, "{ nope");
  await mustFail(
    ["init", "--out", `${dir}/x`, "--config", `${dir}/broken.json`],
    dir,
    /broken.json: not valid JSON/,
  );
  await Deno.remove(dir, { recursive: true });
});
