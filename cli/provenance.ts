/**
 * What the commands record about where a result came from (model, dataset, engine, adapter,
 * options), the prompts a run folder records, and the adapter line they print.
 * @module
 */
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Gpu } from "../kernels/runtime.ts";
import { noteForAdapter } from "../kernels/adapter_note.ts";
import { type ModelSource, sha256File } from "../model/hub.ts";
import type { DatasetSource } from "../eval/named_datasets.ts";
import { writeFileAtomic } from "../model/atomic_write.ts";
import denoJson from "../deno.json" with { type: "json" };

/** Prints `adapter: …` and, for a CPU software adapter or the OpenGL backend, one note line. */
export function printAdapter(gpu: Gpu, log: (s: string) => void = console.log): string {
  log(`adapter: ${gpu.describe()}`);
  const note = noteForAdapter(gpu.adapter);
  if (note) console.error(note);
  return gpu.describe();
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** The engine's name, version and git commit (when it runs from a checkout). */
export async function engineInfo(): Promise<{ name: string; version: string; commit?: string }> {
  const info: { name: string; version: string; commit?: string } = {
    name: denoJson.name,
    version: denoJson.version,
  };
  if (!import.meta.url.startsWith("file:")) return info;
  try {
    let dir = dirname(dirname(fileURLToPath(import.meta.url)));
    for (let i = 0; i < 4 && !(await exists(join(dir, ".git"))); i++) dir = dirname(dir);
    let git = join(dir, ".git");
    if ((await Deno.stat(git)).isFile) {
      // A worktree or submodule: ".git" names the real git folder.
      const m = /^gitdir: (.+)$/m.exec(await Deno.readTextFile(git));
      if (m) git = resolve(dir, m[1].trim());
    }
    const head = (await Deno.readTextFile(join(git, "HEAD"))).trim();
    if (/^[0-9a-f]{40}$/.test(head)) info.commit = head;
    else if (head.startsWith("ref: ")) {
      const ref = head.slice(5);
      try {
        info.commit = (await Deno.readTextFile(join(git, ref))).trim();
      } catch {
        const packed = await Deno.readTextFile(join(git, "packed-refs"));
        info.commit = packed.split("\n").find((l) => l.endsWith(` ${ref}`))?.split(" ")[0];
      }
    }
  } catch {
    // not a checkout
  }
  return info;
}

/** sha256 of a weights file; a Hub blob is named by its (verified) sha256 already. */
async function weightsSha(path: string): Promise<string> {
  try {
    const real = await Deno.realPath(path);
    if (/^[0-9a-f]{64}$/.test(basename(real)) && basename(dirname(real)) === "blobs") {
      return basename(real);
    }
  } catch {
    // hashed below
  }
  return await sha256File(path);
}

/** The model as a result records it: path or Hub id, revision, commit, safetensors sha256. */
export async function modelProvenance(src: ModelSource): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = src.kind === "hub"
    ? {
      hub_id: src.repo,
      revision: src.revision,
      commit: src.commit,
      endpoint: src.endpoint,
      snapshot: src.dir,
    }
    : { path: src.dir };
  const single = join(src.dir, "model.safetensors");
  if (await exists(single)) out.safetensors_sha256 = await weightsSha(single);
  else {
    try {
      const index = JSON.parse(
        await Deno.readTextFile(join(src.dir, "model.safetensors.index.json")),
      ) as { weight_map: Record<string, string> };
      const shards: Record<string, string> = {};
      for (const s of [...new Set(Object.values(index.weight_map))].sort()) {
        shards[s] = await weightsSha(join(src.dir, s));
      }
      out.safetensors_sha256 = shards;
    } catch {
      // no weights to hash
    }
  }
  return out;
}

