// Loader for the WebAssembly SIMD kernels: picks a relaxed-SIMD build when it computes correctly
// here (of the two, i16 dots for x64 without VNNI or i32 dot-adds for VNNI, the faster one measured
// at start-up), else the plain SIMD128 build, on one shared memory that several instances (one per
// thread) can use at once. Runs in Node and in browsers (no static Node-only imports).

/**
 * Which build of the kernels runs: relaxed SIMD with the Q4_0/Q8_0 int8 dots summed in i16
 * (pmaddubsw, fastest on x64 without VNNI), relaxed SIMD with i32 dot-adds (one vpdpbusd on x64
 * with AVX-VNNI), or plain SIMD128. All three give bit-identical results for the quantized types.
 */
export type KernelPath = "relaxed-simd" | "relaxed-simd-vnni" | "simd128";
export const KERNEL_PATHS: readonly KernelPath[] = ["relaxed-simd", "relaxed-simd-vnni", "simd128"];

/** Raw exports of a kernels instance. Every pointer is a byte address in the shared memory. */
export interface KernelExports {
  /** Writes the constant vectors the kernels use; called once per instance by the loader. */
  init(): void;
  /** 1 in the relaxed-SIMD build. */
  relaxed(): number;
  /** n rows of k f32 (k % 32 == 0) at x -> n * k/32 activation blocks (ACT_BLOCK_BYTES each) at y. */
  quantizeAct(x: number, y: number, k: number, n: number): void;
  /** One row of k f32 -> llama.cpp Q8_0 blocks (34 bytes each). */
  quantizeRowQ8_0(x: number, y: number, k: number): void;
  /** nblocks llama.cpp Q8_0 blocks -> activation blocks. */
  q8_0ToAct(x: number, y: number, nblocks: number): void;
  /** nrows llama.cpp Q4_0 rows of k columns at src -> Q4_0R8 layout at dst (q4_0R8Bytes). */
  repackQ4_0(src: number, dst: number, nrows: number, k: number): void;
  /** y[r] = W[r]·x for the rows of 8-row groups g0..g1-1 (rows >= nrows dropped). */
  matvecQ4_0R8(w: number, x: number, y: number, k: number, g0: number, g1: number, nrows: number): void;
  /** Y[t][r] = W[r]·X[t] for ntok activation rows (y row stride nrows f32). */
  matmulQ4_0R8(w: number, x: number, y: number, k: number, g0: number, g1: number, nrows: number, ntok: number): void;
  /** Original llama.cpp Q4_0 layout, rows r0..r1-1. */
  matvecQ4_0(w: number, x: number, y: number, k: number, r0: number, r1: number): void;
  repackQ8_0(src: number, dst: number, nrows: number, k: number): void;
  matvecQ8_0R8(w: number, x: number, y: number, k: number, g0: number, g1: number, nrows: number): void;
  matmulQ8_0R8(w: number, x: number, y: number, k: number, g0: number, g1: number, nrows: number, ntok: number): void;
  matvecQ8_0(w: number, x: number, y: number, k: number, r0: number, r1: number): void;
  /** y = x / sqrt(mean(x^2) + eps) * w over nrows rows of n (y may alias x). */
  rmsNorm(x: number, w: number, y: number, n: number, nrows: number, eps: number): void;
  add(a: number, b: number, y: number, n: number): void;
  mul(a: number, b: number, y: number, n: number): void;
  /** y = silu(g) * u. */
  swiglu(g: number, u: number, y: number, n: number): void;
  /** Index of the largest of n f32 at x: the first on ties, NaN never, 0 if none is above -inf (a scalar `>` scan's answer). */
  argmaxF32(x: number, n: number): number;
  /** Per whole block of 16 f32 at x (n / 16 blocks): its largest non-NaN value (-inf if none), as f32 at out. */
  blockMaxF32(x: number, n: number, out: number): void;
  /** In place, per row: softmax(scale * x). */
  softmax(x: number, n: number, nrows: number, scale: number): void;
  /** Rotates nheads heads of d floats in place; neox 0: pairs (2i, 2i+1), 1: pairs (i, i+d/2). */
  rope(x: number, nheads: number, d: number, cs: number, neox: number): void;
  /**
   * Causal attention over one layer's KV cache of f16 values, 2 bytes each (see assembly/attention.ts).
   * With rowKvHeads, kIn and vIn: over a contiguous run of the KV heads of longer rows, after
   * storing the nTok rows of keys and values at kIn, vIn in the cache (0 or absent: not used).
   */
  attentionF16(q: number, kc: number, vc: number, out: number, scratch: number, startPos: number, nTok: number, nHeads: number, nKvHeads: number, hd: number, hdV: number, scale: number, rowKvHeads?: number, kIn?: number, vIn?: number): void;
  /**
   * attentionF16 over a cache of the same values as f32 (4 bytes each, the half h as h * 2^-112):
   * read in place, not converted per call; bit for bit attentionF16's outputs.
   */
  attentionF32(q: number, kc: number, vc: number, out: number, scratch: number, startPos: number, nTok: number, nHeads: number, nKvHeads: number, hd: number, hdV: number, scale: number, rowKvHeads?: number, kIn?: number, vIn?: number): void;
  /** n f32 at x -> n f16 (u16 bits, round to nearest even) at y: what the KV cache stores. */
  f32ToF16Row(x: number, y: number, n: number): void;
  /** Reads bytes (multiple of 64) at p; a memory read bandwidth probe. */
  streamSum(p: number, bytes: number): number;
}

