/**
 * A local stand-in for the Hugging Face Hub that speaks the parts of its protocol the engine uses:
 * `GET /api/models/{repo}/revision/{rev}`, `POST /api/models/{repo}/paths-info/{rev}`,
 * `GET /api/models/{repo}/tree/{rev}`, and `HEAD`/`GET /{repo}/resolve/{rev}/{path}` with `Range`,
 * `ETag`/`X-Linked-ETag`, `X-Linked-Size`, `X-Repo-Commit` and `X-Error-Code`
 * (`RepoNotFound`, `RevisionNotFound`, `EntryNotFound`). Random port; `close()` stops it.
 */
import { createHash } from "node:crypto";
import { join, relative } from "node:path";

/** One served repository. */
export interface StandInRepo {
  commit: string;
  files: Record<string, Uint8Array>;
  /** Paths served as LFS files (sha256 in `lfs.oid`, `X-Linked-ETag`); default: *.safetensors. */
  lfs?: (path: string) => boolean;
  /** When set, requests need `Authorization: Bearer <token>` (else 401 RepoNotFound). */
  token?: string;
  /** Gated: the API answers, downloads need `gatedToken` (else 403 GatedRepo). */
  gatedToken?: string;
}

/** Fault injection and request log. */
export interface StandInHub {
  url: string;
  repos: Record<string, StandInRepo>;
  /** Every request: method, path, Range header. */
  log: { method: string; path: string; range: string | null }[];
  /** The next GET of `<repo>/<file>` body stops after this many bytes (connection dropped). */
  cutAfter: Map<string, number>;
  /** Bytes served instead of the real ones for `<repo>/<file>` (metadata unchanged). */
  tamper: Map<string, Uint8Array>;
  close(): Promise<void>;
}

const enc = new TextEncoder();

export function gitBlobSha1(bytes: Uint8Array): string {
  return createHash("sha1").update(`blob ${bytes.length}\0`).update(bytes).digest("hex");
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Reads every file under `dirs` (later folders win) into one file map. */
export async function readRepoFiles(...dirs: string[]): Promise<Record<string, Uint8Array>> {
  const out: Record<string, Uint8Array> = {};
  const walk = async (root: string, dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      const p = join(dir, e.name);
      if (e.isDirectory) await walk(root, p);
      else out[relative(root, p)] = await Deno.readFile(p);
    }
  };
  for (const d of dirs) await walk(d, d);
  return out;
}

