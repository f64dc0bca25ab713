// The fast backend: WebAssembly SIMD kernels on N threads. Each thread owns one WebAssembly
// instance and one shared memory holding its row shard of every weight matrix and its shard of
// the KV pool (a contiguous run of KV heads), so N threads can hold N x 4 GiB (no memory64
// needed) and each core streams only its own weights and keys/values. The coordinator (the thread
// calling forward) is thread 0: it also runs the element-wise ops; per matmul it quantizes the
// activations once, copies them into each thread's memory, runs its own shard while the workers
// run theirs, and gathers the rows. Attention runs the same way: every thread stores and attends
// over its own KV heads for every segment of the batch, in one dispatch.

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
import { WASM_ACTIVATIONS, WASM_TYPES, type WasmActivationKind, type WasmType } from "../../kernels/types.ts";
import { getQuantTraits, getWeightTraits, rowByteSize } from "../../quant/traits.ts";
import { defaultThreadCount, defaultThreadFactory, type ComputeThread, type ThreadFactory } from "../../platform/threads.ts";
import type {
  AttentionParams,
  AttentionSegment,
  ComputeBackend,
  KvPool,
  KvPoolSpec,
  MatrixHandle,
  MatrixUsage,
  RopeParams,
  WeightBytes,
  WeightInfo,
} from "../../compute/backend.ts";
import { ReferenceBackend } from "../reference.ts";
import { threadsForWork, type ThreadWork } from "./thread-choice.ts";
import {
  ATTENTION_F32_KERNEL, ATTENTION_KERNEL, BUSY_UNIT_MS, CTL_BUSY, CTL_DONE, CTL_ERROR, CTL_NJOBS, CTL_OP, CTL_PROFILE, CTL_SEQ, MAX_JOBS, OP_EXIT, OP_RUN, PROFILED_THREADS,
  CTL_CONTENDED, CTL_POSTED_US, CTL_SLEEPS, clockUs, adaptSpin, controlInts, f32ToBitsInt, jobOffset, jobRunners, runJobs, type JobRunner,
} from "./protocol.ts";
import { opLabelOfTensor, type OpProfile } from "../../compute/profile.ts";

const EMPTY_F32 = new Float32Array(0);
const byStart = (a: { start: number }, b: { start: number }): number => a.start - b.start;

/** How a weight type runs on the kernels (activation format, placement, kernel names): a row of the type table. */
type MatmulFamily = WasmType;
type ActivationKind = WasmActivationKind;

const ACTIVATIONS = WASM_ACTIVATIONS;
const families: readonly MatmulFamily[] = WASM_TYPES;

const familyByType = new Map(families.map((f) => [f.type, f]));
const functionNames = [...new Set(families.map((f) => f.matmul))];
/** The kernels jobs run (a job's first int indexes this list): the matmuls, then attention. */
const kernelNames = [...functionNames, ATTENTION_KERNEL, "rope", ATTENTION_F32_KERNEL, "swiglu"];
const ATTENTION_FN = functionNames.length;
/** Job index of RoPE (rope(x, nHeads, headDim, cosSin, neox)) in the fused attention dispatch. */
const ROPE_FN = functionNames.length + 1;
const ATTENTION_F32_FN = functionNames.length + 2;
/** Job index of SwiGLU (swiglu(g, u, y, n)) after a thread's gate and up rows (matmulSwiglu). */
const SWIGLU_FN = functionNames.length + 3;
/**
 * An f16 KV cache is kept as f32 (the same f16-rounded values, read without conversion) when few
 * query heads share a KV head (then converting each cached row costs about as much as using it)
 * and the f32 pool stays this small: small models, where the per-token overheads decide.
 */
const F32_KV_MAX_GROUP = 2;
const F32_KV_MAX_BYTES = 128 * 1024 ** 2;
/** Bytes of embedding rows kept per matrix whose rows are read from the file. */
const EMBEDDING_ROW_CACHE_BYTES = 1 << 20;
/** RoPE (cos, sin) rows of the first table (positions 0..63); it doubles when a position beyond it comes. */
const ROPE_AHEAD = 64;
/** Matrices per fused matmul (each has an output slot per thread). */
const MAX_MATMULS = 8;
const activationKinds = [...new Set(families.map((f) => f.activation))];

/**
 * A compute thread in a browser, written out in the form bundlers (Vite, webpack, Parcel)
 * recognise, so that they bundle the worker script and point this at the result.
 */
function browserWorker(): Worker {
  return new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
}

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
  readonly k: number;
  readonly kinds: readonly ActivationKind[];
  /** Per matrix: index into kinds, and into functionNames. */
  readonly jobKind: readonly number[];
  readonly fn: readonly number[];
  readonly maxShardRows: number;
  /** Profile label of its kernel time: "matmul attn_q+attn_k+attn_v". */
  readonly label: string;
  /** Views reused from call to call: per matrix and thread its gathered rows, per activation kind its input copy. */
  readonly gather: ViewSlot[];
  readonly copies: ViewSlot[];
  /** Profile label when the plan runs as gate/up with SwiGLU (matmulSwiglu), made once. */
  swigluLabel?: string;
  /** The profile label of matmulRows' dispatch, made once. */
  rowsLabel?: string;
}

/**
 * A typed-array view of one range of a thread's memory, kept while the range and the memory's
 * buffer stay the same: copying between the threads' memories needs a view of the source, and
 * making one per op was most of a decode step's garbage.
 */
class ViewSlot {
  private whole: object | undefined;
  private ptr = -1;
  private len = -1;
  private f32v: Float32Array = new Float32Array(0);
  private u8v: Uint8Array = new Uint8Array(0);
  /** f32[ptr / 4 .. ptr / 4 + len) of memory m. */
  f32(m: ThreadMemory, ptr: number, len: number): Float32Array {
    const w = m.f32();
    if (this.whole !== w || this.ptr !== ptr || this.len !== len) {
      this.f32v = w.subarray(ptr >>> 2, (ptr >>> 2) + len);
      this.whole = w;
      this.ptr = ptr;
      this.len = len;
    }
    return this.f32v;
  }
  /** Bytes [ptr, ptr + len) of memory m. */
  u8(m: ThreadMemory, ptr: number, len: number): Uint8Array {
    const w = m.u8();
    if (this.whole !== w || this.ptr !== ptr || this.len !== len) {
      this.u8v = w.subarray(ptr, ptr + len);
      this.whole = w;
      this.ptr = ptr;
      this.len = len;
    }
    return this.u8v;
  }
}

interface Shard {
  readonly rowStart: number;
  readonly rows: number;
  readonly groups: number;
  readonly ptr: number;
}

interface WasmMatrix extends MatrixHandle {
  /** Undefined for a matrix loaded for embedding rows only. */
  readonly family: MatmulFamily | undefined;
  readonly shards: readonly Shard[];
  /** Original bytes, kept for embedding lookups. */
  readonly raw: Uint8Array | undefined;
  /** Reads one original row from the file (embedding lookups without a resident copy). */
  readonly rowReader: ((row: number) => Uint8Array) | undefined;
  readonly rowBytes: number;
}

/**
 * One thread's part of the KV pool: KV heads kv0..kv0+nkv-1 of the slots of one replica (slots
 * s with s % replicas == replica, local index s / replicas), every layer. f16 bits (2 bytes per
 * value), or for small pools of small KV groups the same values in attentionF32's f32 form (4
 * bytes), per layer and local slot [position][local KV head][head size]: the attention kernel's
 * cache layout for those heads.
 */
interface KvShard {
  /** Bytes per cached value: 2 (f16 bits) or 4 (the pool's f32 form, see WasmKvPool.f32). */
  readonly valueBytes: number;
  readonly thread: number;
  readonly kv0: number;
  readonly nkv: number;
  readonly replica: number;
  readonly localSlots: number;
  /** Keys of layer l, local slot ls at k + (l * localSlots + ls) * kSlotBytes; values likewise. */
  readonly k: number;
  readonly v: number;
  readonly kSlotBytes: number;
  readonly vSlotBytes: number;
}

/**
 * The KV pool, sharded by KV head across the threads: headShards contiguous runs of KV heads
 * (balanced), each on its own thread. With fewer KV heads than threads (MQA, or many threads) the
 * threads left over hold replicas of that split for other slots: `replicas` groups of
 * headShards threads, slot s in group s % replicas (thread (s % replicas) * headShards + run).
 * A segment's attention runs on the headShards threads of its slot's group.
 */
interface WasmKvPool extends KvPool {
  /** The f16 values kept as f32 (attentionF32's cache form: 4 bytes each, no conversion per read). */
  readonly f32: boolean;
  /** The attention job's kernel index for this layout. */
  readonly attentionFn: number;
  readonly headShards: number;
  readonly replicas: number;
  /** shards[replica * headShards + run] (the thread of the same index). */
  readonly shards: readonly KvShard[];
}

