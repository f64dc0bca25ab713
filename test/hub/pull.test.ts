// mimo pull against a hub imitation on loopback (test/hub/fake-hub.ts): the file list, the
// redirect to a CDN on another host, resume with Range, 416, interruptions, a wrong sha256, a
// gated repository, a full disk, offline mode; then the CLI end to end (pull, run -m hf:, list, rm).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { pullModel, resolveModel, listCached, removeCached, modelCacheDir, parseModelRef, formatModelRef } from "../../src/index.ts";
import { chooseFile } from "../../src/hub/model-ref.ts";
import { FakeHub, sha256 } from "./fake-hub.ts";
import { STORIES_DIR } from "../helpers/testdata.ts";
import { tempDir } from "../helpers/temp-dir.ts";

delete process.env.HF_TOKEN;
delete process.env.HUGGING_FACE_HUB_TOKEN;
delete process.env.MIMO_OFFLINE;
delete process.env.HF_HUB_OFFLINE;

const entry = fileURLToPath(new URL("../../src/cli/entry.ts", import.meta.url));
const q8 = new Uint8Array(readFileSync(`${STORIES_DIR}/stories260K.gguf`)); // stands in for the Q8_0 file
const q4km = new Uint8Array(readFileSync(`${STORIES_DIR}/derived/stories260K-Q4_K_M.gguf`));
const hub = new FakeHub();
let n = 0;
const freshCache = () => tempDir(`mimo-cache-${n++}-`);

before(async () => {
  await hub.start();
  hub.repos.set("test/tiny-GGUF", {
    files: [
      { path: "README.md", bytes: new TextEncoder().encode("# tiny\n") },
      { path: "tiny-Q8_0.gguf", bytes: q8 },
      { path: "tiny-Q4_K_M.gguf", bytes: q4km },
      { path: "mmproj-tiny-Q8_0.gguf", bytes: q8 },
    ],
  });
  hub.repos.set("test/bad-hash", { files: [{ path: "m.gguf", bytes: q8, listedSha256: "0".repeat(64) }] });
  hub.repos.set("test/gated", { files: [{ path: "m.gguf", bytes: q8 }], token: "hf_secret" });
  hub.repos.set("test/huge", { files: [{ path: "m.gguf", bytes: q8, listedSize: 1e15 }] });
  hub.plain.set("model.gguf", q8);
  hub.plain.set("page.gguf", new TextEncoder().encode("<html><body>Sign in</body></html>"));
});
after(() => hub.stop());

const opts = (cacheDir: string, extra: object = {}) => ({ cacheDir, endpoint: hub.endpoint, ...extra });

