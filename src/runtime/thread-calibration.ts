// The default thread count of a small model, measured at load: the model is placed on each
// candidate thread count (see calibrationCandidates: the fixed rule's choice and the count next
// to it), a few decode steps are timed on each in alternation, and the faster placement is kept
// (chooseMeasured: more threads only when clearly faster). The other is disposed. A decision is
// remembered for the rest of the process per model shape and core count, so loading the same
// model again costs one placement only.
//
// Cost: one more placement of the weights (calibration runs only up to CALIBRATE_MAX_BYTES) and
// about 2 x (WARM_STEPS + ROUNDS x STEPS) decode steps: ~0.25 s for a stories42M-shaped model,
// ~10 ms for stories260K.

import type { GGUFFile } from "../format/gguf-reader.ts";
import type { ModelConfig } from "../model/config.ts";
import { Transformer } from "../model/transformer.ts";
import { loadTransformerWeights, type LoadProgress, type TransformerWeights } from "../model/weights.ts";
import { WasmBackend } from "../backends/wasm/wasm-backend.ts";
import {
  calibrationCandidates, chooseMeasured, describeDecision, type ThreadDecision, type ThreadTiming, type ThreadWork,
} from "../backends/wasm/thread-choice.ts";
import { defaultThreadCount } from "../platform/threads.ts";
import { now } from "../platform/yield.ts";

/**
 * Untimed steps per candidate first (JIT tiering, first touch of the weights and buffers, and the
 * freshly started threads' first slow milliseconds). With 8 (and 8 steps per round) the 2-thread
 * placement of stories15M / stories42M read 1.0-3.8 / 1.3-3.6 ms per step against 0.3-0.4 /
 * 0.6-0.9 ms in generation, and 1 thread was mostly kept although 2 decode them 1.5x as fast; with
 * 64 and 16 the 2-thread figures read 0.37-0.42 / 0.64-0.97 ms (same machine, alternating processes).
 */
const WARM_STEPS = 64;
/**
 * Timed rounds, alternating the candidates; a round's figure is the median of its steps (16, so
 * that the first steps of a round, after the other candidate's round, weigh less).
 */
const ROUNDS = 5;
const STEPS = 16;
/** Positions of the scratch KV pool the steps cycle through. */
const POSITIONS = 32;
/**
 * Microseconds of host work between two timed steps, standing in for what a generation loop does
 * between forward passes (sampling, text output, the driver, the yield: 50-150 µs measured by
 * `mimo bench --profile` on small models): long enough that idle worker threads go to sleep
 * between steps, as they do in real decoding, so each step pays its wake-up.
 */
const GAP_US = 60;

/** Decisions made in this process, by model shape and core count. */
const decisions = new Map<string, ThreadDecision>();

export interface CalibratedPlacement {
  readonly backend: WasmBackend;
  readonly weights: TransformerWeights;
}

function shapeKey(c: ModelConfig, w: ThreadWork, cores: number): string {
  return [c.arch.name, c.nLayers, c.nMtpLayers, c.dim, c.ffnDim, c.nHeads, c.nKvHeads, c.headDim, c.vocabSize, w.weightBytes, w.batch ?? 1, cores].join("|");
}

/**
 * The wasm backend for a model whose thread count was not given, with its weights placed, where
 * calibration applies (several cores, a small model, one sequence); undefined elsewhere (the
 * caller then uses the fixed rule).
 */
export async function calibratedPlacement(
  file: GGUFFile, config: ModelConfig, work: ThreadWork, onProgress?: (p: LoadProgress) => void,
): Promise<CalibratedPlacement | undefined> {
  if ((work.batch ?? 1) !== 1 || config.nMtpLayers > 0) return undefined;
  const cores = await defaultThreadCount();
  const candidates = calibrationCandidates(work, cores);
  if (!candidates) return undefined;
  const key = shapeKey(config, work, cores);
  const known = decisions.get(key);
  if (known) {
    const backend = await WasmBackend.create({ threads: known.threads });
    try {
      backend.noteThreadChoice(describeDecision(known, true));
      return { backend, weights: await loadTransformerWeights(file, config, backend, onProgress) };
    } catch (e) {
      await backend.dispose();
      throw e;
    }
  }
  const placed: { backend: WasmBackend; weights: TransformerWeights }[] = [];
  try {
    for (let i = 0; i < candidates.length; i++) {
      const backend = await WasmBackend.create({ threads: candidates[i]! });
      placed.push({ backend, weights: undefined as unknown as TransformerWeights });
      // Progress is reported for the first placement only (the second is the same work again).
      placed[i]!.weights = await loadTransformerWeights(file, config, backend, i === 0 ? onProgress : undefined);
    }
    const decision = chooseMeasured(timeSteps(config, placed));
    decisions.set(key, decision);
    const keep = placed.find((p) => p.backend.threads === decision.threads)!;
    keep.backend.noteThreadChoice(describeDecision(decision));
    await Promise.all(placed.filter((p) => p !== keep).map((p) => p.backend.dispose()));
    return keep;
  } catch (e) {
    await Promise.all(placed.map((p) => p.backend.dispose()));
    throw e;
  }
}

function busyWait(us: number): void {
  const end = now() + us / 1000;
  while (now() < end);
}

/** Times one-token decode steps on each placement, alternating which goes first from round to round. */
function timeSteps(config: ModelConfig, placed: readonly { backend: WasmBackend; weights: TransformerWeights }[]): ThreadTiming[] {
  const runs = placed.map((p) => {
    const transformer = new Transformer(config, p.weights, p.backend);
    return { transformer, pool: transformer.createKvPool(1, POSITIONS, "f16"), pos: 0, stepUs: [] as number[] };
  });
  const times: number[] = [];
  const step = (r: (typeof runs)[number], timed: boolean): void => {
    const token = (r.pos * 7919 + 3) % config.vocabSize;
    const t0 = now();
    r.transformer.forward([{ slot: 0, startPos: r.pos, tokens: [token], logits: "last" }], r.pool, { borrow: true });
    if (timed) times.push((now() - t0) * 1000);
    r.pos = (r.pos + 1) % POSITIONS;
    busyWait(GAP_US);
  };
  for (const r of runs) for (let i = 0; i < WARM_STEPS; i++) step(r, false);
  for (let round = 0; round < ROUNDS; round++) {
    for (let k = 0; k < runs.length; k++) {
      const r = runs[(k + round) % runs.length]!;
      times.length = 0;
      for (let i = 0; i < STEPS; i++) step(r, true);
      times.sort((a, b) => a - b);
      r.stepUs.push(times[times.length >> 1]!);
    }
  }
  return runs.map((r, i) => ({ threads: placed[i]!.backend.threads, stepUs: r.stepUs }));
}
