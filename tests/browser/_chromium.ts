/**
 * Headless Chromium driven over the Chrome DevTools Protocol (CDP), with no dependency beyond
 * Deno: the browser is started with `--remote-debugging-port=0`, its DevTools WebSocket address is
 * read from stderr ("DevTools listening on ws://…"), and a small JSON-RPC client over Deno's
 * WebSocket opens pages, collects console errors, exceptions and error log entries, evaluates
 * expressions and takes screenshots. Used by `report_browser.ts` (`deno task test:browser`).
 * @module
 */

/** Where Chromium is looked for, in order, after `$CHROMIUM`. */
const CANDIDATES = [
  "/usr/bin/chromium",
  "/usr/bin/chromium-browser",
  "/usr/bin/google-chrome",
  "/usr/bin/google-chrome-stable",
];

const INSTALL_HELP = "Install it with `apt-get install -y chromium` (Debian/Ubuntu; `sudo` when " +
  "not root), or point $CHROMIUM at a Chromium or Chrome binary.";

/** The Chromium binary, or an error saying how to install one (the browser tests never skip). */
export function findChromium(): string {
  const env = Deno.env.get("CHROMIUM");
  if (env) {
    if (isFile(env)) return env;
    throw new Error(`$CHROMIUM is ${env}, which is not a file. ${INSTALL_HELP}`);
  }
  for (const c of CANDIDATES) if (isFile(c)) return c;
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    for (const name of ["chromium", "chromium-browser", "google-chrome"]) {
      if (dir && isFile(`${dir}/${name}`)) return `${dir}/${name}`;
    }
  }
  throw new Error(
    `the browser tests need Chromium and none was found (looked at ${CANDIDATES.join(", ")} and ` +
      `$PATH). ${INSTALL_HELP}`,
  );
}

function isFile(p: string): boolean {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
}

// deno-lint-ignore no-explicit-any
type Json = any;
type Timer = ReturnType<typeof setTimeout>;

/** A console error, an uncaught exception or an error log entry seen on a page. */
export interface PageProblem {
  kind: "console" | "exception" | "log";
  text: string;
}

/** A minimal CDP client: commands with ids and timeouts, events to listeners. */
class Cdp {
  #ws: WebSocket;
  #id = 0;
  #pending = new Map<
    number,
    { resolve: (v: Json) => void; reject: (e: Error) => void; method: string; timer: Timer }
  >();
  #listeners = new Set<(msg: Json) => void>();
  #closed: Promise<void>;

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    this.#closed = new Promise((resolve) => ws.addEventListener("close", () => resolve()));
    ws.addEventListener("message", (ev) => {
      const msg = JSON.parse(String(ev.data));
      if (typeof msg.id === "number") {
        const p = this.#pending.get(msg.id);
        if (!p) return;
        this.#pending.delete(msg.id);
        clearTimeout(p.timer);
        if (msg.error) {
          p.reject(new Error(`CDP ${p.method}: ${msg.error.message} (${msg.error.code})`));
        } else p.resolve(msg.result);
      } else {
        for (const l of this.#listeners) l(msg);
      }
    });
    ws.addEventListener("close", () => {
      for (const [id, p] of this.#pending) {
        clearTimeout(p.timer);
        p.reject(new Error(`CDP ${p.method}: the DevTools connection closed`));
        this.#pending.delete(id);
      }
    });
  }

