// The fast backend: WebAssembly SIMD kernels on N threads. Each thread owns one WebAssembly
// instance and one shared memory holding its row shard of every weight matrix, so N threads
// can hold N x 4 GiB (no memory64 needed) and each core streams only its own weights. The
// coordinator (the thread calling forward) is thread 0: it also runs the element-wise ops,
// attention and the KV cache; per matmul it quantizes the activations once, copies them into
// each thread's memory, runs its own shard while the workers run theirs, and gathers the rows.

import {
  KERNEL_RESERVED_BYTES,
  WASM_PAGE,
  createSharedMemory,
  instantiateKernels,
  loadKernels,
  type KernelExports,
  type KernelPath,
  type LoadKernelsOptions,
} from "../../kernels/kernels.ts";
import { ACTIVATIONS as LEGACY_ACTIVATIONS, LEGACY_FAMILIES } from "../../kernels/families-legacy.ts";
import { KQUANT_FAMILIES, Q8_K_ACTIVATION } from "../../kernels/families-kquants.ts";
import { getQuantTraits, getWeightTraits, rowByteSize } from "../../quant/traits.ts";
import { defaultThreadCount, defaultThreadFactory, type ComputeThread, type ThreadFactory } from "../../platform/threads.ts";
import type {
  AttentionParams,
  ComputeBackend,
  KvCache,
  KvCacheSpec,
  MatrixHandle,
  MatrixUsage,
  RopeParams,
  WeightInfo,
} from "../../compute/backend.ts";
import type { TensorData } from "../../format/gguf-reader.ts";
import { ReferenceBackend } from "../reference.ts";
import { CTL_DONE, CTL_ERROR, CTL_NJOBS, CTL_OP, CTL_SEQ, MAX_JOBS, OP_EXIT, OP_RUN, adaptSpin, controlInts, jobOffset, runJobs, type Matmul } from "./protocol.ts";

/** How a weight type runs on the kernels: activation format, placement and kernel names. */
export interface MatmulFamily {
  readonly type: number;
  readonly activation: ActivationKind;
  /** Bytes of a shard of nrows rows of k columns in kernel memory. */
  repackedBytes(nrows: number, k: number): number;
  /** Load-time repacker export (absent: the file's rows are copied as they are). */
  readonly repack?: string;
  /** matmul(w, act, y, k, u0, u1, nrows, ntok) export. */
  readonly matmul: string;
  /** Rows per unit of work: a thread's shard is a whole number of units. */
  readonly rowGranularity: number;
}

type ActivationKind = "q8_0" | "q8_1" | "q8_k" | "f16" | "bf16" | "f32";

/** Each activation format: the export converting f32 rows into it (null: the f32 rows as they are) and its size. */
const ACTIVATIONS: Record<ActivationKind, { readonly convert: string | null; bytes(k: number, n: number): number }> = {
  ...LEGACY_ACTIVATIONS,
  q8_k: Q8_K_ACTIVATION,
};

const families: readonly MatmulFamily[] = [...LEGACY_FAMILIES, ...KQUANT_FAMILIES];

const familyByType = new Map(families.map((f) => [f.type, f]));
const functionNames = [...new Set(families.map((f) => f.matmul))];
const activationKinds = [...new Set(families.map((f) => f.activation))];

/** Whether this thread may block in Atomics.wait (a browser page's main thread may not). */
function threadCanBlock(): boolean {
  try {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0); // value differs: returns at once
    return true;
  } catch {
    return false;
  }
}