/** Per-thread activation (one per format) and output buffers, regrown when a larger matmul comes. */
interface IoBuffers {
  act: Map<ActivationKind, { ptr: number; bytes: number }>;
  out: number;
  outSlotBytes: number;
}

export interface WasmBackendOptions {
  /**
   * Compute threads including the calling one. Default: chosen for `work` (see thread-choice.ts),
   * at most the number of cores; without `work`, the number of cores.
   */
  readonly threads?: number;
  /** What the model asks of the threads per decode step: the default thread count follows from it. */
  readonly work?: ThreadWork;
  /** Most tokens per forward call (longer prompts are split). Default 128. */
  readonly maxBatch?: number;
  readonly kernels?: LoadKernelsOptions;
  readonly threadFactory?: ThreadFactory;
  /** Most spin iterations before a waiting thread sleeps (adapted down when threads outnumber cores; see adaptSpin). */
  readonly spin?: number;
}

/**
 * Why the wasm backend cannot run a model of these head sizes (its attention kernels work on
 * groups of 4 lanes), or undefined if it can. Checked at load, before any thread starts.
 */
export function wasmUnsupportedShape(p: { readonly headDim: number; readonly headDimV: number }): string | undefined {
  if (p.headDim % 4 === 0 && p.headDimV % 4 === 0) return undefined;
  const size = p.headDim === p.headDimV ? `${p.headDim}` : `${p.headDim} (keys) / ${p.headDimV} (values)`;
  return `head size ${size} is not a multiple of 4, which the wasm backend's attention kernels need`;
}

export class WasmBackend implements ComputeBackend {
  /** "wasm-relaxed-simd-vnni x2", plus how the thread count was chosen when it was not given. */
  get name(): string {
    return this.choice ? `${this.baseName} (${this.choice})` : this.baseName;
  }
  private readonly baseName: string;
  private choice: string | undefined;
  /** Records how the thread count was chosen ("auto: ..."), shown in name. */
  noteThreadChoice(how: string): void {
    this.choice = how;
  }
  readonly threads: number;
  readonly maxBatch: number;
  readonly kernelPath: KernelPath;
  private readonly mem: ThreadMemory[];
  private readonly workers: ComputeThread[];
  private readonly ctl: Int32Array;
  private readonly fns: JobRunner[];
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
  private profile_: OpProfile | undefined = undefined;

  /**
   * Where the time goes (`mimo bench --profile`): while set, every op adds its wall-clock time on
   * this thread to it, split into kernels, input conversion and copies, waiting for the workers
   * and gathering their outputs, and the workers report their own job time.
   */
  get profile(): OpProfile | undefined {
    return this.profile_;
  }
  set profile(p: OpProfile | undefined) {
    this.collectWorkerBusy();
    this.profile_ = p;
    this.ctl[CTL_PROFILE] = p ? 1 : 0;
  }

  /** Moves the workers' job time counted so far into the attached profile. */
  collectWorkerBusy(): void {
    const p = this.profile_;
    for (let t = 1; t < Math.min(this.threads, PROFILED_THREADS + 1); t++) {
      const units = Atomics.exchange(this.ctl, CTL_BUSY + t, 0);
      const sleeps = Atomics.exchange(this.ctl, CTL_SLEEPS + t, 0);
      if (p) {
        p.workerBusyMs[t] = (p.workerBusyMs[t] ?? 0) + units * BUSY_UNIT_MS;
        p.workerSleeps[t] = (p.workerSleeps[t] ?? 0) + sleeps;
      }
    }
  }
  private disposing: Promise<void> | undefined;

  private constructor(mem: ThreadMemory[], workers: ComputeThread[], ctl: Int32Array, path: KernelPath, maxBatch: number, spin: number, auto: boolean) {
    this.mem = mem;
    this.workers = workers;
    this.ctl = ctl;
    this.threads = mem.length;
    this.kernelPath = path;
    this.maxBatch = maxBatch;
    this.spin = spin;
    this.spinLimit = spin;
    this.baseName = `wasm-${path} x${mem.length}`;
    // "(auto)": the thread count was chosen for the model's size, not given.
    this.choice = auto ? "auto" : undefined;
    this.fns = jobRunners(mem[0]!.ex, kernelNames);
    this.io = mem.map(() => ({ act: new Map(), out: 0, outSlotBytes: 0 }));
    this.buffers = mem.map(() => new Map());
    this.jobCount = mem.map(() => 0);
    this.outBase = mem.map(() => -1);
    this.fusedGather = mem.map(() => new ViewSlot());
    this.runStarts = new Int32Array(mem.length * MAX_JOBS);
    this.runEnds = new Int32Array(mem.length * MAX_JOBS);
    this.rowJobCounts = new Int32Array(mem.length);
    const ex0fns = mem[0]!.ex as unknown as Record<string, (x: number, y: number, k: number, n: number) => void>;
    this.converters = new Map(activationKinds.flatMap((kind) => {
      const c = ACTIVATIONS[kind].convert;
      return c ? [[c, ex0fns[c]!] as const] : [];
    }));
  }

  static async create(opts: WasmBackendOptions = {}): Promise<WasmBackend> {
    const cores = opts.threads === undefined ? await defaultThreadCount() : 0;
    const auto = opts.threads === undefined && opts.work !== undefined;
    const n = opts.threads ?? (opts.work ? threadsForWork(opts.work, cores) : cores);
    if (!(Number.isInteger(n) && n >= 1 && n <= 64)) throw new RangeError(`threads must be an integer from 1 to 64, got ${n}`);
    const maxBatch = opts.maxBatch ?? 128;
    const spin = opts.spin ?? 5_000; // ~30 µs of polling on Zen 5 (5.5-7 ns per Atomics.load); see adaptSpin for the measurements
    const kernels = await loadKernels({ initialBytes: 16 * 1024 * 1024, ...opts.kernels });
    const mem = [new ThreadMemory(kernels.memory, kernels.exports)];
    for (let t = 1; t < n; t++) {
      const memory = createSharedMemory(1024 * 1024);
      mem.push(new ThreadMemory(memory, instantiateKernels(kernels.module, memory)));
    }
    // One thread posts no jobs to anyone: its control block need not be shared (a page without
    // cross-origin isolation has no SharedArrayBuffer constructor).
    const control = n > 1 ? new SharedArrayBuffer(controlInts(n) * 4) : new ArrayBuffer(controlInts(n) * 4);
    const workers: ComputeThread[] = [];
    if (n > 1) {
      const factory = opts.threadFactory ?? (await defaultThreadFactory(browserWorker));
      const script = new URL(import.meta.url.endsWith(".ts") ? "./worker.ts" : "./worker.js", import.meta.url);
      try {
        for (let t = 1; t < n; t++) {
          const th = factory(script);
          workers.push(th);
          th.postMessage({ module: kernels.module, memory: mem[t]!.memory, control, thread: t, functions: kernelNames, spin });
          await th.firstMessage();
        }
      } catch (e) {
        await Promise.all(workers.map((w) => w.terminate()));
        throw e;
      }
    }
    return new WasmBackend(mem, workers, new Int32Array(control), kernels.path, maxBatch, spin, auto);
  }

  // ---- placement ----

  async loadMatrix(info: WeightInfo, data: WeightBytes, usage: MatrixUsage = "matmul"): Promise<MatrixHandle> {
    const cols = info.shape[0] ?? 1;
    const rows = info.shape.slice(1).reduce((a, b) => a * b, 1);
    getWeightTraits(info.type, info.name); // unsupported types fail here, naming the tensor
    const rowBytes = rowByteSize(info.type, cols);
    const family = usage === "rows" ? undefined : familyByType.get(info.type);
    // Every weight type with traits has a SIMD family; a new type must come with its kernels.
    if (usage !== "rows" && !family) throw new RangeError(`tensor "${info.name}": the WebAssembly kernels have no matmul for type ${info.type}`);
    // Embedding rows are read from the file when it allows synchronous reads (no resident copy);
    // otherwise the original bytes stay in the JS heap.
    const rowsFromFile = usage !== "matmul" && data.readSync !== undefined;
    const keepRaw = !rowsFromFile && usage !== "matmul";
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
    const m = w as WasmMatrix;
    let plan = this.singlePlans.get(m);
    if (!plan) this.singlePlans.set(m, (plan = this.planFor([m])));
    const outs = this.singleOut;
    outs[0] = out;
    this.runMatmul(plan, x, nTokens, outs);
    outs[0] = EMPTY_F32; // hold no caller's buffer
  }

