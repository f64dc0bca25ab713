#!/usr/bin/env node
// Generates kquants.ts: the K-quant x Q8_K matmul kernels, fully unrolled per 256-element
// super-block so that every load has a literal offset (AssemblyScript accepts only literal
// offsets, and a computed address costs an add + zero-extension per load in V8).
// Run: node src/kernels/assembly/kquants.gen.mjs  (rewrites kquants.ts next to this file)
//
// Repacked layouts ("R8", written by kquants-repack.ts): rows in groups of 8 (last group zero
// padded); per group and super-block, a header (f32 d[8], f32 dmin[8], decoded integer scales)
// followed by the quant bytes interleaved in 16-byte vectors: the vector of chunk c, half h holds
// bytes 4c..4c+3 of rows 4h..4h+3 (32 bytes per chunk for the 8 rows). Bit extraction then yields
// 4 consecutive elements of 4 rows per vector; dotted with 4 activation bytes splatted to every
// lane this gives per-row i16 pair sums (no horizontal sums), scaled per sub-block by
// i32x4.dot_i16x8_s with the row's scale duplicated in both i16 lanes of the row.
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const out = [];
const L = (s) => out.push(s);

// ---------------------------------------------------------------------------------------------
// per-type emitters: emit the body for one super-block, H halves (2: 8 rows, 1: 4 rows of the
// half chosen by the caller's base pointers), T tokens. Pointers in scope: wq (quants, already
// offset 16h when H = 1), ws (i8/u8 [sub][row] scales, offset 4h when H = 1), wm (Q4_K/Q5_K
// mins pair layout, offset 8h), wd (f32 headers, offset 16h), a0..a{T-1} (Q8_K blocks).
// Accumulators F_t_h (f32x4) live outside.
// ---------------------------------------------------------------------------------------------
const Q8K = 292;
let uid = 0;
const nm = (p) => `${p}${uid++}`;

function ql(off, h) { return `v128.load(wq, ${off + 16 * h})`; }
function sp(t, off) { return `v128.load32_splat(a${t}, ${off})`; }
function dup(v, h) {
  return h === 0
    ? `i8x16.shuffle(${v}, ${v}, 0, 1, 0, 1, 2, 3, 2, 3, 4, 5, 4, 5, 6, 7, 6, 7)`
    : `i8x16.shuffle(${v}, ${v}, 8, 9, 8, 9, 10, 11, 10, 11, 12, 13, 12, 13, 14, 15, 14, 15)`;
}
function shiftBy(v, s) {
  if (s > 0) return `i16x8.shl(${v}, ${s})`;
  if (s < 0) return `i16x8.shr_u(${v}, ${-s})`;
  return v;
}
const TS = (T) => [...Array(T).keys()];
const HS = (H) => [...Array(H).keys()];

// scale vector(s) of sub-block j for the halves: u8/i8 [sub][row] at ws + base + 8j
function dups(base, j, H, signed, extra) {
  const sv = nm("sv");
  L(`    const ${sv} = v128.load8x8_${signed ? "s" : "u"}(ws, ${base + 8 * j});`);
  const v = extra ? extra(sv) : sv;
  return HS(H).map((h) => dup(v, h));
}

// F_t_h += convert(I) * (d_h * ad_t)
function floatAcc(I, T, H, doff) {
  for (const h of HS(H)) {
    for (const t of TS(T)) {
      L(`    F_${t}_${h} = f32x4.add(F_${t}_${h}, f32x4.mul(f32x4.convert_i32x4_s(${I[t][h]}), f32x4.mul(v128.load(wd, ${doff + 16 * h}), ad${t})));`);
    }
  }
}
function floatSub(M, T, H, doff) {
  for (const h of HS(H)) {
    for (const t of TS(T)) {
      L(`    F_${t}_${h} = f32x4.sub(F_${t}_${h}, f32x4.mul(f32x4.convert_i32x4_s(${M[t][h]}), f32x4.mul(v128.load(wd, ${doff + 16 * h}), ad${t})));`);
    }
  }
}
function adLoads(T) {
  for (const t of TS(T)) L(`    const ad${t} = f32x4.splat(load<f32>(a${t}));`);
}
// accumulate into named i16 / i32 accumulators (declared on first use)
function acc(tbl, key, expr, add = "i16x8.add") {
  if (tbl[key] === undefined) {
    tbl[key] = nm("p");
    L(`    let ${tbl[key]} = ${expr};`);
  } else {
    L(`    ${tbl[key]} = ${add}(${tbl[key]}, ${expr});`);
  }
}
function madd(p, d) { return `i32x4.dot_i16x8_s(${p}, ${d})`; }

