// Calls `bitnet serve` through OpenAI's official Node SDK (scripts/fetch_openai_sdk.sh) and prints
// one JSON object with what the SDK returned, for python/tests/test_openai_sdk.py to check.
// Usage: node openai_embeddings.cjs SDK_DIR BASE_URL
"use strict";
const [sdkDir, baseURL] = process.argv.slice(2);
const OpenAI = require(sdkDir);

async function main() {
  const client = new OpenAI({ apiKey: "sk-test", baseURL, maxRetries: 0, timeout: 60000 });
  const model = "text-embedding-3-small";
  const inputs = {
    string: "The quick brown fox",
    strings: ["first text", "second, longer text", "third"],
    tokens: [1, 2, 3, 4],
    token_arrays: [[5, 6], [7, 8, 9]],
  };
  const out = {};
  for (const [name, input] of Object.entries(inputs)) {
    // No encoding_format: the SDK asks for base64 and decodes it to floats (its default).
    const r = await client.embeddings.create({ model, input });
    out[name] = {
      model: r.model,
      object: r.object,
      usage: r.usage,
      data: r.data.map((d) => ({ object: d.object, index: d.index, embedding: Array.from(d.embedding) })),
    };
  }
  const asFloat = await client.embeddings.create({ model, input: inputs.strings, encoding_format: "float" });
  out.float = asFloat.data.map((d) => d.embedding);
  const asBase64 = await client.embeddings.create({ model, input: inputs.string, encoding_format: "base64" });
  out.base64_raw = asBase64.data[0].embedding;  // returned as the server sent it
  const dims = await client.embeddings.create({ model, input: inputs.string, dimensions: 8 });
  out.dimensions = Array.from(dims.data[0].embedding);
  try {
    await client.embeddings.create({ model, input: inputs.string, encoding_format: "float", dimensions: 0 });
    out.error = null;
  } catch (e) {
    out.error = { status: e.status, type: e.error && e.error.type, message: e.message };
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack ? e.stack : e) + "\n");
  process.exit(1);
});
