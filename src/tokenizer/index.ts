// Tokenizers built from GGUF metadata that give the same ids and text as llama.cpp
// (src/llama-vocab.cpp): SentencePiece-style BPE ("llama"), byte-level BPE ("gpt2") and
// WordPiece ("bert").

import { BpeTokenizer } from "./bpe.ts";
import { cleanSpaces, concatBytes, PieceTable, SpaceCleaner } from "./detokenize.ts";
import { partitionSpecial } from "./special-tokens.ts";
import { spmTokenize, unspellableByte } from "./spm.ts";
import { loadVocab, TokenizerError, type Vocab } from "./vocab.ts";
import { wpmTokenize } from "./wpm.ts";

export { TokenizerError, TokenType, TokenAttr, supportedModels } from "./vocab.ts";
export { preTokenizers } from "./pre-tokenizer.ts";
export { tokenizerJsonToGGUFMetadata, typedTokenizerMetadata, type TokenizerJsonOptions } from "./hf-import.ts";
export { parseSentencePieceModel, sentencePieceToGGUFMetadata } from "./sentencepiece-model.ts";

export interface EncodeOptions {
  /** Add BOS/EOS as the vocabulary's add_bos/add_eos flags say (BERT: [CLS] ... [SEP]). Default true. */
  addSpecial?: boolean;
  /** Recognise control-token texts such as "<|im_start|>" in the input. Default false. */
  parseSpecial?: boolean;
}

export interface DecodeOptions {
  /** Render control and unknown tokens as their text (e.g. "<|im_end|>"). Default false. */
  renderSpecial?: boolean;
}

export interface StreamDecoderOptions extends DecodeOptions {
  /**
   * The stream starts a text (nothing, or only BOS, before it): with a dummy-prefix vocabulary the
   * space of the first piece is dropped, as decode() does. False when continuing a prompt. Default true.
   */
  atTextStart?: boolean;
}

export interface StreamDecoder {
  /** Text completed by this token; incomplete UTF-8 sequences wait for the next token. */
  push(id: number): string;
  /** Whatever is still buffered (an incomplete sequence comes out as U+FFFD). */
  flush(): string;
}

export interface Tokenizer {
  readonly vocabSize: number;
  readonly bos: number | undefined;
  readonly eos: number | undefined;
  readonly eot: number | undefined;
  readonly addBos: boolean;
  readonly addEos: boolean;
  /** `tokenizer.ggml.model` ("llama", "gpt2" or "bert"). */
  readonly model: string;
  /** `tokenizer.ggml.pre` for byte-level BPE. */
  readonly pre: string | undefined;
  encode(text: string, opts?: EncodeOptions): number[];
  decode(ids: readonly number[], opts?: DecodeOptions): string;
  /** Raw bytes of one token (a byte token or part of a character may not be valid UTF-8). */
  tokenToPiece(id: number, opts?: DecodeOptions): Uint8Array;
  /** The token's text as stored in the vocabulary (e.g. "▁the", "Ġthe", "<0x0A>"). */
  tokenText(id: number): string;
  /** Control, unknown, user-defined ... : llama.cpp's token attribute bits (see TokenAttr). */
  tokenAttr(id: number): number;
  isEndOfGeneration(id: number): boolean;
  createStreamDecoder(opts?: StreamDecoderOptions): StreamDecoder;
}

/**
 * Build a tokenizer from GGUF metadata (`tokenizer.ggml.*` keys, values as the GGUF reader returns
 * them). Unusable metadata is a TokenizerError naming `opts.file` (the model file) when given.
 */
export function createTokenizer(metadata: ReadonlyMap<string, unknown>, opts: { file?: string } = {}): Tokenizer {
  const vocab = loadVocab(metadata, opts.file);
  if (vocab.kind === "spm") {
    // SPM spells characters missing from the vocabulary as byte tokens: without them (and without
    // an unknown token) some text could not be tokenized at all.
    const byte = unspellableByte(vocab);
    if (byte !== undefined) {
      throw new TokenizerError(opts.file, `the vocabulary has no token for byte ${byte} ("<${byte}>") and no unknown token (tokenizer.ggml.unknown_token_id), so some text cannot be tokenized`);
    }
  }
  return new GGUFTokenizer(vocab);
}

class GGUFTokenizer implements Tokenizer {
  private readonly vocab: Vocab;
  private readonly pieces: PieceTable;
  private readonly bpe: BpeTokenizer | undefined;