/** One thread's memory with a bump allocator; the arena only grows (weights live for the model's life). */
class ThreadMemory {
  readonly memory: WebAssembly.Memory;
  /** An instance on this memory owned by the coordinator (repacking at load; thread 0 also computes with it). */
  readonly ex: KernelExports;
  top = KERNEL_RESERVED_BYTES;
  constructor(memory: WebAssembly.Memory, ex: KernelExports) {
    this.memory = memory;
    this.ex = ex;
  }
  alloc(bytes: number, align = 64): number {
    const ptr = Math.ceil(this.top / align) * align;
    const end = ptr + bytes;
    if (end > 4 * 1024 ** 3) throw new RangeError(`a thread's WebAssembly memory would exceed 4 GiB (${(end / 1024 ** 3).toFixed(2)} GiB); use more threads`);
    const have = this.memory.buffer.byteLength;
    if (end > have) this.memory.grow(Math.ceil((end - have) / WASM_PAGE));
    this.top = end;
    this.refresh(); // views made right after this (allocate) are known as this memory's
    return ptr;
  }
  bytes(ptr: number, n: number): Uint8Array {
    return new Uint8Array(this.memory.buffer, ptr, n);
  }
  // Whole-memory views, rebuilt only after the memory grew (a shared memory's buffer is never
  // detached, but an older buffer object keeps the older length).
  private u8View = new Uint8Array(0);
  private f32View = new Float32Array(0);
  private readonly buffers = new WeakSet<ArrayBufferLike>();
  u8(): Uint8Array {
    if (this.u8View.byteLength !== this.memory.buffer.byteLength) this.refresh();
    return this.u8View;
  }
  f32(): Float32Array {
    if (this.f32View.byteLength !== this.memory.buffer.byteLength) this.refresh();
    return this.f32View;
  }
  /** Whether a buffer object is (a past or present) buffer of this memory. */
  owns(b: ArrayBufferLike): boolean {
    if (this.buffers.has(b)) return true;
    this.refresh();
    return this.buffers.has(b);
  }
  private refresh(): void {
    const b = this.memory.buffer;
    this.buffers.add(b);
    this.u8View = new Uint8Array(b);
    this.f32View = new Float32Array(b);
  }
}

/** A fused matmul's fixed part, cached per list of matrices (see planFor). */
interface MatmulPlan {
  readonly all: readonly WasmMatrix[];
  /** Matrices with SIMD kernels, and the index of each in `all` (and in the outputs). */
  readonly fast: readonly WasmMatrix[];
  readonly fastOut: readonly number[];
  /** Indices of matrices computed by the scalar fallback. */
  readonly slow: readonly number[];
  readonly k: number;
  readonly kinds: readonly ActivationKind[];
  /** Per fast matrix: index into kinds, and into functionNames. */
  readonly jobKind: readonly number[];
  readonly fn: readonly number[];
  readonly maxShardRows: number;
}

interface Shard {
  readonly rowStart: number;
  readonly rows: number;
  readonly groups: number;
  readonly ptr: number;
}

interface WasmMatrix extends MatrixHandle {
  readonly family: MatmulFamily | undefined;
  readonly shards: readonly Shard[];
  /** Original bytes, kept for embedding lookups and for types without SIMD kernels. */
  readonly raw: Uint8Array | undefined;
  /** Reads one original row from the file (embedding lookups without a resident copy). */
  readonly rowReader: ((row: number) => Uint8Array) | undefined;
  readonly rowBytes: number;
}

interface WasmKvCache extends KvCache {
  /** Per layer: f16 bits (2 bytes per value), [position][kvHead][headDim]. */
  readonly k: number[];
  /** Per layer: f16 bits, [position][kvHead][headDimV]. */
  readonly v: number[];
  readonly scratch: number;
}

/** Per-thread activation (one per format) and output buffers, regrown when a larger matmul comes. */
interface IoBuffers {
  act: Map<ActivationKind, { ptr: number; bytes: number }>;
  out: number;
  outSlotBytes: number;
}

export interface WasmBackendOptions {
  /** Compute threads including the calling one. Default: the number of cores. */
  readonly threads?: number;
  /** Most tokens per forward call (longer prompts are split). Default 128. */
  readonly maxBatch?: number;
  readonly kernels?: LoadKernelsOptions;
  readonly threadFactory?: ThreadFactory;
  /** Most spin iterations before a waiting thread sleeps (adapted down when threads outnumber cores; see adaptSpin). */
  readonly spin?: number;
}

