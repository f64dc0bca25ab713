// The public API both entries share (src/index.ts for Node, src/browser.ts for browsers): the
// model, its options and results, errors and byte sources. Platform-specific loaders live in the entries.
export { Model, loadModelFromSource } from "./runtime/model.ts";
export { Sequence, KvPoolExhaustedError } from "./runtime/sequence.ts";
export type {
  FinishReason,
  ForwardInput,
  ForwardOutput,
  GenerateOptions,
  GenerationChunk,
  GenerationResult,
  GenerationStats,
  LoadOptions,
  TokenLogprob,
  EmbedOptions,
  EmbedPooling,
  Embedding,
} from "./runtime/model.ts";
export { ChatSession, type ChatOptions, type ChatSessionOptions } from "./runtime/chat.ts";
export { ChatTemplate, ChatTemplateError, builtinTemplates, type BuiltinTemplateName, type RenderOptions } from "./chat/template.ts";
export {
  parseToolCalls,
  ToolCallStream,
  toolCallConstraint,
  toolCallFormatOf,
  toolCallFormats,
  toolCallGrammar,
  type ParsedToolCall,
  type ToolCallFormat,
  type ToolChoice,
  type ToolStreamEvent,
} from "./chat/tool-calls.ts";
export { ChatInputError, type ChatMessage, type ChatMessageInput, type ChatRole, type ChatTool, type ChatToolCall } from "./chat/messages.ts";
export type { SamplingOptions } from "./sampling/options.ts";
export type { SpeculativeOptions, SpeculativeMethod, SpeculationStats } from "./speculative/speculation.ts";
export { createSampler, SamplerChain, LogitMaskStage, type SamplerStage, type TokenMask, type TokenMaskFn } from "./sampling/chain.ts";
export type { Tokenizer } from "./tokenizer/index.ts";
export {
  GrammarError,
  JsonSchemaError,
  jsonSchemaToGbnf,
  jsonValueGbnf,
  compileGrammar,
  GrammarEngine,
  TokenGrammar,
  GrammarConstraint,
  type GrammarTrigger,
  type JsonSchemaOptions,
  type CompiledGrammar,
} from "./grammar/index.ts";
export type { ModelConfig } from "./model/config.ts";
export { OpProfile, type OpTotal } from "./compute/profile.ts";
export type { LoadProgress } from "./model/weights.ts";
export { ModelFileError, TokenizerError, UnsupportedModelError, UnsupportedTensorTypeError } from "./errors/model-file.ts";
export { BlobByteSource, MemoryByteSource, type ByteSource } from "./format/byte-source.ts";
export { readGGUF, GGUFFile } from "./format/gguf-reader.ts";
export { writeGGUF } from "./format/gguf-writer.ts";