  /**
   * One token's matmul over the units (row groups of the weight layout) holding a row set in
   * `rows`: each thread runs the same kernel as matmul over runs of its own shard's units (one job
   * per run, the kernel's u0..u1), so every row's value is matmul's, bit for bit. Only threads
   * with work are woken. Declined (undefined) when more than a quarter of the units would run.
   */
  matmulRows(w: MatrixHandle, x: Float32Array, rows: Uint32Array, out: Float32Array): number | undefined {
    const m = w as WasmMatrix;
    const f = m.family;
    if (!f) throw new RangeError(`matrix "${m.info.name}" was loaded for embedding rows only, not for matmul`);
    if (out.length < m.rows) throw new RangeError(`matmulRows: the output holds ${out.length} values, "${m.info.name}" has ${m.rows} rows`);
    const g = f.rowGranularity;
    const nThreads = this.threads;
    const ctl = this.ctl;
    // Runs of units per thread, as [start, end) local units in runStarts/runEnds[t * MAX_JOBS + j].
    const counts = this.rowJobCounts;
    counts.fill(0);
    const starts = this.runStarts;
    const ends = this.runEnds;
    const maxUnits = Math.ceil(m.rows / g) >> 2;
    let units = 0;
    let t = 0;
    let shard = m.shards[0]!;
    let lastUnit = -1;
    const words = Math.min(rows.length, (m.rows + 31) >>> 5);
    for (let i = 0; i < words; i++) {
      for (let bits = rows[i]!; bits !== 0; bits &= bits - 1) {
        const r = i * 32 + (31 - Math.clz32(bits & -bits));
        if (r >= m.rows) break;
        const unit = Math.floor(r / g);
        if (unit === lastUnit) continue;
        lastUnit = unit;
        while (r >= shard.rowStart + shard.rows) shard = m.shards[++t]!;
        if (++units > maxUnits) return undefined;
        const local = unit - shard.rowStart / g;
        const base = t * MAX_JOBS;
        const c = counts[t]!;
        if (c > 0 && ends[base + c - 1]! === local) ends[base + c - 1] = local + 1;
        else if (c < MAX_JOBS) {
          starts[base + c] = local;
          ends[base + c] = local + 1;
          counts[t] = c + 1;
        } else ends[base + c - 1] = local + 1; // job table full: the last run grows over the gap
      }
    }
    if (units === 0) return 0;
    const plan = this.singlePlans.get(m) ?? this.planFor([m]);
    this.singlePlans.set(m, plan);
    for (let th = 0; th < nThreads; th++) this.ensureOut(th, m.shards[th]!.rows * 4);
    const actPtr = this.stageInput(plan, x, 1);
    const direct = this.ownsView(out);
    let nJobs = 0;
    let workers = false;
    for (let th = 0; th < nThreads; th++) {
      const c = counts[th]!;
      nJobs = Math.max(nJobs, c);
      if (th > 0 && c > 0) workers = true;
    }
    ctl[CTL_NJOBS] = nJobs;
    let computed = 0;
    for (let th = 0; th < nThreads; th++) {
      const s = m.shards[th]!;
      const c = counts[th]!;
      const io = this.io[th]!;
      for (let j = 0; j < nJobs; j++) {
        const o = jobOffset(th, j);
        if (j >= c) {
          ctl[o] = -1;
          continue;
        }
        const u0 = starts[th * MAX_JOBS + j]!;
        const u1 = ends[th * MAX_JOBS + j]!;
        computed += Math.min(u1 * g, s.rows) - u0 * g;
        ctl[o] = plan.fn[0]!;
        ctl[o + 1] = s.ptr;
        ctl[o + 2] = actPtr[plan.jobKind[0]! * nThreads + th]!;
        ctl[o + 3] = th === 0 && direct ? out.byteOffset + s.rowStart * 4 : io.out;
        ctl[o + 4] = plan.k;
        ctl[o + 5] = u0;
        ctl[o + 6] = u1;
        ctl[o + 7] = s.rows;
        ctl[o + 8] = 1;
      }
    }
    this.dispatch(workers, "a matmul", (plan.rowsLabel ??= `${plan.label} (rows)`));
    // Gather the computed runs the threads wrote into their own output buffers.
    for (let th = direct ? 1 : 0; th < nThreads; th++) {
      const s = m.shards[th]!;
      const c = counts[th]!;
      if (c === 0) continue;
      const local = this.mem[th]!.f32();
      const base = this.io[th]!.out >>> 2;
      for (let j = 0; j < c; j++) {
        const r0 = starts[th * MAX_JOBS + j]! * g;
        const r1 = Math.min(ends[th * MAX_JOBS + j]! * g, s.rows);
        out.set(local.subarray(base + r0, base + r1), s.rowStart + r0);
      }
    }
    return computed;
  }
  /** matmulRows' runs of units per thread (at t * MAX_JOBS + j) and their counts. */
  private readonly runStarts: Int32Array;
  private readonly runEnds: Int32Array;
  private readonly rowJobCounts: Int32Array;

  /** One-matrix plans by matrix, and the one-element output list they run with: no arrays per call. */
  private readonly singlePlans = new Map<WasmMatrix, MatmulPlan>();
  private readonly singleOut: Float32Array[] = [EMPTY_F32];

  matmulMulti(ws: readonly MatrixHandle[], x: Float32Array, nTokens: number, outs: readonly Float32Array[]): void {
    this.runMatmul(this.planFor(ws as readonly WasmMatrix[]), x, nTokens, outs);
  }

  /**
   * The fixed part of a fused matmul (which kernels, activation formats and shards), built once
   * per list of matrices: a decode step runs ~100 matmuls, and rebuilding this each time cost
   * more JavaScript time than some of the kernels.
   */
  private planFor(ws: readonly WasmMatrix[]): MatmulPlan {
    const cached = this.plans.get(ws[0]!);
    if (cached) {
      for (let c = 0; c < cached.length; c++) {
        const p = cached[c]!;
        if (p.all.length !== ws.length) continue;
        let same = true;
        for (let i = 1; i < ws.length && same; i++) same = p.all[i] === ws[i];
        if (same) return p;
      }
    }
    for (const w of ws) if (!w.family) throw new RangeError(`matrix "${w.info.name}" was loaded for embedding rows only, not for matmul`);
    if (ws.length > MAX_MATMULS) throw new RangeError(`at most ${MAX_MATMULS} matrices per fused matmul`);
    const kinds = [...new Set(ws.map((w) => w.family!.activation))];
    const plan: MatmulPlan = {
      all: [...ws],
      k: ws[0]!.cols,
      kinds,
      jobKind: ws.map((w) => kinds.indexOf(w.family!.activation)),
      fn: ws.map((w) => functionNames.indexOf(w.family!.matmul)),
      maxShardRows: Math.max(0, ...ws.flatMap((w) => w.shards.map((sh) => sh.rows))),
      label: `matmul ${ws.map((w) => opLabelOfTensor(w.info.name)).join("+")}`,
      gather: Array.from({ length: ws.length * this.threads }, () => new ViewSlot()),
      copies: Array.from({ length: kinds.length * this.threads }, () => new ViewSlot()),
    };
    if (cached) cached.push(plan);
    else this.plans.set(ws[0]!, [plan]);
    return plan;
  }