export class WasmBackend implements ComputeBackend {
  readonly name: string;
  readonly threads: number;
  readonly maxBatch: number;
  readonly kernelPath: KernelPath;
  private readonly mem: ThreadMemory[];
  private readonly workers: ComputeThread[];
  private readonly ctl: Int32Array;
  private readonly fns: Matmul[];
  private readonly io: IoBuffers[];
  private readonly spin: number;
  private readonly fallback = new ReferenceBackend();
  private readonly plans = new Map<WasmMatrix, MatmulPlan[]>();
  private readonly converters: Map<string, (x: number, y: number, k: number, n: number) => void>;
  private readonly actPtrScratch: number[] = [];
  /** Per job of the current matmul: thread 0 wrote its rows straight into the output. */
  private readonly directScratch: boolean[] = [];
  private readonly canBlock = threadCanBlock();
  private spinLimit: number;
  private disposed = false;

  private constructor(mem: ThreadMemory[], workers: ComputeThread[], ctl: Int32Array, path: KernelPath, maxBatch: number, spin: number) {
    this.mem = mem;
    this.workers = workers;
    this.ctl = ctl;
    this.threads = mem.length;
    this.kernelPath = path;
    this.maxBatch = maxBatch;
    this.spin = spin;
    this.spinLimit = spin;
    this.name = `wasm-${path} x${mem.length}`;
    const ex0 = mem[0]!.ex as unknown as Record<string, Matmul>;
    this.fns = functionNames.map((n) => ex0[n]!);
    this.io = mem.map(() => ({ act: new Map(), out: 0, outSlotBytes: 0 }));
    const ex0fns = mem[0]!.ex as unknown as Record<string, (x: number, y: number, k: number, n: number) => void>;
    this.converters = new Map(activationKinds.flatMap((kind) => {
      const c = ACTIVATIONS[kind].convert;
      return c ? [[c, ex0fns[c]!] as const] : [];
    }));
  }

  static async create(opts: WasmBackendOptions = {}): Promise<WasmBackend> {
    const n = opts.threads ?? (await defaultThreadCount());
    if (!(Number.isInteger(n) && n >= 1 && n <= 64)) throw new RangeError(`threads must be an integer from 1 to 64, got ${n}`);
    const maxBatch = opts.maxBatch ?? 128;
    const spin = opts.spin ?? 5_000; // ~0.1 ms of polling; see adaptSpin for the measurements
    const kernels = await loadKernels({ initialBytes: 16 * 1024 * 1024, ...opts.kernels });
    const mem = [new ThreadMemory(kernels.memory, kernels.exports)];
    for (let t = 1; t < n; t++) {
      const memory = createSharedMemory(1024 * 1024);
      mem.push(new ThreadMemory(memory, instantiateKernels(kernels.module, memory)));
    }
    const control = new SharedArrayBuffer(controlInts(n) * 4);
    const workers: ComputeThread[] = [];
    if (n > 1) {
      const factory = opts.threadFactory ?? (await defaultThreadFactory());
      const script = new URL(import.meta.url.endsWith(".ts") ? "./worker.ts" : "./worker.js", import.meta.url);
      try {
        for (let t = 1; t < n; t++) {
          const th = factory(script);
          workers.push(th);
          th.postMessage({ module: kernels.module, memory: mem[t]!.memory, control, thread: t, functions: functionNames, spin });
          await th.firstMessage();
        }
      } catch (e) {
        await Promise.all(workers.map((w) => w.terminate()));
        throw e;
      }
    }
    return new WasmBackend(mem, workers, new Int32Array(control), kernels.path, maxBatch, spin);
  }

  // ---- placement ----

