/**
 * The engine as a library someone else imports: a consumer project that knows the repository only
 * as an `http:` URL (served here from the checkout by a local static server) and maps nothing but
 * the engine's npm dependencies loads the tiny fixture model, embeds a few texts and renders a
 * report; its vectors must equal those of `cli.ts embed` on the same texts.
 *
 * This fails (never skips) when anything is missing: a module that reads a file beside itself
 * (shaders and templates must travel in the module graph), an npm dependency the import map does
 * not cover, a file the library needs but the checkout lacks.
 * @module
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { SafetensorsFile } from "../model/safetensors.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const MODEL = join(ROOT, "tests/fixtures/xlmr-tiny/model");
const TOKENIZER = join(ROOT, "tests/fixtures/tokenizer");
const TEXTS = [
  "Where is the river?",
  "Wo ist der Fluss?",
  "河流在哪里？",
  "The river flows through the old town and under seven bridges before it reaches the sea.",
];
const POOLING = "mean";

const CONTENT_TYPES: Record<string, string> = {
  ".ts": "application/typescript; charset=utf-8",
  ".js": "application/javascript; charset=utf-8",
  ".json": "application/json; charset=utf-8",
};

/** A static file server over the repository root; records every path it is asked for. */
function serveRepository(requested: string[]): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const path = decodeURIComponent(new URL(req.url).pathname);
    requested.push(path);
    const file = normalize(join(ROOT, path));
    if (!file.startsWith(ROOT)) return new Response("outside the repository", { status: 403 });
    try {
      const body = await Deno.readFile(file);
      const type = CONTENT_TYPES[extname(file)] ?? "text/plain; charset=utf-8";
      return new Response(body, { headers: { "content-type": type } });
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
}

/** The npm entries of the repository's import map that the library needs (not the dev-only ones). */
async function libraryImports(): Promise<Record<string, string>> {
  const config = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json"))) as {
    imports: Record<string, string>;
  };
  // @tensorflow/* serves only bench/peers (the tfjs comparison), which is not part of the library.
  const imports = Object.fromEntries(
    Object.entries(config.imports).filter(([k, v]) =>
      v.startsWith("npm:") && !k.startsWith("@tensorflow/")
    ),
  );
  ok(imports["@huggingface/jinja"], "deno.json maps @huggingface/jinja");
  return imports;
}

function consumerScript(base: string): string {
  return `
import { Encoder, Gpu } from "${base}/mod.ts";
import { renderReport, type LareqaReport } from "${base}/eval/mod.ts";

const [model, tokenizer, pooling, texts] = [
  ${JSON.stringify(MODEL)},
  ${JSON.stringify(TOKENIZER)},
  ${JSON.stringify(POOLING)},
  ${JSON.stringify(TEXTS)},
];
const gpu = await Gpu.create();
const encoder = await Encoder.load(gpu, model, tokenizer);
const H = encoder.config.hiddenSize;
const emb = await encoder.embed(texts.map((text: string) => ({ text })), { pooling });
const vectors = texts.map((_: string, i: number) => Array.from(emb.subarray(i * H, (i + 1) * H)));
encoder.release();

// The report templates must travel with the modules as the shaders do.
const pair = { "r@1": 0.5, "r@10": 1 };
const report: LareqaReport = {
  dataset: "consumer",
  languages: ["en", "de"],
  map: { monolingual: 0.9, crosslingual: 0.5, multilingual: 0.4, multilingual_micro: 0.4 },
  pairs: { en: { en: 0.9, de: 0.5 }, de: { en: 0.5, de: 0.9 } },
  multilingual_by_language: { en: 0.4, de: 0.4 },
  language_bias: { mean: 3, by_language: { en: 3, de: 3 } },
  recall: { monolingual: pair, crosslingual: pair, multilingual: pair },
  counts: {
    questions: { en: 1, de: 1 },
    candidates: { en: 2, de: 2 },
    queries: 2,
    candidates_total: 4,
    relevant_pairs: 4,
    pair_queries: {},
  },
  timing: { embed_ms: 1, score_ms: 1 },
};
const markdown = renderReport(report, "md");
console.log(JSON.stringify({ hidden: H, vectors, report: markdown }));
`;
}

/**
 * A DENO_DIR of its own for the consumer under `dir`, so that the modules cached and compiled from
 * the per-run `http://127.0.0.1:PORT/` URLs go away with the test. Its `npm/` is a link to the
 * default DENO_DIR's npm cache (when there is one), so @huggingface/jinja comes from npm only when
 * it is not cached there yet.
 */