  private runMatmul(plan: MatmulPlan, x: Float32Array, nTokens: number, outs: readonly Float32Array[]): void {
    const { all: ws, k } = plan;
    const nThreads = this.threads;
    const prof = this.profile_;
    let t0 = prof ? performance.now() : 0;
    for (let t = 0; t < nThreads; t++) this.ensureOut(t, plan.maxShardRows * nTokens * 4);
    const actPtr = this.stageInput(plan, x, nTokens);
    if (prof) t0 = performance.now();
    // Thread 0 writes straight into the output when its rows are contiguous there (one token, or
    // all rows on one thread) and the output lives in its memory; other shards are gathered.
    const ctl = this.ctl;
    ctl[CTL_NJOBS] = ws.length;
    const direct = this.directScratch;
    for (let j = 0; j < ws.length; j++) {
      const w = ws[j]!;
      const out = outs[j]!;
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
    if (prof) t0 = prof.lap("matmul: post jobs", t0);
    this.dispatch(true, "a matmul", plan.label);
    if (prof) t0 = performance.now();
    // Gather the other threads' rows into the full outputs.
    for (let j = 0; j < ws.length; j++) this.gather(plan, j, outs[j]!, nTokens, direct[j] ? 1 : 0);
    if (prof) prof.lap("matmul: gather outputs", t0);
  }

  /** Copies output slot j of threads t0.. (matrix plan.all[j]'s rows) into out. */
  private gather(plan: MatmulPlan, j: number, out: Float32Array, nTokens: number, t0: number): void {
    const w = plan.all[j]!;
    const nThreads = this.threads;
    for (let t = t0; t < nThreads; t++) {
      const s = w.shards[t]!;
      if (s.rows === 0) continue;
      const io = this.io[t]!;
      const base = (io.out + j * io.outSlotBytes) >>> 2; // >>>: addresses reach 4 GiB
      if (nTokens === 1) {
        out.set(plan.gather[j * nThreads + t]!.f32(this.mem[t]!, io.out + j * io.outSlotBytes, s.rows), s.rowStart);
        continue;
      }
      const local = this.mem[t]!.f32();
      for (let tok = 0; tok < nTokens; tok++) out.set(local.subarray(base + tok * s.rows, base + (tok + 1) * s.rows), tok * w.rows + s.rowStart);
    }
  }

  /** Per gate matrix: whether gate and up are split alike over the threads (see matmulSwiglu). */
  private readonly swigluSplit = new Map<WasmMatrix, boolean>();

  /**
   * out = swiglu(gate·x, up·x) with each thread applying SwiGLU to its own rows before the
   * gather: the element-wise work is spread over the threads and half as many rows come back.
   * Only where gate and up are split alike (the same rows on each thread); else false.
   */
  matmulSwiglu(gateH: MatrixHandle, upH: MatrixHandle, x: Float32Array, nTokens: number, out: Float32Array): boolean {
    const nThreads = this.threads;
    if (nThreads === 1) return false; // nothing to spread
    const gate = gateH as WasmMatrix, up = upH as WasmMatrix;
    let ok = this.swigluSplit.get(gate);
    if (ok === undefined) {
      ok = !!(gate.family && up.family) && gate.rows === up.rows && gate.cols === up.cols;
      for (let t = 0; ok && t < nThreads; t++) ok = gate.shards[t]!.rowStart === up.shards[t]!.rowStart && gate.shards[t]!.rows === up.shards[t]!.rows;
      this.swigluSplit.set(gate, ok);
    }
    if (!ok) return false;
    let plan = this.swigluPlans.get(gate);
    if (!plan || plan.all[1] !== up) this.swigluPlans.set(gate, (plan = this.planFor([gate, up])));
    const prof = this.profile_;
    for (let t = 0; t < nThreads; t++) this.ensureOut(t, plan.maxShardRows * nTokens * 4);
    const actPtr = this.stageInput(plan, x, nTokens);
    const t0 = prof ? performance.now() : 0;
    const ctl = this.ctl;
    const direct = nTokens === 1 && this.ownsView(out);
    let maxJobs = 0;
    for (let t = 0; t < nThreads; t++) {
      const sh = gate.shards[t]!;
      const io = this.io[t]!;
      let j = 0;
      if (sh.rows > 0) {
        const g = t === 0 && direct ? out.byteOffset + sh.rowStart * 4 : io.out;
        const u = io.out + io.outSlotBytes;
        this.postMatmulJob(t, j++, gate, plan, 0, actPtr, g, nTokens);
        this.postMatmulJob(t, j++, up, plan, 1, actPtr, u, nTokens);
        const o = jobOffset(t, j++);
        ctl[o] = SWIGLU_FN;
        ctl[o + 1] = g;
        ctl[o + 2] = u;
        ctl[o + 3] = g;
        ctl[o + 4] = sh.rows * nTokens;
      }
      this.jobCount[t] = j;
      maxJobs = Math.max(maxJobs, j);
    }
    for (let t = 0; t < nThreads; t++) for (let j = this.jobCount[t]!; j < maxJobs; j++) ctl[jobOffset(t, j)] = -1;
    ctl[CTL_NJOBS] = maxJobs;
    if (prof) prof.lap("matmul: post jobs", t0);
    this.dispatch(true, "a matmul", (plan.swigluLabel ??= `${plan.label} + swiglu`));
    const t1 = prof ? performance.now() : 0;
    this.gather(plan, 0, out, nTokens, direct ? 1 : 0);
    if (prof) prof.lap("matmul: gather outputs", t1);
    return true;
  }
  private readonly swigluPlans = new Map<WasmMatrix, MatmulPlan>();

  /**
   * Converts a matmul's input once per activation format and copies it into every thread's
   * memory; returns where (actPtrScratch[kind index * threads + thread]).
   */
  private stageInput(plan: MatmulPlan, x: Float32Array, nTokens: number): number[] {
    const nThreads = this.threads;
    const prof = this.profile_;
    let t0 = prof ? performance.now() : 0;
    const m0 = this.mem[0]!;
    const actPtr = this.actPtrScratch;
    for (let a = 0; a < plan.kinds.length; a++) {
      const kind = plan.kinds[a]!;
      const fmt = ACTIVATIONS[kind];
      const bytes = fmt.bytes(plan.k, nTokens);
      for (let t = 0; t < nThreads; t++) actPtr[a * nThreads + t] = this.ensureAct(t, kind, bytes);
      const p0 = actPtr[a * nThreads]!;
      if (fmt.convert) this.converters.get(fmt.convert)!(x.byteOffset, p0, plan.k, nTokens);
      else if (this.ownsView(x)) m0.u8().copyWithin(p0, x.byteOffset, x.byteOffset + bytes);
      else m0.u8().set(new Uint8Array(x.buffer, x.byteOffset, bytes), p0);
      if (prof) t0 = prof.lap("matmul: quantize input", t0);
      if (nThreads > 1) {
        const src = plan.copies[a * nThreads]!.u8(m0, p0, bytes);
        for (let t = 1; t < nThreads; t++) this.mem[t]!.u8().set(src, actPtr[a * nThreads + t]!);
        if (prof) t0 = prof.lap("matmul: copy input to threads", t0);
      }
    }
    return actPtr;
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
    io.out = this.mem[t]!.alloc(slot * MAX_MATMULS);
    io.outSlotBytes = slot;
  }

  /** Runs the posted jobs on every thread: the workers in parallel with this one (or only this one's, when the workers have none). */
  private dispatch(workers = true, what = "a matmul", label = what): void {
    const ctl = this.ctl;
    const nWorkers = workers ? this.threads - 1 : 0;
    const prof = this.profile_;
    const t0 = prof ? performance.now() : 0;
    if (nWorkers > 0) {
      Atomics.store(ctl, CTL_DONE, 0);
      Atomics.store(ctl, CTL_OP, OP_RUN);
      Atomics.store(ctl, CTL_POSTED_US, clockUs());
      Atomics.add(ctl, CTL_SEQ, 1);
      Atomics.notify(ctl, CTL_SEQ);
    }
    if (prof && nWorkers > 0) prof.add("sync: wake workers", performance.now() - t0);
    const t1 = prof ? performance.now() : 0;
    runJobs(ctl, 0, this.fns);
    if (prof) prof.add(label, performance.now() - t1);
    const t2 = prof ? performance.now() : 0;
    if (nWorkers > 0) {
      let spins = this.spinLimit;
      while (Atomics.load(ctl, CTL_DONE) < nWorkers && spins-- > 0);
      if (Atomics.load(ctl, CTL_DONE) < nWorkers) {
        if (prof) prof.add("sync: coordinator went to sleep (count)", 0);
        const start = performance.now();
        for (let i = 0; ; i++) {
          const done = Atomics.load(ctl, CTL_DONE);
          if (done >= nWorkers) break;
          // A browser's main thread may not block: there the coordinator keeps spinning.
          if (this.canBlock) Atomics.wait(ctl, CTL_DONE, done, 100);
          else if ((i & 0xffff) !== 0) continue;
          // A worker that died (out of memory, killed) never reports: fail instead of hanging.
          if (performance.now() - start > 60_000) throw new Error(`compute thread did not finish ${what} within 60 s (${done} of ${nWorkers} done)`);
        }
        if (this.canBlock) this.spinLimit = adaptSpin(this.spinLimit, performance.now() - start, this.spin);
      }
      if (prof) prof.add("sync: wait for workers", performance.now() - t2);
      const failed = Atomics.load(ctl, CTL_ERROR);
      if (failed !== 0) {
        Atomics.store(ctl, CTL_ERROR, 0);
        throw new Error(`compute thread ${failed - 1} failed while running ${what}`);
      }
    }
  }

  /** Whether a forward pass is running (see pass). */
  private inPass = false;

  pass(on: boolean): void {
    if (this.threads === 1 || on === this.inPass) return;
    this.inPass = on;
    // Wake sleeping workers now: they come up while this thread embeds the tokens and prepares
    // the first dispatch. (Not when the cores are oversubscribed: an early wake-up would only add
    // a context switch.)
    if (on && Atomics.load(this.ctl, CTL_CONTENDED) === 0) {
      Atomics.store(this.ctl, CTL_POSTED_US, clockUs());
      Atomics.notify(this.ctl, CTL_SEQ);
    }
  }

  // ---- the rest of a layer runs on the coordinator ----

  getRows(handle: MatrixHandle, ids: readonly number[], out: Float32Array): void {
    const t0 = this.profile_ ? performance.now() : 0;
    this.getRowsUnprofiled(handle, ids, out);
    this.profile_?.lap("embedding rows", t0);
  }

  private getRowsUnprofiled(handle: MatrixHandle, ids: readonly number[], out: Float32Array): void {
    const w = handle as WasmMatrix;
    let e = this.embeddingRows.get(w);
    if (!e) this.embeddingRows.set(w, (e = { traits: getQuantTraits(w.info.type, w.info.name), rows: new Map() }));
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!(id >= 0 && id < w.rows)) throw new RangeError(`token id ${id} is outside the vocabulary (0..${w.rows - 1})`);
      if (w.raw) {
        e.traits.dequantizeRow(w.raw, id * w.rowBytes, out, i * w.cols, w.cols);
        continue;
      }
      // Rows read from the file are kept (up to ~1 MB per matrix): text repeats its tokens, and a
      // read is a system call per decoded token.
      let row = e.rows.get(id);
      if (!row) {
        row = w.rowReader!(id).slice();
        if ((e.rows.size + 1) * w.rowBytes > EMBEDDING_ROW_CACHE_BYTES) e.rows.clear();
        e.rows.set(id, row);
      }
      e.traits.dequantizeRow(row, 0, out, i * w.cols, w.cols);
    }
  }

  /** Per embedding matrix read from the file: its row decoder and the rows read so far. */
  private readonly embeddingRows = new Map<WasmMatrix, { traits: ReturnType<typeof getQuantTraits>; rows: Map<number, Uint8Array> }>();

  rmsNorm(x: Float32Array, nRows: number, dim: number, weight: Float32Array, eps: number, out: Float32Array): void {
    const t0 = this.profile_ ? performance.now() : 0;
    this.mem[0]!.ex.rmsNorm(this.ptr(x), this.ptr(weight), this.ptr(out), dim, nRows, eps);
    this.profile_?.lap("rmsnorm", t0);
  }

  rope(x: Float32Array, nTokens: number, nHeads: number, positions: readonly number[], p: RopeParams): void {
    const t0 = this.profile_ ? performance.now() : 0;
    this.ropeUnprofiled(x, nTokens, nHeads, positions, p);
    this.profile_?.lap("rope", t0);
  }

  private ropeUnprofiled(x: Float32Array, nTokens: number, nHeads: number, positions: readonly number[], p: RopeParams): void {
    if (p.ropeDim !== p.headDim) return this.fallback.rope(x, nTokens, nHeads, positions, p);
    const half = p.ropeDim / 2;
    const table = this.ropeTableFor(positions, nTokens, p);
    const ex = this.mem[0]!.ex;
    for (let t = 0; t < nTokens; t++) {
      ex.rope(this.ptr(x) + t * nHeads * p.headDim * 4, nHeads, p.headDim, table + t * half * 8, p.style === "neox" ? 1 : 0);
    }
  }

  /**
   * Per RoPE parameter set (by value: a caller passing an equal new object each call finds the same
   * table): (cos, sin) rows for positions 0..rows-1 in thread 0's memory.
   */
  private readonly ropeTables = new Map<string, { ptr: number; rows: number }>();
  /** A number per frequency-factor array seen (0: none), for the tables' keys. */
  private readonly factorIds = new WeakMap<Float32Array, number>();
  private factorsId(f: Float32Array | undefined): number {
    if (!f) return 0;
    let id = this.factorIds.get(f);
    if (id === undefined) this.factorIds.set(f, (id = this.factorIds_ += 1));
    return id;
  }
  private factorIds_ = 0;
  private readonly ropeLast: { params: RopeParams | undefined; key: string } = { params: undefined, key: "" };
  /** Rows for a batch whose positions are not consecutive, in token order. */
  private readonly ropeScratch = { ptr: 0, capacity: 0 };

  /**
   * (cos, sin) pairs for each position, shared by q and k of every layer. Consecutive positions
   * (every decode step and prompt chunk) are read from a table of positions 0.. that grows
   * geometrically and is never recomputed, so generation after generation from the same positions
   * computes nothing (a sliding window of 64 positions was refilled twice per 128-token
   * generation, in unoptimized code: ~1 row and ~0.8 KB of garbage per token). The same angles as
   * the reference (and ggml): theta built by repeated multiplication in f32; a row depends only on
   * its position.
   */
  private ropeTableFor(positions: readonly number[], nTokens: number, p: RopeParams): number {
    const half = p.ropeDim / 2;
    const first = positions[0]!;
    let contiguous = Number.isInteger(first) && first >= 0;
    for (let t = 1; t < nTokens && contiguous; t++) contiguous = positions[t] === first + t;
    if (contiguous) {
      // The same object as last time (every call of a model's forward pass): no key built.
      const last = this.ropeLast;
      const key = last.params === p ? last.key : `${p.ropeDim} ${p.base} ${p.freqScale} ${this.factorsId(p.freqFactors)}`;
      let tab = this.ropeTables.get(key);
      last.params = p;
      last.key = key;
      const need = first + nTokens;
      if (!tab || tab.rows < need) {
        const rows = Math.max(need, 2 * (tab?.rows ?? 0), ROPE_AHEAD);
        const ptr = this.mem[0]!.alloc(rows * half * 8);
        const from = tab ? tab.rows : 0;
        if (tab) this.mem[0]!.u8().copyWithin(ptr, tab.ptr, tab.ptr + tab.rows * half * 8);
        this.fillRope(ptr, from, rows, (t) => t, p);
        this.ropeTables.set(key, (tab = { ptr, rows }));
      }
      return tab.ptr + first * half * 8;
    }
    const sc = this.ropeScratch;
    if (sc.capacity < nTokens * half * 2) {
      sc.capacity = nTokens * half * 2;
      sc.ptr = this.mem[0]!.alloc(sc.capacity * 4);
    }
    this.fillRope(sc.ptr, 0, nTokens, (t) => positions[t]!, p);
    return sc.ptr;
  }

  /** Writes rows [from, to) at `ptr` (row r at ptr + r * half * 8): row r holds position pos(r). */
  private fillRope(ptr: number, from: number, to: number, pos: (row: number) => number, p: RopeParams): void {
    const half = p.ropeDim / 2;
    const cs = this.mem[0]!.f32();
    const base = ptr >>> 2;
    const f32 = Math.fround;
    const thetaScale = f32(Math.pow(p.base, -2 / p.ropeDim));
    for (let t = from; t < to; t++) {
      let theta = f32(pos(t));
      for (let i = 0; i < half; i++) {
        const ff = p.freqFactors ? p.freqFactors[i]! : 1;
        const angle = f32(p.freqScale * f32(theta / ff));
        cs[base + (t * half + i) * 2] = Math.cos(angle);
        cs[base + (t * half + i) * 2 + 1] = Math.sin(angle);
        theta = f32(theta * thetaScale);
      }
    }
  }

  // ---- the KV pool and attention, sharded by KV head across the threads ----

  createKvPool(spec: KvPoolSpec): KvPool {
    if (spec.type !== "f16") throw new RangeError(`the wasm backend keeps an f16 KV cache; kvCacheType "${spec.type}" needs the reference backend`);
    const unsupported = wasmUnsupportedShape(spec);
    if (unsupported) throw new RangeError(unsupported);
    for (const key of ["nLayers", "slots", "slotSize", "nKvHeads"] as const) {
      const n = spec[key];
      if (!(Number.isInteger(n) && n >= 1)) throw new RangeError(`KV pool ${key} must be a positive integer, got ${n}`);
    }
    const { nLayers, slots, slotSize, nKvHeads, headDim, headDimV } = spec;
    const headShards = Math.min(nKvHeads, this.threads);
    const replicas = Math.max(1, Math.floor(this.threads / headShards));
    const group = spec.nHeads !== undefined && spec.nHeads % nKvHeads === 0 ? spec.nHeads / nKvHeads : Infinity;
    const f32 = group <= F32_KV_MAX_GROUP && nLayers * slots * slotSize * nKvHeads * (headDim + headDimV) * 4 <= F32_KV_MAX_BYTES;
    const valueBytes = f32 ? 4 : 2;
    this.checkKvFits(spec, headShards, replicas, valueBytes);
    const shards: KvShard[] = [];
    for (let r = 0; r < replicas; r++) {
      const localSlots = Math.ceil((slots - r) / replicas); // slots r, r + replicas, ...
      for (let g = 0; g < headShards; g++) {
        const thread = r * headShards + g;
        const kv0 = Math.floor((nKvHeads * g) / headShards);
        const nkv = Math.floor((nKvHeads * (g + 1)) / headShards) - kv0;
        const kSlotBytes = slotSize * nkv * headDim * valueBytes;
        const vSlotBytes = slotSize * nkv * headDimV * valueBytes;
        const m = this.mem[thread]!;
        const bytes = (n: number) => (localSlots > 0 ? nLayers * localSlots * n : 0);
        const k = bytes(kSlotBytes) > 0 ? m.alloc(bytes(kSlotBytes)) : 0;
        const v = bytes(vSlotBytes) > 0 ? m.alloc(bytes(vSlotBytes)) : 0;
        shards.push({ valueBytes, thread, kv0, nkv, replica: r, localSlots, k, v, kSlotBytes, vSlotBytes });
        // attentionF16 takes up to 16 heads (x tokens) per pass over the cache and needs
        // min(nHeads * tokens, 16) * (head size + positions + 3) + 4 * max(1024, head sizes) f32
        // of scratch (nHeads is not part of the pool spec).
        const hdMax = Math.max(headDim, headDimV);
        this.buffer(thread, "attnScratch", (16 * (hdMax + slotSize + 8) + 4 * Math.max(1024, hdMax)) * 4);
      }
    }
    const pool: WasmKvPool = { spec, f32, attentionFn: f32 ? ATTENTION_F32_FN : ATTENTION_FN, headShards, replicas, shards };
    return pool;
  }

  /**
   * A KV cache too large for the threads' memories is a clear error naming the context size that
   * fits, before anything is allocated. More threads help only while there are KV heads to split.
   */
  private checkKvFits(spec: KvPoolSpec, headShards: number, replicas: number, valueBytes: number): void {
    const { nLayers, slots, slotSize, nKvHeads, headDim, headDimV } = spec;
    const limit = 4 * 1024 ** 3;
    let worst: { need: number; perPosition: number; room: number } | undefined;
    for (let r = 0; r < replicas; r++) {
      const localSlots = Math.ceil((slots - r) / replicas);
      for (let g = 0; g < headShards; g++) {
        const nkv = Math.floor((nKvHeads * (g + 1)) / headShards) - Math.floor((nKvHeads * g) / headShards);
        // keys + values of every position, plus the attention scratch's per-position f32s
        const perPosition = nLayers * localSlots * nkv * (headDim + headDimV) * valueBytes + 16 * 4;
        const need = perPosition * slotSize;
        const room = limit - this.mem[r * headShards + g]!.top - 1024 ** 2; // headroom for the fixed scratch
        if (need > room && (!worst || need - room > worst.need - worst.room)) worst = { need, perPosition, room };
      }
    }
    if (!worst) return;
    const fit = Math.max(0, Math.floor(worst.room / worst.perPosition));
    const gib = (n: number) => (n / 1024 ** 3).toFixed(2);
    // The fewest threads whose KV-head split would fit (only while there are heads left to split).
    let enough = 0;
    for (let t = this.threads + 1; t <= nKvHeads && !enough; t++) {
      if (nLayers * slots * Math.ceil(nKvHeads / t) * (headDim + headDimV) * valueBytes * slotSize + 16 * 4 * slotSize <= worst.room) enough = t;
    }
    const moreThreads = enough ? ` or ${enough} threads (the cache is split by KV head across the threads)` : "";
    throw new RangeError(
      `a KV cache of ${slots} x ${slotSize} positions needs ${gib(worst.need)} GiB on one thread, which has ${gib(Math.max(0, worst.room))} GiB of ` +
        `its 4 GiB WebAssembly memory left; use a smaller contextSize (at most ${fit} positions fit per sequence${slots > 1 ? ` with parallel ${slots}` : ""})${moreThreads}`,
    );
  }

  /** The thread memory addresses of (layer, slot) in a shard: its keys and values at position 0. */
  private slotAddress(sh: KvShard, replicas: number, layer: number, slot: number): { k: number; v: number } {
    return { k: this.slotKeys(sh, replicas, layer, slot), v: this.slotValues(sh, replicas, layer, slot) };
  }
  private slotKeys(sh: KvShard, replicas: number, layer: number, slot: number): number {
    return sh.k + (layer * sh.localSlots + Math.floor(slot / replicas)) * sh.kSlotBytes;
  }
  private slotValues(sh: KvShard, replicas: number, layer: number, slot: number): number {
    return sh.v + (layer * sh.localSlots + Math.floor(slot / replicas)) * sh.vSlotBytes;
  }

  private checkSlot(c: WasmKvPool, slot: number): void {
    if (!(Number.isInteger(slot) && slot >= 0 && slot < c.spec.slots)) {
      throw new RangeError(`KV slot ${slot} is outside the pool (slots 0..${c.spec.slots - 1})`);
    }
  }

  copyKv(pool: KvPool, src: number, dst: number, n: number): void {
    const c = pool as WasmKvPool;
    const s = c.spec;
    this.checkSlot(c, src);
    this.checkSlot(c, dst);
    if (!(Number.isInteger(n) && n >= 0 && n <= s.slotSize)) {
      throw new RangeError(`cannot copy ${n} positions: a sequence holds ${s.slotSize}`);
    }
    if (src === dst || n === 0) return;
    const R = c.replicas;
    for (let g = 0; g < c.headShards; g++) {
      const from = c.shards[(src % R) * c.headShards + g]!;
      const to = c.shards[(dst % R) * c.headShards + g]!;
      const kBytes = n * from.nkv * s.headDim * from.valueBytes;
      const vBytes = n * from.nkv * s.headDimV * from.valueBytes;
      const mFrom = this.mem[from.thread]!.u8();
      const mTo = this.mem[to.thread]!.u8();
      for (let l = 0; l < s.nLayers; l++) {
        const a = this.slotAddress(from, R, l, src);
        const b = this.slotAddress(to, R, l, dst);
        if (mFrom === mTo) {
          mTo.copyWithin(b.k, a.k, a.k + kBytes);
          mTo.copyWithin(b.v, a.v, a.v + vBytes);
        } else {
          mTo.set(mFrom.subarray(a.k, a.k + kBytes), b.k);
          mTo.set(mFrom.subarray(a.v, a.v + vBytes), b.v);
        }
      }
    }
  }

  /**
   * One dispatch for the whole batch: a job per (segment, thread holding KV heads of its slot).
   * Each job stores the segment's keys and values of its heads in its thread's pool shard, then
   * runs attentionF16 for the query heads of those KV heads (whole GQA groups: the outputs are
   * bit for bit those of one call over all heads). Workers get copies of the batch's q/k/v rows
   * and their outputs are gathered; thread 0 reads and writes the caller's buffers in place when
   * they are in its memory.
   */
  attention(pool: KvPool, layer: number, segments: readonly AttentionSegment[], q: Float32Array, k: Float32Array, v: Float32Array, p: AttentionParams, out: Float32Array): void {
    const c = pool as WasmKvPool;
    const s = c.spec;
    if (!(Number.isInteger(layer) && layer >= 0 && layer < s.nLayers)) throw new RangeError(`layer ${layer} is outside the KV pool (0..${s.nLayers - 1})`);
    if (p.nKvHeads !== s.nKvHeads || p.headDim !== s.headDim || p.headDimV !== s.headDimV) {
      throw new RangeError(`attention of ${p.nKvHeads} KV heads of ${p.headDim}/${p.headDimV} on a pool of ${s.nKvHeads} KV heads of ${s.headDim}/${s.headDimV}`);
    }
    if (!(p.nHeads >= p.nKvHeads && p.nHeads % p.nKvHeads === 0)) throw new RangeError(`${p.nHeads} heads do not form groups of ${p.nKvHeads} KV heads`);
    for (let si = 0; si < segments.length; si++) {
      const seg = segments[si]!;
      this.checkSlot(c, seg.slot);
      if (!(Number.isInteger(seg.startPos) && seg.startPos >= 0 && Number.isInteger(seg.nTokens) && seg.nTokens >= 0)) {
        throw new RangeError(`segment at position ${seg.startPos} of ${seg.nTokens} tokens`);
      }
      if (seg.startPos + seg.nTokens > s.slotSize) {
        throw new RangeError(`context is full: ${seg.startPos + seg.nTokens} positions needed, a sequence holds ${s.slotSize}`);
      }
    }
    // Each thread takes at most MAX_JOBS jobs per dispatch; segments are independent, so a
    // larger batch is a few dispatches.
    for (let i = 0; i < segments.length; i += MAX_JOBS) {
      this.attentionJobs(c, layer, i === 0 && segments.length <= MAX_JOBS ? segments : segments.slice(i, i + MAX_JOBS), q, k, v, p, out);
    }
  }

  private attentionJobs(c: WasmKvPool, layer: number, segments: readonly AttentionSegment[], q: Float32Array, k: Float32Array, v: Float32Array, p: AttentionParams, out: Float32Array): void {
    const { nHeads, nKvHeads, headDim: hd, headDimV: hdV } = p;
    const group = nHeads / nKvHeads;
    const R = c.replicas;
    const G = c.headShards;
    const qW = nHeads * hd, kW = nKvHeads * hd, vW = nKvHeads * hdV, oW = nHeads * hdV;
    const ctl = this.ctl;
    const prof = this.profile_;
    let t0 = prof ? performance.now() : 0;
    const scaleBits = f32ToBitsInt(p.scale);
    // Per thread: rows to stage (runs of contiguous segment rows), and its job count.
    const nJobs = this.jobCount;
    nJobs.fill(0);
    let maxJobs = 0;
    let workerJobs = false;
    for (let r = 0; r < R; r++) {
      const runs = this.rowRuns(segments, R, r);
      if (runs.length === 0) continue;
      for (let g = 0; g < G; g++) {
        const sh = c.shards[r * G + g]!;
        const t = sh.thread;
        const m = this.mem[t]!;
        // Thread 0 works in place on buffers in its memory; everything else is staged.
        const qb = this.stageRows(t, m, "attnQ", q, qW, runs), kb = this.stageRows(t, m, "attnK", k, kW, runs), vb = this.stageRows(t, m, "attnV", v, vW, runs);
        const direct = t === 0 && m.owns(out.buffer);
        const ob = direct ? out.byteOffset : this.buffer(t, "attnOut", runs[runs.length - 1]!.end * oW * 4);
        this.outBase[t] = direct ? -1 : ob;
        const scratch = this.buffers[t]!.get("attnScratch")!.ptr;
        const h0 = sh.kv0 * group;
        for (let si = 0; si < segments.length; si++) {
          const seg = segments[si]!;
          if (seg.slot % R !== r || seg.nTokens === 0) continue;
          this.postAttentionJob(
            jobOffset(t, nJobs[t]!++), c.attentionFn, qb + (seg.row * qW + h0 * hd) * 4, this.slotKeys(sh, R, layer, seg.slot),
            this.slotValues(sh, R, layer, seg.slot), ob + (seg.row * oW + h0 * hdV) * 4, scratch, seg.startPos, seg.nTokens,
            sh.nkv * group, sh.nkv, hd, hdV, scaleBits, nKvHeads,
            kb + (seg.row * kW + sh.kv0 * hd) * 4, vb + (seg.row * vW + sh.kv0 * hdV) * 4,
          );
        }
        maxJobs = Math.max(maxJobs, nJobs[t]!);
        if (t > 0 && nJobs[t]! > 0) workerJobs = true;
      }
    }
    if (maxJobs === 0) return;
    for (let t = 0; t < this.threads; t++) for (let j = nJobs[t]!; j < maxJobs; j++) ctl[jobOffset(t, j)] = -1;
    ctl[CTL_NJOBS] = maxJobs;
    if (prof) prof.add("attention: stage q/k/v, post jobs", performance.now() - t0);
    this.dispatch(workerJobs, "attention");
    if (prof) t0 = performance.now();
    // Gather: each thread's heads are a contiguous run within every row of out.
    for (let r = 0; r < R; r++) {
      for (let g = 0; g < G; g++) {
        const sh = c.shards[r * G + g]!;
        const t = sh.thread;
        if (nJobs[t] === 0 || this.outBase[t] === -1) continue;
        const local = this.mem[t]!.f32();
        const base = this.outBase[t]! >>> 2;
        const a = sh.kv0 * group * hdV;
        const w = sh.nkv * group * hdV;
        for (const seg of segments) {
          if (seg.slot % R !== r) continue;
          if (w === oW) {
            out.set(local.subarray(base + seg.row * oW, base + (seg.row + seg.nTokens) * oW), seg.row * oW);
          } else {
            for (let row = seg.row; row < seg.row + seg.nTokens; row++) out.set(local.subarray(base + row * oW + a, base + row * oW + a + w), row * oW + a);
          }
        }
      }
    }
    if (prof) prof.lap("attention: gather outputs", t0);
  }

  /**
   * Per q matrix: whether each thread's rows of wq, wk and wv are exactly the heads of its KV
   * pool shard (then the thread can project, rotate and attend its heads without the others).
   */
  private readonly fusable = new Map<WasmMatrix, boolean>();
  /** Per q matrix: its fused matmul's plan (wq, wk, wv), found once. */
  private readonly qkvPlans = new Map<WasmMatrix, MatmulPlan>();
  private readonly ropeCopy = new ViewSlot();

  qkvAttention(
    pool: KvPool, layer: number, segments: readonly AttentionSegment[], x: Float32Array, nTokens: number,
    wqH: MatrixHandle, wkH: MatrixHandle, wvH: MatrixHandle, positions: readonly number[], rope: RopeParams, p: AttentionParams, out: Float32Array,
  ): boolean {
    const c = pool as WasmKvPool;
    const s = c.spec;
    const T = this.threads;
    const wq = wqH as WasmMatrix, wk = wkH as WasmMatrix, wv = wvH as WasmMatrix;
    const { nHeads, nKvHeads, headDim: hd, headDimV: hdV } = p;
    // One thread has nothing to save; the rest must split the heads the way the pool does.
    if (T === 1 || c.replicas !== 1 || c.headShards !== T || rope.ropeDim !== rope.headDim || rope.headDim !== hd) return false;
    if (p.nKvHeads !== s.nKvHeads || hd !== s.headDim || hdV !== s.headDimV || !(nHeads % nKvHeads === 0)) return false;
    if (3 + 2 * nTokens + segments.length > MAX_JOBS || !(layer >= 0 && layer < s.nLayers)) return false;
    const group = nHeads / nKvHeads;
    let ok = this.fusable.get(wq);
    if (ok === undefined) {
      ok = !!(wq.family && wk.family && wv.family);
      for (let t = 0; ok && t < T; t++) {
        const sh = c.shards[t]!;
        const q = wq.shards[t]!, k = wk.shards[t]!, v = wv.shards[t]!;
        ok = q.rowStart === sh.kv0 * group * hd && q.rows === sh.nkv * group * hd &&
          k.rowStart === sh.kv0 * hd && k.rows === sh.nkv * hd && v.rowStart === sh.kv0 * hdV && v.rows === sh.nkv * hdV;
      }
      this.fusable.set(wq, ok);
    }
    if (!ok) return false;
    for (let si = 0; si < segments.length; si++) {
      const seg = segments[si]!;
      this.checkSlot(c, seg.slot);
      if (!(Number.isInteger(seg.startPos) && seg.startPos >= 0 && seg.nTokens >= 1 && seg.startPos + seg.nTokens <= s.slotSize)) return false;
    }
    const prof = this.profile_;
    let plan = this.qkvPlans.get(wq);
    if (!plan || plan.all[1] !== wk || plan.all[2] !== wv) this.qkvPlans.set(wq, (plan = this.planFor([wq, wk, wv])));
    const actPtr = this.stageInput(plan, x, nTokens);
    let t0 = prof ? performance.now() : 0;
    // RoPE's (cos, sin) table, computed once on thread 0, then copied to every thread.
    const half = hd / 2;
    const table = this.ropeTableFor(positions, nTokens, rope);
    const tableBytes = nTokens * half * 8;
    const ctl = this.ctl;
    const scaleBits = f32ToBitsInt(p.scale);
    const neox = rope.style === "neox" ? 1 : 0;
    let maxJobs = 0;
    for (let t = 0; t < T; t++) {
      const sh = c.shards[t]!;
      const m = this.mem[t]!;
      const qRows = sh.nkv * group * hd, kRows = sh.nkv * hd, vRows = sh.nkv * hdV, oW = sh.nkv * group * hdV;
      const qb = this.buffer(t, "fusedQ", nTokens * qRows * 4);
      const kb = this.buffer(t, "fusedK", nTokens * kRows * 4);
      const vb = this.buffer(t, "fusedV", nTokens * vRows * 4);
      const ob = this.buffer(t, "fusedOut", nTokens * oW * 4);
      let tb = table;
      if (t > 0) {
        tb = this.buffer(t, "ropeTable", tableBytes);
        m.u8().set(this.ropeCopy.u8(this.mem[0]!, table, tableBytes), tb);
      }
      let j = 0;
      this.postMatmulJob(t, j++, wq, plan, 0, actPtr, qb, nTokens);
      this.postMatmulJob(t, j++, wk, plan, 1, actPtr, kb, nTokens);
      this.postMatmulJob(t, j++, wv, plan, 2, actPtr, vb, nTokens);
      for (let tok = 0; tok < nTokens; tok++) {
        this.postRopeJob(t, j++, qb + tok * qRows * 4, sh.nkv * group, hd, tb + tok * half * 8, neox);
        this.postRopeJob(t, j++, kb + tok * kRows * 4, sh.nkv, hd, tb + tok * half * 8, neox);
      }
      const scratch = this.buffers[t]!.get("attnScratch")!.ptr;
      for (let si = 0; si < segments.length; si++) {
        const seg = segments[si]!;
        // A row of this thread's q, k, v and out holds only its heads: the row's KV heads are sh.nkv.
        this.postAttentionJob(
          jobOffset(t, j++), c.attentionFn, qb + seg.row * qRows * 4, this.slotKeys(sh, 1, layer, seg.slot),
          this.slotValues(sh, 1, layer, seg.slot), ob + seg.row * oW * 4, scratch, seg.startPos, seg.nTokens,
          sh.nkv * group, sh.nkv, hd, hdV, scaleBits, sh.nkv, kb + seg.row * kRows * 4, vb + seg.row * vRows * 4,
        );
      }
      this.jobCount[t] = j;
      maxJobs = Math.max(maxJobs, j);
    }
    for (let t = 0; t < T; t++) for (let j = this.jobCount[t]!; j < maxJobs; j++) ctl[jobOffset(t, j)] = -1;
    ctl[CTL_NJOBS] = maxJobs;
    if (prof) t0 = prof.lap("attention: stage q/k/v, post jobs", t0);
    this.dispatch(true, "q/k/v + RoPE + attention", "q/k/v + RoPE + attention (fused)");
    if (prof) t0 = performance.now();
    // Gather: each thread's heads are a contiguous run of every row of out.
    const fullW = nHeads * hdV;
    for (let t = 0; t < T; t++) {
      const sh = c.shards[t]!;
      const oW = sh.nkv * group * hdV;
      const a = sh.kv0 * group * hdV;
      const m = this.mem[t]!;
      const ptr = this.buffers[t]!.get("fusedOut")!.ptr;
      for (let si = 0; si < segments.length; si++) {
        const seg = segments[si]!;
        for (let row = seg.row; row < seg.row + seg.nTokens; row++) out.set(this.fusedGather[t]!.f32(m, ptr + row * oW * 4, oW), row * fullW + a);
      }
    }
    if (prof) prof.lap("attention: gather outputs", t0);
    return true;
  }

  /** Per thread: the view its fused attention output is gathered from (one token: the same every call). */
  private readonly fusedGather: ViewSlot[];

  private postMatmulJob(t: number, j: number, w: WasmMatrix, plan: MatmulPlan, index: number, actPtr: readonly number[], dst: number, nTokens: number): void {
    const sw = w.shards[t]!;
    const ctl = this.ctl;
    const o = jobOffset(t, j);
    ctl[o] = plan.fn[index]!;
    ctl[o + 1] = sw.ptr;
    ctl[o + 2] = actPtr[plan.jobKind[index]! * this.threads + t]!;
    ctl[o + 3] = dst;
    ctl[o + 4] = plan.k;
    ctl[o + 5] = 0;
    ctl[o + 6] = sw.groups;
    ctl[o + 7] = sw.rows;
    ctl[o + 8] = nTokens;
  }

  /**
   * One attention job (the layout the workers' attention kernels read): q, the slot's keys and
   * values, out, scratch, start position, tokens, query heads, KV heads, head sizes, the scale's
   * f32 bits, KV heads per row of the new k/v, and the new k and v rows to store.
   */
  private postAttentionJob(
    o: number, fn: number, q: number, keys: number, values: number, out: number, scratch: number, startPos: number,
    nTokens: number, nHeads: number, nKv: number, hd: number, hdV: number, scaleBits: number, kvHeadsPerRow: number,
    k: number, v: number,
  ): void {
    const ctl = this.ctl;
    ctl[o] = fn;
    ctl[o + 1] = q;
    ctl[o + 2] = keys;
    ctl[o + 3] = values;
    ctl[o + 4] = out;
    ctl[o + 5] = scratch;
    ctl[o + 6] = startPos;
    ctl[o + 7] = nTokens;
    ctl[o + 8] = nHeads;
    ctl[o + 9] = nKv;
    ctl[o + 10] = hd;
    ctl[o + 11] = hdV;
    ctl[o + 12] = scaleBits;
    ctl[o + 13] = kvHeadsPerRow;
    ctl[o + 14] = k;
    ctl[o + 15] = v;
  }

  private postRopeJob(t: number, j: number, ptr: number, heads: number, hd: number, table: number, neox: number): void {
    const ctl = this.ctl;
    const o = jobOffset(t, j);
    ctl[o] = ROPE_FN;
    ctl[o + 1] = ptr;
    ctl[o + 2] = heads;
    ctl[o + 3] = hd;
    ctl[o + 4] = table;
    ctl[o + 5] = neox;
  }

  private readonly jobCount: number[];
  /** Per thread: where its attention outputs were staged, or -1 (written in place). */
  private readonly outBase: number[];

  /**
   * The rows of the segments of replica r, as runs of contiguous rows (adjacent segments merged),
   * sorted; the array and its run objects are reused by the next call.
   */
  private rowRuns(segments: readonly AttentionSegment[], R: number, r: number): readonly { start: number; end: number }[] {
    const runs = this.runs;
    const pool = this.runPool;
    let n = 0;
    for (let i = 0; i < segments.length; i++) {
      const seg = segments[i]!;
      if (seg.slot % R !== r || seg.nTokens === 0) continue;
      const last = n > 0 ? runs[n - 1]! : undefined;
      if (last && last.end === seg.row) {
        last.end = seg.row + seg.nTokens;
        continue;
      }
      const run = (pool[n] ??= { start: 0, end: 0 });
      run.start = seg.row;
      run.end = seg.row + seg.nTokens;
      runs[n++] = run;
    }
    // (Not length = 0 and push: V8 drops an emptied array's storage, and the next push reallocates.)
    if (runs.length !== n) runs.length = n;
    if (n > 1) runs.sort(byStart);
    return runs;
  }
  private readonly runs: { start: number; end: number }[] = [];
  private readonly runPool: { start: number; end: number }[] = [];

  /** Where thread t reads the attention input rows `runs` of src: in place (thread 0, its own memory) or staged into its buffer `name`. */
  private stageRows(t: number, m: ThreadMemory, name: string, src: Float32Array, width: number, runs: readonly { start: number; end: number }[]): number {
    if (t === 0 && m.owns(src.buffer)) return src.byteOffset;
    const last = runs[runs.length - 1]!;
    const ptr = this.buffer(t, name, last.end * width * 4);
    const f = m.f32();
    for (const run of runs) f.set(src.subarray(run.start * width, run.end * width), (ptr >>> 2) + run.start * width);
    return ptr;
  }

  /** Per thread: named buffers in its memory, regrown when a larger one is needed. */
  private readonly buffers: Map<string, { ptr: number; bytes: number }>[];
  private buffer(t: number, name: string, bytes: number): number {
    const m = this.buffers[t]!;
    const cur = m.get(name);
    if (cur && cur.bytes >= bytes) return cur.ptr;
    const ptr = this.mem[t]!.alloc(bytes);
    m.set(name, { ptr, bytes });
    return ptr;
  }

  swiglu(gate: Float32Array, up: Float32Array, n: number, out: Float32Array): void {
    const t0 = this.profile_ ? performance.now() : 0;
    this.mem[0]!.ex.swiglu(this.ptr(gate), this.ptr(up), this.ptr(out), n);
    this.profile_?.lap("swiglu", t0);
  }

  addBias(x: Float32Array, nRows: number, bias: Float32Array): void {
    const t0 = this.profile_ ? performance.now() : 0;
    const ex = this.mem[0]!.ex;
    const n = bias.length;
    for (let r = 0; r < nRows; r++) ex.add(this.ptr(x) + r * n * 4, this.ptr(bias), this.ptr(x) + r * n * 4, n);
    this.profile_?.lap("bias add", t0);
  }

  argmax(x: Float32Array): number | undefined {
    // Logits live in thread 0's memory (the forward pass's scratch): a SIMD scan there.
    if (x.length < 64 || !this.mem[0]!.owns(x.buffer)) return undefined;
    return this.mem[0]!.ex.argmaxF32(x.byteOffset, x.length);
  }

  blockMax(x: Float32Array): Float32Array | undefined {
    const m = this.mem[0]!;
    if (x.length < 256 || !m.owns(x.buffer)) return undefined;
    const nb = x.length >> 4;
    const ptr = this.buffer(0, "blockMax", nb * 4);
    m.ex.blockMaxF32(x.byteOffset, x.length, ptr);
    return this.blockMaxSlot.f32(m, ptr, nb);
  }
  private readonly blockMaxSlot = new ViewSlot();

  addInPlace(x: Float32Array, y: Float32Array, n: number): void {
    const t0 = this.profile_ ? performance.now() : 0;
    this.mem[0]!.ex.add(this.ptr(x), this.ptr(y), this.ptr(x), n);
    this.profile_?.lap("residual add", t0);
  }

  /** Bytes held in the threads' WebAssembly memories (weights, KV cache, buffers). */
  get residentBytes(): number {
    return this.mem.reduce((a, m) => a + m.memory.buffer.byteLength, 0);
  }

  /** Stops the worker threads; resolves once every one has exited (the memories go with the last reference). */
  dispose(): Promise<void> {
    if (this.disposing) return this.disposing;
    this.disposed = true;
    if (this.workers.length > 0) {
      Atomics.store(this.ctl, CTL_OP, OP_EXIT);
      Atomics.add(this.ctl, CTL_SEQ, 1);
      Atomics.notify(this.ctl, CTL_SEQ);
    }
    this.disposing = Promise.all(this.workers.map((w) => w.terminate())).then(() => {});
    return this.disposing;
  }
}