  async loadMatrix(info: WeightInfo, data: TensorData, usage: MatrixUsage = "matmul"): Promise<MatrixHandle> {
    const cols = info.shape[0] ?? 1;
    const rows = info.shape.slice(1).reduce((a, b) => a * b, 1);
    getWeightTraits(info.type, info.name); // unsupported types fail here, naming the tensor
    const rowBytes = rowByteSize(info.type, cols);
    const family = usage === "rows" ? undefined : familyByType.get(info.type);
    // Embedding rows are read from the file when it allows synchronous reads (no resident copy);
    // otherwise, and for types without SIMD kernels, the original bytes stay in the JS heap.
    const rowsFromFile = usage !== "matmul" && data.readSync !== undefined && (family !== undefined || usage === "rows");
    const keepRaw = !rowsFromFile && (usage !== "matmul" || !family);
    const raw = keepRaw ? await data.read(0, data.byteSize) : undefined;
    const readRows = (start: number, count: number) =>
      raw ? Promise.resolve(raw.subarray(start * rowBytes, (start + count) * rowBytes)) : data.read(start * rowBytes, count * rowBytes);
    const shards: Shard[] = [];
    if (family) {
      const g = family.rowGranularity;
      const units = Math.ceil(rows / g);
      for (let t = 0; t < this.threads; t++) {
        const u0 = Math.floor((units * t) / this.threads);
        const u1 = Math.floor((units * (t + 1)) / this.threads);
        const rowStart = Math.min(rows, u0 * g);
        const shardRows = Math.min(rows, u1 * g) - rowStart;
        const m = this.mem[t]!;
        const ptr = shardRows > 0 ? m.alloc(family.repackedBytes(shardRows, cols)) : 0;
        if (shardRows > 0) await this.placeShard(m, family, readRows, rowStart, shardRows, cols, rowBytes, ptr);
        shards.push({ rowStart, rows: shardRows, groups: u1 - u0, ptr });
      }
    }
    const rowReader = rowsFromFile ? (id: number) => data.readSync!(id * rowBytes, rowBytes) : undefined;
    const m: WasmMatrix = { info, rows, cols, family, shards, raw, rowReader, rowBytes };
    return m;
  }

  /**
   * Places rows [rowStart, rowStart+n) in the thread's memory, streaming them from the file in
   * chunks: repacked through a small staging area, or copied as they are.
   */
  private async placeShard(
    m: ThreadMemory, f: MatmulFamily, readRows: (start: number, count: number) => Promise<Uint8Array>,
    rowStart: number, n: number, cols: number, rowBytes: number, dst: number,
  ): Promise<void> {
    const repack = f.repack ? (m.ex as unknown as Record<string, (s: number, d: number, r: number, k: number) => void>)[f.repack]! : undefined;
    const chunkRows = 128; // a multiple of every row granularity
    if (!repack || f.rowGranularity === 1) {
      // Row layouts (float types) are the file's rows; a repacker there only appends per-row data
      // after the rows (F16's inf/NaN flags), so it runs once, in place, over the whole shard.
      for (let r = 0; r < n; r += chunkRows) {
        const count = Math.min(chunkRows, n - r);
        m.bytes(dst + r * rowBytes, count * rowBytes).set(await readRows(rowStart + r, count));
      }
      repack?.(dst, dst, n, cols);
      return;
    }
    // Interleaved layouts are group-major: each chunk of whole groups is a prefix of the output.
    const staging = this.staging(m, chunkRows * rowBytes);
    for (let r = 0; r < n; r += chunkRows) {
      const count = Math.min(chunkRows, n - r);
      m.bytes(staging, count * rowBytes).set(await readRows(rowStart + r, count));
      repack(staging, dst + f.repackedBytes(r, cols), count, cols);
    }
  }

  private stagingAreas = new Map<ThreadMemory, { ptr: number; bytes: number }>();
  private staging(m: ThreadMemory, bytes: number): number {
    const s = this.stagingAreas.get(m);
    if (s && s.bytes >= bytes) return s.ptr;
    const ptr = m.alloc(bytes);
    this.stagingAreas.set(m, { ptr, bytes });
    return ptr;
  }

  loadVector(data: Float32Array): Float32Array {
    const v = this.allocate(data.length);
    v.set(data);
    return v;
  }