// Q4_K / Q5_K mins: sum_j min_j * (bsum[2j] + bsum[2j+1]) with the pair layout at wm + 128
function minsQ45(T, H) {
  for (const t of TS(T)) {
    L(`    const bv${t} = i16x8.narrow_i32x4_s(i32x4.extadd_pairwise_i16x8_s(v128.load(a${t}, 260)), i32x4.extadd_pairwise_i16x8_s(v128.load(a${t}, 276)));`);
  }
  const M = TS(T).map(() => HS(H).map(() => undefined));
  const tbl = {};
  for (let p = 0; p < 4; p++) {
    const mv = [];
    if (H === 2) {
      const raw = nm("mv");
      L(`    const ${raw} = v128.load(wm, ${128 + 16 * p});`);
      mv.push(`i16x8.extend_low_i8x16_u(${raw})`, `i16x8.extend_high_i8x16_u(${raw})`);
    } else {
      mv.push(`v128.load8x8_u(wm, ${128 + 16 * p})`);
    }
    const mvn = mv.map((e) => { const n = nm("mw"); L(`    const ${n} = ${e};`); return n; });
    for (const t of TS(T)) {
      const s = nm("bs");
      const b = 4 * p;
      L(`    const ${s} = i8x16.shuffle(bv${t}, bv${t}, ${b}, ${b + 1}, ${b + 2}, ${b + 3}, ${b}, ${b + 1}, ${b + 2}, ${b + 3}, ${b}, ${b + 1}, ${b + 2}, ${b + 3}, ${b}, ${b + 1}, ${b + 2}, ${b + 3});`);
      for (const h of HS(H)) acc(tbl, `${t}_${h}`, madd(mvn[h], s), "i32x4.add");
    }
  }
  for (const t of TS(T)) for (const h of HS(H)) M[t][h] = tbl[`${t}_${h}`];
  floatSub(M, T, H, 32);
}

function emitQ4_K(T, H) {
  adLoads(T);
  minsQ45(T, H);
  const I = {};
  for (let g = 0; g < 4; g++) {
    // T = 1: both nibbles of a vector in one pass (4 i16 accumulators); T > 1: one pass per
    // nibble (sub-block) so that the 4 tokens' accumulators stay in registers
    const passes = T === 1 ? [[0, 1]] : [[0], [1]];
    for (const subs of passes) {
      const P = subs.map(() => ({}));
      for (let c = 0; c < 8; c++) {
        const nib = subs.map(() => []);
        for (const h of HS(H)) {
          const v = nm("v");
          L(`    const ${v} = ${ql(192 + 256 * g + 32 * c, h)};`);
          subs.forEach((sb, i) => {
            nib[i].push(nm("n"));
            L(`    const ${nib[i][h]} = ${sb === 0 ? `v128.and(${v}, m)` : `v128.and(i16x8.shr_u(${v}, 4), m)`};`);
          });
        }
        for (const t of TS(T)) {
          subs.forEach((sb, i) => {
            const s = nm("s");
            L(`    const ${s} = ${sp(t, 4 + 64 * g + 32 * sb + 4 * c)};`);
            for (const h of HS(H)) acc(P[i], `${t}_${h}`, `d16(${nib[i][h]}, ${s}, lo16)`);
          });
        }
      }
      subs.forEach((sb, i) => {
        const dn = dups(64, 2 * g + sb, H, false).map((e) => { const n = nm("d"); L(`    const ${n} = ${e};`); return n; });
        for (const t of TS(T)) for (const h of HS(H)) acc(I, `${t}_${h}`, madd(P[i][`${t}_${h}`], dn[h]), "i32x4.add");
      });
    }
  }
  floatAcc(TS(T).map((t) => HS(H).map((h) => I[`${t}_${h}`])), T, H, 0);
}

