/**
 * Named benchmarks: `xquad-r` and `mlqa-r` fetched from the LAReQA repository
 * (`google-research-datasets/lareqa`) at a pinned commit, every file checked against a sha256
 * pinned here before it is used or written, cached, licences printed on first download. A local
 * folder of the same name always wins.
 * @module
 */
import { join } from "node:path";
import { createHash } from "node:crypto";
import { homedir } from "node:os";

/** The LAReQA commit the files and hashes are pinned to (MLQA-R was removed after it). */
export const LAREQA_COMMIT = "354d67d1cd066854cdfbf5ad0e6105528976141d";
/** Raw files of that commit; `LAREQA_BASE_URL` overrides it (mirrors, tests). */
export const LAREQA_BASE_URL =
  `https://raw.githubusercontent.com/google-research-datasets/lareqa/${LAREQA_COMMIT}`;

/** One named dataset: its files (`<name>/<lang>.json`) with their sha256 and its licence. */
export interface NamedDataset {
  name: string;
  sha256: Record<string, string>;
  licence: string;
}

/** The pinned datasets. */
export const NAMED_DATASETS: Record<string, NamedDataset> = {
  "xquad-r": {
    name: "xquad-r",
    sha256: {
      ar: "c52922d3b8ac1ae03ed5ac38647ad59870dca3dda2beefe18ecdc30729acb69d",
      de: "16fb0f4bf4916154b585a20c24c66074591c9718a1affe764ff4697572328949",
      el: "163fd43ee785a30eb534ae2061e9eaa766a7ee4e8ffce5e4b422480c150f64b6",
      en: "7b0954f39297c27a31fef610f0883337dd2907fa8699151dc922afdd0fa12ffe",
      es: "f8e836b2d91009c4363e04315f7ede363eedbbb49c67dda60de6c4aa782f58de",
      hi: "ea45ba8ae4513d1533b222bebdc02a90bc319c055d3aeea68584a053d2e92872",
      ru: "7f4dff853538b9a5fcc28c070b8bb983a5c5d190ac747b8e005a1ada9cab18f1",
      th: "c3a041864c3a9fb0b4dd91cfdf99cf36b411b3e704c58a303c97bc6dc786cfe4",
      tr: "f3e8c13002bbce154a4578f535f7533cb70f3da08840e6b62735935baec7bd94",
      vi: "e35926bf5cc6fc6ecbdfca49467aabeb454f08d152d7818143a906bd31dde995",
      zh: "80c2cde7b9c2fb134c303cbb52f2ba396ead9eb0014aec43993543d2ba9e93ed",
    },
    licence: "XQuAD-R (LAReQA, Roy et al. 2020; built on XQuAD by Artetxe et al. and SQuAD v1.1) " +
      "is licensed CC BY-SA 4.0: https://creativecommons.org/licenses/by-sa/4.0/",
  },
  "mlqa-r": {
    name: "mlqa-r",
    sha256: {
      ar: "2132fbc03208535c0fe01f2e2c5121d06f9c2aa799af93b0a719dbc105bdf137",
      de: "ce9454dc5aa6f2d85c23cd6e49cb367fbb7c4c6e62d7f71e355c6b5dae4d0886",
      en: "fedd9a5cc0848dda80caf84aa36f482adaae230526a3f6e9e86926a93ef3b1e4",
      es: "70ecba276b8c96a692b120693a595d076ce94ad21d4b28311538a9fcbfe0f9d7",
      hi: "4dd0fb3c06f737a5481d705bc1dcac7876712a5815c9265908fbb3a0696cb654",
      vi: "9d3baff6ba03e6793b25594217265ea59a136b9733833dca8a9582a84a78ff85",
      zh: "57f01d2fff50cf3392805635b01445339f225ad5bf28ba8443b12f8dbd1e69dc",
    },
    licence: "MLQA-R (LAReQA, Roy et al. 2020; built on MLQA by Lewis et al.) is licensed " +
      "CC BY-NC 4.0 (non-commercial use only): https://creativecommons.org/licenses/by-nc/4.0/",
  },
};

/** Where a dataset came from. */
export interface DatasetSource {
  /** The folder the loaders read. */
  dir: string;
  /** What the user gave. */
  spec: string;
  kind: "local" | "named";
  /** Named only: the base URL, the commit, and the sha256 of each file (verified). */
  url?: string;
  commit?: string;
  sha256?: Record<string, string>;
}

/** Options of {@linkcode resolveDataset}. */
export interface DatasetOptions {
  /** Languages needed (default: all of the dataset). */
  langs?: string[];
  /** Default `LAREQA_BASE_URL` from the environment, else the pinned commit on GitHub. */
  baseUrl?: string;
  /** Default `$XDG_CACHE_HOME/xlmr-webgpu/lareqa` (`~/.cache/xlmr-webgpu/lareqa`). */
  cacheDir?: string;
  /** Cache only (default: `HF_HUB_OFFLINE=1`). */
  offline?: boolean;
  /** The pinned hashes (tests serve re-serialised copies; the product uses the table above). */
  datasets?: Record<string, NamedDataset>;
  fetch?: typeof fetch;
  /** Messages (download lines, licences); default stderr. */
  log?: (msg: string) => void;
}

function env(k: string): string | undefined {
  try {
    return Deno.env.get(k) || undefined;
  } catch {
    return undefined;
  }
}

