// The demo's logic: pick a model (the bundled one, a URL or a local file), load it with download
// and load progress, then stream a completion with live tok/s and time to first token.
import { loadModel, canUseThreads, listCachedModels, clearModelCache } from "mimo-llm/browser";

const $ = (id) => document.getElementById(id);
let model;
let controller;

const isolated = canUseThreads();
const cores = navigator.hardwareConcurrency || 1;
$("env").innerHTML = isolated
  ? `cross-origin isolated · ${cores} cores`
  : `<span class="warn">not cross-origin isolated: 1 thread</span> (serve with COOP/COEP for more)`;
for (let t = 1; t <= (isolated ? Math.min(cores, 16) : 1); t++) $("threads").add(new Option(String(t), String(t), false, t === Math.min(cores, 2)));

const fmtBytes = (n) => (n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${(n / 1e3).toFixed(0)} kB`);

async function showCache() {
  const list = await listCachedModels();
  $("cache-list").textContent = list.length
    ? `cached: ${list.map((m) => `${m.url.split("/").pop()} (${fmtBytes(m.bytes)})`).join(", ")}`
    : "cache: empty";
}

function status(text, error = false) {
  $("load-status").textContent = text;
  $("load-status").className = error ? "status error" : "status";
}

function onProgress(p) {
  const bar = $("progress");
  bar.hidden = false;
  if (p.phase === "download") {
    if (p.fromCache) return status(`read ${fmtBytes(p.bytesLoaded)} from the browser cache (no download)`);
    const total = p.bytesTotal ? ` of ${fmtBytes(p.bytesTotal)}` : "";
    const eta = p.etaSeconds !== undefined ? `, ${p.etaSeconds.toFixed(1)} s left` : "";
    bar.value = p.bytesTotal ? p.bytesLoaded / p.bytesTotal : 0;
    status(`downloading ${fmtBytes(p.bytesLoaded)}${total} at ${fmtBytes(p.bytesPerSecond)}/s${eta}`);
  } else {
    bar.value = p.bytesTotal ? p.bytesLoaded / p.bytesTotal : 0;
    status(`placing weights: ${p.tensorsLoaded} of ${p.tensorsTotal} tensors`);
  }
}

$("load").onclick = async () => {
  const source = document.querySelector("input[name=source]:checked").value;
  let what;
  if (source === "bundled") what = "/models/stories260K.gguf";
  else if (source === "url") what = $("model-url").value.trim();
  else what = $("model-file").files[0];
  if (!what) return status(source === "url" ? "enter a model URL first" : "choose a .gguf file first", true);
  $("load").disabled = $("generate").disabled = true;
  try {
    await model?.dispose();
    model = undefined;
    const t0 = performance.now();
    model = await loadModel(what, {
      threads: Number($("threads").value),
      cache: $("use-cache").checked,
      onProgress,
      onNotice: (m) => status(m),
    });
    const name = typeof what === "string" ? what.split("/").pop() : what.name;
    status(`${name}: ${model.config.arch.name}, ${model.config.nLayers} layers, context ${model.contextSize}; loaded in ${((performance.now() - t0) / 1000).toFixed(2)} s`);
    $("backend").textContent = model.backendName.replace(/^wasm-/, "");
    $("generate").disabled = false;
    document.body.dataset.loaded = "true";
  } catch (e) {
    status(`could not load the model: ${e.message}`, true);
  } finally {
    $("progress").hidden = true;
    $("load").disabled = false;
    showCache();
  }
};

$("generate").onclick = async () => {
  const out = $("output");
  const prompt = $("prompt").value;
  out.replaceChildren(Object.assign(document.createElement("span"), { className: "prompt", textContent: prompt }));
  const text = document.createTextNode("");
  out.append(text);
  for (const id of ["tps", "ttft"]) $(id).textContent = "–";
  $("ntok").textContent = "0";
  controller = new AbortController();
  $("generate").disabled = true;
  $("stop").disabled = false;
  delete document.body.dataset.done;
  const t0 = performance.now();
  let tFirst = 0;
  let n = 0;
  try {
    const it = model.generate(prompt, {
      maxTokens: Number($("max-tokens").value),
      temperature: Number($("temperature").value),
      signal: controller.signal,
    });
    for (;;) {
      const step = await it.next();
      if (step.done) {
        const s = step.value.stats;
        $("tps").textContent = s.generationTokensPerSecond.toFixed(0);
        $("ttft").textContent = `${s.timeToFirstTokenMs.toFixed(0)} ms`;
        $("ntok").textContent = String(s.generatedTokens);
        break;
      }
      text.data += step.value.text;
      if (step.value.token < 0) continue;
      n++;
      const t = performance.now();
      if (n === 1) {
        tFirst = t;
        $("ttft").textContent = `${(t - t0).toFixed(0)} ms`;
      } else {
        $("tps").textContent = ((n - 1) / ((t - tFirst) / 1000)).toFixed(0);
      }
      $("ntok").textContent = String(n);
    }
  } catch (e) {
    if (e.name !== "AbortError") text.data += `\n[error: ${e.message}]`;
  } finally {
    $("generate").disabled = false;
    $("stop").disabled = true;
    document.body.dataset.done = "true";
  }
};

$("stop").onclick = () => controller?.abort();
$("cache-clear").onclick = async () => {
  await clearModelCache();
  showCache();
};
showCache();
window.demoReady = true;
