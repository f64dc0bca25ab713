// `mimo pull` and `-m hf:...`: a model reference resolved through the Hugging Face hub's API (the
// repository's file list with sizes and LFS sha256), downloaded into the cache, verified. Node only.
import { open } from "node:fs/promises";
import { cachePath, findCached, modelCacheDir, readMeta, writeJsonAtomic, META_SUFFIX, type PulledInfo } from "./cache.ts";
import { download, fetchFollowing, HttpStatusError, type DownloadProgress } from "./download.ts";
import { chooseFile, formatModelRef, parseModelRef, type HfRef, type ModelRef } from "./model-ref.ts";

export interface HubOptions {
  /** The cache directory; default modelCacheDir() ($MIMO_MODELS or the platform's cache folder). */
  readonly cacheDir?: string;
  /** The hub; default $HF_ENDPOINT or https://huggingface.co. */
  readonly endpoint?: string;
  /** An access token for gated and private repositories; default $HF_TOKEN. */
  readonly token?: string;
  /** Never use the network (also $MIMO_OFFLINE=1 or $HF_HUB_OFFLINE=1). */
  readonly offline?: boolean;
  readonly onProgress?: (p: DownloadProgress & { readonly file: string }) => void;
  readonly signal?: AbortSignal;
  /** Extra attempts after an interrupted transfer; default 4. */
  readonly retries?: number;
}

export interface PullResult {
  readonly path: string;
  /** The reference of the exact file, e.g. hf:OWNER/REPO/FILE.gguf. */
  readonly ref: string;
  readonly size: number;
  readonly sha256: string;
  /** False when the cache already held this exact file. */
  readonly downloaded: boolean;
  readonly resumedFrom: number;
}

interface HubFile {
  readonly path: string;
  readonly size: number;
  readonly sha256?: string;
}

function settings(o: HubOptions) {
  const env = process.env;
  return {
    cache: o.cacheDir ?? modelCacheDir(),
    endpoint: (o.endpoint ?? env.HF_ENDPOINT ?? "https://huggingface.co").replace(/\/+$/, ""),
    token: o.token ?? env.HF_TOKEN ?? env.HUGGING_FACE_HUB_TOKEN,
    offline: o.offline ?? (isTrue(env.MIMO_OFFLINE) || isTrue(env.HF_HUB_OFFLINE)),
  };
}

function isTrue(v: string | undefined): boolean {
  return v !== undefined && v !== "" && v !== "0" && v.toLowerCase() !== "false";
}

function explainStatus(e: unknown, r: HfRef, token: string | undefined, what: string): unknown {
  if (!(e instanceof HttpStatusError)) return e;
  const name = formatModelRef(r);
  if (e.status === 401 || e.status === 403) {
    return new Error(token
      ? `${name}: the hub refused HF_TOKEN (${e.status}) for ${what}: check that the token is valid and has access to ${r.owner}/${r.repo} (gated models need their terms accepted on the model page)`
      : `${name}: the hub needs a token for ${what} (${e.status}): the repository is gated or private; set HF_TOKEN to a Hugging Face access token (https://huggingface.co/settings/tokens)`);
  }
  if (e.status === 404) return new Error(`${name}: not found on the hub (${what}): check the repository name${r.file ? ", the file" : ""} and the revision "${r.revision}"`);
  return new Error(`${name}: ${e.message}`);
}

/** The repository's files at a revision, with sizes and (for LFS files) sha256: the hub's tree API, all pages. */
async function listHubFiles(r: HfRef, endpoint: string, token: string | undefined, signal?: AbortSignal): Promise<HubFile[]> {
  const auth = token ? `Bearer ${token}` : undefined;
  let url: string | undefined = `${endpoint}/api/models/${r.owner}/${r.repo}/tree/${encodeURIComponent(r.revision)}?recursive=true`;
  const files: HubFile[] = [];
  while (url) {
    let res: Response;
    try {
      res = await fetchFollowing(url, { accept: "application/json" }, auth, signal);
    } catch (e) {
      if (signal?.aborted) throw e;
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      throw new Error(`${formatModelRef(r)}: cannot reach the hub at ${endpoint}: ${cause?.code ?? cause?.message ?? (e as Error).message}`);
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw explainStatus(new HttpStatusError(res.status, res.statusText, url, "the file list"), r, token, "the file list");
    }
    const page = (await res.json()) as { type: string; path: string; size: number; lfs?: { oid?: string; sha256?: string; size?: number } }[];
    if (!Array.isArray(page)) throw new Error(`${formatModelRef(r)}: the hub's file list is not a list`);
    for (const e of page) {
      if (e.type !== "file") continue;
      files.push({ path: e.path, size: e.lfs?.size ?? e.size, sha256: e.lfs?.oid ?? e.lfs?.sha256 });
    }
    // The hub pages long listings: Link: <url>; rel="next".
    const next = /<([^>]+)>;\s*rel="next"/.exec(res.headers.get("link") ?? "")?.[1];
    url = next ? new URL(next, url).href : undefined;
  }
  return files;
}