/** The default cache folder of named datasets. */
export function datasetCacheDir(): string {
  return join(env("XDG_CACHE_HOME") ?? join(homedir(), ".cache"), "xlmr-webgpu", "lareqa");
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * The folder of a LAReQA-format dataset: `spec` itself when such a path exists, else a named
 * dataset (`xquad-r`, `mlqa-r`) whose `<lang>.json` files (`opts.langs`, default all) are taken
 * from the cache or downloaded, each verified against its pinned sha256 before use. A file whose
 * hash differs is refused and nothing is written.
 */
export async function resolveDataset(
  spec: string,
  opts: DatasetOptions = {},
): Promise<DatasetSource> {
  if (await exists(spec)) return { dir: spec, spec, kind: "local" };
  const table = opts.datasets ?? NAMED_DATASETS;
  const ds = table[spec];
  if (!ds) {
    throw new Error(
      `--dataset ${spec}: no such folder, and not a named dataset (${
        Object.keys(table).join(", ")
      })`,
    );
  }
  const langs = opts.langs ?? Object.keys(ds.sha256).sort();
  const unknown = langs.filter((l) => !(l in ds.sha256));
  if (unknown.length) {
    throw new Error(
      `--dataset ${spec}: no language ${unknown.join(", ")}; available: ${
        Object.keys(ds.sha256).sort().join(", ")
      }`,
    );
  }
  const base = (opts.baseUrl ?? env("LAREQA_BASE_URL") ?? LAREQA_BASE_URL).replace(/\/+$/, "");
  const dir = join(opts.cacheDir ?? datasetCacheDir(), LAREQA_COMMIT, spec);
  const hashes = await fetchPinnedFiles({
    spec,
    files: langs.map((l) => ({
      name: `${l}.json`,
      path: `${spec}/${l}.json`,
      sha256: ds.sha256[l],
    })),
    baseUrl: base,
    dir,
    source: `LAReQA commit ${LAREQA_COMMIT}`,
    licence: ds.licence,
    offline: opts.offline,
    fetch: opts.fetch,
    log: opts.log,
  });
  const byLang: Record<string, string> = {};
  for (const l of langs) byLang[l] = hashes[`${l}.json`];
  return { dir, spec, kind: "named", url: base, commit: LAREQA_COMMIT, sha256: byLang };
}

/** Options of {@linkcode fetchPinnedFiles}. */
export interface PinnedFilesOptions {
  /** What the user gave (`--dataset <spec>` in messages). */
  spec: string;
  /** Each file: its name in `dir`, its path under `baseUrl`, its pinned sha256. */
  files: { name: string; path: string; sha256: string }[];
  baseUrl: string;
  /** The cache folder the files are written to. */
  dir: string;
  /** Where the pins come from, for the refusal message (`LAReQA commit …`). */
  source: string;
  /** Printed once, when the folder is first created. */
  licence: string;
  /** Cache only (default: `HF_HUB_OFFLINE=1`). */
  offline?: boolean;
  fetch?: typeof fetch;
  log?: (msg: string) => void;
}

/**
 * Takes each file from `dir` when its sha256 is the pinned one, else downloads it from
 * `baseUrl/path` and verifies it before writing it (atomically); a file whose hash differs is
 * refused and nothing is written. The licence is printed when the folder is first created.
 * Returns the verified sha256 of each file by name.
 */
export async function fetchPinnedFiles(o: PinnedFilesOptions): Promise<Record<string, string>> {
  const { spec, dir } = o;
  const base = o.baseUrl.replace(/\/+$/, "");
  const offline = o.offline ??
    ["1", "true", "yes", "on"].includes((env("HF_HUB_OFFLINE") ?? "").toLowerCase());
  const log = o.log ?? ((m: string) => console.error(m));
  const doFetch = o.fetch ?? fetch;
  const hashes: Record<string, string> = {};
  const missing: string[] = [];
  for (const file of o.files) {
    const path = join(dir, file.name);
    const want = file.sha256;
    if (await exists(path)) {
      const got = sha256(await Deno.readFile(path));
      if (got === want) {
        hashes[file.name] = got;
        continue;
      }
      log(`warning: cached ${path} has sha256 ${got}, not the pinned ${want}; downloading again`);
    }
    if (offline) {
      missing.push(path);
      continue;
    }
    const url = `${base}/${file.path}`;
    let bytes: Uint8Array;
    try {
      const resp = await doFetch(url);
      if (!resp.ok) {
        await resp.body?.cancel();
        throw new Error(`HTTP ${resp.status}`);
      }
      bytes = new Uint8Array(await resp.arrayBuffer());
    } catch (e) {
      throw new Error(`--dataset ${spec}: cannot download ${url}: ${(e as Error).message}`);
    }
    const got = sha256(bytes);
    if (got !== want) {
      throw new Error(
        `--dataset ${spec}: ${url}: sha256 ${got} differs from the pinned ${want} ` +
          `(${o.source}); the file was refused and nothing was written`,
      );
    }
    const first = !(await exists(dir));
    await Deno.mkdir(dir, { recursive: true });
    const tmp = `${path}.tmp-${crypto.randomUUID().slice(0, 8)}`;
    await Deno.writeFile(tmp, bytes);
    await Deno.rename(tmp, path);
    hashes[file.name] = got;
    log(`downloaded ${url} (${bytes.length} bytes, sha256 verified) → ${path}`);
    if (first) log(`licence: ${o.licence}`);
  }
  if (missing.length) {
    throw new Error(
      `HF_HUB_OFFLINE=1: --dataset ${spec} is not fully cached: ${missing.join(", ")} missing. ` +
        `Run once online, or give a local folder`,
    );
  }
  return hashes;
}