  allocate(n: number): Float32Array {
    const m = this.mem[0]!;
    const ptr = m.alloc(Math.max(1, n) * 4); // before reading memory.buffer: alloc may grow it
    return new Float32Array(m.memory.buffer, ptr, n);
  }

  private ptr(view: Float32Array): number {
    return view.byteOffset;
  }

  // ---- matmul across threads ----

  matmul(w: MatrixHandle, x: Float32Array, nTokens: number, out: Float32Array): void {
    this.matmulMulti([w], x, nTokens, [out]);
  }

  matmulMulti(ws: readonly MatrixHandle[], x: Float32Array, nTokens: number, outs: readonly Float32Array[]): void {
    const plan = this.planFor(ws as readonly WasmMatrix[]);
    if (plan.fast.length > 0) this.runFast(plan, x, nTokens, outs);
    for (const i of plan.slow) {
      const w = ws[i] as WasmMatrix;
      this.fallback.matmulRaw(w.info, w.raw!, w.rows, w.cols, x, nTokens, outs[i]!);
    }
  }

  /**
   * The fixed part of a fused matmul (which kernels, activation formats and shards), built once
   * per list of matrices: a decode step runs ~100 matmuls, and rebuilding this each time cost
   * more JavaScript time than some of the kernels.
   */
  private planFor(ws: readonly WasmMatrix[]): MatmulPlan {
    const cached = this.plans.get(ws[0]!);
    if (cached) for (const p of cached) if (p.all.length === ws.length && p.all.every((w, i) => w === ws[i])) return p;
    const fastIdx: number[] = [];
    const slow: number[] = [];
    ws.forEach((w, i) => (w.family ? fastIdx : slow).push(i));
    if (fastIdx.length > MAX_JOBS) throw new RangeError(`at most ${MAX_JOBS} matrices per fused matmul`);
    const fast = fastIdx.map((i) => ws[i]!);
    const kinds = [...new Set(fast.map((w) => w.family!.activation))];
    const plan: MatmulPlan = {
      all: [...ws],
      fast,
      fastOut: fastIdx,
      slow,
      k: fast[0]?.cols ?? 0,
      kinds,
      jobKind: fast.map((w) => kinds.indexOf(w.family!.activation)),
      fn: fast.map((w) => functionNames.indexOf(w.family!.matmul)),
      maxShardRows: Math.max(0, ...fast.flatMap((w) => w.shards.map((sh) => sh.rows))),
    };
    if (cached) cached.push(plan);
    else this.plans.set(ws[0]!, [plan]);
    return plan;
  }

