/**
 * A static file server over a folder, for tests that download from stand-ins of GitHub raw
 * files (LAReQA, LASER's Tatoeba). Random port on 127.0.0.1; records request paths.
 * @module
 */
import { join } from "node:path";

/** Serves `root`; `log` collects the request paths; `close` stops the server. */
export function staticServer(
  root: string,
): { url: string; log: string[]; close: () => Promise<void> } {
  const log: string[] = [];
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, async (req) => {
    const path = decodeURIComponent(new URL(req.url).pathname);
    log.push(path);
    if (path.includes("..")) return new Response("bad", { status: 400 });
    try {
      return new Response(await Deno.readFile(join(root, path)));
    } catch {
      return new Response("404: Not Found", { status: 404 });
    }
  });
  return {
    url: `http://127.0.0.1:${(server.addr as Deno.NetAddr).port}`,
    log,
    close: () => server.shutdown(),
  };
}