  constructor(vocab: Vocab) {
    this.vocab = vocab;
    this.pieces = new PieceTable(vocab);
    this.bpe = vocab.kind === "bpe" ? new BpeTokenizer(vocab) : undefined;
  }

  get vocabSize() { return this.vocab.tokens.length; }
  get bos() { return this.vocab.bos; }
  get eos() { return this.vocab.eos; }
  get eot() { return this.vocab.eot; }
  get addBos() { return this.vocab.addBos; }
  get addEos() { return this.vocab.addEos; }
  get model() { return this.vocab.model; }
  get pre() { return this.vocab.preName; }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const addSpecial = opts.addSpecial ?? true;
    const v = this.vocab;
    const out: number[] = [];
    const fragments = partitionSpecial(v, text, opts.parseSpecial ?? false);
    switch (v.kind) {
      case "spm": {
        if (addSpecial && v.addBos && v.bos !== undefined) out.push(v.bos);
        // The dummy-prefix space goes at the start and after every special token.
        let afterSpecial = true;
        for (const f of fragments) {
          if ("token" in f) {
            out.push(f.token);
            afterSpecial = true;
            continue;
          }
          const t = v.addSpacePrefix && afterSpecial ? " " + f.text : f.text;
          spmTokenize(v, t.replaceAll(" ", "\u2581"), out);
          afterSpecial = false;
        }
        if (addSpecial && v.addEos && v.eos !== undefined) out.push(v.eos);
        break;
      }
      case "bpe": {
        if (addSpecial && v.addBos && v.bos !== undefined) out.push(v.bos);
        for (const f of fragments) {
          if ("token" in f) out.push(f.token);
          else this.bpe!.tokenize(f.text, out);
        }
        if (addSpecial && v.addEos && v.eos !== undefined) out.push(v.eos);
        break;
      }
      case "wpm": {
        // BERT frames every input as [CLS] ... [SEP] regardless of add_bos.
        if (addSpecial && v.bos !== undefined) out.push(v.bos);
        for (const f of fragments) {
          if ("token" in f) out.push(f.token);
          else wpmTokenize(v, f.text, out);
        }
        if (addSpecial && v.sep !== undefined) out.push(v.sep);
        break;
      }
    }
    return out;
  }

  tokenToPiece(id: number, opts: DecodeOptions = {}): Uint8Array {
    return this.pieces.piece(id, opts.renderSpecial ?? false).slice();
  }

  tokenText(id: number): string {
    this.pieces.piece(id, true); // range check
    return this.vocab.tokens[id]!;
  }

  tokenAttr(id: number): number {
    this.pieces.piece(id, true);
    return this.vocab.attrs[id]!;
  }

  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    const renderSpecial = opts.renderSpecial ?? false;
    const parts: Uint8Array[] = [];
    for (let i = 0; i < ids.length; i++) {
      const p = this.pieces.piece(ids[i]!, renderSpecial);
      // With a dummy prefix, the space it became is dropped from the first piece.
      parts.push(i === 0 && this.vocab.addSpacePrefix ? stripOneSpace(p) : p);
    }
    const text = new TextDecoder("utf-8", { ignoreBOM: true }).decode(concatBytes(parts));
    return this.vocab.cleanSpaces ? cleanSpaces(text) : text;
  }

  isEndOfGeneration(id: number): boolean {
    return this.vocab.eogIds.has(id);
  }

  createStreamDecoder(opts: StreamDecoderOptions = {}): StreamDecoder {
    const renderSpecial = opts.renderSpecial ?? false;
    const utf8 = new TextDecoder("utf-8", { ignoreBOM: true });
    const cleaner = this.vocab.cleanSpaces ? new SpaceCleaner() : undefined;
    let first = opts.atTextStart ?? true;
    return {
      push: (id: number) => {
        let p = this.pieces.piece(id, renderSpecial);
        if (first && this.vocab.addSpacePrefix) p = stripOneSpace(p);
        first = false;
        const text = utf8.decode(p, { stream: true });
        return cleaner ? cleaner.push(text) : text;
      },
      flush: () => {
        const text = utf8.decode();
        return cleaner ? cleaner.push(text) + cleaner.flush() : text;
      },
    };
  }
}

function stripOneSpace(p: Uint8Array): Uint8Array {
  return p.length > 0 && p[0] === 0x20 ? p.subarray(1) : p;
}

