/**
 * sentence-transformers folders: `modules.json` listing Transformer → Pooling → (Dense …) →
 * (Normalize), read in both forms found on the Hub — older versions' module types
 * (`sentence_transformers.models.Pooling`, …) and pooling keys (`pooling_mode_cls_token`,
 * `pooling_mode_mean_tokens`, …), and sentence-transformers 6's types
 * (`sentence_transformers.base.modules.transformer.Transformer`,
 * `sentence_transformers.sentence_transformer.modules.pooling.Pooling`, …) with
 * `pooling_mode: "cls"`. A type is matched by its last component. {@linkcode writeSentenceTransformers}
 * writes a folder back in the layout it was read in (or sentence-transformers 6's for a new one),
 * so a trained model stays loadable by `SentenceTransformer(dir)`.
 *
 * What `SentenceTransformer(dir).encode(texts)` computes, and the encoder reproduces: the
 * transformer's last hidden state, pooled (first token, or the mean over real tokens), each Dense
 * layer `act(x·Wᵀ + b)` (tanh or identity), then `x / max(‖x‖, 1e-12)` when Normalize is listed;
 * texts are cut at `max_seq_length` tokens.
 * @module
 */
import { join } from "node:path";
import { SafetensorsFile, writeSafetensors } from "./safetensors.ts";
import { writeJsonAtomic } from "./atomic_write.ts";

/** The module kinds this engine runs. */
export type StModuleKind = "Transformer" | "Pooling" | "Dense" | "Normalize";

/** One entry of modules.json with its own config (as read, so it can be written back). */
export interface StModule {
  idx: number;
  name: string;
  /** Folder relative to the model folder ("" for the root). */
  path: string;
  /** The full type string, as written in modules.json. */
  type: string;
  kind: StModuleKind;
  /** The module's config file as read (`config.json`; for the Transformer, sentence_bert_config.json). */
  config: Record<string, unknown>;
}

/** A Dense layer: `act(x·Wᵀ + b)`. */
export interface StDense {
  inFeatures: number;
  outFeatures: number;
  /** [outFeatures, inFeatures] row-major, as torch.nn.Linear stores it. */
  weight: Float32Array;
  bias: Float32Array | null;
  activation: "tanh" | "identity";
}

/** A sentence-transformers model folder. */
export interface StFolder {
  modules: StModule[];
  /** The Transformer module's folder relative to the model folder ("" for the root). */
  transformerPath: string;
  pooling: "cls" | "mean";
  /** The Dense layers in order. */
  dense: StDense[];
  normalize: boolean;
  /** Tokens per text (sentence_bert_config.json's max_seq_length, else the tokenizer's limit). */
  maxSeqLength: number | null;
  /** sentence_bert_config.json's do_lower_case: texts are lowercased before tokenising. */
  lowercase: boolean;
  /** config_sentence_transformers.json as read (written back unchanged), or null. */
  stConfig: Record<string, unknown> | null;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

const ACTIVATIONS: Record<string, "tanh" | "identity"> = {
  "torch.nn.modules.activation.Tanh": "tanh",
  "torch.nn.Tanh": "tanh",
  "torch.nn.modules.linear.Identity": "identity",
  "torch.nn.Identity": "identity",
};

const TYPE_NAMES: Record<StModuleKind, string> = {
  Transformer: "sentence_transformers.base.modules.transformer.Transformer",
  Pooling: "sentence_transformers.sentence_transformer.modules.pooling.Pooling",
  Dense: "sentence_transformers.base.modules.dense.Dense",
  Normalize: "sentence_transformers.base.modules.normalize.Normalize",
};

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw e;
    throw new Error(`${path}: cannot read: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: not valid JSON: ${(e as Error).message}`);
  }
}