function emitQ5_K(T, H) {
  adLoads(T);
  minsQ45(T, H);
  const I = {};
  for (let g = 0; g < 4; g++) {
    let PA = {}, PB = {};
    let dAn, dBn;
    for (let c = 0; c < 8; c++) {
      const qa = [], qb = [];
      for (const h of HS(H)) {
        const v = nm("v"), qh = nm("qh");
        L(`    const ${v} = ${ql(448 + 256 * g + 32 * c, h)};`);
        L(`    const ${qh} = ${ql(192 + 32 * c, h)};`);
        qa.push(nm("qa")); qb.push(nm("qb"));
        L(`    const ${qa[h]} = v128.or(v128.and(${v}, m), v128.and(${shiftBy(qh, 4 - 2 * g)}, m10));`);
        L(`    const ${qb[h]} = v128.or(v128.and(i16x8.shr_u(${v}, 4), m), v128.and(${shiftBy(qh, 3 - 2 * g)}, m10));`);
      }
      for (const t of TS(T)) {
        const sa = nm("sa"), sb = nm("sb");
        L(`    const ${sa} = ${sp(t, 4 + 64 * g + 4 * c)};`);
        L(`    const ${sb} = ${sp(t, 4 + 64 * g + 32 + 4 * c)};`);
        for (const h of HS(H)) {
          acc(PA, `${t}_${h}`, `d16(${qa[h]}, ${sa}, lo16)`);
          acc(PB, `${t}_${h}`, `d16(${qb[h]}, ${sb}, lo16)`);
        }
      }
      if (c === 3 || c === 7) { // 5-bit quants: widen every 4 chunks (16 products <= 31*127 per lane)
        if (c === 3) {
          dAn = dups(64, 2 * g, H, false).map((e) => { const n = nm("dA"); L(`    const ${n} = ${e};`); return n; });
          dBn = dups(64, 2 * g + 1, H, false).map((e) => { const n = nm("dB"); L(`    const ${n} = ${e};`); return n; });
        }
        for (const t of TS(T)) for (const h of HS(H)) {
          acc(I, `${t}_${h}`, `i32x4.add(${madd(PA[`${t}_${h}`], dAn[h])}, ${madd(PB[`${t}_${h}`], dBn[h])})`, "i32x4.add");
        }
        PA = {}; PB = {};
      }
    }
  }
  floatAcc(TS(T).map((t) => HS(H).map((h) => I[`${t}_${h}`])), T, H, 0);
}

// Q6_K R8 quant encoding (see kquants-repack.ts): per 128-element half hf, quarters E0..E3
// (elements 128hf + 32k + l). Three vectors per chunk: V_k (k < 3) byte = q(E_k) | bits 2k..2k+1
// of q(E_3) << 6. So q(E_k) = V_k & 63 and q(E_3) = V0 >> 6 | (V1 >> 4 & 12) | (V2 >> 2 & 48).
function emitQ6_K(T, H) {
  adLoads(T);
  const I = {}, C = {};
  for (let hf = 0; hf < 2; hf++) {
    for (let k = 0; k < 4; k++) {
      let P = {};
      let dn;
      const sv = [];
      for (let c = 0; c < 8; c++) {
        const q = [];
        for (const h of HS(H)) {
          q.push(nm("q"));
          const off = (kk) => 160 + 768 * hf + 256 * kk + 32 * c;
          if (k < 3) {
            L(`    const ${q[h]} = v128.and(${ql(off(k), h)}, m3f);`);
          } else {
            L(`    const ${q[h]} = v128.or(v128.or(v128.and(i16x8.shr_u(${ql(off(0), h)}, 6), m3), v128.and(i16x8.shr_u(${ql(off(1), h)}, 4), m0c)), v128.and(i16x8.shr_u(${ql(off(2), h)}, 2), m30));`);
          }
        }
        for (const t of TS(T)) {
          const s = nm("s");
          L(`    const ${s} = ${sp(t, 4 + 128 * hf + 32 * k + 4 * c)};`);
          for (const h of HS(H)) acc(P, `${t}_${h}`, `d16(${q[h]}, ${s}, lo16)`);
        }
        if (c & 1) { // 6-bit quants: widen every 2 chunks (8 products <= 63*127 per lane pair)
          const j = 8 * hf + 2 * k + (c >= 4 ? 1 : 0);
          if (c === 1 || c === 5) {
            const n = nm("sv");
            L(`    const ${n} = v128.load8x8_s(ws, ${32 + 8 * j});`);
            sv.push(n);
            dn = HS(H).map((h) => { const d = nm("d"); L(`    const ${d} = ${dup(n, h)};`); return d; });
          }
          for (const t of TS(T)) for (const h of HS(H)) acc(I, `${t}_${h}`, madd(P[`${t}_${h}`], dn[h]), "i32x4.add");
          P = {};
        }
      }
      // -32 offset: C += sc_j * bsum_j + sc_j+1 * bsum_j+1 (scales of rows paired by unpack, bsums
      // j, j+1 adjacent in the block), I -= 32 C at the end
      const j = 8 * hf + 2 * k;
      const pr = HS(H).map((h) => {
        const n = nm("pr");
        L(`    const ${n} = ${h === 0 ? `i8x16.shuffle(${sv[0]}, ${sv[1]}, 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23)` : `i8x16.shuffle(${sv[0]}, ${sv[1]}, 8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31)`};`);
        return n;
      });
      for (const t of TS(T)) {
        const b = nm("b");
        L(`    const ${b} = v128.load32_splat(a${t}, ${260 + 2 * j});`);
        for (const h of HS(H)) acc(C, `${t}_${h}`, madd(pr[h], b), "i32x4.add");
      }
    }
  }
  for (const t of TS(T)) for (const h of HS(H)) {
    L(`    ${I[`${t}_${h}`]} = i32x4.sub(${I[`${t}_${h}`]}, i32x4.shl(${C[`${t}_${h}`]}, 5));`);
  }
  floatAcc(TS(T).map((t) => HS(H).map((h) => I[`${t}_${h}`])), T, H, 0);
}