test("references parse into repository, file, quant and revision, and print back the same", () => {
  assert.deepEqual(parseModelRef("hf:Qwen/Qwen2-0.5B-Instruct-GGUF:Q4_K_M"), { kind: "hf", owner: "Qwen", repo: "Qwen2-0.5B-Instruct-GGUF", file: undefined, quant: "Q4_K_M", revision: "main" });
  assert.deepEqual(parseModelRef("hf:o/r/sub/m-q8_0.gguf@refs/pr/1"), { kind: "hf", owner: "o", repo: "r", file: "sub/m-q8_0.gguf", quant: undefined, revision: "refs/pr/1" });
  for (const s of ["hf:o/r", "hf:o/r:Q8_0@v2", "hf:o/r/a/b.gguf@abc123", "https://example.com/x/m.gguf"]) assert.equal(formatModelRef(parseModelRef(s)), s);
  assert.throws(() => parseModelRef("hf:justaname"), /"hf:justaname" is not a Hugging Face model reference \(expected hf:OWNER\/REPO\[\/FILE\.gguf\]\[:QUANT\]\[@REVISION\]/);
  assert.throws(() => parseModelRef("hf:o/r/../x.gguf"), /is not a file path inside the repository/);
  assert.throws(() => parseModelRef("ftp://h/m.gguf"), /only http\(s\) URLs can be pulled/);
});

test("the file is picked by quant (never an mmproj), by name, as the only GGUF, or as Q4_K_M; errors list the choices", () => {
  const files = ["README.md", "m-Q8_0.gguf", "m-Q4_K_M.gguf", "m-q4_0.gguf", "mmproj-m-Q8_0.gguf"];
  const r = (s: string) => parseModelRef(s) as Parameters<typeof chooseFile>[0];
  assert.equal(chooseFile(r("hf:o/r:Q8_0"), files), "m-Q8_0.gguf");
  assert.equal(chooseFile(r("hf:o/r:Q4_0"), files), "m-q4_0.gguf");
  assert.equal(chooseFile(r("hf:o/r"), files), "m-Q4_K_M.gguf");
  assert.equal(chooseFile(r("hf:o/r"), ["only.gguf", "x.txt"]), "only.gguf");
  assert.throws(() => chooseFile(r("hf:o/r:IQ2_XS"), files), /hf:o\/r:IQ2_XS: no GGUF file matches IQ2_XS \(files: hf:o\/r\/m-Q8_0\.gguf, /);
  assert.throws(() => chooseFile(r("hf:o/r/nope.gguf"), files), /no file "nope\.gguf" in o\/r at main/);
  assert.throws(() => chooseFile(r("hf:o/r:Q8_0"), ["m-Q8_0-00001-of-00002.gguf", "m-Q8_0-00002-of-00002.gguf"]), /split into 2 files; split GGUF files are not supported yet/);
});

test("the cache folder: MIMO_MODELS, else XDG on Linux, Library/Caches on macOS, LOCALAPPDATA on Windows", () => {
  assert.equal(modelCacheDir({ MIMO_MODELS: "/m" }, "linux", "/home/u"), "/m");
  assert.equal(modelCacheDir({}, "linux", "/home/u"), "/home/u/.cache/mimo/models");
  assert.equal(modelCacheDir({ XDG_CACHE_HOME: "/xdg" }, "linux", "/home/u"), "/xdg/mimo/models");
  assert.equal(modelCacheDir({}, "darwin", "/Users/u"), "/Users/u/Library/Caches/mimo/models");
  assert.match(modelCacheDir({ LOCALAPPDATA: "C:\\Users\\u\\AppData\\Local" }, "win32", "C:\\Users\\u"), /AppData.Local.mimo.models$/);
});

test("pull by quant: paged file list, 302 to the CDN host without the token, sha256 verified, metadata kept", async () => {
  const cache = freshCache();
  const before = hub.seen.length;
  const p = await pullModel("hf:test/tiny-GGUF:Q4_K_M", opts(cache, { token: "hf_public" }));
  assert.equal(p.ref, "hf:test/tiny-GGUF/tiny-Q4_K_M.gguf");
  assert.equal(p.path, join(cache, "hf/test/tiny-GGUF/main/tiny-Q4_K_M.gguf"));
  assert.deepEqual(new Uint8Array(readFileSync(p.path)), q4km);
  assert.equal(p.sha256, sha256(q4km));
  const seen = hub.seen.slice(before);
  assert.equal(seen.filter((s) => s.path.startsWith("/api/models/test/tiny-GGUF/tree/main")).length, 2, "both pages of the file list");
  const cdn = seen.filter((s) => s.path.startsWith("/cdn/"));
  assert.equal(cdn.length, 1);
  assert.equal(cdn[0]!.host, hub.cdnHost);
  assert.equal(cdn[0]!.authorization, undefined, "the token went to the CDN host");
  assert.ok(seen.filter((s) => s.host !== hub.cdnHost).every((s) => s.authorization === "Bearer hf_public"));
  const meta = JSON.parse(readFileSync(p.path + ".mimo.json", "utf8"));
  assert.equal(meta.sha256, sha256(q4km));
  assert.equal(meta.commit, "0123456789abcdef0123456789abcdef01234567");
  // Pulling again: the file list says the same sha256, nothing is downloaded.
  const again = await pullModel("hf:test/tiny-GGUF:Q4_K_M", opts(cache));
  assert.equal(again.downloaded, false);
  assert.equal(hub.seen.slice(before).filter((s) => s.path.startsWith("/cdn/")).length, 1);
});

test("an interrupted download keeps FILE.partial, and the next pull resumes from its last byte", async () => {
  const cache = freshCache();
  hub.cutAfter = { bytes: 100_000, times: 1 };
  const before = hub.seen.length;
  await assert.rejects(pullModel("hf:test/tiny-GGUF/tiny-Q8_0.gguf", opts(cache, { retries: 0 })), /hf:test\/tiny-GGUF\/tiny-Q8_0\.gguf: the download was interrupted at [\d.]+ kB of 1\.\d MB \(.*\); run the same command again to resume it/);
  const final = join(cache, "hf/test/tiny-GGUF/main/tiny-Q8_0.gguf");
  assert.ok(!existsSync(final), "no file under the final name");
  // What arrived before the cut (the client may lose what was still in flight).
  const kept = readFileSync(final + ".partial").byteLength;
  assert.ok(kept > 0 && kept <= 100_000, `${kept} bytes kept`);
  const p = await pullModel("hf:test/tiny-GGUF/tiny-Q8_0.gguf", opts(cache));
  assert.equal(p.resumedFrom, kept);
  assert.deepEqual(new Uint8Array(readFileSync(final)), q8);
  assert.ok(!existsSync(final + ".partial") && !existsSync(final + ".partial.json"));
  const ranges = hub.seen.slice(before).filter((s) => s.path.startsWith("/cdn/")).map((s) => s.range);
  assert.deepEqual(ranges, [undefined, `bytes=${kept}-`]);
});

test("within one pull, a broken connection is retried from where it stopped", async () => {
  const cache = freshCache();
  hub.cutAfter = { bytes: 300_000, times: 2 };
  const before = hub.seen.length;
  const p = await pullModel("hf:test/tiny-GGUF/tiny-Q8_0.gguf", opts(cache));
  assert.deepEqual(new Uint8Array(readFileSync(p.path)), q8);
  const ranges = hub.seen.slice(before).filter((s) => s.path.startsWith("/cdn/")).map((s) => s.range);
  assert.equal(ranges.length, 3);
  assert.equal(ranges[0], undefined);
  const [a, b] = ranges.slice(1).map((r) => Number(/^bytes=(\d+)-$/.exec(r ?? "")?.[1]));
  assert.ok(a! > 0 && a! <= 300_000 && b! > a! && b! <= a! + 300_000, ranges.join(" "));
  hub.cutAfter = undefined;
});

test("a complete FILE.partial (416 to its range request) is verified and takes its name; a server ignoring Range restarts", async () => {
  const cache = freshCache();
  const final = join(cache, "hf/test/tiny-GGUF/main/tiny-Q8_0.gguf");
  mkdirSync(dirname(final), { recursive: true });
  writeFileSync(final + ".partial", q8);
  writeFileSync(final + ".partial.json", JSON.stringify({ url: "x", size: q8.byteLength, sha256: sha256(q8) }));
  const before = hub.seen.length;
  const p = await pullModel("hf:test/tiny-GGUF/tiny-Q8_0.gguf", opts(cache));
  assert.equal(p.resumedFrom, q8.byteLength);
  assert.deepEqual(new Uint8Array(readFileSync(final)), q8);
  assert.deepEqual(hub.seen.slice(before).filter((s) => s.path.startsWith("/cdn/")).map((s) => s.range), [`bytes=${q8.byteLength}-`]);

  const cache2 = freshCache();
  const final2 = join(cache2, "hf/test/tiny-GGUF/main/tiny-Q8_0.gguf");
  mkdirSync(dirname(final2), { recursive: true });
  writeFileSync(final2 + ".partial", q8.subarray(0, 5000));
  writeFileSync(final2 + ".partial.json", JSON.stringify({ url: "x", size: q8.byteLength, sha256: sha256(q8) }));
  hub.ignoreRange = true;
  try {
    const r = await pullModel("hf:test/tiny-GGUF/tiny-Q8_0.gguf", opts(cache2));
    assert.equal(r.resumedFrom, 0);
    assert.deepEqual(new Uint8Array(readFileSync(final2)), q8);
  } finally {
    hub.ignoreRange = false;
  }
});

test("a wrong sha256 leaves no file under the final name (and no partial)", async () => {
  const cache = freshCache();
  await assert.rejects(pullModel("hf:test/bad-hash", opts(cache)), new RegExp(`hf:test/bad-hash/m\\.gguf: sha256 mismatch: expected 0{64}, got ${sha256(q8)}; the download was discarded`));
  const dir = join(cache, "hf/test/bad-hash/main");
  assert.deepEqual(readdirSync(dir).filter((f) => !f.startsWith(".")), []);
});

test("a gated repository: 401 without a token says to set HF_TOKEN, a wrong token is named, the right one works", async () => {
  const cache = freshCache();
  await assert.rejects(pullModel("hf:test/gated", opts(cache)), /^Error: hf:test\/gated: the hub needs a token for the file list \(401\): the repository is gated or private; set HF_TOKEN to a Hugging Face access token/);
  await assert.rejects(pullModel("hf:test/gated", opts(cache, { token: "hf_wrong" })), /hf:test\/gated: the hub refused HF_TOKEN \(403\) for the file list: check that the token is valid and has access to test\/gated/);
  const p = await pullModel("hf:test/gated", opts(cache, { token: "hf_secret" }));
  assert.deepEqual(new Uint8Array(readFileSync(p.path)), q8);
});

test("a disk too small is refused before downloading; a disk that fills up mid-file is a clear error", async (t) => {
  const cache = freshCache();
  const before = hub.seen.length;
  await assert.rejects(pullModel("hf:test/huge", opts(cache)), /hf:test\/huge\/m\.gguf: needs 1000000\.00 GB more, but only [\d.]+ [MG]B is free in .*; free some space, or set MIMO_MODELS to a cache folder on a larger disk/);
  assert.equal(hub.seen.slice(before).filter((s) => s.path.startsWith("/cdn/")).length, 0);
  // A real ENOSPC without root: the download in progress is /dev/full, which refuses every write.
  if (!existsSync("/dev/full")) {
    t.diagnostic("no /dev/full here: the mid-download ENOSPC case is not exercised");
    return;
  }
  const final = join(cache, "hf/test/tiny-GGUF/main/tiny-Q8_0.gguf");
  mkdirSync(dirname(final), { recursive: true });
  symlinkSync("/dev/full", final + ".partial");
  writeFileSync(final + ".partial.json", JSON.stringify({ url: "x", size: q8.byteLength, sha256: sha256(q8) }));
  await assert.rejects(pullModel("hf:test/tiny-GGUF/tiny-Q8_0.gguf", opts(cache)), /tiny-Q8_0\.gguf: the disk is full \(ENOSPC\) after 0 B of 1\.\d MB in .*tiny-Q8_0\.gguf\.partial; free some space and run the same command again to resume, or set MIMO_MODELS/);
  assert.ok(!existsSync(final));
  assert.ok(lstatSync(final + ".partial").isSymbolicLink());
});

test("offline: a cached model resolves without a request; an uncached one is refused without a request", async () => {
  const cache = freshCache();
  await pullModel("hf:test/tiny-GGUF:Q8_0", opts(cache));
  const before = hub.seen.length;
  const r = await resolveModel("hf:test/tiny-GGUF:Q8_0", opts(cache, { offline: true }));
  assert.equal(r.path, join(cache, "hf/test/tiny-GGUF/main/tiny-Q8_0.gguf"));
  await assert.rejects(resolveModel("hf:test/tiny-GGUF:Q4_K_M", opts(cache, { offline: true })), /hf:test\/tiny-GGUF:Q4_K_M: not in the model cache \(.*\), and offline mode forbids downloading it; run `mimo pull hf:test\/tiny-GGUF:Q4_K_M` first/);
  await assert.rejects(pullModel("hf:test/tiny-GGUF:Q4_K_M", opts(cache, { offline: true })), /offline: pulling needs the network/);
  assert.equal(hub.seen.length, before);
});

test("a URL is pulled as is; a page that is not GGUF is discarded", async () => {
  const cache = freshCache();
  const p = await pullModel(`http://${hub.cdnHost}/files/model.gguf`, opts(cache));
  assert.deepEqual(new Uint8Array(readFileSync(p.path)), q8);
  assert.equal(p.ref, `http://${hub.cdnHost}/files/model.gguf`);
  await assert.rejects(pullModel(`http://${hub.cdnHost}/files/page.gguf`, opts(cache)), /page\.gguf: not a GGUF file \(it starts with "<htm"\); the download was discarded/);
  const listed = await listCached(cache);
  assert.deepEqual(listed.map((m) => m.ref), [`http://${hub.cdnHost}/files/model.gguf`]);
  assert.equal((await removeCached(cache, p.ref)).length, 1);
  assert.ok(!existsSync(p.path));
});

function mimo(args: string[], env: Record<string, string>) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const c = spawn(process.execPath, [entry, ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    c.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    c.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    c.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

test("CLI: run -m hf:... pulls on first use, --offline runs from the cache, list shows it, rm removes it", async () => {
  const cache = freshCache();
  const env = { MIMO_MODELS: cache, HF_ENDPOINT: hub.endpoint };
  const offline = await mimo(["run", "Once", "-m", "hf:test/tiny-GGUF:Q4_K_M", "--offline", "-n", "8", "-q"], env);
  assert.equal(offline.code, 1);
  assert.equal(offline.stderr, `mimo: error: hf:test/tiny-GGUF:Q4_K_M: not in the model cache (${cache}), and offline mode forbids downloading it; run \`mimo pull hf:test/tiny-GGUF:Q4_K_M\` first\n`);

  const first = await mimo(["run", "Once", "-m", "hf:test/tiny-GGUF:Q4_K_M", "-n", "8", "--temp", "0"], env);
  assert.equal(first.code, 0, first.stderr);
  assert.ok(first.stdout.startsWith("Once upon a time"), first.stdout);
  // Piped stderr: no progress bar, one line for the pull, then the timings.
  assert.match(first.stderr, /^pulled hf:test\/tiny-GGUF\/tiny-Q4_K_M\.gguf \(304\.1 kB in [\d.]+ s, sha256 [0-9a-f]{12}\.\.\. verified\) to .*tiny-Q4_K_M\.gguf\nload /);
  assert.ok(!first.stderr.includes("\r"));

  const before = hub.seen.length;
  const again = await mimo(["run", "Once", "-m", "hf:test/tiny-GGUF:Q4_K_M", "--offline", "-n", "8", "--temp", "0", "-q"], env);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.stdout, first.stdout);
  assert.equal(hub.seen.length, before, "--offline made a request");

  const pull = await mimo(["pull", "hf:test/tiny-GGUF:Q8_0"], env);
  assert.equal(pull.code, 0, pull.stderr);
  assert.match(pull.stderr, /^pulled hf:test\/tiny-GGUF\/tiny-Q8_0\.gguf \(1\.\d MB in/);
  const up = await mimo(["pull", "hf:test/tiny-GGUF:Q8_0"], env);
  assert.match(up.stderr, /^hf:test\/tiny-GGUF\/tiny-Q8_0\.gguf: up to date \(1\.\d MB, sha256 [0-9a-f]{12}\.\.\.\) at /);

  const list = await mimo(["list"], env);
  assert.equal(list.code, 0, list.stderr);
  const lines = list.stdout.trimEnd().split("\n");
  assert.equal(lines[0], `cache: ${cache}`);
  assert.match(lines[1]!, /^hf:test\/tiny-GGUF\/tiny-Q4_K_M\.gguf {2}304\.1 kB {2}\d{4}-\d\d-\d\d {2}sha256 [0-9a-f]{12}$/);
  assert.match(lines[2]!, /^hf:test\/tiny-GGUF\/tiny-Q8_0\.gguf {4}1\.\d MB/);

  const rm = await mimo(["rm", "hf:test/tiny-GGUF:Q4_K_M"], env);
  assert.equal(rm.code, 0, rm.stderr);
  assert.equal(rm.stdout, "removed hf:test/tiny-GGUF/tiny-Q4_K_M.gguf (304.1 kB)\n");
  const missing = await mimo(["rm", "hf:test/tiny-GGUF:Q4_K_M"], env);
  assert.equal(missing.code, 1);
  assert.equal(missing.stderr, `mimo: error: hf:test/tiny-GGUF:Q4_K_M: not in the model cache (${cache}); \`mimo list\` shows what is\n`);

  const gated = await mimo(["pull", "hf:test/gated"], env);
  assert.equal(gated.code, 1);
  assert.match(gated.stderr, /^mimo: error: hf:test\/gated: the hub needs a token for the file list \(401\).*set HF_TOKEN/);
  const withToken = await mimo(["pull", "hf:test/gated"], { ...env, HF_TOKEN: "hf_secret" });
  assert.equal(withToken.code, 0, withToken.stderr);
});
