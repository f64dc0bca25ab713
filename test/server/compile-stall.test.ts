// A request with a new JSON schema on a 151,936-token vocabulary compiles its grammar for seconds;
// the server's other streams must keep flowing meanwhile. Observed through state: chunks of a
// running stream that arrive while the model reports a grammar compiling. No timing decides.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startServer, MODEL_ID } from "./helpers.ts";
import { tinyQwenVocabModel } from "../grammar/helpers.ts";

test("a new schema compiles while another stream keeps sending chunks; the constrained answer is valid", async () => {
  const s = await startServer({}, { parallel: 2, contextSize: 1024 }, await tinyQwenVocabModel());
  try {
    let chunks = 0;
    let whileCompiling = 0;
    let compilingSeen = false;
    let started!: () => void;
    const first = new Promise<void>((r) => (started = r));
    const other = (async () => {
      const stream = await s.client.completions.create({ model: MODEL_ID, prompt: "Once upon a time", max_tokens: 300, temperature: 0, stream: true, ignore_eos: true } as never);
      for await (const _ of stream as unknown as AsyncIterable<unknown>) {
        chunks++;
        if (chunks === 1) started();
        if (s.model.grammarsCompiling > 0) {
          compilingSeen = true;
          whileCompiling++;
        }
      }
    })();
    await first;
    const schema = { type: "object", properties: { city: { type: "string", maxLength: 20 }, days: { type: "integer", minimum: 1, maximum: 7 } }, required: ["city", "days"], additionalProperties: false };
    const r = await s.client.chat.completions.create({
      model: MODEL_ID,
      messages: [{ role: "user", content: "Weather?" }],
      max_tokens: 60,
      seed: 1,
      response_format: { type: "json_schema", json_schema: { name: "weather", schema } },
    });
    const v = JSON.parse(r.choices[0]!.message.content!);
    assert.equal(typeof v.city, "string");
    assert.ok(Number.isInteger(v.days) && v.days >= 1 && v.days <= 7);
    await other;
    assert.ok(compilingSeen && whileCompiling > 0, `${whileCompiling} of the other stream's ${chunks} chunks arrived while the grammar compiled`);
  } finally {
    await s.close();
  }
});