  private runFast(plan: MatmulPlan, x: Float32Array, nTokens: number, outs: readonly Float32Array[]): void {
    const { fast, k } = plan;
    const nThreads = this.threads;
    for (let t = 0; t < nThreads; t++) this.ensureOut(t, plan.maxShardRows * nTokens * 4);
    // Convert the input once per activation format, then copy it into every thread's memory.
    const m0 = this.mem[0]!;
    const actPtr = this.actPtrScratch;
    for (let a = 0; a < plan.kinds.length; a++) {
      const kind = plan.kinds[a]!;
      const fmt = ACTIVATIONS[kind];
      const bytes = fmt.bytes(k, nTokens);
      for (let t = 0; t < nThreads; t++) actPtr[a * nThreads + t] = this.ensureAct(t, kind, bytes);
      const p0 = actPtr[a * nThreads]!;
      if (fmt.convert) this.converters.get(fmt.convert)!(x.byteOffset, p0, k, nTokens);
      else m0.u8().set(new Uint8Array(x.buffer, x.byteOffset, bytes), p0);
      if (nThreads > 1) {
        const src = m0.u8().subarray(p0, p0 + bytes);
        for (let t = 1; t < nThreads; t++) this.mem[t]!.u8().set(src, actPtr[a * nThreads + t]!);
      }
    }
    // Thread 0 writes straight into the output when its rows are contiguous there (one token, or
    // all rows on one thread) and the output lives in its memory; other shards are gathered.
    const ctl = this.ctl;
    ctl[CTL_NJOBS] = fast.length;
    const direct = this.directScratch;
    for (let j = 0; j < fast.length; j++) {
      const w = fast[j]!;
      const out = outs[plan.fastOut[j]!]!;
      direct[j] = (nTokens === 1 || nThreads === 1) && this.ownsView(out);
      for (let t = 0; t < nThreads; t++) {
        const s = w.shards[t]!;
        const o = jobOffset(t, j);
        if (s.rows === 0) {
          ctl[o] = -1;
          continue;
        }
        const io = this.io[t]!;
        ctl[o] = plan.fn[j]!;
        ctl[o + 1] = s.ptr;
        ctl[o + 2] = actPtr[plan.jobKind[j]! * nThreads + t]!;
        ctl[o + 3] = t === 0 && direct[j] ? out.byteOffset + s.rowStart * 4 : io.out + j * io.outSlotBytes;
        ctl[o + 4] = k;
        ctl[o + 5] = 0;
        ctl[o + 6] = s.groups;
        ctl[o + 7] = s.rows;
        ctl[o + 8] = nTokens;
      }
    }
    this.dispatch();
    // Gather the other threads' rows into the full outputs.
    for (let j = 0; j < fast.length; j++) {
      const w = fast[j]!;
      const out = outs[plan.fastOut[j]!]!;
      for (let t = direct[j] ? 1 : 0; t < nThreads; t++) {
        const s = w.shards[t]!;
        if (s.rows === 0) continue;
        const io = this.io[t]!;
        const local = this.mem[t]!.f32();
        const base = (io.out + j * io.outSlotBytes) >> 2;
        if (nTokens === 1) out.set(local.subarray(base, base + s.rows), s.rowStart);
        else for (let tok = 0; tok < nTokens; tok++) out.set(local.subarray(base + tok * s.rows, base + (tok + 1) * s.rows), tok * w.rows + s.rowStart);
      }
    }
  }

  /** Whether a view lies in thread 0's memory (where the kernels can write it directly). */
  private ownsView(v: Float32Array): boolean {
    return this.mem[0]!.owns(v.buffer);
  }

  private ensureAct(t: number, kind: ActivationKind, bytes: number): number {
    const io = this.io[t]!;
    const cur = io.act.get(kind);
    if (cur && cur.bytes >= bytes) return cur.ptr;
    const ptr = this.mem[t]!.alloc(bytes);
    io.act.set(kind, { ptr, bytes });
    return ptr;
  }

  private ensureOut(t: number, slotBytes: number): void {
    const io = this.io[t]!;
    if (io.outSlotBytes >= slotBytes) return;
    const slot = Math.ceil(slotBytes / 64) * 64;
    io.out = this.mem[t]!.alloc(slot * MAX_JOBS);
    io.outSlotBytes = slot;
  }

  /** Runs the posted jobs on every thread: the workers in parallel with this one. */
  private dispatch(): void {
    const ctl = this.ctl;
    const nWorkers = this.threads - 1;
    if (nWorkers > 0) {
      Atomics.store(ctl, CTL_DONE, 0);
      Atomics.store(ctl, CTL_OP, OP_RUN);
      Atomics.add(ctl, CTL_SEQ, 1);
      Atomics.notify(ctl, CTL_SEQ);
    }
    runJobs(ctl, 0, this.fns);
    if (nWorkers > 0) {
      let spins = this.spinLimit;
      while (Atomics.load(ctl, CTL_DONE) < nWorkers && spins-- > 0);
      if (Atomics.load(ctl, CTL_DONE) < nWorkers) {
        const start = performance.now();
        for (let i = 0; ; i++) {
          const done = Atomics.load(ctl, CTL_DONE);
          if (done >= nWorkers) break;
          // A browser's main thread may not block: there the coordinator keeps spinning.
          if (this.canBlock) Atomics.wait(ctl, CTL_DONE, done, 100);
          else if ((i & 0xffff) !== 0) continue;
          // A worker that died (out of memory, killed) never reports: fail instead of hanging.
          if (performance.now() - start > 60_000) throw new Error(`compute thread did not finish a matmul within 60 s (${done} of ${nWorkers} done)`);
        }
        if (this.canBlock) this.spinLimit = adaptSpin(this.spinLimit, performance.now() - start, this.spin);
      }
      const failed = Atomics.load(ctl, CTL_ERROR);
      if (failed !== 0) {
        Atomics.store(ctl, CTL_ERROR, 0);
        throw new Error(`compute thread ${failed - 1} failed while running a matmul`);
      }
    }
  }

