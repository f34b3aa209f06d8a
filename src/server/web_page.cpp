// The page is one self-contained HTML document (no external scripts or styles) kept as a raw
// string literal, so it is compiled into the binary without a build-time generation step.
// `?autotest=TEXT` sends TEXT once the page has loaded and marks <body data-state="done"> when the
// reply is complete; the headless-browser test drives the page through it. It never uses the
// API key the browser stored.
#include "server/web_page.h"

namespace bitnet::server {

const char* const kIndexHtml = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>bitnet.cpp server</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 0; display: flex; height: 100vh; background: #f6f7f9; }
  main { flex: 1; display: flex; flex-direction: column; padding: 1rem; min-width: 0; }
  aside { width: 17rem; padding: 1rem; background: #fff; border-left: 1px solid #ddd; overflow-y: auto; }
  #log { flex: 1; overflow-y: auto; background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: .5rem; }
  .msg { margin: .4rem 0; white-space: pre-wrap; word-wrap: break-word; }
  .user b { color: #1558b0; } .assistant b { color: #0a7a3e; } .error { color: #b00020; }
  form { display: flex; gap: .5rem; margin-top: .5rem; }
  textarea { flex: 1; height: 3.5rem; font: inherit; }
  dl { display: grid; grid-template-columns: auto auto; gap: .2rem .8rem; margin: 0; }
  dt { color: #555; } dd { margin: 0; text-align: right; font-variant-numeric: tabular-nums; }
  label { display: block; margin-top: .8rem; font-size: .9rem; color: #555; }
  input { width: 100%; box-sizing: border-box; }
</style>
</head>
<body data-state="idle">
<main>
  <div id="log"></div>
  <form id="form">
    <textarea id="input" placeholder="Say something (Enter sends, Shift+Enter for a new line)"></textarea>
    <button id="send" type="submit">Send</button>
  </form>
</main>
<aside>
  <h3>Server</h3>
  <dl>
    <dt>tokens/s</dt><dd id="m-tps">–</dd>
    <dt>active slots</dt><dd id="m-active">–</dd>
    <dt>queued</dt><dd id="m-queue">–</dd>
    <dt>requests</dt><dd id="m-requests">–</dd>
    <dt>tokens generated</dt><dd id="m-tokens">–</dd>
  </dl>
  <p id="m-note" style="font-size:.8rem;color:#777"></p>
  <label>API key <input id="key" type="password" autocomplete="off"></label>
  <label>max tokens <input id="max" type="number" value="128" min="1"></label>
  <label>temperature <input id="temp" type="number" value="0.8" min="0" step="0.1"></label>
  <label>system prompt <input id="system"></label>
  <button id="clear" style="margin-top:.8rem">Clear chat</button>
</aside>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const history = [];
// A link with ?autotest= sends a message on its own: it must never do so with the key this
// browser stored for the server (a page elsewhere could link here and spend it).
$("key").value = params.has("autotest") ? "" : (localStorage.getItem("bitnet-key") || "");
$("key").onchange = () => localStorage.setItem("bitnet-key", $("key").value);
if (params.has("max_tokens")) $("max").value = params.get("max_tokens");
if (params.has("temperature")) $("temp").value = params.get("temperature");

function headers() {
  const h = { "Content-Type": "application/json" };
  if ($("key").value) h["Authorization"] = "Bearer " + $("key").value;
  return h;
}

function addMessage(role, text) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  const who = document.createElement("b");
  who.textContent = role + ": ";
  const body = document.createElement("span");
  body.textContent = text;
  div.append(who, body);
  $("log").append(div);
  $("log").scrollTop = $("log").scrollHeight;
  return body;
}

// Reads an SSE response body and calls onData for each "data:" payload.
async function readEvents(response, onData) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n"))
        if (line.startsWith("data: ")) onData(line.slice(6));
    }
  }
}

async function send(text) {
  document.body.dataset.state = "busy";
  $("send").disabled = true;
  history.push({ role: "user", content: text });
  addMessage("user", text);
  const out = addMessage("assistant", "");
  const messages = $("system").value ? [{ role: "system", content: $("system").value }, ...history] : history;
  let reply = "";
  try {
    const response = await fetch("/v1/chat/completions", {
      method: "POST", headers: headers(),
      body: JSON.stringify({ messages, stream: true, max_tokens: Number($("max").value),
                             temperature: Number($("temp").value) }),
    });
    if (!response.ok) {
      const err = await response.json().catch(() => ({}));
      throw new Error((err.error && err.error.message) || response.statusText);
    }
    await readEvents(response, (data) => {
      if (data === "[DONE]") return;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message);
      const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
      if (delta && delta.content) { reply += delta.content; out.textContent = reply; }
    });
    history.push({ role: "assistant", content: reply });
    document.body.dataset.state = "done";
  } catch (e) {
    out.textContent = reply;
    addMessage("error", String(e.message || e)).parentElement.classList.add("error");
    history.pop();
    document.body.dataset.state = "error";
  }
  $("send").disabled = false;
}

$("form").onsubmit = (ev) => {
  ev.preventDefault();
  const text = $("input").value.trim();
  if (!text) return;
  $("input").value = "";
  send(text);
};
$("input").onkeydown = (ev) => {
  if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); $("form").requestSubmit(); }
};
$("clear").onclick = () => { history.length = 0; $("log").textContent = ""; };

// Live metrics: Prometheus text from /metrics (needs --metrics), else slot states from /slots.
let last = null;
function metricValue(text, name) {
  const m = text.match(new RegExp("^" + name + " (\\S+)$", "m"));
  return m ? Number(m[1]) : NaN;
}
async function poll() {
  try {
    const r = await fetch("/metrics", { headers: headers() });
    if (r.ok) {
      const text = await r.text();
      const tokens = metricValue(text, "bitnet_tokens_predicted_total");
      const now = performance.now();
      if (last) $("m-tps").textContent = ((tokens - last.tokens) * 1000 / (now - last.time)).toFixed(1);
      last = { tokens, time: now };
      $("m-active").textContent = metricValue(text, "bitnet_slots_active") + " / " + metricValue(text, "bitnet_slots");
      $("m-queue").textContent = metricValue(text, "bitnet_queue_length");
      $("m-requests").textContent = metricValue(text, "bitnet_requests_total");
      $("m-tokens").textContent = tokens;
      $("m-note").textContent = "";
    } else {
      const s = await fetch("/slots", { headers: headers() });
      if (s.ok) {
        const slots = await s.json();
        $("m-active").textContent = slots.filter((x) => x.is_processing).length + " / " + slots.length;
      }
      $("m-note").textContent = r.status === 501 ? "start the server with --metrics for throughput" :
                                r.status === 401 ? "enter the API key" : "";
    }
  } catch (e) { /* server restarting: try again at the next tick */ }
}
poll();
setInterval(poll, 1000);
if (params.has("autotest")) send(params.get("autotest"));
</script>
</body>
</html>
)HTML";

}  // namespace bitnet::server
