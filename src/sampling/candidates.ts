/** Up to this many new sorted positions, sortPrefix / keepTop select with one scan instead of quickselect. */
const SCAN_SELECT_MAX = 128;

/**
 * The token candidates a sampler chain works on (llama.cpp's `llama_token_data_array`, as a
 * struct of arrays): position i holds token `ids[i]` with logit `logits[i]` and, once a stage has
 * computed them, probability `probs[i]`. Only positions below `size` count; stages cut the list by
 * lowering `size`.
 *
 * One Candidates object is reused from token to token and only reallocates when the vocabulary
 * grows. `reset(logits)` never writes the caller's array (a borrowed logits buffer is safe): it
 * keeps a reference, and the first read of `ids` or `logits` copies it in. Until then the fast
 * paths read it directly, so greedy decoding is one argmax pass over the caller's logits and top-k
 * copies only its k winners. The reference is only read during the stages' apply() calls.
 *
 * Order: "sorted" always means the order of a stable sort by logit, highest first, ties broken by
 * the lower token id. Sorting is partial: `sortedPrefix` positions are in that final order and
 * every later position comes after all of them. Stages ask for just the prefix they need
 * (`sortPrefix`, `sortUpTo`, `keepTop`), so top-p, min-p and the draw never sort a 150k vocabulary
 * to look at its first few hundred tokens; the prefix is exactly what a full sort would give.
 *
 * Contract for stages: a stage that changes logits clears `probsValid` (and `sortedPrefix`); a
 * stage that moves or rewrites ids clears `identity`; a stage that cuts the list keeps
 * `sortedPrefix <= size`.
 */
export class Candidates {
  /** Valid for positions below `size` while `probsValid`. */
  probs: Float32Array;
  size = 0;
  /** The first `sortedPrefix` positions are in final sorted order, ahead of all the others. */
  sortedPrefix = 0;
  /** Whether probs[0..size) hold probabilities of the current logits (not renormalized after cuts). */
  probsValid = false;
  /** True while ids[i] === i for every position: logits can then be indexed by token id. */
  identity = true;
  /**
   * Logits are read as logits / temperature wherever probabilities are computed. The temperature
   * stage multiplies this instead of dividing every logit: the same arithmetic as the pre-chain
   * sampler (softmax of (logit - max) / T) and O(1). Sorting is unaffected (T > 0).
   */
  temperature = 1;
  /** Position (not token id) chosen by a selecting stage (greedy, dist); -1 until then. */
  selected = -1;

  private idsBuf: Int32Array;
  private logitsBuf: Float32Array;
  /** The caller's logits until something needs a copy: then every token, in id order, with these logits. */
  private source: Float32Array | null = null;
  private identityIds = new Int32Array(0);
  /** idsBuf[0..identityUpTo) are known to equal their positions. */
  private identityUpTo = 0;
  /** partition()'s results (fields, not a returned pair: no allocation per call). */
  private partI = 0;
  private partJ = 0;
  /** scanSelect()'s reused buffers. */
  private scanBuf = new Int32Array(0);
  private scanIds = new Int32Array(0);
  private scanLogits = new Float32Array(0);
  private scanProbs = new Float32Array(0);
  private scanMark = new Uint8Array(0);

  private readonly fastArgmax: FastArgmax | undefined;
  private readonly blockMax: FastBlockMax | undefined;

  /**
   * `fastArgmax`: a faster greedy scan over the caller's logits, where it has one (a backend's
   * SIMD kernel); `blockMax`: the largest value of each block of 16 logits, likewise (top-k then
   * looks only into the blocks that can still enter its list).
   */
  constructor(capacity = 0, fastArgmax?: FastArgmax, blockMax?: FastBlockMax) {
    this.fastArgmax = fastArgmax;
    this.blockMax = blockMax;
    this.idsBuf = new Int32Array(capacity);
    this.logitsBuf = new Float32Array(capacity);
    this.probs = new Float32Array(capacity);
  }

  /** A new Candidates over `logits` (which it never writes). */
  static from(logits: Float32Array): Candidates {
    return new Candidates(logits.length).reset(logits);
  }

  /** Token id of each position (reading it copies the logits in, if not done yet). */
  get ids(): Int32Array {
    if (this.source) this.materialize();
    return this.idsBuf;
  }

  /** Logit of each position (reading it copies the logits in, if not done yet). */
  get logits(): Float32Array {
    if (this.source) this.materialize();
    return this.logitsBuf;
  }

  /** Is every position in final sorted order? */
  get sorted(): boolean {
    return this.sortedPrefix >= this.size;
  }

  /** The token at `selected` (-1 if nothing is selected). */
  get selectedToken(): number {
    if (this.selected < 0 || this.selected >= this.size) return -1;
    return this.source ? this.selected : this.idsBuf[this.selected]!;
  }