async function readJsonIfExists(path: string): Promise<Record<string, unknown> | null> {
  let v: unknown;
  try {
    v = await readJson(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  if (!isObject(v)) throw new Error(`${path}: must be a JSON object`);
  return v;
}

/** The pooling mode of a Pooling config, old keys or new. */
function poolingMode(cfg: Record<string, unknown>, where: string): "cls" | "mean" {
  let modes: string[];
  if (cfg.pooling_mode !== undefined) {
    const m = cfg.pooling_mode;
    modes = Array.isArray(m) ? m.map(String) : [String(m)];
  } else {
    const keys: [string, string][] = [
      ["pooling_mode_cls_token", "cls"],
      ["pooling_mode_mean_tokens", "mean"],
      ["pooling_mode_max_tokens", "max"],
      ["pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len_tokens"],
      ["pooling_mode_weightedmean_tokens", "weightedmean"],
      ["pooling_mode_lasttoken", "lasttoken"],
    ];
    modes = keys.filter(([k]) => cfg[k] === true).map(([, m]) => m);
  }
  if (modes.length !== 1 || (modes[0] !== "cls" && modes[0] !== "mean")) {
    throw new Error(
      `${where}: pooling ${
        JSON.stringify(modes)
      } is not supported (exactly one of "cls" and "mean")`,
    );
  }
  if (cfg.include_prompt === false) {
    throw new Error(`${where}: include_prompt false is not supported`);
  }
  return modes[0];
}

/** Whether `dir` is a sentence-transformers folder (has modules.json). */
export async function isSentenceTransformersDir(dir: string): Promise<boolean> {
  try {
    return (await Deno.stat(join(dir, "modules.json"))).isFile;
  } catch {
    return false;
  }
}

/**
 * Reads a sentence-transformers folder, or returns null when `dir` has no modules.json. Fails
 * naming the file for modules this engine cannot run (anything other than one Transformer first,
 * one Pooling, Dense layers and a final Normalize), an unsupported pooling mode or activation, or
 * Dense weights that do not match their config.
 *
 * @example
 * ```ts ignore
 * const st = await readSentenceTransformers("LaBSE");
 * console.log(st?.pooling, st?.dense.length, st?.normalize); // "cls" 1 true
 * ```
 */
export async function readSentenceTransformers(dir: string): Promise<StFolder | null> {
  const modulesPath = join(dir, "modules.json");
  let list: unknown;
  try {
    list = await readJson(modulesPath);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  if (!Array.isArray(list) || list.length === 0) {
    throw new Error(`${modulesPath}: must be a non-empty JSON array of modules`);
  }
  const modules: StModule[] = [];
  const order: StModuleKind[] = [];
  for (const [i, m] of list.entries()) {
    const at = `${modulesPath}[${i}]`;
    if (!isObject(m) || typeof m.type !== "string" || typeof (m.path ?? "") !== "string") {
      throw new Error(`${at}: each module needs a string "type" and "path"`);
    }
    const kind = m.type.split(".").at(-1) as StModuleKind;
    if (!(kind in TYPE_NAMES)) {
      throw new Error(
        `${at}: module type ${
          JSON.stringify(m.type)
        } is not supported (Transformer, Pooling, Dense, Normalize)`,
      );
    }
    const path = String(m.path ?? "");
    const cfgPath = join(
      dir,
      path,
      kind === "Transformer" ? "sentence_bert_config.json" : "config.json",
    );
    const config = (await readJsonIfExists(cfgPath)) ?? {};
    if (kind === "Pooling" && Object.keys(config).length === 0) {
      throw new Error(`${cfgPath}: missing (the Pooling module's config)`);
    }
    modules.push({
      idx: Number.isInteger(m.idx) ? m.idx as number : i,
      name: typeof m.name === "string" ? m.name : String(i),
      path,
      type: m.type,
      kind,
      config,
    });
    order.push(kind);
  }
  // Transformer, Pooling, Dense*, Normalize? — the layouts that exist on the Hub for encoders.
  const shape = order.join(" ");
  if (!/^Transformer Pooling( Dense)*( Normalize)?$/.test(shape)) {
    throw new Error(
      `${modulesPath}: module order ${shape} is not supported ` +
        `(Transformer → Pooling → Dense… → Normalize)`,
    );
  }
  const transformer = modules[0];
  const poolingModule = modules[1];
  const pooling = poolingMode(poolingModule.config, join(dir, poolingModule.path, "config.json"));
  const dense: StDense[] = [];
  for (const m of modules.filter((x) => x.kind === "Dense")) {
    dense.push(await readDense(join(dir, m.path), m.config));
  }
  for (let i = 1; i < dense.length; i++) {
    if (dense[i].inFeatures !== dense[i - 1].outFeatures) {
      throw new Error(
        `${modulesPath}: Dense ${i} takes ${dense[i].inFeatures} features but the one before ` +
          `gives ${dense[i - 1].outFeatures}`,
      );
    }
  }
  const tc = transformer.config;
  const msl = tc.max_seq_length;
  let maxSeqLength: number | null = null;
  if (msl !== undefined && msl !== null) {
    if (!Number.isInteger(msl) || (msl as number) < 2) {
      throw new Error(
        `${join(dir, transformer.path, "sentence_bert_config.json")}: max_seq_length must be an ` +
          `integer ≥ 2, got ${JSON.stringify(msl)}`,
      );
    }
    maxSeqLength = msl as number;
  } else {
    // Newer versions leave it to the tokenizer's model_max_length (absurd values mean "none").
    const tok = await readJsonIfExists(join(dir, transformer.path, "tokenizer_config.json"));
    const mml = tok?.model_max_length;
    if (typeof mml === "number" && Number.isInteger(mml) && mml >= 2 && mml < 1e6) {
      maxSeqLength = mml;
    }
  }
  const stConfig = await readJsonIfExists(join(dir, "config_sentence_transformers.json"));
  const prompt = stConfig?.default_prompt_name;
  if (prompt !== undefined && prompt !== null) {
    throw new Error(
      `${join(dir, "config_sentence_transformers.json")}: default_prompt_name ` +
        `${JSON.stringify(prompt)} is not supported (give the prefix with --prefix instead)`,
    );
  }
  return {
    modules,
    transformerPath: transformer.path,
    pooling,
    dense,
    normalize: order.at(-1) === "Normalize",
    maxSeqLength,
    lowercase: tc.do_lower_case === true,
    stConfig,
  };
}

async function readDense(folder: string, cfg: Record<string, unknown>): Promise<StDense> {
  const cfgPath = join(folder, "config.json");
  const inF = cfg.in_features, outF = cfg.out_features;
  if (
    !Number.isInteger(inF) || !Number.isInteger(outF) || (inF as number) < 1 || (outF as number) < 1
  ) {
    throw new Error(`${cfgPath}: in_features and out_features must be positive integers`);
  }
  const actName = cfg.activation_function ?? "torch.nn.modules.activation.Tanh";
  const activation = ACTIVATIONS[String(actName)];
  if (!activation) {
    throw new Error(
      `${cfgPath}: activation_function ${
        JSON.stringify(actName)
      } is not supported (Tanh, Identity)`,
    );
  }
  const hasBias = cfg.bias !== false;
  const wPath = join(folder, "model.safetensors");
  let f: SafetensorsFile;
  try {
    f = await SafetensorsFile.open(wPath);
  } catch (e) {
    const bin = join(folder, "pytorch_model.bin");
    try {
      await Deno.stat(bin);
    } catch {
      throw e;
    }
    throw new Error(`${bin}: PyTorch pickles are not read; convert the Dense layer to safetensors`);
  }
  try {
    const w = f.info("linear.weight");
    if (w.shape.join(",") !== `${outF},${inF}`) {
      throw new Error(
        `${wPath}: linear.weight has shape [${w.shape}], expected [${outF}, ${inF}] from ${cfgPath}`,
      );
    }
    const weight = await f.readF32("linear.weight");
    let bias: Float32Array | null = null;
    if (hasBias) {
      const b = f.info("linear.bias");
      if (b.shape.join(",") !== `${outF}`) {
        throw new Error(`${wPath}: linear.bias has shape [${b.shape}], expected [${outF}]`);
      }
      bias = await f.readF32("linear.bias");
    }
    for (const [name, a] of [["linear.weight", weight], ["linear.bias", bias]] as const) {
      if (a && !a.every(Number.isFinite)) throw new Error(`${wPath}: ${name} is not finite`);
    }
    return {
      inFeatures: inF as number,
      outFeatures: outF as number,
      weight,
      bias,
      activation,
    };
  } finally {
    f.close();
  }
}

/**
 * A new folder description in sentence-transformers 6's layout: Transformer at the root, then
 * `1_Pooling`, the Dense layers (`2_Dense`, …) and `N_Normalize` when asked for.
 *
 * @example
 * ```ts
 * import { newSentenceTransformers } from "./sentence_transformers.ts";
 * const st = newSentenceTransformers({ pooling: "cls", hiddenSize: 4, normalize: true });
 * console.log(st.modules.map((m) => m.kind).join(" ")); // "Transformer Pooling Normalize"
 * ```
 */
export function newSentenceTransformers(o: {
  pooling: "cls" | "mean";
  hiddenSize: number;
  dense?: StDense[];
  normalize?: boolean;
  maxSeqLength?: number | null;
}): StFolder {
  const dense = o.dense ?? [];
  const kinds: StModuleKind[] = ["Transformer", "Pooling", ...dense.map(() => "Dense" as const)];
  if (o.normalize) kinds.push("Normalize");
  const modules = kinds.map((kind, i): StModule => ({
    idx: i,
    name: String(i),
    path: i === 0 ? "" : `${i}_${kind}`,
    type: TYPE_NAMES[kind],
    kind,
    config: kind === "Pooling" ? { embedding_dimension: o.hiddenSize } : {},
  }));
  return {
    modules,
    transformerPath: "",
    pooling: o.pooling,
    dense,
    normalize: o.normalize ?? false,
    maxSeqLength: o.maxSeqLength ?? null,
    lowercase: false,
    stConfig: null,
  };
}

/**
 * The token limit a model folder asks for: a sentence-transformers folder's max_seq_length, else
 * null (the caller's default). For `embed`/`eval` without `--max-length`.
 */
export async function folderMaxSeqLength(dir: string): Promise<number | null> {
  return (await readSentenceTransformers(dir))?.maxSeqLength ?? null;
}

/**
 * `st` with new Dense weights and its Transformer at the folder's root (where a training run
 * writes the transformer), for writing a trained copy back in the layout it was read in.
 */
export function withDense(st: StFolder, dense: StDense[]): StFolder {
  if (dense.length !== st.dense.length) {
    throw new RangeError(`withDense: ${dense.length} Dense layers for ${st.dense.length}`);
  }
  return {
    ...st,
    modules: st.modules.map((m) => (m.kind === "Transformer" ? { ...m, path: "" } : m)),
    transformerPath: "",
    dense,
  };
}

/** Whether a module type string is in the older `sentence_transformers.models.*` form. */
function isOldType(type: string): boolean {
  return type.startsWith("sentence_transformers.models.");
}

/**
 * Writes the sentence-transformers files of `st` into `dir`: modules.json, each module's config
 * (in the key style it was read in: old `pooling_mode_*_token(s)` booleans for old type names,
 * `pooling_mode` otherwise), the Dense weights (`linear.weight`, `linear.bias` in
 * `model.safetensors`), sentence_bert_config.json and config_sentence_transformers.json. The
 * transformer's own files (config.json, model.safetensors, tokenizer) are the caller's to write
 * into `dir/st.transformerPath`.
 */
export async function writeSentenceTransformers(dir: string, st: StFolder): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await writeJsonAtomic(
    join(dir, "modules.json"),
    st.modules.map((m) => ({ idx: m.idx, name: m.name, path: m.path, type: m.type })),
  );
  let d = 0;
  for (const m of st.modules) {
    const folder = join(dir, m.path);
    await Deno.mkdir(folder, { recursive: true });
    if (m.kind === "Transformer") {
      const cfg: Record<string, unknown> = { ...m.config };
      if (st.maxSeqLength !== null) cfg.max_seq_length = st.maxSeqLength;
      if (st.lowercase || "do_lower_case" in cfg) cfg.do_lower_case = st.lowercase;
      await writeJsonAtomic(join(folder, "sentence_bert_config.json"), cfg);
    } else if (m.kind === "Pooling") {
      const cfg: Record<string, unknown> = { ...m.config };
      const dim = st.modules.length > 0 ? poolingDim(st) : undefined;
      if (isOldType(m.type) || "pooling_mode_cls_token" in cfg) {
        delete cfg.pooling_mode;
        cfg.word_embedding_dimension ??= dim;
        cfg.pooling_mode_cls_token = st.pooling === "cls";
        cfg.pooling_mode_mean_tokens = st.pooling === "mean";
        cfg.pooling_mode_max_tokens ??= false;
        cfg.pooling_mode_mean_sqrt_len_tokens ??= false;
      } else {
        cfg.embedding_dimension ??= dim;
        cfg.pooling_mode = st.pooling;
        cfg.include_prompt ??= true;
      }
      await writeJsonAtomic(join(folder, "config.json"), cfg);
    } else if (m.kind === "Dense") {
      const layer = st.dense[d++];
      if (!layer) throw new Error(`writeSentenceTransformers: no weights for Dense ${m.path}`);
      const act = layer.activation === "tanh"
        ? "torch.nn.modules.activation.Tanh"
        : "torch.nn.modules.linear.Identity";
      const cfg: Record<string, unknown> = {
        ...m.config,
        in_features: layer.inFeatures,
        out_features: layer.outFeatures,
        bias: layer.bias !== null,
        activation_function: act,
      };
      await writeJsonAtomic(join(folder, "config.json"), cfg);
      const tensors = [{
        name: "linear.weight",
        shape: [layer.outFeatures, layer.inFeatures],
        data: layer.weight,
      }];
      if (layer.bias) {
        tensors.push({ name: "linear.bias", shape: [layer.outFeatures], data: layer.bias });
      }
      await writeSafetensors(join(folder, "model.safetensors"), tensors, { format: "pt" });
    } else {
      await writeJsonAtomic(join(folder, "config.json"), { ...m.config });
    }
  }
  await writeJsonAtomic(
    join(dir, "config_sentence_transformers.json"),
    st.stConfig ?? {
      model_type: "SentenceTransformer",
      prompts: { query: "", document: "" },
      default_prompt_name: null,
      similarity_fn_name: "cosine",
    },
  );
}

/** The pooled width: the first Dense layer's input, or the Pooling config's own value. */
function poolingDim(st: StFolder): number | undefined {
  if (st.dense.length > 0) return st.dense[0].inFeatures;
  const cfg = st.modules.find((m) => m.kind === "Pooling")?.config ?? {};
  const v = cfg.embedding_dimension ?? cfg.word_embedding_dimension;
  return typeof v === "number" ? v : undefined;
}
