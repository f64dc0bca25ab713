// Constrained decoding: GBNF grammars and JSON Schema, compiled to a byte-level parser, and a
// token mask over the vocabulary that plugs into the sampler chain (see token-grammar.ts).

export { GrammarError, parseGbnf, type GbnfGrammar, type GbnfItem, type GbnfSequence } from "./gbnf.ts";
export { compileGrammar, type CompiledGrammar, type CompileOptions } from "./compile.ts";
export { GrammarEngine, DEAD } from "./matcher.ts";
export { JsonSchemaError, jsonSchemaToGbnf, jsonValueGbnf, type JsonSchemaOptions } from "./json-schema.ts";
export { TokenGrammar, GrammarConstraint, type GrammarTrigger, type TokenGrammarStats } from "./token-grammar.ts";
export { VocabTrie, vocabTrieOf, vocabTrieOfAsync } from "./vocab-trie.ts";
export { randomText, type RandomTextOptions } from "./random-text.ts";