function emitQ3_K(T, H) {
  adLoads(T);
  const I = {};
  for (let hf = 0; hf < 2; hf++) {
    for (let k = 0; k < 4; k++) {
      let P = {};
      for (let c = 0; c < 8; c++) {
        const q = [];
        for (const h of HS(H)) {
          const sv = nm("qs"), hv = nm("hm");
          L(`    const ${sv} = ${ql(416 + 32 * (8 * hf + c), h)};`);
          L(`    const ${hv} = ${ql(160 + 32 * c, h)};`);
          q.push(nm("q"));
          const low = k === 0 ? `v128.and(${sv}, m3)` : `v128.and(i16x8.shr_u(${sv}, ${2 * k}), m3)`;
          L(`    const ${q[h]} = v128.or(${low}, v128.and(${shiftBy(hv, 2 - (4 * hf + k))}, m4));`);
        }
        for (const t of TS(T)) {
          const s = nm("s");
          L(`    const ${s} = ${sp(t, 4 + 128 * hf + 32 * k + 4 * c)};`);
          for (const h of HS(H)) acc(P, `${t}_${h}`, `d16(${q[h]}, ${s}, lo16)`);
        }
        if (c === 3 || c === 7) {
          const j = 8 * hf + 2 * k + (c >= 4 ? 1 : 0);
          const dn = dups(32, j, H, true).map((e) => { const n = nm("d"); L(`    const ${n} = ${e};`); return n; });
          for (const t of TS(T)) {
            // -4 offset: subtract 2*bsum_j from both i16 lanes of a row before the scale madd
            const b = nm("b");
            L(`    const ${b} = i16x8.splat(<i16>(<i32>load<i16>(a${t}, ${260 + 2 * j}) << 1));`);
            for (const h of HS(H)) acc(I, `${t}_${h}`, madd(`i16x8.sub(${P[`${t}_${h}`]}, ${b})`, dn[h]), "i32x4.add");
          }
          P = {};
        }
      }
    }
  }
  floatAcc(TS(T).map((t) => HS(H).map((h) => I[`${t}_${h}`])), T, H, 0);
}