  /** Starts over from `logits` (never written): every token, in id order, nothing computed. */
  reset(logits: Float32Array): this {
    const n = logits.length;
    if (this.logitsBuf.length < n) {
      this.idsBuf = new Int32Array(n);
      this.logitsBuf = new Float32Array(n);
      this.probs = new Float32Array(n);
      this.identityUpTo = 0;
    }
    // A stage moved ids since the last reset: the id buffer no longer reads 0, 1, 2, ...
    if (!this.identity) this.identityUpTo = 0;
    this.source = logits;
    this.size = n;
    this.sortedPrefix = 0;
    this.probsValid = false;
    this.identity = true;
    this.temperature = 1;
    this.selected = -1;
    return this;
  }

  /**
   * Keeps only the tokens set in `mask` (a bitset by token id; bits past its end allow nothing),
   * in id order, read straight from the caller's logits while nothing has been copied in or cut:
   * the cost follows the tokens kept, not the vocabulary (a grammar's mask over 152k tokens). The
   * same list as copying everything in and dropping the others. Returns false, having done
   * nothing, when the logits were already read or the list changed (filter positions instead).
   */
  takeMasked(mask: Uint32Array): boolean {
    const src = this.source;
    if (!src || this.size !== src.length || !this.identity) return false;
    const n = src.length;
    const ids = this.idsBuf;
    const lg = this.logitsBuf;
    let w = 0;
    const words = Math.min(mask.length, (n + 31) >>> 5);
    for (let i = 0; i < words; i++) {
      for (let bits = mask[i]!; bits !== 0; bits &= bits - 1) {
        const t = i * 32 + (31 - Math.clz32(bits & -bits));
        if (t >= n) break;
        ids[w] = t;
        lg[w] = src[t]!;
        w++;
      }
    }
    this.source = null;
    this.identityUpTo = 0; // the id buffer no longer reads 0, 1, 2, ...
    this.identity = w === n;
    this.size = w;
    this.sortedPrefix = 0;
    this.probsValid = false;
    return true;
  }

  /** Copies the caller's logits in (and the identity ids, when the buffer lost them). */
  private materialize(): void {
    const src = this.source!;
    this.source = null;
    const n = src.length;
    this.logitsBuf.set(src);
    if (this.identityUpTo < n) {
      if (this.identityIds.length < n) this.identityIds = Int32Array.from({ length: this.idsBuf.length }, (_, i) => i);
      this.idsBuf.set(this.identityIds.subarray(0, n));
      this.identityUpTo = n;
    }
  }

  /** Keeps the k best candidates, sorted (k >= size: nothing to do). */
  keepTop(k: number): void {
    if (k >= this.size) return;
    const src = this.source;
    if (src && k <= SCAN_SELECT_MAX && k * 8 < this.size) {
      // Straight from the caller's logits: only the k winners are copied.
      this.source = null;
      const blocks = this.size === src.length ? this.blockMax?.(src) : undefined;
      scanTop(src, this.size, k, this.scanBuffer(k), this.idsBuf, this.logitsBuf, blocks);
      this.identity = false;
      this.sortedPrefix = k;
    } else {
      this.sortPrefix(k);
    }
    this.size = k;
  }

  /** Does position a come before position b in sorted order? */
  before(a: number, b: number): boolean {
    const la = this.logits[a]!;
    const lb = this.logits[b]!;
    return la > lb || (la === lb && this.ids[a]! < this.ids[b]!);
  }

  /** Puts the first min(count, size) positions in final sorted order (a partial sort). */
  sortPrefix(count: number): void {
    const target = Math.min(count, this.size);
    const from = this.sortedPrefix;
    if (target <= from) return;
    const m = target - from;
    if (m <= SCAN_SELECT_MAX && m * 8 < this.size - from) {
      this.scanSelect(from, this.size, m);
    } else {
      if (target < this.size) this.nthElement(from, this.size, target - 1);
      this.sortRange(from, target);
    }
    this.sortedPrefix = target;
    this.identity = false;
  }

  /**
   * Makes position i sorted, sorting ahead geometrically (at least 64, then doubling), so a stage
   * walking the sorted order one position at a time costs O(size) per doubling, not per step.
   */
  sortUpTo(i: number): void {
    if (i >= this.sortedPrefix) this.sortPrefix(Math.max(i + 1, this.sortedPrefix * 2, 64));
  }

  /** Position of the best candidate (sorted order's first) without sorting: one pass. */
  best(): number {
    if (this.sortedPrefix > 0) return 0;
    const n = this.size;
    if (this.source) return (n === this.source.length ? this.fastArgmax?.(this.source) : undefined) ?? argmax(this.source, n);
    if (this.identity) return argmax(this.logitsBuf, n);
    let b = 0;
    for (let i = 1; i < n; i++) if (this.before(i, b)) b = i;
    return b;
  }