  static connect(url: string, timeoutMs = 15_000): Promise<Cdp> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      const timer = setTimeout(() => {
        ws.close();
        reject(new Error(`cannot connect to DevTools at ${url} within ${timeoutMs} ms`));
      }, timeoutMs);
      ws.addEventListener("open", () => {
        clearTimeout(timer);
        resolve(new Cdp(ws));
      }, { once: true });
      ws.addEventListener("error", (e) => {
        clearTimeout(timer);
        reject(new Error(`cannot connect to DevTools at ${url}: ${(e as ErrorEvent).message}`));
      }, { once: true });
    });
  }

  send(method: string, params: Json = {}, sessionId?: string, timeoutMs = 30_000): Promise<Json> {
    const id = ++this.#id;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`CDP ${method}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, { resolve, reject, method, timer });
      this.#ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
    });
  }

  on(fn: (msg: Json) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  async close(): Promise<void> {
    if (this.#ws.readyState === WebSocket.CLOSED) return;
    this.#ws.close();
    let timer: Timer | undefined;
    await Promise.race([this.#closed, new Promise((r) => timer = setTimeout(r, 2000))]);
    clearTimeout(timer);
  }
}

/** One open tab: navigate, evaluate, screenshot; problems collected since the last navigation. */
export class Page {
  problems: PageProblem[] = [];
  warnings: string[] = [];
  #cdp: Cdp;
  #session: string;
  #loads = 0;
  #onLoad: (() => void) | null = null;

  constructor(cdp: Cdp, sessionId: string) {
    this.#cdp = cdp;
    this.#session = sessionId;
    cdp.on((msg) => {
      if (msg.sessionId !== sessionId) return;
      const p = msg.params ?? {};
      switch (msg.method) {
        case "Page.loadEventFired":
          this.#loads++;
          this.#onLoad?.();
          break;
        case "Runtime.consoleAPICalled": {
          const text = (p.args ?? []).map((a: Json) =>
            a.value !== undefined ? String(a.value) : a.description ?? a.type
          ).join(" ");
          if (p.type === "error" || p.type === "assert") {
            this.problems.push({ kind: "console", text: `console.${p.type}: ${text}` });
          } else if (p.type === "warning") this.warnings.push(`console.warn: ${text}`);
          break;
        }
        case "Runtime.exceptionThrown": {
          const d = p.exceptionDetails ?? {};
          const text = d.exception?.description ?? d.text ?? "exception";
          this.problems.push({
            kind: "exception",
            text: `${text} (${d.url ?? "?"}:${(d.lineNumber ?? -1) + 1})`,
          });
          break;
        }
        case "Log.entryAdded": {
          const e = p.entry ?? {};
          const where = e.url
            ? ` (${e.url}${e.lineNumber !== undefined ? `:${e.lineNumber + 1}` : ""})`
            : "";
          if (e.level === "error") {
            this.problems.push({ kind: "log", text: `${e.source}: ${e.text}${where}` });
          } else if (e.level === "warning") this.warnings.push(`${e.source}: ${e.text}${where}`);
          break;
        }
      }
    });
  }

  send(method: string, params: Json = {}): Promise<Json> {
    return this.#cdp.send(method, params, this.#session);
  }

  /** Opens `url`, waits for its load event, and clears the problems of the previous page. */
  async goto(url: string, timeoutMs = 30_000): Promise<void> {
    this.problems = [];
    this.warnings = [];
    const before = this.#loads;
    let timer: Timer | undefined;
    const loaded = new Promise<void>((resolve, reject) => {
      this.#onLoad = () => {
        if (this.#loads > before) resolve();
      };
      timer = setTimeout(
        () => reject(new Error(`${url}: no load event within ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    try {
      const nav = await this.send("Page.navigate", { url });
      if (nav.errorText) throw new Error(`${url}: navigation failed: ${nav.errorText}`);
      await loaded;
    } finally {
      clearTimeout(timer);
      this.#onLoad = null;
    }
    // A round trip after the load event: events the page sent before it have arrived.
    await this.evaluate("0");
  }

  /** The value of a JavaScript expression in the page (JSON-serialisable). */
  async evaluate<T = Json>(expression: string): Promise<T> {
    const r = await this.send("Runtime.evaluate", {
      expression,
      returnByValue: true,
      awaitPromise: true,
    });
    if (r.exceptionDetails) {
      throw new Error(
        `evaluate failed: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`,
      );
    }
    return r.result.value as T;
  }

  /** A PNG screenshot of the whole page (up to `maxHeight` CSS pixels tall). */
  async screenshot(maxHeight = 4000): Promise<Uint8Array> {
    const m = await this.send("Page.getLayoutMetrics");
    const size = m.cssContentSize ?? m.contentSize;
    const clip = {
      x: 0,
      y: 0,
      width: Math.ceil(size.width),
      height: Math.min(maxHeight, Math.ceil(size.height)),
      scale: 1,
    };
    const r = await this.send("Page.captureScreenshot", {
      format: "png",
      clip,
      captureBeyondViewport: true,
    });
    return Uint8Array.from(atob(r.data), (c) => c.charCodeAt(0));
  }
}

/** A running headless Chromium; `await using` kills it and removes its profile. */
export class Chromium implements AsyncDisposable {
  #child: Deno.ChildProcess;
  #cdp: Cdp;
  #profile: string;
  #drain: Promise<void>;
  #stderr: string[];

  private constructor(
    child: Deno.ChildProcess,
    cdp: Cdp,
    profile: string,
    drain: Promise<void>,
    stderr: string[],
  ) {
    this.#child = child;
    this.#cdp = cdp;
    this.#profile = profile;
    this.#drain = drain;
    this.#stderr = stderr;
  }

  /** Starts Chromium headless and connects to its DevTools endpoint. */
  static async launch(opts: { timeoutMs?: number } = {}): Promise<Chromium> {
    const bin = findChromium();
    const timeoutMs = opts.timeoutMs ?? 60_000;
    const profile = await Deno.makeTempDir({ prefix: "report_browser_profile_" });
    const child = new Deno.Command(bin, {
      args: [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--hide-scrollbars",
        "--window-size=1280,900",
        `--user-data-dir=${profile}`,
        "--remote-debugging-port=0",
        "about:blank",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    // Read stderr to its end (Chromium blocks on a full pipe), keeping the last lines for errors.
    const stderr: string[] = [];
    let found: (url: string) => void = () => {};
    const wsUrl = new Promise<string>((resolve) => found = resolve);
    const drain = (async () => {
      let rest = "";
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
        const lines = (rest + chunk).split("\n");
        rest = lines.pop() ?? "";
        for (const line of lines) {
          stderr.push(line);
          if (stderr.length > 200) stderr.shift();
          const m = line.match(/DevTools listening on (ws:\/\/\S+)/);
          if (m) found(m[1]);
        }
      }
      if (rest) stderr.push(rest);
    })();
    const fail = async (why: string): Promise<never> => {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
      await child.status;
      await drain.catch(() => {});
      await Deno.remove(profile, { recursive: true }).catch(() => {});
      throw new Error(
        `${bin}: ${why}\n--- chromium stderr (last lines) ---\n${stderr.slice(-30).join("\n")}`,
      );
    };
    let timer: Timer | undefined;
    const url = await Promise.race([
      wsUrl,
      child.status.then((s) => `exited:${s.code}`),
      new Promise<string>((r) => timer = setTimeout(() => r("timeout"), timeoutMs)),
    ]);
    clearTimeout(timer);
    if (url === "timeout") return fail(`no "DevTools listening on" line within ${timeoutMs} ms`);
    if (url.startsWith("exited:")) {
      return fail(`exited with status ${url.slice(7)} before DevTools listened`);
    }
    let cdp: Cdp;
    try {
      cdp = await Cdp.connect(url);
    } catch (e) {
      return fail((e as Error).message);
    }
    return new Chromium(child, cdp, profile, drain, stderr);
  }

  /** The browser's version string (`Browser.getVersion`'s product). */
  async version(): Promise<string> {
    return (await this.#cdp.send("Browser.getVersion")).product;
  }

  /** A new tab with console, exception and log collection on, at a fixed 1280×900 viewport. */
  async newPage(): Promise<Page> {
    const { targetId } = await this.#cdp.send("Target.createTarget", { url: "about:blank" });
    const { sessionId } = await this.#cdp.send("Target.attachToTarget", {
      targetId,
      flatten: true,
    });
    const page = new Page(this.#cdp, sessionId);
    await page.send("Page.enable");
    await page.send("Runtime.enable");
    await page.send("Log.enable");
    await page.send("Emulation.setDeviceMetricsOverride", {
      width: 1280,
      height: 900,
      deviceScaleFactor: 1,
      mobile: false,
    });
    return page;
  }

  /** Chromium's last stderr lines (for failure messages). */
  stderrTail(n = 20): string {
    return this.#stderr.slice(-n).join("\n");
  }

  async [Symbol.asyncDispose](): Promise<void> {
    let timer: Timer | undefined;
    await Promise.race([
      this.#cdp.send("Browser.close", {}, undefined, 5000).catch(() => {}),
      new Promise((r) => timer = setTimeout(r, 5000)),
    ]);
    clearTimeout(timer);
    await this.#cdp.close();
    // Whatever Browser.close did, make sure the process is gone before the test ends.
    const exited = await Promise.race([
      this.#child.status.then(() => true),
      new Promise<boolean>((r) => timer = setTimeout(() => r(false), 3000)),
    ]);
    clearTimeout(timer);
    if (!exited) {
      try {
        this.#child.kill("SIGKILL");
      } catch { /* exited meanwhile */ }
      await this.#child.status;
    }
    await this.#drain.catch(() => {});
    await Deno.remove(this.#profile, { recursive: true }).catch(() => {});
  }
}

/** A decoded PNG: size and 8-bit RGBA pixels. */
export interface Png {
  width: number;
  height: number;
  rgba: Uint8Array;
}

/** Decodes an 8-bit, non-interlaced RGB/RGBA/grey PNG (what Chromium's screenshots are). */
export async function decodePng(bytes: Uint8Array): Promise<Png> {
  const sig = [137, 80, 78, 71, 13, 10, 26, 10];
  if (bytes.length < 33 || sig.some((b, i) => bytes[i] !== b)) {
    throw new Error(`not a PNG (${bytes.length} bytes, starts ${[...bytes.slice(0, 8)]})`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let width = 0, height = 0, depth = 0, type = -1, interlace = 0;
  const idat: Uint8Array[] = [];
  for (let o = 8; o + 8 <= bytes.length;) {
    const len = view.getUint32(o);
    const name = String.fromCharCode(...bytes.slice(o + 4, o + 8));
    const data = bytes.subarray(o + 8, o + 8 + len);
    if (name === "IHDR") {
      width = view.getUint32(o + 8);
      height = view.getUint32(o + 12);
      depth = data[8];
      type = data[9];
      interlace = data[12];
    } else if (name === "IDAT") idat.push(data);
    else if (name === "IEND") break;
    o += 12 + len;
  }
  const channels = ({ 0: 1, 2: 3, 4: 2, 6: 4 } as Record<number, number>)[type];
  if (depth !== 8 || !channels || interlace !== 0) {
    throw new Error(
      `PNG: unsupported bit depth ${depth}, colour type ${type}, interlace ${interlace}`,
    );
  }
  const zipped = new Blob(idat as BlobPart[]).stream().pipeThrough(
    new DecompressionStream("deflate"),
  );
  const raw = new Uint8Array(await new Response(zipped).arrayBuffer());
  const stride = width * channels;
  if (raw.length !== height * (stride + 1)) {
    throw new Error(`PNG: ${raw.length} bytes of pixel data, expected ${height * (stride + 1)}`);
  }
  const px = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)];
    const src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const row = px.subarray(y * stride, (y + 1) * stride);
    const up = y > 0 ? px.subarray((y - 1) * stride, y * stride) : new Uint8Array(stride);
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? row[i - channels] : 0, b = up[i];
      const c = i >= channels ? up[i - channels] : 0;
      let pred = 0;
      if (f === 1) pred = a;
      else if (f === 2) pred = b;
      else if (f === 3) pred = (a + b) >> 1;
      else if (f === 4) {
        const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
        pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      } else if (f !== 0) throw new Error(`PNG: unknown filter ${f} on row ${y}`);
      row[i] = (src[i] + pred) & 255;
    }
  }
  const rgba = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    const s = px.subarray(i * channels, (i + 1) * channels);
    const [r, g, b, al] = channels === 1
      ? [s[0], s[0], s[0], 255]
      : channels === 2
      ? [s[0], s[0], s[0], s[1]]
      : channels === 3
      ? [s[0], s[1], s[2], 255]
      : [s[0], s[1], s[2], s[3]];
    rgba.set([r, g, b, al], i * 4);
  }
  return { width, height, rgba };
}