  // ---- the rest of a layer runs on the coordinator ----

  getRows(handle: MatrixHandle, ids: readonly number[], out: Float32Array): void {
    const w = handle as WasmMatrix;
    const traits = getQuantTraits(w.info.type, w.info.name);
    ids.forEach((id, i) => {
      if (!(id >= 0 && id < w.rows)) throw new RangeError(`token id ${id} is outside the vocabulary (0..${w.rows - 1})`);
      if (w.raw) traits.dequantizeRow(w.raw, id * w.rowBytes, out, i * w.cols, w.cols);
      else traits.dequantizeRow(w.rowReader!(id), 0, out, i * w.cols, w.cols);
    });
  }

  rmsNorm(x: Float32Array, nRows: number, dim: number, weight: Float32Array, eps: number, out: Float32Array): void {
    this.mem[0]!.ex.rmsNorm(this.ptr(x), this.ptr(weight), this.ptr(out), dim, nRows, eps);
  }

  rope(x: Float32Array, nTokens: number, nHeads: number, positions: readonly number[], p: RopeParams): void {
    if (p.ropeDim !== p.headDim) return this.fallback.rope(x, nTokens, nHeads, positions, p);
    const half = p.ropeDim / 2;
    const table = this.ropeTableFor(positions, nTokens, p);
    const ex = this.mem[0]!.ex;
    for (let t = 0; t < nTokens; t++) {
      ex.rope(this.ptr(x) + t * nHeads * p.headDim * 4, nHeads, p.headDim, table + t * half * 8, p.style === "neox" ? 1 : 0);
    }
  }

  private rope_ = { params: undefined as RopeParams | undefined, first: -1, count: 0, ptr: 0, capacity: 0 };

  /**
   * (cos, sin) pairs for each position: computed once per batch and reused for q and k of every
   * layer. The same angles as the reference (and ggml): theta built by repeated multiplication in f32.
   */
  private ropeTableFor(positions: readonly number[], nTokens: number, p: RopeParams): number {
    const c = this.rope_;
    const contiguous = positions[nTokens - 1]! - positions[0]! === nTokens - 1;
    if (contiguous && c.params === p && c.first === positions[0] && c.count >= nTokens) return c.ptr;
    const half = p.ropeDim / 2;
    if (c.capacity < nTokens * half * 2) {
      c.capacity = nTokens * half * 2;
      c.ptr = this.mem[0]!.alloc(c.capacity * 4);
    }
    const cs = new Float32Array(this.mem[0]!.memory.buffer, c.ptr, nTokens * half * 2);
    const f32 = Math.fround;
    const thetaScale = f32(Math.pow(p.base, -2 / p.ropeDim));
    for (let t = 0; t < nTokens; t++) {
      let theta = f32(positions[t]!);
      for (let i = 0; i < half; i++) {
        const ff = p.freqFactors ? p.freqFactors[i]! : 1;
        const angle = f32(p.freqScale * f32(theta / ff));
        cs[(t * half + i) * 2] = Math.cos(angle);
        cs[(t * half + i) * 2 + 1] = Math.sin(angle);
        theta = f32(theta * thetaScale);
      }
    }
    Object.assign(c, { params: p, first: contiguous ? positions[0]! : -1, count: nTokens });
    return c.ptr;
  }