  /**
   * probs[i] = softmax((logits - max) / temperature) over all `size` candidates, summed in position
   * order (for a sorted list, the pre-chain sampler's exact arithmetic: f32 exps, f64 sum).
   */
  softmax(): void {
    const n = this.size;
    const lg = this.logits;
    const p = this.probs;
    const t = this.temperature;
    const max = lg[this.best()]!;
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const e = Math.exp((lg[i]! - max) / t);
      p[i] = e;
      sum += e;
    }
    for (let i = 0; i < n; i++) p[i] = p[i]! / sum;
    this.probsValid = true;
  }

  /** Keeps only position `i` (moved to the front). */
  keepOnly(i: number): void {
    if (i !== 0) {
      this.swap(0, i);
      this.identity = false;
    }
    this.size = 1;
    this.sortedPrefix = 1;
  }

  private swap(a: number, b: number): void {
    const ids = this.ids;
    const lg = this.logits;
    const t = ids[a]!;
    ids[a] = ids[b]!;
    ids[b] = t;
    const l = lg[a]!;
    lg[a] = lg[b]!;
    lg[b] = l;
    if (this.probsValid) {
      const p = this.probs;
      const q = p[a]!;
      p[a] = p[b]!;
      p[b] = q;
    }
  }

  /**
   * Puts the best m of [from, hi) sorted at [from, from + m): one pass keeping a sorted buffer of
   * the best m positions seen (most elements fail one comparison with the buffer's last), then
   * the chosen ones are swapped in. For small m this beats quickselect's swaps over three arrays.
   */
  private scanSelect(from: number, hi: number, m: number): void {
    const lg = this.logits;
    const ids = this.ids;
    const buf = this.scanBuffer(m);
    let len = 0;
    let floorL = Infinity; // the buffer's last logit and id, once full
    let floorId = 0;
    for (let i = from; i < hi; i++) {
      const v = lg[i]!;
      if (len === m && !(v > floorL || (v === floorL && ids[i]! < floorId))) continue;
      let j = len < m ? len++ : m - 1;
      while (j > 0) {
        const b = buf[j - 1]!;
        const bl = lg[b]!;
        if (!(v > bl || (v === bl && ids[i]! < ids[b]!))) break;
        buf[j] = b;
        j--;
      }
      buf[j] = i;
      if (len === m) {
        floorL = lg[buf[m - 1]!]!;
        floorId = ids[buf[m - 1]!]!;
      }
    }
    // Save the chosen entries, move the unchosen ones of [from, from + m) into the chosen
    // positions outside it, then write the chosen ones in order.
    const withProbs = this.probsValid;
    const p = this.probs;
    const sIds = this.scanIds;
    const sLg = this.scanLogits;
    const sP = this.scanProbs;
    const mark = this.scanMark;
    mark.fill(0, 0, m);
    const end = from + m;
    let outside = 0;
    for (let k = 0; k < m; k++) {
      const b = buf[k]!;
      sIds[k] = ids[b]!;
      sLg[k] = lg[b]!;
      if (withProbs) sP[k] = p[b]!;
      if (b < end) mark[b - from] = 1;
      else buf[outside++] = b; // buf[k] is already saved, and outside <= k
    }
    let o = 0;
    for (let r = from; r < end; r++) {
      if (mark[r - from]) continue;
      const to = buf[o++]!;
      ids[to] = ids[r]!;
      lg[to] = lg[r]!;
      if (withProbs) p[to] = p[r]!;
    }
    for (let k = 0; k < m; k++) {
      ids[from + k] = sIds[k]!;
      lg[from + k] = sLg[k]!;
      if (withProbs) p[from + k] = sP[k]!;
    }
  }

  private scanBuffer(m: number): Int32Array {
    if (this.scanBuf.length < m) {
      this.scanBuf = new Int32Array(m);
      this.scanIds = new Int32Array(m);
      this.scanLogits = new Float32Array(m);
      this.scanProbs = new Float32Array(m);
      this.scanMark = new Uint8Array(m);
    }
    return this.scanBuf;
  }

  /** Orders l <= m <= r by `before` and returns the median position m (the pivot). */
  private median3(l: number, r: number): number {
    const m = (l + r) >>> 1;
    if (this.before(m, l)) this.swap(m, l);
    if (this.before(r, l)) this.swap(r, l);
    if (this.before(r, m)) this.swap(r, m);
    return m;
  }

  /**
   * Hoare partition of [l, r] around the median of three. Sets partI, partJ: positions <= partJ
   * come no later than the pivot, positions >= partI no earlier, positions between are the pivot's.
   */
  private partition(l: number, r: number): void {
    const lg = this.logits;
    const ids = this.ids;
    const m = this.median3(l, r);
    const pl = lg[m]!;
    const pi = ids[m]!;
    let i = l;
    let j = r;
    while (i <= j) {
      while (i <= r && (lg[i]! > pl || (lg[i] === pl && ids[i]! < pi))) i++;
      while (j >= l && (pl > lg[j]! || (pl === lg[j] && pi < ids[j]!))) j--;
      if (i <= j) {
        this.swap(i, j);
        i++;
        j--;
      }
    }
    this.partI = i;
    this.partJ = j;
  }

  /** Quickselect: afterwards position k of [lo, hi) holds its sorted element, earlier ones come before it. */
  private nthElement(lo: number, hi: number, k: number): void {
    let l = lo;
    let r = hi - 1;
    while (r - l > 16) {
      this.partition(l, r);
      const i = this.partI;
      const j = this.partJ;
      if (k <= j) r = j;
      else if (k >= i) l = i;
      else return;
    }
    this.insertionSort(l, r + 1);
  }

  /** Sorts [lo, hi): quicksort (recursing into the smaller side), insertion sort below 17. */
  private sortRange(lo: number, hi: number): void {
    while (hi - lo > 16) {
      this.partition(lo, hi - 1);
      const i = this.partI;
      const j = this.partJ;
      if (j - lo < hi - i) {
        this.sortRange(lo, j + 1);
        lo = i;
      } else {
        this.sortRange(i, hi);
        hi = j + 1;
      }
    }
    this.insertionSort(lo, hi);
  }

  private insertionSort(lo: number, hi: number): void {
    const ids = this.ids;
    const lg = this.logits;
    const p = this.probs;
    const withProbs = this.probsValid;
    for (let a = lo + 1; a < hi; a++) {
      const l = lg[a]!;
      const id = ids[a]!;
      const q = withProbs ? p[a]! : 0;
      let b = a - 1;
      while (b >= lo && (l > lg[b]! || (l === lg[b] && id < ids[b]!))) {
        lg[b + 1] = lg[b]!;
        ids[b + 1] = ids[b]!;
        if (withProbs) p[b + 1] = p[b]!;
        b--;
      }
      lg[b + 1] = l;
      ids[b + 1] = id;
      if (withProbs) p[b + 1] = q;
    }
  }
}

