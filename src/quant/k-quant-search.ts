// The scale searches llama.cpp's K-quant reference quantizers run on each sub-block
// (ggml-quants.c: make_qx_quants, make_q3_quants, make_qkx2_quants). They pick the scale (and
// min) that minimise a weighted error over a small grid of candidates. The float32 arithmetic is
// reproduced operation by operation (see ./rounding.ts): a single differently rounded sum can
// pick a different candidate and change the file bytes.

import { f32, nearestInt } from "./rounding.ts";

/** ggml's GROUP_MAX_EPS (1e-15f): a sub-block whose largest |x| is below it is all zero. */
export const GROUP_MAX_EPS = f32(1e-15);

const ONE_TENTH = f32(0.1);

/**
 * Symmetric quantization of x[xOff .. xOff+n) to levels -nmax .. nmax-1, weighting each element's
 * squared error by x² (make_qx_quants with rmse_type = 1), or by the importance weights
 * qw[qwOff ..] where given. Writes level + nmax into L[lOff ..] and returns the scale; a
 * negative scale is normal (the extreme element always gets level -nmax).
 */
export function makeQxQuants(
  n: number,
  nmax: number,
  x: Float32Array,
  xOff: number,
  L: Uint8Array,
  lOff: number,
  qw?: Float32Array,
  qwOff = 0,
): number {
  let max = 0;
  let amax = 0;
  for (let i = 0; i < n; i++) {
    const ax = Math.abs(x[xOff + i]);
    if (ax > amax) {
      amax = ax;
      max = x[xOff + i];
    }
  }
  if (amax < GROUP_MAX_EPS) {
    L.fill(0, lOff, lOff + n);
    return 0;
  }
  let iscale = f32(-nmax / max);
  let sumlx = 0;
  let suml2 = 0;
  for (let i = 0; i < n; i++) {
    const xi = x[xOff + i];
    const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(f32(iscale * xi))));
    L[lOff + i] = l + nmax;
    const w = qw ? qw[qwOff + i]! : f32(xi * xi);
    sumlx = f32(sumlx + f32(f32(w * xi) * l));
    suml2 = f32(suml2 + f32(f32(w * l) * l));
  }
  let scale = suml2 !== 0 ? f32(sumlx / suml2) : 0;
  let best = f32(scale * sumlx);
  // try nudging the reference scale by +-0.1 .. 0.9 levels; keep the best weighted fit
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    iscale = f32(-f32(nmax + f32(ONE_TENTH * is)) / max);
    sumlx = 0;
    suml2 = 0;
    for (let i = 0; i < n; i++) {
      const xi = x[xOff + i];
      const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(f32(iscale * xi))));
      const w = qw ? qw[qwOff + i]! : f32(xi * xi);
      sumlx = f32(sumlx + f32(f32(w * xi) * l));
      suml2 = f32(suml2 + f32(f32(w * l) * l));
    }
    if (suml2 > 0 && f32(sumlx * sumlx) > f32(best * suml2)) {
      for (let i = 0; i < n; i++) {
        const l = nearestInt(f32(iscale * x[xOff + i]));
        L[lOff + i] = nmax + Math.max(-nmax, Math.min(nmax - 1, l));
      }
      scale = f32(sumlx / suml2);
      best = f32(scale * sumlx);
    }
  }
  return scale;
}

/**
 * Symmetric quantization to levels -nmax .. nmax-1 refined by coordinate descent (up to five
 * passes, moving one element's level at a time while the x²-weighted fit improves):
 * make_q3_quants with do_rmse = true. Writes level + nmax into L[lOff ..]; returns the scale.
 */
