// A SentencePiece tokenizer.model writer for tests: ModelProto { pieces = 1 { piece = 1, score = 2,
// type = 3 }, trainer_spec = 2 { model_type = 3, unk_id = 40, bos_id = 41, eos_id = 42, pad_id = 43 },
// normalizer_spec = 3 { name = 1, add_dummy_prefix = 3 } } in protobuf wire format.

function varint(n: number): number[] {
  const out: number[] = [];
  // Negative int32 values are written as 10-byte two's-complement varints.
  let v = n < 0 ? BigInt.asUintN(64, BigInt(n)) : BigInt(n);
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return out;
}

const key = (field: number, wire: number) => varint(field * 8 + wire);
const lenDelimited = (field: number, body: ArrayLike<number>) => [...key(field, 2), ...varint(body.length), ...Array.from(body)];

export interface TestPiece {
  readonly piece: string;
  readonly score: number;
  readonly type: number;
}

export function sentencePieceModelBytes(pieces: readonly TestPiece[], ids = { unk: 0, bos: 1, eos: 2, pad: -1 }, addDummyPrefix = true): Uint8Array {
  const out: number[] = [];
  const utf8 = new TextEncoder();
  const f32 = new DataView(new ArrayBuffer(4));
  for (const p of pieces) {
    f32.setFloat32(0, p.score, true);
    const body = [...lenDelimited(1, utf8.encode(p.piece)), ...key(2, 5), ...new Uint8Array(f32.buffer.slice(0)), ...(p.type === 1 ? [] : [...key(3, 0), ...varint(p.type)])];
    out.push(...lenDelimited(1, body));
  }
  const trainer = [...key(3, 0), ...varint(2), ...key(40, 0), ...varint(ids.unk), ...key(41, 0), ...varint(ids.bos), ...key(42, 0), ...varint(ids.eos), ...key(43, 0), ...varint(ids.pad)];
  out.push(...lenDelimited(2, trainer));
  const normalizer = [...lenDelimited(1, utf8.encode("identity")), ...key(3, 0), ...varint(addDummyPrefix ? 1 : 0)];
  out.push(...lenDelimited(3, normalizer));
  return Uint8Array.from(out);
}
