// Structured output and tool calls through OpenAI's official Node SDK (scripts/fetch_openai_sdk.sh)
// against `bitnet serve`; prints one JSON object with what the SDK returned, for
// python/tests/test_openai_sdk.py to check. Usage: node openai_structured.cjs SDK_DIR BASE_URL
"use strict";
const [sdkDir, baseURL] = process.argv.slice(2);
const OpenAI = require(sdkDir);

const schema = {
  type: "object",
  properties: {
    name: { type: "string", maxLength: 10 },
    age: { type: "integer", minimum: 0, maximum: 120 },
    tags: { type: "array", items: { type: "string", enum: ["x", "y", "z"] }, maxItems: 3 },
  },
  required: ["name", "age", "tags"],
  additionalProperties: false,
};
const tools = [
  {
    type: "function",
    function: {
      name: "get_weather",
      description: "Current weather of a city",
      parameters: {
        type: "object",
        properties: { city: { type: "string", maxLength: 16 }, unit: { type: "string", enum: ["celsius", "fahrenheit"] } },
        required: ["city", "unit"],
        additionalProperties: false,
      },
    },
  },
  {
    type: "function",
    function: {
      name: "add",
      parameters: {
        type: "object",
        properties: { a: { type: "integer", minimum: -999, maximum: 999 }, b: { type: "integer", minimum: -999, maximum: 999 } },
        required: ["a", "b"],
        additionalProperties: false,
      },
    },
  },
];

async function main() {
  const client = new OpenAI({ apiKey: "sk-test", baseURL, maxRetries: 0, timeout: 120000 });
  const model = "gpt-4o-mini";
  const messages = [{ role: "user", content: "Describe a person as JSON." }];
  const response_format = { type: "json_schema", json_schema: { name: "person", schema, strict: true } };
  const out = { schema: [], stream: null, tools: [], tool_stream: null, error: null };
  for (const seed of [1, 2, 3]) {
    const r = await client.chat.completions.create({ model, messages, response_format, seed, max_tokens: 400 });
    out.schema.push({ content: r.choices[0].message.content, finish_reason: r.choices[0].finish_reason });
  }
  // Streamed: the text deltas put together.
  const stream = await client.chat.completions.create({ model, messages, response_format, seed: 4, max_tokens: 400, stream: true });
  let text = "";
  for await (const chunk of stream) text += (chunk.choices[0] && chunk.choices[0].delta.content) || "";
  out.stream = text;

  const ask = [{ role: "user", content: "What is the weather in Paris?" }];
  for (const seed of [1, 2, 3]) {
    const r = await client.chat.completions.create({ model, messages: ask, tools, tool_choice: "required", seed, max_tokens: 400 });
    const m = r.choices[0].message;
    out.tools.push({ content: m.content, tool_calls: m.tool_calls, finish_reason: r.choices[0].finish_reason });
  }
  // The SDK's stream helper puts the tool-call deltas together into a final message.
  const runner = client.chat.completions.stream({
    model, messages: ask, tools, seed: 5, max_tokens: 400,
    tool_choice: { type: "function", function: { name: "add" } },
  });
  const final = await runner.finalChatCompletion();
  out.tool_stream = { message: final.choices[0].message, finish_reason: final.choices[0].finish_reason };
  // The next turn: the call and its result go back to the model.
  const call = out.tools[0].tool_calls[0];
  const next = await client.chat.completions.create({
    model, tools, max_tokens: 5, seed: 6,
    messages: [...ask, { role: "assistant", content: null, tool_calls: [call] }, { role: "tool", tool_call_id: call.id, content: "22 C" }],
  });
  out.next_turn = next.choices[0].finish_reason;
  try {
    await client.chat.completions.create({
      model, messages, response_format: { type: "json_schema", json_schema: { name: "bad", schema: { type: "string", format: "ipv4" } } },
    });
  } catch (e) {
    out.error = { status: e.status, type: e.error && e.error.type, message: e.message };
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack ? e.stack : e) + "\n");
  process.exit(1);
});