/** Where a build comes from: bytes, a compiled module, a URL (file: URLs read through node:fs). */
export type WasmSource = BufferSource | WebAssembly.Module | URL | string;

export interface LoadKernelsOptions {
  /** Shared memory to run on; created (initialBytes..maximumBytes) when absent. */
  memory?: WebAssembly.Memory;
  initialBytes?: number;
  /** Defaults to 4 GiB (the memory32 limit). */
  maximumBytes?: number;
  /** Builds to use instead of the files in build/kernels/ (browsers, bundlers). */
  binaries?: { relaxed?: WasmSource; relaxedVnni?: WasmSource; simd128?: WasmSource };
  /**
   * Force one build: "simd128" skips relaxed SIMD; "relaxed-simd" / "relaxed-simd-vnni" require
   * that build (an error if it fails) and skip the choice. Absent: the environment
   * variable MIMO_KERNELS (same values) when set, else automatic.
   */
  path?: KernelPath;
}

export interface Kernels {
  readonly path: KernelPath;
  /** Why no relaxed build was chosen (undefined when one was). */
  readonly fallbackReason: string | undefined;
  /** Why the VNNI build was not a candidate (self test or loading failed), if it was tried. */
  readonly vnniReason?: string;
  /** Compiled module, to post to workers (each makes its own instance with instantiateKernels). */
  readonly module: WebAssembly.Module;
  readonly memory: WebAssembly.Memory;
  readonly exports: KernelExports;
}

/** Bytes 0..KERNEL_RESERVED_BYTES-1 belong to the kernels (constants, self-test scratch). */
export const KERNEL_RESERVED_BYTES = 8192;
/** Bytes of one activation block (32 int8, f32 d, i32 sum, padding). */
export const ACT_BLOCK_BYTES = 64;
export const WASM_PAGE = 65536;

export const defaultKernelUrls = {
  relaxed: new URL("../../build/kernels/kernels-relaxed.wasm", import.meta.url),
  relaxedVnni: new URL("../../build/kernels/kernels-relaxed-vnni.wasm", import.meta.url),
  simd128: new URL("../../build/kernels/kernels-simd128.wasm", import.meta.url),
};

export function actBytes(k: number, n = 1): number {
  return (k / 32) * ACT_BLOCK_BYTES * n;
}
export function q4_0R8Bytes(nrows: number, k: number): number {
  return Math.ceil(nrows / 8) * (k / 32) * 144;
}
export function q8_0R8Bytes(nrows: number, k: number): number {
  return Math.ceil(nrows / 8) * (k / 32) * 272;
}
/** Number of 8-row groups of a repacked matrix (the unit of work splitting). */
export function rowGroups(nrows: number): number {
  return Math.ceil(nrows / 8);
}

