// Quantizing a slab of rows of one tensor: the unit of work the quantize tool hands to each
// thread. Rows are independent, so splitting them between threads never changes the bytes.

import { getQuantTraits, rowByteSize } from "../quant/traits.ts";
import { weightedQuantizeRow } from "../quant/importance.ts";

/**
 * `rows` rows of `cols` floats from `src` in `type`. With `importance` (one weight per column, an
 * importance matrix's mean squared activations) the types that have an importance-weighted search
 * use it, as llama.cpp's ggml_quantize_chunk does; the others ignore it (Q8_0, floats).
 */
export function quantizeRows(type: number, src: Float32Array, cols: number, rows: number, importance?: Float32Array): Uint8Array {
  const rb = rowByteSize(type, cols);
  const out = new Uint8Array(rb * rows);
  const weighted = importance ? weightedQuantizeRow(type) : undefined;
  if (weighted && importance) {
    for (let r = 0; r < rows; r++) weighted(src, r * cols, out, r * rb, cols, importance);
  } else {
    const q = getQuantTraits(type).quantizeRow;
    for (let r = 0; r < rows; r++) q(src, r * cols, out, r * rb, cols);
  }
  return out;
}