export function makeQ3Quants(
  n: number,
  nmax: number,
  x: Float32Array,
  xOff: number,
  L: Int8Array,
  lOff: number,
): number {
  let max = 0;
  let amax = 0;
  for (let i = 0; i < n; i++) {
    const ax = Math.abs(x[xOff + i]);
    if (ax > amax) {
      amax = ax;
      max = x[xOff + i];
    }
  }
  if (amax < GROUP_MAX_EPS) {
    L.fill(0, lOff, lOff + n);
    return 0;
  }
  const iscale = f32(-nmax / max);
  let sumlx = 0;
  let suml2 = 0;
  for (let i = 0; i < n; i++) {
    const xi = x[xOff + i];
    const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(f32(iscale * xi))));
    L[lOff + i] = l;
    const w = f32(xi * xi);
    sumlx = f32(sumlx + f32(f32(w * xi) * l));
    suml2 = f32(suml2 + f32(f32(w * l) * l));
  }
  for (let itry = 0; itry < 5; itry++) {
    let changed = 0;
    for (let i = 0; i < n; i++) {
      const xi = x[xOff + i];
      const li = L[lOff + i];
      const w = f32(xi * xi);
      // the sums without element i, then the level that best fits the rest
      let slx = f32(sumlx - f32(f32(w * xi) * li));
      if (slx > 0) {
        let sl2 = f32(suml2 - f32(f32(w * li) * li));
        const newL = Math.max(-nmax, Math.min(nmax - 1, nearestInt(f32(f32(xi * sl2) / slx))));
        if (newL !== li) {
          slx = f32(slx + f32(f32(w * xi) * newL));
          sl2 = f32(sl2 + f32(f32(w * newL) * newL));
          if (sl2 > 0 && f32(f32(slx * slx) * suml2) > f32(f32(sumlx * sumlx) * sl2)) {
            L[lOff + i] = newL;
            sumlx = slx;
            suml2 = sl2;
            changed++;
          }
        }
      }
    }
    if (changed === 0) break;
  }
  for (let i = 0; i < n; i++) L[lOff + i] += nmax;
  return f32(sumlx / suml2);
}

/**
 * Asymmetric quantization x ≈ scale * l - min to levels 0 .. nmax (make_qkx2_quants): starts
 * from the min/max fit, then tries nstep + 1 grid scales, solving the weighted least-squares
 * scale and min for each, and keeps the candidate with the smallest weighted error (absolute
 * error if useMad, squared otherwise). The min is clamped so that it never exceeds 0.
 * Writes levels into L[lOff ..] (Laux is scratch of n bytes), the min's negation into
 * theMin[minIndex], and returns the scale.
 */
export function makeQkx2Quants(
  n: number,
  nmax: number,
  x: Float32Array,
  xOff: number,
  weights: Float32Array,
  L: Uint8Array,
  lOff: number,
  Laux: Uint8Array,
  rmin: number,
  rdelta: number,
  nstep: number,
  useMad: boolean,
  theMin: Float32Array,
  minIndex: number,
): number {
  let min = x[xOff];
  let max = x[xOff];
  let sumW = weights[0];
  let sumX = f32(sumW * x[xOff]);
  for (let i = 1; i < n; i++) {
    const xi = x[xOff + i];
    if (xi < min) min = xi;
    if (xi > max) max = xi;
    const w = weights[i];
    sumW = f32(sumW + w);
    sumX = f32(sumX + f32(w * xi));
  }
  if (min > 0) min = 0;
  if (max === min) {
    L.fill(0, lOff, lOff + n);
    theMin[minIndex] = -min;
    return 0;
  }
  let iscale = f32(nmax / f32(max - min));
  let scale = f32(1 / iscale);
  let bestMad = 0;
  for (let i = 0; i < n; i++) {
    const xi = x[xOff + i];
    const l = Math.max(0, Math.min(nmax, nearestInt(f32(iscale * f32(xi - min)))));
    L[lOff + i] = l;
    let diff = f32(f32(f32(scale * l) + min) - xi);
    diff = useMad ? Math.abs(diff) : f32(diff * diff);
    bestMad = f32(bestMad + f32(weights[i] * diff));
  }
  if (nstep < 1) {
    theMin[minIndex] = -min;
    return scale;
  }
  for (let is = 0; is <= nstep; is++) {
    // `min` is the best fit so far, so the grid moves with it (as in llama.cpp)
    iscale = f32(f32(f32(rmin + f32(rdelta * is)) + nmax) / f32(max - min));
    let sumL = 0;
    let sumL2 = 0;
    let sumXL = 0;
    for (let i = 0; i < n; i++) {
      const xi = x[xOff + i];
      const l = Math.max(0, Math.min(nmax, nearestInt(f32(iscale * f32(xi - min)))));
      Laux[i] = l;
      const wl = f32(weights[i] * l);
      sumL = f32(sumL + wl);
      sumL2 = f32(sumL2 + f32(wl * l));
      sumXL = f32(sumXL + f32(wl * xi));
    }
    const D = f32(f32(sumW * sumL2) - f32(sumL * sumL));
    if (D > 0) {
      let thisScale = f32(f32(f32(sumW * sumXL) - f32(sumX * sumL)) / D);
      let thisMin = f32(f32(f32(sumL2 * sumX) - f32(sumL * sumXL)) / D);
      if (thisMin > 0) {
        thisMin = 0;
        thisScale = f32(sumXL / sumL2);
      }
      let mad = 0;
      for (let i = 0; i < n; i++) {
        let diff = f32(f32(f32(thisScale * Laux[i]) + thisMin) - x[xOff + i]);
        diff = useMad ? Math.abs(diff) : f32(diff * diff);
        mad = f32(mad + f32(weights[i] * diff));
      }
      if (mad < bestMad) {
        for (let i = 0; i < n; i++) L[lOff + i] = Laux[i];
        bestMad = mad;
        scale = thisScale;
        min = thisMin;
      }
    }
  }
  theMin[minIndex] = -min;
  return scale;
}