async function readSource(src: WasmSource): Promise<WebAssembly.Module> {
  if (src instanceof WebAssembly.Module) return src;
  if (typeof src === "string" || src instanceof URL) {
    const url = typeof src === "string" ? new URL(src, import.meta.url) : src;
    if (url.protocol === "file:") {
      const fsName = "node:fs/promises"; // computed so that bundlers leave it alone
      const fs = (await import(fsName)) as { readFile(u: URL): Promise<Uint8Array<ArrayBuffer>> };
      return WebAssembly.compile(await fs.readFile(url));
    }
    const res = await fetch(url);
    if (!res.ok) throw new Error(`kernels: cannot fetch ${url.href}: HTTP ${res.status}`);
    return WebAssembly.compile(await res.arrayBuffer());
  }
  return WebAssembly.compile(src);
}

/** Instantiates a kernels module on a shared memory (synchronous: for worker threads). */
export function instantiateKernels(module: WebAssembly.Module, memory: WebAssembly.Memory): KernelExports {
  const instance = new WebAssembly.Instance(module, { env: { memory } });
  const ex = instance.exports as unknown as KernelExports;
  ex.init();
  return ex;
}

export function createSharedMemory(initialBytes: number, maximumBytes = 4 * 1024 ** 3): WebAssembly.Memory {
  const initial = Math.max(1, Math.ceil(initialBytes / WASM_PAGE));
  const maximum = Math.min(65536, Math.max(initial, Math.ceil(maximumBytes / WASM_PAGE)));
  return new WebAssembly.Memory({ initial, maximum, shared: true });
}

// Self test on exact small integers: 8 rows x 64 columns, unit scales, quants at their extremes.
// Every layout and both dot forms (i8 x nibble, i8 x i8) must give the exact answer.
const PROBE = 4096; // the self test's scratch area (see assembly/common.ts)
export function selfTest(ex: KernelExports, memory: WebAssembly.Memory): string | undefined {
  const k = 64, nrows = 8, nb = 2;
  const buf = memory.buffer;
  const u8 = new Uint8Array(buf, PROBE, 2048);
  const dv = new DataView(buf, PROBE, 2048);
  u8.fill(0);
  const W4 = 0, ACT = 288, R4 = 416, OUT = 704, W8 = 736, R8 = 1280; // R8 ends at 1824
  let seed = 12345;
  const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8);
  const a: number[] = [];
  let asum = [0, 0];
  for (let j = 0; j < k; j++) {
    // a[0] = a[1] = 127 with row 3 and 7's nibbles all 15: the VNNI build's bytes of 255 (see
    // repackRowPairs in q4_0.ts) would overflow an i16 pair sum where the dot-add is pmaddubsw-based
    const q = j === 1 ? 127 : j % 7 === 0 ? (j % 2 ? -127 : 127) : (rnd() % 255) - 127;
    a.push(q);
    asum[j >> 5] += q;
  }
  for (let b = 0; b < nb; b++) {
    const o = ACT + b * ACT_BLOCK_BYTES; // the layout of quantizeAct (assembly/quantize.ts)
    for (let j = 0; j < 32; j++) dv.setInt8(o + j, a[b * 32 + j]);
    dv.setFloat32(o + 32, 1, true);
    dv.setInt32(o + 36, asum[b], true);
    dv.setFloat32(o + 44, 2 ** 112, true); // d * 2^112, for f16 weight scales
    dv.setInt32(o + 48, -128 * asum[b], true);
    dv.setInt32(o + 52, -136 * asum[b], true);
  }
  const want4: number[] = [], want8: number[] = [];
  for (let r = 0; r < nrows; r++) {
    let s4 = 0, s8 = 0;
    for (let b = 0; b < nb; b++) {
      const o4 = W4 + (r * nb + b) * 18, o8 = W8 + (r * nb + b) * 34;
      dv.setUint16(o4, 0x3c00, true);
      dv.setUint16(o8, 0x3c00, true);
      for (let j = 0; j < 16; j++) {
        const lo = (r + j) % 3 === 0 || r % 4 === 3 ? 15 : rnd() % 16, hi = r % 4 === 3 ? 15 : (r + j) % 5 === 0 ? 0 : rnd() % 16;
        u8[o4 + 2 + j] = lo | (hi << 4);
        s4 += (lo - 8) * a[b * 32 + j] + (hi - 8) * a[b * 32 + j + 16];
      }
      for (let j = 0; j < 32; j++) {
        // row 7 all 127: the VNNI build's Q8_0 bytes of 255 (quant + 128, see repackQ8_0) as well
        const q = r === 7 || (r + j) % 4 === 1 ? 127 : (r + j) % 4 === 0 ? -127 : (rnd() % 255) - 127;
        dv.setInt8(o8 + 2 + j, q);
        s8 += q * a[b * 32 + j];
      }
    }
    want4.push(s4);
    want8.push(s8);
  }
  const out = new Float32Array(buf, PROBE + OUT, nrows);
  const check = (name: string, want: number[]): string | undefined => {
    for (let r = 0; r < nrows; r++) {
      if (out[r] !== want[r]) return `${name}: row ${r} gave ${out[r]}, exact ${want[r]}`;
    }
    out.fill(NaN);
    return undefined;
  };
  out.fill(NaN);
  ex.matvecQ4_0(PROBE + W4, PROBE + ACT, PROBE + OUT, k, 0, nrows);
  let err = check("matvecQ4_0", want4);
  if (err) return err;
  ex.repackQ4_0(PROBE + W4, PROBE + R4, nrows, k);
  ex.matvecQ4_0R8(PROBE + R4, PROBE + ACT, PROBE + OUT, k, 0, 1, nrows);
  if ((err = check("matvecQ4_0R8", want4))) return err;
  ex.matvecQ8_0(PROBE + W8, PROBE + ACT, PROBE + OUT, k, 0, nrows);
  if ((err = check("matvecQ8_0", want8))) return err;
  ex.repackQ8_0(PROBE + W8, PROBE + R8, nrows, k);
  ex.matvecQ8_0R8(PROBE + R8, PROBE + ACT, PROBE + OUT, k, 0, 1, nrows);
  if ((err = check("matvecQ8_0R8", want8))) return err;
  return undefined;
}