/** The dataset as a result records it: name, folder, source, and each file's sha256. */
export async function datasetProvenance(
  src: DatasetSource,
  langs: string[],
): Promise<Record<string, unknown>> {
  const files: Record<string, string> = {};
  for (const l of langs) {
    files[`${l}.json`] = src.sha256?.[l] ?? await sha256File(join(src.dir, `${l}.json`));
  }
  return {
    name: basename(src.dir.replace(/[\\/]+$/, "")),
    ...(src.kind === "named"
      ? { named: src.spec, source: `${src.url}/${src.spec}`, lareqa_commit: src.commit }
      : {}),
    dir: src.dir,
    sha256: files,
  };
}

/** A dataset folder (BEIR/MIRACL): its name and the sha256 of every file in it (and below). */
export async function folderProvenance(dir: string): Promise<Record<string, unknown>> {
  const sha256: Record<string, string> = {};
  const walk = async (sub: string) => {
    const entries = await Array.fromAsync(Deno.readDir(join(dir, sub)));
    for (const e of entries.sort((a, b) => a.name < b.name ? -1 : 1)) {
      const rel = sub ? `${sub}/${e.name}` : e.name;
      // A symlink (a Hugging Face cache snapshot is all symlinks) counts as what it points to.
      const kind = e.isSymlink ? await Deno.stat(join(dir, rel)) : e;
      if (kind.isDirectory) await walk(rel);
      else if (kind.isFile) sha256[rel] = await sha256File(join(dir, rel));
    }
  };
  await walk("");
  return { name: basename(dir.replace(/[\\/]+$/, "")), dir, sha256 };
}

/**
 * The prompts a model folder records: `config_sentence_transformers.json` (`prompts.query` /
 * `prompts.passage`, or `prompts.document`), else a training run's `train_summary.json`
 * (`options.queryPrefix` / `options.passagePrefix`). Empty when none.
 */
export async function readRunPrompts(
  dir: string,
): Promise<{ query?: string; passage?: string; defaultName?: "query" | "passage" }> {
  try {
    const st = JSON.parse(await Deno.readTextFile(join(dir, "config_sentence_transformers.json")));
    const p = st?.prompts;
    // sentence-transformers names the passage prompt "passage" or "document".
    const passage = typeof p?.passage === "string"
      ? p.passage
      : typeof p?.document === "string"
      ? p.document
      : undefined;
    if (p && (typeof p.query === "string" || passage !== undefined)) {
      const d = st.default_prompt_name === "document" ? "passage" : st.default_prompt_name;
      return {
        query: typeof p.query === "string" ? p.query : undefined,
        passage,
        defaultName: d === "query" || d === "passage" ? d : undefined,
      };
    }
  } catch {
    // none
  }
  try {
    const sum = JSON.parse(await Deno.readTextFile(join(dir, "train_summary.json")));
    const o = sum?.options ?? {};
    const q = o.queryPrefix ?? o.query_prefix, p = o.passagePrefix ?? o.passage_prefix;
    return {
      query: typeof q === "string" ? q : undefined,
      passage: typeof p === "string" ? p : undefined,
    };
  } catch {
    return {};
  }
}

/** Adds a provenance section to written report files (`report.md`/`report.html`) and a JSON. */
export async function addProvenanceToReports(
  paths: string[],
  provenance: unknown,
): Promise<string[]> {
  const json = JSON.stringify(provenance, null, 2);
  const out = [...paths];
  for (const p of paths) {
    if (p.endsWith("report.md")) {
      const text = await Deno.readTextFile(p);
      await writeFileAtomic(
        p,
        `${text.trimEnd()}\n\n## Provenance\n\n\`\`\`json\n${json}\n\`\`\`\n`,
      );
    } else if (p.endsWith("report.html")) {
      const text = await Deno.readTextFile(p);
      const esc = json.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
      const section = `<section id="provenance"><h2>Provenance</h2><pre>${esc}</pre></section>\n`;
      const i = text.lastIndexOf("</body>");
      await writeFileAtomic(
        p,
        i >= 0 ? text.slice(0, i) + section + text.slice(i) : text + section,
      );
    }
  }
  const dir = paths.find((p) => p.endsWith("report.md"));
  if (dir) {
    const pj = join(dirname(dir), "provenance.json");
    await writeFileAtomic(pj, json + "\n");
    out.push(pj);
  }
  return out;
}