/**
 * The k best of x[0..n) (k < n) by logit, ties to the lower index, written sorted to ids / logits:
 * one pass keeping a sorted buffer of positions, most values failing one comparison. With
 * `blocks` (the largest non-NaN value of each block of 16, see FastBlockMax), a block whose
 * largest value is not above the list's floor is passed over whole: the same values are skipped
 * as one by one, so the result is the same.
 */
function scanTop(x: Float32Array, n: number, k: number, buf: Int32Array, ids: Int32Array, logits: Float32Array, blocks?: Float32Array): void {
  let len = 0;
  let floor = Infinity;
  const nb = blocks ? n >> 4 : 0;
  for (let b = 0, i = 0; i < n; b++) {
    const end = b < nb ? i + 16 : n;
    if (b < nb && len === k && !(blocks![b]! > floor)) {
      i = end;
      continue;
    }
    for (; i < end; i++) {
      const v = x[i]!;
      if (len === k && !(v > floor)) continue; // a tie with the floor loses: its index is higher
      let j = len < k ? len++ : k - 1;
      while (j > 0 && v > x[buf[j - 1]!]!) {
        buf[j] = buf[j - 1]!;
        j--;
      }
      buf[j] = i;
      if (len === k) floor = x[buf[k - 1]!]!;
    }
  }
  for (let j = 0; j < k; j++) {
    const id = buf[j]!;
    ids[j] = id;
    logits[j] = x[id]!;
  }
}

/** A faster argmax over a whole array (see Candidates' constructor), or undefined where it has none for that array. */
export type FastArgmax = (x: Float32Array) => number | undefined;

/**
 * For each whole block of 16 values of x (x.length >> 4 blocks), its largest value that is not NaN
 * (-inf if none), computed by a faster route than a JavaScript loop; undefined where there is
 * none for that array. The result may be a reused buffer, read before the next call.
 */
export type FastBlockMax = (x: Float32Array) => Float32Array | undefined;

/** Index of the largest of x[0..n): one pass, the first maximum wins. */
export function argmax(x: Float32Array, n: number = x.length): number {
  // Length and element read once per iteration: ~1.5x faster over a 150k vocabulary in V8.
  let best = 0;
  let bestV = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = x[i]!;
    if (v > bestV) {
      bestV = v;
      best = i;
    }
  }
  return best;
}