/** A file that should be GGUF must start with the magic (a login page saved as a model is caught here). */
async function ggufMagicProblem(path: string): Promise<string | undefined> {
  const fh = await open(path, "r");
  try {
    const b = new Uint8Array(4);
    const { bytesRead } = await fh.read(b, 0, 4, 0);
    if (bytesRead === 4 && b[0] === 0x47 && b[1] === 0x47 && b[2] === 0x55 && b[3] === 0x46) return undefined;
    const shown = [...b.subarray(0, bytesRead)].map((x) => (x >= 32 && x < 127 ? String.fromCharCode(x) : ".")).join("");
    return `not a GGUF file (it starts with "${shown}")`;
  } finally {
    await fh.close();
  }
}

/**
 * Downloads what a reference names into the cache (or finds it there, unchanged on the hub) and
 * returns its path. hf: references go through the hub's API: the file list picks the file and
 * gives its size and sha256; the download follows the hub's redirect to its CDN.
 */
export async function pullModel(reference: string | ModelRef, o: HubOptions = {}): Promise<PullResult> {
  const r = typeof reference === "string" ? parseModelRef(reference) : reference;
  const s = settings(o);
  if (s.offline) {
    throw new Error(`${formatModelRef(r)}: offline: pulling needs the network (drop --offline, MIMO_OFFLINE or HF_HUB_OFFLINE)`);
  }
  const progress = (file: string) => o.onProgress && ((p: DownloadProgress) => o.onProgress!({ ...p, file }));
  if (r.kind === "url") {
    const path = cachePath(s.cache, r);
    const name = r.url.href;
    const auth = s.token && r.url.origin === new URL(s.endpoint).origin ? `Bearer ${s.token}` : undefined;
    const d = await download({
      url: r.url.href, path, name, authorization: auth, retries: o.retries, signal: o.signal, onProgress: progress(name),
      check: /\.gguf$/i.test(path) ? ggufMagicProblem : undefined,
    });
    const info: PulledInfo = { ref: r.url.href, size: d.size, sha256: d.sha256, url: d.url, pulledAt: new Date().toISOString() };
    await writeJsonAtomic(path + META_SUFFIX, info);
    return { path, ref: info.ref, size: d.size, sha256: d.sha256, downloaded: true, resumedFrom: d.resumedFrom };
  }

  const files = await listHubFiles(r, s.endpoint, s.token, o.signal);
  const chosen = chooseFile(r, files.map((f) => f.path));
  const file = files.find((f) => f.path === chosen)!;
  const path = cachePath(s.cache, r, chosen);
  const ref = formatModelRef(r, chosen);
  const have = await readMeta(path);
  if (have && file.sha256 && have.sha256 === file.sha256 && findCached(s.cache, { ...r, file: chosen, quant: undefined })) {
    return { path, ref, size: have.size, sha256: have.sha256, downloaded: false, resumedFrom: 0 };
  }
  const resolve = `${s.endpoint}/${r.owner}/${r.repo}/resolve/${encodeURIComponent(r.revision)}/${chosen.split("/").map(encodeURIComponent).join("/")}`;
  let d;
  try {
    d = await download({
      url: resolve, path, name: ref, size: file.size, sha256: file.sha256,
      authorization: s.token ? `Bearer ${s.token}` : undefined,
      retries: o.retries, signal: o.signal, onProgress: progress(ref),
      check: /\.gguf$/i.test(chosen) ? ggufMagicProblem : undefined,
    });
  } catch (e) {
    throw explainStatus(e, { ...r, file: chosen, quant: undefined }, s.token, "the download");
  }
  const info: PulledInfo = {
    ref, size: d.size, sha256: d.sha256, commit: d.headers.get("x-repo-commit") ?? undefined, url: resolve, pulledAt: new Date().toISOString(),
  };
  await writeJsonAtomic(path + META_SUFFIX, info);
  return { path, ref, size: d.size, sha256: d.sha256, downloaded: true, resumedFrom: d.resumedFrom };
}

/**
 * A model argument as a local path: a file path as it is; an hf: reference or URL from the cache,
 * pulled on first use (never with `offline`, which only looks in the cache).
 */
export async function resolveModel(reference: string, o: HubOptions = {}): Promise<{ path: string; pulled?: PullResult }> {
  if (!/^(hf:|https?:\/\/)/i.test(reference)) return { path: reference };
  const r = parseModelRef(reference);
  const s = settings(o);
  const cached = findCached(s.cache, r);
  if (cached) return { path: cached };
  if (s.offline) {
    throw new Error(`${formatModelRef(r)}: not in the model cache (${s.cache}), and offline mode forbids downloading it; run \`mimo pull ${reference}\` first`);
  }
  const pulled = await pullModel(r, o);
  return { path: pulled.path, pulled };
}