async function consumerDenoDir(dir: string): Promise<string> {
  const info = await new Deno.Command(Deno.execPath(), { args: ["info", "--json"], stderr: "null" })
    .output();
  const denoDir = join(dir, "deno_dir");
  await Deno.mkdir(denoDir);
  const npmCache = (JSON.parse(new TextDecoder().decode(info.stdout)) as { npmCache?: string })
    .npmCache;
  if (npmCache && await Deno.stat(npmCache).then((s) => s.isDirectory, () => false)) {
    await Deno.symlink(npmCache, join(denoDir, "npm"));
  }
  return denoDir;
}

async function run(
  args: string[],
  cwd: string,
  denoDir?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: Record<string, string> = {
    XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp",
    NO_COLOR: "1",
  };
  if (denoDir) env.DENO_DIR = denoDir;
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test({
  name: "a consumer importing the engine over http: embeds exactly as cli.ts embed does",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    for (const dir of [MODEL, TOKENIZER]) {
      ok((await Deno.stat(dir)).isDirectory, `${dir} is missing`);
    }
    const requested: string[] = [];
    const server = serveRepository(requested);
    const dir = await Deno.makeTempDir({ prefix: "xlmr-consumer-" });
    try {
      const base = `http://127.0.0.1:${server.addr.port}`;
      await Deno.writeTextFile(
        join(dir, "deno.json"),
        JSON.stringify({ imports: await libraryImports() }, null, 2),
      );
      await Deno.writeTextFile(join(dir, "main.ts"), consumerScript(base));
      const t0 = performance.now();
      const consumer = await run(
        ["run", "-A", "--no-lock", "--config", join(dir, "deno.json"), "main.ts"],
        dir,
        await consumerDenoDir(dir),
      );
      const consumerSecs = (performance.now() - t0) / 1000;
      equal(consumer.code, 0, `consumer script failed:\n${consumer.stderr}\n${consumer.stdout}`);
      const got = JSON.parse(consumer.stdout.trim().split("\n").at(-1)!) as {
        hidden: number;
        vectors: number[][];
        report: string;
      };

      // What the consumer fetched: the library over http, no shader or template file beside it,
      // nothing from tests/ or bench/ (the fixture model is read from disk, not over http).
      ok(requested.includes("/mod.ts") && requested.includes("/kernels/shader.ts"), "library");
      deepEqual(
        requested.filter((p) =>
          p.endsWith(".wgsl") || p.includes("/templates/") || p.startsWith("/tests/") ||
          p.startsWith("/bench/")
        ),
        [],
      );
      ok(got.report.includes("| monolingual | 0.900 | 0.500 | 1.000 |"), got.report);
      ok(got.report.includes("<svg"), "report heatmap");

      const input = join(dir, "in.jsonl");
      await Deno.writeTextFile(input, TEXTS.map((text) => JSON.stringify({ text })).join("\n"));
      const out = join(dir, "emb.safetensors");
      const t1 = performance.now();
      const cli = await run([
        "run",
        "-A",
        join(ROOT, "cli.ts"),
        "embed",
        "--model",
        MODEL,
        "--tokenizer",
        TOKENIZER,
        "--input",
        input,
        "--out",
        out,
        "--pooling",
        POOLING,
      ], ROOT);
      const cliSecs = (performance.now() - t1) / 1000;
      equal(cli.code, 0, `cli.ts embed failed:\n${cli.stderr}`);
      const st = await SafetensorsFile.open(out);
      const H = got.hidden;
      deepEqual(st.tensors.get("embeddings")?.shape, [TEXTS.length, H]);
      const want = await st.readF32("embeddings");
      st.close();
      if (Deno.env.get("TEST_VERBOSE")) {
        console.log(
          `consumer ${consumerSecs.toFixed(1)} s, cli ${cliSecs.toFixed(1)} s (subprocesses)`,
        );
      }

      // Same code, same adapter, same batch: the vectors are equal bit for bit (JSON carries the
      // float32 values exactly, as float64 numbers).
      equal(got.vectors.length, TEXTS.length);
      got.vectors.forEach((row, i) => {
        ok(row.every(Number.isFinite) && row.some((x) => x !== 0), `vector ${i} is finite, not 0`);
        deepEqual(row, Array.from(want.subarray(i * H, (i + 1) * H)), `vector ${i}`);
      });
    } finally {
      await server.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("the README's library example is examples/library_quickstart.ts", async () => {
  const readme = await Deno.readTextFile(join(ROOT, "README.md"));
  const file = await Deno.readTextFile(join(ROOT, "examples/library_quickstart.ts"));
  const code = file.slice(file.indexOf("import "));
  const block = readme.match(/## Using it as a library[\s\S]*?```ts ignore\n([\s\S]*?)```/)?.[1];
  ok(block, "README.md has a ```ts ignore block under ## Using it as a library");
  equal(block, code, "copy examples/library_quickstart.ts (from its first import) into the README");
});
