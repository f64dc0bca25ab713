// Which kernel builds run on this machine. The relaxed-SIMD VNNI build needs an exact i32 dot-add
// on unsigned bytes up to 255 (AVX-VNNI's vpdpbusd); where the runtime lowers the dot-add to a
// saturating i16 pair sum (x86 without AVX-VNNI, e.g. Zen 3) or a signed one (Arm's sdot), its
// start-up self test rejects it and tests of that build are skipped. On a CPU that has AVX-VNNI the
// build must pass: a failing self test there is a bug, never a skip.
import { readFileSync } from "node:fs";
import { KERNEL_PATHS, loadKernels, type KernelPath } from "../../src/kernels/kernels.ts";

const cpuFlags = (() => {
  try {
    return readFileSync("/proc/cpuinfo", "utf8").match(/^flags\s*:(.*)$/m)?.[1]?.trim().split(/\s+/) ?? [];
  } catch {
    return [];
  }
})();

/** The CPU announces AVX-VNNI (Linux), where V8 compiles the dot-add to vpdpbusd. */
export const cpuHasAvxVnni = cpuFlags.includes("avx_vnni");

/** Why the VNNI build does not run here (its self test's message), or undefined where it runs. */
export const vnniUnavailable: string | undefined = await loadKernels({ path: "relaxed-simd-vnni" }).then(
  () => undefined,
  (e: Error) => {
    if (cpuHasAvxVnni || !/self test failed/.test(e.message)) throw e;
    return e.message;
  },
);

/** The kernel builds this machine runs. */
export const runnableKernelPaths: KernelPath[] = KERNEL_PATHS.filter((p) => p !== "relaxed-simd-vnni" || vnniUnavailable === undefined);
