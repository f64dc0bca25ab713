// The demo's logic: pick a model (the bundled one, a URL or a local file), load it with download
// and load progress, then chat (the model's chat template, or the built-in one for its family,
// through the library's ChatSession: each turn prefills only the new message) or complete a
// prompt, streamed with live tok/s and time to first token.
import { loadModel, canUseThreads, listCachedModels, clearModelCache, ChatSession } from "mimo-llm/browser";

const $ = (id) => document.getElementById(id);
let model;
let chat;
let controller;
const mode = () => document.querySelector("input[name=mode]:checked").value;

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
    const warnings = [];
    model = await loadModel(what, {
      threads: Number($("threads").value),
      cache: $("use-cache").checked,
      onProgress,
      onNotice: (m) => status(m),
      onWarning: (m) => warnings.push(m),
    });
    // Resolving the template now says which one the chat uses (a built-in one warns).
    model.chatTemplate;
    $("chat-info").textContent = `chat template: ${warnings.find((w) => /template/.test(w)) ?? "the model's own (tokenizer.chat_template)"}`;
    const name = typeof what === "string" ? what.split("/").pop() : what.name;
    status(`${name}: ${model.config.arch.name}, ${model.config.nLayers} layers, context ${model.contextSize}; loaded in ${((performance.now() - t0) / 1000).toFixed(2)} s`);
    $("backend").textContent = model.backendName.replace(/^wasm-/, "");
    $("generate").disabled = false;
    newChat();
    document.body.dataset.loaded = "true";
  } catch (e) {
    status(`could not load the model: ${e.message}`, true);
  } finally {
    $("progress").hidden = true;
    $("load").disabled = false;
    showCache();
  }
};

function newChat() {
  chat = model ? new ChatSession(model, { system: $("system").value.trim() || undefined }) : undefined;
  $("output").replaceChildren();
  $("turn-info").textContent = "";
  $("reset").disabled = !chat;
}

function setMode() {
  const isChat = mode() === "chat";
  $("chat-options").hidden = $("chat-info").hidden = !isChat;
  $("generate").textContent = isChat ? "Send" : "Generate";
  $("prompt").placeholder = isChat ? "Your message (Enter sends, Shift+Enter for a new line)" : "A prompt to continue";
  if (!isChat && !$("prompt").value) $("prompt").value = "Once upon a time";
  newChat();
}

function turn(role, content) {
  const div = Object.assign(document.createElement("div"), { className: `turn ${role}` });
  div.append(Object.assign(document.createElement("span"), { className: "who", textContent: role }));
  const text = document.createTextNode(content);
  div.append(text);
  $("output").append(div);
  return text;
}

/** Streams a generation into a text node with live tok/s and time to first token; the final stats or undefined when stopped. */
async function stream(it, text) {
  for (const id of ["tps", "ttft"]) $(id).textContent = "–";
  $("ntok").textContent = "0";
  const t0 = performance.now();
  let tFirst = 0;
  let n = 0;
  for (;;) {
    const step = await it.next();
    if (step.done) {
      const s = step.value.stats;
      $("tps").textContent = s.generationTokensPerSecond.toFixed(0);
      $("ttft").textContent = `${s.timeToFirstTokenMs.toFixed(0)} ms`;
      $("ntok").textContent = String(s.generatedTokens);
      return s;
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
}

$("generate").onclick = async () => {
  const input = $("prompt").value;
  const isChat = mode() === "chat";
  if (isChat && !input.trim()) return;
  const out = $("output");
  let text;
  if (isChat) {
    turn("user", input);
    $("prompt").value = "";
    text = turn("assistant", "");
  } else {
    out.replaceChildren(Object.assign(document.createElement("span"), { className: "prompt", textContent: input }));
    text = document.createTextNode("");
    out.append(text);
  }
  controller = new AbortController();
  $("generate").disabled = $("reset").disabled = true;
  $("stop").disabled = false;
  delete document.body.dataset.done;
  const opts = { maxTokens: Number($("max-tokens").value), temperature: Number($("temperature").value), signal: controller.signal };
  try {
    const s = await stream(isChat ? chat.send(input, opts) : model.generate(input, opts), text);
    $("turn-info").textContent = isChat
      ? `this turn: ${s.promptTokensEvaluated} new prompt tokens evaluated of ${s.promptTokens} (the earlier turns stay in the KV cache)` +
        (chat.droppedTurns ? `; ${chat.droppedTurns} oldest turn(s) dropped to fit the context` : "")
      : `prompt: ${s.promptTokens} tokens in ${s.promptMs.toFixed(0)} ms`;
  } catch (e) {
    if (e.name !== "AbortError") text.data += `\n[error: ${e.message}]`;
    else if (isChat) text.parentNode.append(Object.assign(document.createElement("div"), { className: "stopped", textContent: "(stopped: this answer is not kept in the conversation)" }));
  } finally {
    $("generate").disabled = false;
    $("reset").disabled = !isChat;
    $("stop").disabled = true;
    document.body.dataset.done = "true";
  }
};

$("prompt").onkeydown = (e) => {
  if (e.key === "Enter" && !e.shiftKey && mode() === "chat") {
    e.preventDefault();
    if (!$("generate").disabled) $("generate").click();
  }
};
for (const r of document.querySelectorAll("input[name=mode]")) r.onchange = setMode;
$("reset").onclick = newChat;
$("system").onchange = newChat;
$("stop").onclick = () => controller?.abort();
$("cache-clear").onclick = async () => {
  await clearModelCache();
  showCache();
};
setMode();
showCache();
window.demoReady = true;