function emitQ2_K(T, H) {
  adLoads(T);
  // mins first: M = sum_j min_j * bsum_j
  const M = {};
  for (let j = 0; j < 16; j++) {
    const dn = dups(64, j, H, false, (sv) => `i16x8.shr_u(${sv}, 4)`).map((e) => { const n = nm("dm"); L(`    const ${n} = ${e};`); return n; });
    for (const t of TS(T)) {
      const b = nm("b");
      L(`    const ${b} = i32x4.splat(<i32>load<u16>(a${t}, ${260 + 2 * j}));`);
      for (const h of HS(H)) acc(M, `${t}_${h}`, madd(dn[h], b), "i32x4.add");
    }
  }
  floatSub(TS(T).map((t) => HS(H).map((h) => M[`${t}_${h}`])), T, H, 32);
  const I = {};
  for (let hf = 0; hf < 2; hf++) {
    for (let k = 0; k < 4; k++) {
      let P = {};
      for (let c = 0; c < 8; c++) {
        const q = [];
        for (const h of HS(H)) {
          const sv = nm("qs");
          L(`    const ${sv} = ${ql(192 + 32 * (8 * hf + c), h)};`);
          q.push(nm("q"));
          L(`    const ${q[h]} = ${k === 0 ? `v128.and(${sv}, m3)` : `v128.and(i16x8.shr_u(${sv}, ${2 * k}), m3)`};`);
        }
        for (const t of TS(T)) {
          const s = nm("s");
          L(`    const ${s} = ${sp(t, 4 + 128 * hf + 32 * k + 4 * c)};`);
          for (const h of HS(H)) acc(P, `${t}_${h}`, `d16(${q[h]}, ${s}, lo16)`);
        }
        if (c === 3 || c === 7) {
          const j = 8 * hf + 2 * k + (c >= 4 ? 1 : 0);
          const dn = dups(64, j, H, false, (sv) => `v128.and(${sv}, lo4)`).map((e) => { const n = nm("d"); L(`    const ${n} = ${e};`); return n; });
          for (const t of TS(T)) for (const h of HS(H)) acc(I, `${t}_${h}`, madd(P[`${t}_${h}`], dn[h]), "i32x4.add");
          P = {};
        }
      }
    }
  }
  floatAcc(TS(T).map((t) => HS(H).map((h) => I[`${t}_${h}`])), T, H, 0);
}

// ---------------------------------------------------------------------------------------------
const types = [
  { name: "Q4_K", sb: 1216, emit: emitQ4_K },
  { name: "Q6_K", sb: 1696, emit: emitQ6_K },
  { name: "Q5_K", sb: 1472, emit: emitQ5_K },
  { name: "Q3_K", sb: 928, emit: emitQ3_K },
  { name: "Q2_K", sb: 704, emit: emitQ2_K },
];

const header = `// GENERATED by kquants.gen.mjs (node src/kernels/assembly/kquants.gen.mjs); do not edit by hand.
//
// K-quant weights (repacked "R8" by kquants-repack.ts) x Q8_K activations (llama.cpp layout, 292
// bytes per 256 columns: f32 d, 256 int8, 16 int16 bsums). Per super-block: integer dot products
// per sub-block exactly as llama.cpp (unsigned quants, the min / -32 / -4 offsets through bsums),
// scaled by the integer sub-block scales in i32, then by d * d_act (and dmin * d_act) in f32.
//
// Calling convention (every K-quant type):
//   matmul<T>R8(w, x, y, k, g0, g1, nrows, ntok)
//     w: repacked weights of nrows rows (this thread's shard), k columns (k % 256 == 0);
//     x: ntok Q8_K activation rows, k/256 blocks of 292 bytes each, rows contiguous;
//     y: f32 output, y[t * nrows + r] for token t and row r;
//     computes rows of 8-row groups g0..g1-1 (rows >= nrows are dropped, never written).
//   ntok == 1 takes the decode path (8 rows per pass, one weight stream); larger ntok goes in
//   tiles of 4 tokens x 4 rows per pass over each group's weights (leftover tokens one by one).
import { d16, kconsts, KC } from "./kquants-common";
import { storeRows4, storeRows8 } from "./common";
`;
L(header);

