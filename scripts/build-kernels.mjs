#!/usr/bin/env node
// Compiles the AssemblyScript kernels three times: with relaxed SIMD (i16 int8 dots for x64 without
// VNNI), relaxed SIMD with i32 dot-adds for VNNI machines, and plain SIMD128 (fallback). Both import one shared memory (up to 4 GiB) so that several instances,
// one per thread, run on the same weights. Usage: node scripts/build-kernels.mjs [--wat]
import asc from "assemblyscript/asc";
import { mkdir, readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const entry = "src/kernels/assembly/index.ts";
const outDir = "build/kernels";
const wat = process.argv.includes("--wat");

const common = [
  entry,
  "--baseDir", root,
  "-O3", "--noAssert",
  "--runtime", "stub",
  "--enable", "simd",
  "--enable", "threads",
  "--importMemory", "--sharedMemory",
  "--initialMemory", "1",
  "--maximumMemory", "65536",
  "--memoryBase", "4096",
  "--use", "abort=",
];

// KERNEL_VNNI=1: the Q4_0/Q8_0 kernels accumulate int8 dots in i32 (one vpdpbusd on x64 with
// AVX-VNNI) instead of i16 pmaddubsw sums; the loader times both relaxed builds and keeps the faster.
const variants = [
  { name: "kernels-relaxed", flags: ["--enable", "relaxed-simd", "--use", "KERNEL_VNNI=0"] },
  { name: "kernels-relaxed-vnni", flags: ["--enable", "relaxed-simd", "--use", "KERNEL_VNNI=1"] },
  { name: "kernels-simd128", flags: ["--use", "KERNEL_VNNI=0"] },
];

await mkdir(new URL(`../${outDir}/`, import.meta.url), { recursive: true });
const t0 = performance.now();
await Promise.all(variants.map(async (v) => {
  const args = [...common, ...v.flags, "-o", `${outDir}/${v.name}.wasm`];
  if (wat) args.push("-t", `${outDir}/${v.name}.wat`);
  const { error, stderr } = await asc.main(args);
  if (error) {
    console.error(stderr.toString());
    throw new Error(`build-kernels: ${v.name} failed: ${error.message}`);
  }
  // The memory is shared and allocated by the TS side from 4096 up: a data segment (static data,
  // e.g. the lookup tables of std Math.pow/sin) would be overwritten, and re-written by every new
  // instance. Refuse it.
  const bytes = await readFile(new URL(`../${outDir}/${v.name}.wasm`, import.meta.url));
  if (hasDataSection(bytes)) {
    throw new Error(`build-kernels: ${v.name} has a data segment; kernels must not use static data`);
  }
}));
console.log(`build-kernels: ${variants.map((v) => `${outDir}/${v.name}.wasm`).join(", ")} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

function hasDataSection(b) {
  let p = 8;
  while (p < b.length) {
    const id = b[p++];
    let size = 0, shift = 0, byte;
    do { byte = b[p++]; size |= (byte & 0x7f) << shift; shift += 7; } while (byte & 0x80);
    if (id === 11 && size > 1) return true;
    p += size;
  }
  return false;
}
