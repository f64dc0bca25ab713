// The demo page (examples/browser-chat, `npm run demo`) in headless Chromium, driven as a user
// would: load the bundled model, generate, watch the text stream in with tok/s and time to first
// token shown. A screenshot is taken and checked (decoded by the browser itself): the output and
// the tok/s figure must be visibly drawn, not just present in the DOM.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type Page } from "playwright-core";
import { startDemoServer, type DemoServer } from "../../examples/browser-chat/serve.ts";
import { STORIES_DIR } from "../helpers/testdata.ts";
import { ChatSession, loadModel } from "../../src/index.ts";

const CHROMIUM = process.env.MIMO_CHROMIUM ?? "/usr/bin/chromium";
const haveBrowser = existsSync(CHROMIUM);
if (!haveBrowser && process.env.CI) throw new Error(`Chromium not found at ${CHROMIUM}; .ci/run installs Debian's chromium package`);
const skip = haveBrowser ? false : `no Chromium at ${CHROMIUM} (apt-get install chromium, or set MIMO_CHROMIUM)`;
const goldenText = readFileSync(`${STORIES_DIR}/golden.greedy.txt`, "utf8").replace(/\n$/, "");
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const SHOT = process.env.MIMO_DEMO_SCREENSHOT ?? join(tmpdir(), "mimo-demo.png");

let browser: Browser;
before(async () => {
  if (skip) return;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});
after(async () => {
  await browser?.close();
});

/** Share of pixels in a PNG darker than the page's light backgrounds (decoded by Chromium). */
function inkShare(page: Page, png: Buffer): Promise<number> {
  return page.evaluate(async (b64) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const bmp = await createImageBitmap(new Blob([bytes], { type: "image/png" }));
    const c = new OffscreenCanvas(bmp.width, bmp.height);
    const g = c.getContext("2d")!;
    g.drawImage(bmp, 0, 0);
    const d = g.getImageData(0, 0, bmp.width, bmp.height).data;
    let dark = 0;
    for (let i = 0; i < d.length; i += 4) if (0.3 * d[i]! + 0.59 * d[i + 1]! + 0.11 * d[i + 2]! < 110) dark++;
    return dark / (d.length / 4);
  }, png.toString("base64"));
}

async function openDemo(demo: DemoServer): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
  page.on("pageerror", (e) => console.error(`demo page error: ${e.message}`));
  await page.goto(demo.url);
  await page.waitForFunction(() => (window as unknown as { demoReady?: boolean }).demoReady === true);
  return page;
}

test("demo page: load the bundled model, stream a completion, tok/s and time to first token shown (screenshot checked)", { skip, timeout: 180_000 }, async (t) => {
  const demo = await startDemoServer({ port: 0 });
  try {
    const page = await openDemo(demo);
    assert.match(await page.textContent("#env") ?? "", /cross-origin isolated · \d+ cores/);
    await page.selectOption("#threads", "2");
    await page.click("#load");
    await page.waitForSelector("body[data-loaded=true]", { timeout: 120_000 });
    assert.match(await page.textContent("#load-status") ?? "", /stories260K\.gguf: llama, 5 layers, context 512; loaded in [\d.]+ s/);
    assert.match(await page.textContent("#backend") ?? "", /^relaxed-simd(-vnni)? x2$/);

    // Completion mode, greedy from an empty prompt: llama2.c's golden story, streamed token by token.
    await page.check("input[name=mode][value=complete]");
    await page.fill("#prompt", "");
    await page.fill("#temperature", "0");
    await page.fill("#max-tokens", "256");
    const emptyInk = await inkShare(page, await page.locator("#output").screenshot());
    await page.evaluate(() => {
      const w = window as unknown as { updates: number };
      w.updates = 0;
      new MutationObserver(() => w.updates++).observe(document.getElementById("output")!, { characterData: true, subtree: true, childList: true });
    });
    await page.click("#generate");
    await page.waitForSelector("body[data-done=true]", { timeout: 120_000 });
    assert.equal(await page.textContent("#output"), goldenText);
    const updates = await page.evaluate(() => (window as unknown as { updates: number }).updates);
    assert.ok(updates > 50, `the text arrived in ${updates} updates (streamed, not all at once)`);
    const tps = Number(await page.textContent("#tps"));
    assert.ok(Number.isFinite(tps) && tps > 0, `tok/s shown: ${tps}`);
    assert.match(await page.textContent("#ttft") ?? "", /^\d+ ms$/);
    assert.equal(await page.textContent("#ntok"), "256");

    const shot = await page.screenshot({ fullPage: true });
    writeFileSync(SHOT, shot);
    t.diagnostic(`screenshot: ${SHOT}`);
    const outInk = await inkShare(page, await page.locator("#output").screenshot());
    const tpsInk = await inkShare(page, await page.locator("#tps").screenshot());
    t.diagnostic(`ink: output ${(outInk * 100).toFixed(2)}%, tok/s ${(tpsInk * 100).toFixed(2)}%, empty output ${(emptyInk * 100).toFixed(3)}%`);
    assert.ok(outInk > 0.02, `the output text is drawn (${(outInk * 100).toFixed(1)}% ink)`);
    assert.ok(tpsInk > 0.005, `the tok/s figure is drawn (${(tpsInk * 100).toFixed(1)}% ink)`);
    assert.ok(emptyInk < 0.002, `the empty output box has no ink (${(emptyInk * 100).toFixed(2)}%): the check tells drawn text from none`);
    await page.close();
  } finally {
    await demo.close();
  }
});

