// What a results file records about the machine: CPU model, the SIMD extensions the contestants'
// kernels use, memory, Node, load average.
import { readFileSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";

/** The CPU's SIMD extensions that matter to the contestants' kernels (Linux; empty elsewhere). */
export function simdFlags(): string[] {
  try {
    const flags = /^flags\s*:(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.trim().split(/\s+/) ?? [];
    return flags.filter((f) => /^(avx2|fma|f16c|avx512f|avx512bw|avx512vl|avx512_vnni|avx_vnni|avx512_bf16|amx\w*)$/.test(f));
  } catch {
    return [];
  }
}

export function machineInfo(): { cpu: string; cpus: number; memGiB: number; simd: string[]; node: string; loadAverageAtStart: number } {
  return { cpu: cpus()[0]?.model ?? "?", cpus: cpus().length, memGiB: Math.round(totalmem() / 2 ** 30), simd: simdFlags(), node: process.versions.node, loadAverageAtStart: loadavg()[0]! };
}
