// A real `mimo serve` (MimoServer on loopback, port 0) on the bundled stories260K, and the real
// `openai` client pointed at it.
import OpenAI from "openai";
import { loadModel, defaultModelPath, type LoadOptions, type Model } from "../../src/index.ts";
import { MimoServer, type ServerOptions } from "../../src/server/server.ts";

export interface Running {
  readonly url: string;
  readonly server: MimoServer;
  readonly model: Model;
  readonly client: OpenAI;
  close(): Promise<void>;
}

export const MODEL_ID = "stories260K";

export async function startServer(opts: ServerOptions = {}, load: LoadOptions = {}, path = defaultModelPath()): Promise<Running> {
  const model = await loadModel(path, { parallel: 4, contextSize: 512, threads: 1, onWarning: () => {}, ...load });
  const server = new MimoServer({ port: 0, ...opts });
  const { url } = await server.listen();
  server.setModel(model, MODEL_ID);
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: opts.apiKey ?? "unused", maxRetries: 0, timeout: 60_000 });
  return {
    url,
    server,
    model,
    client,
    async close() {
      await server.close(1000);
      await model.dispose();
    },
  };
}

/** Raw HTTP to the server (for what the openai client will not send: bad JSON, wrong types, huge bodies). */
export async function post(url: string, path: string, body: string | object, headers: Record<string, string> = {}): Promise<{ status: number; json: any; headers: Headers }> {
  const res = await fetch(url + path, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json, headers: res.headers };
}

/** Polls until the server's model holds no sequence (every request's cells given back). */
export async function waitIdle(model: Model, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (model.activeSequences > 0 || model.waitingRequests > 0) {
    if (Date.now() > end) throw new Error(`still ${model.activeSequences} active sequences and ${model.waitingRequests} waiting after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * A copy of the bundled stories260K GGUF carrying `tokenizer.chat_template` (a real file on disk, as
 * a converter writes it); `tokens` gives some token ids another text (same weights, same ids).
 */
export async function storiesWithTemplate(template: string, tokens: Readonly<Record<number, string>> = {}): Promise<string> {
  const { tempDir } = await import("../helpers/temp-dir.ts");
  const { join } = await import("node:path");
  const { openGGUFFile, writeGGUFFile } = await import("../../src/index.ts");
  const { gguf } = await import("../../src/format/gguf.ts");
  const src = await openGGUFFile(defaultModelPath());
  try {
    const path = join(tempDir("mimo-template-"), "stories260K-templated.gguf");
    const metadata = [...src.metadataTypes].filter(([k]) => k !== "tokenizer.chat_template");
    metadata.push(["tokenizer.chat_template", gguf.str(template)]);
    if (Object.keys(tokens).length > 0) {
      const i = metadata.findIndex(([k]) => k === "tokenizer.ggml.tokens");
      const texts = [...(metadata[i]![1].value as string[])];
      for (const [id, text] of Object.entries(tokens)) texts[Number(id)] = text;
      metadata[i] = ["tokenizer.ggml.tokens", gguf.strings(texts)];
    }
    const tensors = [];
    for (const t of src.tensors) tensors.push({ name: t.name, type: t.type, shape: t.shape, data: await src.readTensorBytes(t.name) });
    await writeGGUFFile(path, { metadata, tensors, alignment: src.alignment });
    return path;
  } finally {
    await src.close();
  }
}