test("demo page chat: the model's template (or the built-in one), two turns streamed, the second prefills only the new message; same answers as the library in Node", { skip, timeout: 180_000 }, async () => {
  // The library in Node, the same conversation: the page must answer exactly this (greedy).
  const node = await loadModel(join(ROOT, "models/stories260K.gguf"), { threads: 1, onWarning: () => {} });
  const expected: string[] = [];
  try {
    const session = new ChatSession(node);
    for (const m of ["Hi", "And then?"]) {
      const it = session.send(m, { temperature: 0, maxTokens: 40 });
      let step;
      while (!(step = await it.next()).done);
      expected.push(step.value.text);
    }
  } finally {
    await node.dispose();
  }
  assert.ok(expected.every((t) => t.length > 0), "the model answers something");
  const demo = await startDemoServer({ port: 0 });
  try {
    const page = await openDemo(demo);
    assert.equal(await page.isChecked("input[name=mode][value=chat]"), true, "chat is the default mode");
    await page.selectOption("#threads", "1");
    await page.click("#load");
    await page.waitForSelector("body[data-loaded=true]", { timeout: 120_000 });
    // stories260K has no template of its own: the page says which one stands in.
    assert.match(await page.textContent("#chat-info") ?? "", /chat template: the model has no chat template; using the built-in \w+ template/);
    await page.fill("#temperature", "0");
    await page.fill("#max-tokens", "40");
    for (const [i, m] of ["Hi", "And then?"].entries()) {
      await page.fill("#prompt", m);
      await page.press("#prompt", "Enter");
      await page.waitForSelector(`#output .turn.assistant:nth-of-type(${2 * (i + 1)})`);
      await page.waitForSelector("body[data-done=true]", { timeout: 120_000 });
      const turns = await page.$$eval("#output .turn", (ds) => ds.map((d) => ({ role: d.className.replace("turn ", ""), text: d.lastChild?.textContent ?? "" })));
      assert.deepEqual(turns.at(-2), { role: "user", text: m });
      assert.deepEqual(turns.at(-1), { role: "assistant", text: expected[i] });
      assert.equal(await page.inputValue("#prompt"), "", "the message box is cleared");
      const info = await page.textContent("#turn-info") ?? "";
      const [, fresh, total] = /this turn: (\d+) new prompt tokens evaluated of (\d+)/.exec(info) ?? [];
      assert.ok(fresh && total, info);
      if (i === 0) assert.equal(fresh, total);
      else assert.ok(Number(fresh) < Number(total) / 2, `second turn: ${info}`);
    }
    // A new chat forgets the conversation.
    await page.click("#reset");
    assert.equal(await page.$$eval("#output .turn", (ds) => ds.length), 0);
    await page.close();
  } finally {
    await demo.close();
  }
});

test("demo page without cross-origin isolation: says so and runs on 1 thread", { skip, timeout: 120_000 }, async () => {
  const demo = await startDemoServer({ port: 0, isolation: false });
  try {
    const page = await openDemo(demo);
    assert.match(await page.textContent("#env") ?? "", /not cross-origin isolated: 1 thread/);
    await page.click("#load");
    await page.waitForSelector("body[data-loaded=true]", { timeout: 120_000 });
    assert.match(await page.textContent("#backend") ?? "", / x1$/);
    await page.check("input[name=mode][value=complete]");
    await page.fill("#max-tokens", "20");
    await page.click("#generate");
    await page.waitForSelector("body[data-done=true]", { timeout: 60_000 });
    assert.equal(await page.textContent("#ntok"), "20");
    assert.ok((await page.textContent("#output"))!.length > "Once upon a time".length);
    await page.close();
  } finally {
    await demo.close();
  }
});
