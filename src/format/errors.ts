// The model-file errors live in src/errors/ (below every layer, so quant can throw them too).
export { ModelFileError, TokenizerError, UnsupportedModelError, UnsupportedTensorTypeError, quote } from "../errors/model-file.ts";