/**
 * Loads the kernels: tries the relaxed-SIMD builds (compile, instantiate, exact self test) and
 * keeps the VNNI build where its self test passes, else the i16-sum relaxed build; falls back to
 * the SIMD128 build if no relaxed build works. Validation alone is not trusted: some runtimes
 * accept relaxed SIMD but compute wrong (or saturating) dot products.
 */
export async function loadKernels(opts: LoadKernelsOptions = {}): Promise<Kernels> {
  const memory = opts.memory ?? createSharedMemory(opts.initialBytes ?? 16 * WASM_PAGE, opts.maximumBytes);
  if (memory.buffer.byteLength < KERNEL_RESERVED_BYTES) throw new Error("kernels: memory too small");
  const path = opts.path ?? envPath();
  let fallbackReason: string | undefined;
  if (path !== "simd128") {
    const tryBuild = async (src: WasmSource, name: string): Promise<{ module: WebAssembly.Module; ex: KernelExports } | string> => {
      try {
        const module = await readSource(src);
        const ex = instantiateKernels(module, memory);
        const err = ex.relaxed() === 1 ? selfTest(ex, memory) : "not a relaxed-SIMD build";
        return err ? `${name} self test failed: ${err}` : { module, ex };
      } catch (e) {
        return `${name} build unavailable: ${(e as Error).message}`;
      }
    };
    if (path === "relaxed-simd-vnni") {
      const v = await tryBuild(opts.binaries?.relaxedVnni ?? defaultKernelUrls.relaxedVnni, "relaxed-SIMD VNNI");
      if (typeof v === "string") throw new Error(`kernels: ${v}`);
      return { path: "relaxed-simd-vnni", fallbackReason: undefined, module: v.module, memory, exports: v.ex };
    }
    const r = await tryBuild(opts.binaries?.relaxed ?? defaultKernelUrls.relaxed, "relaxed-SIMD");
    if (typeof r !== "string") {
      if (path === "relaxed-simd") return { path: "relaxed-simd", fallbackReason: undefined, module: r.module, memory, exports: r.ex };
      const v = await tryBuild(opts.binaries?.relaxedVnni ?? defaultKernelUrls.relaxedVnni, "relaxed-SIMD VNNI");
      if (typeof v === "string") {
        return { path: "relaxed-simd", fallbackReason: undefined, vnniReason: v, module: r.module, memory, exports: r.ex };
      }
      // Its self test passed, so the runtime's i32 dot-add is exact on unsigned bytes up to 255
      // (a fused dot-add instruction such as AVX-VNNI's vpdpbusd, not a saturating i16 pair sum):
      // what the VNNI build is written for, and faster than the i16 sums wherever it holds. No
      // timing decides it (start-up timing flipped with load on a busy machine or page).
      return { path: "relaxed-simd-vnni", fallbackReason: undefined, module: v.module, memory, exports: v.ex };
    }
    fallbackReason = r;
    if (path === "relaxed-simd") throw new Error(`kernels: ${fallbackReason}`);
    if (!opts.binaries?.relaxed) noticeSlowKernels(fallbackReason);
  } else {
    fallbackReason = "simd128 requested";
  }
  const module = await readSource(opts.binaries?.simd128 ?? defaultKernelUrls.simd128);
  const ex = instantiateKernels(module, memory);
  const err = selfTest(ex, memory);
  if (err) throw new Error(`kernels: SIMD128 self test failed: ${err}`);
  return { path: "simd128", fallbackReason, module, memory, exports: ex };
}