/**
 * make_qp_quants: quantizes n non-negative values (sub-block scales or mins) to levels 0 .. nmax
 * under importance weights: the best of 9 grid scales by weighted squared error, then up to five
 * passes of coordinate descent. Writes levels into L[0 .. n) and returns the scale.
 */
export function makeQpQuants(n: number, nmax: number, x: Float32Array, L: Uint8Array, qw: Float32Array): number {
  let max = 0;
  for (let i = 0; i < n; i++) max = max > x[i]! ? max : x[i]!;
  if (max < GROUP_MAX_EPS) {
    L.fill(0, 0, n);
    return 0;
  }
  let iscale = f32(nmax / max);
  for (let i = 0; i < n; i++) L[i] = nearestInt(f32(iscale * x[i]!));
  const scale = f32(1 / iscale);
  let bestMse = 0;
  for (let i = 0; i < n; i++) {
    const diff = f32(x[i]! - f32(scale * L[i]!));
    bestMse = f32(bestMse + f32(f32(qw[i]! * diff) * diff));
  }
  for (let is = -4; is <= 4; is++) {
    if (is === 0) continue;
    const iscaleIs = f32(f32(f32(ONE_TENTH * is) + nmax) / max);
    const scaleIs = f32(1 / iscaleIs);
    let mse = 0;
    for (let i = 0; i < n; i++) {
      const l = Math.min(nmax, nearestInt(f32(iscaleIs * x[i]!)));
      const diff = f32(x[i]! - f32(scaleIs * l));
      mse = f32(mse + f32(f32(qw[i]! * diff) * diff));
    }
    if (mse < bestMse) {
      bestMse = mse;
      iscale = iscaleIs;
    }
  }
  let sumlx = 0;
  let suml2 = 0;
  for (let i = 0; i < n; i++) {
    const l = Math.min(nmax, nearestInt(f32(iscale * x[i]!)));
    L[i] = l;
    const w = qw[i]!;
    sumlx = f32(sumlx + f32(f32(w * x[i]!) * l));
    suml2 = f32(suml2 + f32(f32(w * l) * l));
  }
  for (let itry = 0; itry < 5; itry++) {
    let changed = 0;
    for (let i = 0; i < n; i++) {
      const w = qw[i]!;
      const li = L[i]!;
      let slx = f32(sumlx - f32(f32(w * x[i]!) * li));
      let sl2 = f32(suml2 - f32(f32(w * li) * li));
      if (slx > 0 && sl2 > 0) {
        const newL = Math.min(nmax, nearestInt(f32(f32(x[i]! * sl2) / slx)));
        if (newL !== li) {
          slx = f32(slx + f32(f32(w * x[i]!) * newL));
          sl2 = f32(sl2 + f32(f32(w * newL) * newL));
          if (f32(f32(slx * slx) * suml2) > f32(f32(sumlx * sumlx) * sl2)) {
            L[i] = newL;
            sumlx = slx;
            suml2 = sl2;
            changed++;
          }
        }
      }
    }
    if (changed === 0) break;
  }
  return suml2 > 0 ? f32(sumlx / suml2) : 0;
}