  createKvCache(spec: KvCacheSpec): KvCache {
    if (spec.type !== "f16") throw new RangeError(`the wasm backend keeps an f16 KV cache; kvCacheType "${spec.type}" needs the reference backend`);
    if (spec.headDim % 4 !== 0 || spec.headDimV % 4 !== 0) throw new RangeError(`head size ${spec.headDim} is not a multiple of 4`);
    const m = this.mem[0]!;
    const k: number[] = [];
    const v: number[] = [];
    for (let l = 0; l < spec.nLayers; l++) {
      // f16 bits, 2 bytes per value, as llama.cpp's F16 cache (attention converts them in tiles).
      k.push(m.alloc(spec.contextSize * spec.nKvHeads * spec.headDim * 2));
      v.push(m.alloc(spec.contextSize * spec.nKvHeads * spec.headDimV * 2));
    }
    // attentionF16 takes up to 16 heads per pass over the cache and needs min(nHeads, 16) *
    // (head size + positions + 3) + 4 * max(1024, head sizes) f32 of scratch (nHeads is not part
    // of the cache spec).
    const hdMax = Math.max(spec.headDim, spec.headDimV);
    const scratch = m.alloc((16 * (hdMax + spec.contextSize + 8) + 4 * Math.max(1024, hdMax)) * 4, 64);
    const cache: WasmKvCache = { spec, k, v, scratch };
    return cache;
  }

  storeKv(cache: KvCache, layer: number, k: Float32Array, v: Float32Array, startPos: number, nTokens: number): void {
    const c = cache as WasmKvCache;
    const s = c.spec;
    if (startPos + nTokens > s.contextSize) {
      throw new RangeError(`context is full: ${startPos + nTokens} positions needed, the cache holds ${s.contextSize}`);
    }
    const kw = s.nKvHeads * s.headDim;
    const vw = s.nKvHeads * s.headDimV;
    const ex = this.mem[0]!.ex;
    ex.f32ToF16Row(this.ptr(k), c.k[layer]! + startPos * kw * 2, nTokens * kw);
    ex.f32ToF16Row(this.ptr(v), c.v[layer]! + startPos * vw * 2, nTokens * vw);
  }

  attention(cache: KvCache, layer: number, q: Float32Array, startPos: number, nTokens: number, p: AttentionParams, out: Float32Array): void {
    const c = cache as WasmKvCache;
    this.mem[0]!.ex.attentionF16(this.ptr(q), c.k[layer]!, c.v[layer]!, this.ptr(out), c.scratch, startPos, nTokens, p.nHeads, p.nKvHeads, p.headDim, p.headDimV, p.scale);
  }

  swiglu(gate: Float32Array, up: Float32Array, n: number, out: Float32Array): void {
    this.mem[0]!.ex.swiglu(this.ptr(gate), this.ptr(up), this.ptr(out), n);
  }

  addBias(x: Float32Array, nRows: number, bias: Float32Array): void {
    const ex = this.mem[0]!.ex;
    const n = bias.length;
    for (let r = 0; r < nRows; r++) ex.add(this.ptr(x) + r * n * 4, this.ptr(bias), this.ptr(x) + r * n * 4, n);
  }

  addInPlace(x: Float32Array, y: Float32Array, n: number): void {
    this.mem[0]!.ex.add(this.ptr(x), this.ptr(y), this.ptr(x), n);
  }

  /** Bytes held in the threads' WebAssembly memories (weights, KV cache, buffers). */
  get residentBytes(): number {
    return this.mem.reduce((a, m) => a + m.memory.buffer.byteLength, 0);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.workers.length > 0) {
      Atomics.store(this.ctl, CTL_OP, OP_EXIT);
      Atomics.add(this.ctl, CTL_SEQ, 1);
      Atomics.notify(this.ctl, CTL_SEQ);
      for (const w of this.workers) void w.terminate();
    }
  }
}