let slowNoticeGiven = false;

/**
 * Node only, once per process: says that the slower SIMD128 kernels run, and why. Node < 22 (V8
 * before 11.4) has no relaxed SIMD, which the fast int8 dot products need. Browsers keep quiet (a
 * page reports its kernel build itself).
 */
function noticeSlowKernels(reason: string): void {
  const proc = (globalThis as { process?: { versions?: { node?: string }; emitWarning?: (msg: string, o: { code: string }) => void } }).process;
  const node = proc?.versions?.node;
  if (slowNoticeGiven || !node || !proc?.emitWarning) return;
  slowNoticeGiven = true;
  const why = Number(node.split(".")[0]) < 22
    ? `Node ${node} has no WebAssembly relaxed SIMD (Node >= 22 has it)`
    : `the relaxed-SIMD kernels cannot run here (${reason})`;
  proc.emitWarning(`mimo runs on its plain SIMD128 kernels, which are slower on quantized models: ${why}.`, { code: "MIMO_SLOW_KERNELS" });
}

/** MIMO_KERNELS=relaxed-simd|relaxed-simd-vnni|simd128 forces a build (Node; ignored elsewhere). */
function envPath(): KernelPath | undefined {
  const v = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.MIMO_KERNELS;
  if (!v) return undefined;
  if (!(KERNEL_PATHS as readonly string[]).includes(v)) throw new Error(`kernels: MIMO_KERNELS must be one of ${KERNEL_PATHS.join(", ")}, got "${v}"`);
  return v as KernelPath;
}

/**
 * Writes the RoPE table for one position: (cos, sin) of pos * base^(-2i/d), i < d/2, as f32 pairs
 * at byte address cs (4*d bytes). The same table serves every layer of a token.
 */
export function ropeTable(memory: WebAssembly.Memory, cs: number, d: number, pos: number, base: number): void {
  const t = new Float32Array(memory.buffer, cs, d);
  for (let i = 0; i < d / 2; i++) {
    const theta = pos * Math.pow(base, (-2 * i) / d);
    t[2 * i] = Math.cos(theta);
    t[2 * i + 1] = Math.sin(theta);
  }
}

/**
 * Bump allocator over the shared memory, from KERNEL_RESERVED_BYTES up; grows the memory as
 * needed. Views must be made after allocating (growing replaces memory.buffer).
 */
export class KernelArena {
  readonly memory: WebAssembly.Memory;
  top: number;
  constructor(memory: WebAssembly.Memory, start = KERNEL_RESERVED_BYTES) {
    this.memory = memory;
    this.top = start;
  }
  alloc(bytes: number, align = 64): number {
    const p = Math.ceil(this.top / align) * align;
    const end = p + bytes;
    const have = this.memory.buffer.byteLength;
    if (end > have) this.memory.grow(Math.ceil((end - have) / WASM_PAGE));
    this.top = end;
    return p;
  }
  f32(ptr: number, n: number): Float32Array {
    return new Float32Array(this.memory.buffer, ptr, n);
  }
  u8(ptr: number, n: number): Uint8Array {
    return new Uint8Array(this.memory.buffer, ptr, n);
  }
}
