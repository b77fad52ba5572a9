// 아무말 대잔치: streams /v1/completions and /v1/chat/completions (OpenAI SSE) into the page.
"use strict";

const $ = (id) => document.getElementById(id);
const SLIDERS = ["temperature", "top_p", "max_tokens", "repetition_penalty"];
let controller = null;
let history = [];
const touched = new Set();  // sliders the user moved; the others are left to the server's presets

// Only the values the user chose: the server applies the same defaults as every other door
// (generate tab: the model's generation_config.json; chat tab: the chat preset).
function params() {
  const p = {};
  for (const name of touched) p[name] = Number($(name).value);
  if ("max_tokens" in p) p.max_tokens = Math.round(p.max_tokens);
  return p;
}

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h.Authorization = "Bearer " + key;
  return h;
}

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "status error" : "status";
}

function busy(on) {
  $("generate").disabled = on;
  $("send").disabled = on;
  $("stop").disabled = !on;
}

// POST `body` to `path` and call onText(piece) for every streamed text piece.
async function streamInto(path, body, onText) {
  controller = new AbortController();
  const res = await fetch(path, { method: "POST", headers: headers(), body: JSON.stringify(body),
                                  signal: controller.signal });
  if (!res.ok) {
    let msg = res.status + " " + res.statusText;
    try { msg = (await res.json()).error.message; } catch (e) { /* keep the status line */ }
    throw new Error(msg);
  }
  const reader = res.body.getReader();
  const decoder = new TextDecoder("utf-8");
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") return;
        const obj = JSON.parse(data);
        if (obj.error) throw new Error(obj.error.message);
        for (const c of obj.choices || []) {
          const piece = c.delta ? c.delta.content : c.text;
          if (piece) onText(piece);
        }
      }
    }
  }
}

async function run(task) {
  busy(true);
  setStatus("생성 중…");
  const t0 = performance.now();
  try {
    await task();
    setStatus("완료 (" + ((performance.now() - t0) / 1000).toFixed(1) + "초)");
  } catch (e) {
    setStatus(e.name === "AbortError" ? "멈췄습니다." : "오류: " + e.message, e.name !== "AbortError");
  } finally {
    controller = null;
    busy(false);
  }
}

function generate() {
  const prompt = $("prompt").value;
  const out = $("output");
  out.textContent = "";
  const head = document.createElement("span");
  head.className = "prompt";
  head.textContent = prompt;
  const tail = document.createElement("span");
  tail.className = "completion";
  out.append(head, tail);
  run(() => streamInto("v1/completions", Object.assign({ prompt, stream: true }, params()),
                       (t) => { tail.textContent += t; }));
}

function addMessage(role, text) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  div.textContent = text;
  $("log").append(div);
  $("log").scrollTop = $("log").scrollHeight;
  return div;
}

function send(ev) {
  ev.preventDefault();
  const text = $("chat-input").value.trim();
  if (!text || controller) return;
  $("chat-input").value = "";
  history.push({ role: "user", content: text });
  addMessage("user", text);
  const bubble = addMessage("assistant", "");
  const turn = { role: "assistant", content: "" };
  run(async () => {
    await streamInto("v1/chat/completions", Object.assign({ messages: history, stream: true }, params()),
                     (t) => { bubble.textContent += t; turn.content += t; });
    history.push(turn);
  });
}

function showTab(tab) {
  for (const t of document.querySelectorAll(".tab")) {
    const on = t === tab;
    t.classList.toggle("active", on);
    t.setAttribute("aria-selected", String(on));
    $(t.dataset.panel).hidden = !on;
  }
}

async function showModel() {
  try {
    const res = await fetch("health");
    const h = await res.json();
    $("model").textContent = "모델: " + h.model;
  } catch (e) {
    $("model").textContent = "서버에 연결할 수 없습니다";
  }
}

for (const name of SLIDERS) {
  $(name).addEventListener("input", () => { touched.add(name); $(name + "-v").textContent = $(name).value; });
}
for (const t of document.querySelectorAll(".tab")) t.addEventListener("click", () => showTab(t));
$("generate").addEventListener("click", generate);
$("stop").addEventListener("click", () => { if (controller) controller.abort(); });
$("chat-form").addEventListener("submit", send);
$("chat-reset").addEventListener("click", () => { history = []; $("log").textContent = ""; });
$("prompt").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) generate(); });
const key = localStorage.getItem("kogpt2-api-key");
if (key) $("api-key").value = key;
$("api-key").addEventListener("change", () => localStorage.setItem("kogpt2-api-key", $("api-key").value));
showModel();