for (const ty of types) {
  // decode: 8 rows x 1 token
  L(`// ${ty.name}: 8 rows x 1 token per pass.`);
  L(`function mv${ty.name}(w: usize, x: usize, y: usize, k: i32, g0: i32, g1: i32, nrows: i32): void {`);
  L(`  const nsb = k >> 8;`);
  L(`  const m = v128.load(KC, 0), lo16 = v128.load(KC, 16), m30 = v128.load(KC, 32), m3 = v128.load(KC, 48);`);
  L(`  const m4 = v128.load(KC, 64), m10 = v128.load(KC, 80), lo4 = v128.load(KC, 96), m3f = v128.load(KC, 112), m0c = v128.load(KC, 128);`);
  L(`  let wp = w + <usize>g0 * <usize>nsb * ${ty.sb};`);
  L(`  for (let grp = g0; grp < g1; grp++) {`);
  L(`    let F_0_0 = f32x4.splat(0), F_0_1 = f32x4.splat(0);`);
  L(`    let a0 = x;`);
  L(`    for (let b = 0; b < nsb; b++) {`);
  L(`    const wq = wp, ws = wp, wm = wp, wd = wp;`);
  const start = out.length;
  ty.emit(1, 2);
  for (let i = start; i < out.length; i++) out[i] = "  " + out[i];
  L(`      wp += ${ty.sb};`);
  L(`      a0 += ${Q8K};`);
  L(`    }`);
  L(`    storeRows8(y, grp << 3, nrows, F_0_0, F_0_1);`);
  L(`  }`);
  L(`}`);
  L(``);
  // prefill tile: 4 rows (half h) x 4 tokens
  L(`// ${ty.name}: 4 rows (half h of the group at wg) x 4 tokens (x, stride astride) per pass.`);
  L(`function tile${ty.name}(wg: usize, h: i32, x: usize, astride: usize, nsb: i32, y: usize, ystride: usize, r: i32, nrows: i32): void {`);
  L(`  const m = v128.load(KC, 0), lo16 = v128.load(KC, 16), m30 = v128.load(KC, 32), m3 = v128.load(KC, 48);`);
  L(`  const m4 = v128.load(KC, 64), m10 = v128.load(KC, 80), lo4 = v128.load(KC, 96), m3f = v128.load(KC, 112), m0c = v128.load(KC, 128);`);
  L(`  let wp = wg;`);
  L(`  const hq = <usize>h << 4, hs = <usize>h << 2, hm = <usize>h << 3;`);
  L(`  let a0 = x, a1 = x + astride, a2 = x + astride * 2, a3 = x + astride * 3;`);
  L(`  let F_0_0 = f32x4.splat(0), F_1_0 = f32x4.splat(0), F_2_0 = f32x4.splat(0), F_3_0 = f32x4.splat(0);`);
  L(`  for (let b = 0; b < nsb; b++) {`);
  L(`    const wq = wp + hq, ws = wp + hs, wm = wp + hm, wd = wp + hq;`);
  ty.emit(4, 1);
  L(`    wp += ${ty.sb};`);
  L(`    a0 += ${Q8K}; a1 += ${Q8K}; a2 += ${Q8K}; a3 += ${Q8K};`);
  L(`  }`);
  L(`  storeRows4(y, r, nrows, F_0_0);`);
  L(`  storeRows4(y + ystride, r, nrows, F_1_0);`);
  L(`  storeRows4(y + ystride * 2, r, nrows, F_2_0);`);
  L(`  storeRows4(y + ystride * 3, r, nrows, F_3_0);`);
  L(`}`);
  L(``);
  L(`export function matmul${ty.name}R8(w: usize, x: usize, y: usize, k: i32, g0: i32, g1: i32, nrows: i32, ntok: i32): void {`);
  L(`  kconsts();`);
  L(`  if (ntok == 1) {`);
  L(`    mv${ty.name}(w, x, y, k, g0, g1, nrows);`);
  L(`    return;`);
  L(`  }`);
  L(`  const nsb = k >> 8;`);
  L(`  const gstride = <usize>nsb * ${ty.sb};`);
  L(`  const astride = <usize>nsb * ${Q8K};`);
  L(`  const ystride = <usize>nrows << 2;`);
  L(`  const ntok4 = ntok & ~3;`);
  L(`  for (let grp = g0; grp < g1; grp++) {`);
  L(`    const wg = w + <usize>grp * gstride;`);
  L(`    const r = grp << 3;`);
  L(`    for (let t = 0; t < ntok4; t += 4) {`);
  L(`      const ap = x + <usize>t * astride;`);
  L(`      const yp = y + <usize>t * ystride;`);
  L(`      tile${ty.name}(wg, 0, ap, astride, nsb, yp, ystride, r, nrows);`);
  L(`      tile${ty.name}(wg, 1, ap, astride, nsb, yp, ystride, r + 4, nrows);`);
  L(`    }`);
  L(`    for (let t = ntok4; t < ntok; t++) {`);
  L(`      mv${ty.name}(w, x + <usize>t * astride, y + <usize>t * ystride, k, grp, grp + 1, nrows);`);
  L(`    }`);
  L(`  }`);
  L(`}`);
  L(``);
}

const file = fileURLToPath(new URL("./kquants.ts", import.meta.url));
// unused constant loads are dropped by the optimizer; silence nothing else
writeFileSync(file, out.join("\n"));
console.log(`kquants.gen: wrote ${file} (${out.length} lines)`);