/** Starts the stand-in on a random port. */
export function startHub(repos: Record<string, StandInRepo>): StandInHub {
  const log: StandInHub["log"] = [];
  const cutAfter = new Map<string, number>();
  const tamper = new Map<string, Uint8Array>();
  const isLfs = (r: StandInRepo, p: string) => (r.lfs ?? ((x) => x.endsWith(".safetensors")))(p);
  const error = (status: number, code: string, message: string) =>
    new Response(JSON.stringify({ error: message }), {
      status,
      headers: { "Content-Type": "application/json", "X-Error-Code": code },
    });
  const findRepo = (req: Request, name: string, rev: string): StandInRepo | Response => {
    const r = repos[name];
    const auth = req.headers.get("Authorization");
    if (!r || (r.token && auth !== `Bearer ${r.token}`)) {
      return error(401, "RepoNotFound", "Repository Not Found");
    }
    if (rev !== "main" && rev !== r.commit) {
      return error(404, "RevisionNotFound", `Invalid rev id: ${rev}`);
    }
    return r;
  };
  const entry = (r: StandInRepo, p: string) => {
    const bytes = r.files[p];
    return {
      type: "file",
      path: p,
      oid: gitBlobSha1(bytes),
      size: bytes.length,
      ...(isLfs(r, p)
        ? { lfs: { oid: sha256Hex(bytes), size: bytes.length, pointerSize: 134 } }
        : {}),
    };
  };
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    const path = decodeURIComponent(url.pathname);
    log.push({ method: req.method, path, range: req.headers.get("Range") });
    let m = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/([^/]+)$/.exec(path);
    if (m && req.method === "GET") {
      const r = findRepo(req, m[1], m[2]);
      if (r instanceof Response) return r;
      return Response.json({
        _id: "0",
        id: m[1],
        sha: r.commit,
        private: !!r.token,
        gated: false,
        downloads: 0,
        likes: 0,
        lastModified: "2026-01-01T00:00:00.000Z",
        siblings: Object.keys(r.files).sort().map((rfilename) => ({ rfilename })),
      });
    }
    m = /^\/api\/models\/([^/]+\/[^/]+)\/paths-info\/([^/]+)$/.exec(path);
    if (m && req.method === "POST") {
      const r = findRepo(req, m[1], m[2]);
      if (r instanceof Response) return r;
      const body = await req.json() as { paths: string[] };
      return Response.json(body.paths.filter((p) => p in r.files).map((p) => entry(r, p)));
    }
    m = /^\/api\/models\/([^/]+\/[^/]+)\/tree\/([^/]+)$/.exec(path);
    if (m && req.method === "GET") {
      const r = findRepo(req, m[1], m[2]);
      if (r instanceof Response) return r;
      return Response.json(Object.keys(r.files).sort().map((p) => entry(r, p)));
    }
    m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    if (m && (req.method === "GET" || req.method === "HEAD")) {
      const r = findRepo(req, m[1], m[2]);
      if (r instanceof Response) return r;
      const file = m[3];
      if (r.gatedToken && req.headers.get("Authorization") !== `Bearer ${r.gatedToken}`) {
        return error(403, "GatedRepo", "Access to this model is restricted");
      }
      if (!(file in r.files)) return error(404, "EntryNotFound", `${file} does not exist`);
      const key = `${m[1]}/${file}`;
      const real = r.files[file];
      const bytes = tamper.get(key) ?? real;
      const headers: Record<string, string> = {
        "ETag": `"${gitBlobSha1(real)}"`,
        "X-Repo-Commit": r.commit,
        "Accept-Ranges": "bytes",
        "Content-Type": "application/octet-stream",
      };
      if (isLfs(r, file)) {
        headers["X-Linked-ETag"] = `"${sha256Hex(real)}"`;
        headers["X-Linked-Size"] = String(real.length);
      }
      let start = 0, end = bytes.length - 1, status = 200;
      const range = req.headers.get("Range");
      if (range) {
        const rm = /^bytes=(\d+)-(\d*)$/.exec(range);
        if (!rm || Number(rm[1]) >= bytes.length) {
          return new Response(null, {
            status: 416,
            headers: { "Content-Range": `bytes */${bytes.length}` },
          });
        }
        start = Number(rm[1]);
        if (rm[2]) end = Math.min(end, Number(rm[2]));
        status = 206;
        headers["Content-Range"] = `bytes ${start}-${end}/${bytes.length}`;
      }
      headers["Content-Length"] = String(end - start + 1);
      if (req.method === "HEAD") return new Response(null, { status, headers });
      const part = bytes.subarray(start, end + 1);
      const cut = cutAfter.get(key);
      if (cut !== undefined && part.length > 1) {
        cutAfter.delete(key);
        // Send `cut` bytes, then drop the connection.
        const body = new ReadableStream<Uint8Array>({
          start(c) {
            c.enqueue(part.slice(0, cut));
          },
          pull(c) {
            return new Promise((resolve) =>
              setTimeout(() => {
                c.error(new Error("connection dropped"));
                resolve();
              }, 50)
            );
          },
        });
        return new Response(body, { status, headers });
      }
      return new Response(part.slice() as Uint8Array<ArrayBuffer>, { status, headers });
    }
    return new Response(enc.encode("not found"), { status: 404 });
  });
  const addr = server.addr as Deno.NetAddr;
  return {
    url: `http://127.0.0.1:${addr.port}`,
    repos,
    log,
    cutAfter,
    tamper,
    close: async () => {
      await server.shutdown();
    },
  };
}
