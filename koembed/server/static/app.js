// The koembed search page: calls GET /info and POST /search of the server that served it. No libraries.
"use strict";

const MODE_LABELS = { hybrid: "하이브리드 (hybrid)", dense: "의미 (dense)", lexical: "키워드 (lexical)" };
const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "koembed-api-key";

function headers(json) {
  const h = {};
  if (json) h["Content-Type"] = "application/json";
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) h["Authorization"] = "Bearer " + token;
  return h;
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;  // never innerHTML: texts come from the index
  return node;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function call(method, path, body) {
  const res = await fetch(path, { method, headers: headers(body !== undefined),
    body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  try { data = await res.json(); } catch (e) { data = null; }
  if (res.status === 401) {
    $("auth").hidden = false;
    $("token").focus();
  }
  if (!res.ok) {
    const msg = data && data.error ? data.error.message : res.status + " " + res.statusText;
    throw new Error(msg);
  }
  return data;
}

function renderModes(modes, chosen) {
  const box = $("modes");
  box.replaceChildren();
  for (const mode of modes) {
    const label = el("label");
    const input = el("input");
    input.type = "radio";
    input.name = "mode";
    input.value = mode;
    input.checked = mode === chosen;
    label.append(input, document.createTextNode(MODE_LABELS[mode] || mode));
    box.append(label);
  }
}

async function loadInfo() {
  try {
    const info = await call("GET", "/info");
    $("auth").hidden = !info.auth;
    $("model").textContent = "모델 " + info.model.name.split("/").pop() + " · " + info.model.dim + "차원 · 색인 " +
      info.indexes.map((i) => i.name + " (" + i.count.toLocaleString("ko-KR") + "건)").join(", ");
    const modes = info.modes.filter((m) => info.indexes.some((i) => i.modes.includes(m)));
    renderModes(modes, info.indexes.length ? info.indexes[0].default_mode : modes[0]);
    $("k").max = info.limits.max_k;
    const select = $("index");
    select.replaceChildren(el("option", "", "전체 (all)"));
    select.firstChild.value = "";
    for (const i of info.indexes) {
      const opt = el("option", "", i.name);
      opt.value = i.name;
      select.append(opt);
    }
    $("index-label").hidden = info.indexes.length < 2;
    showError("");
  } catch (e) {
    showError(e.message);
  }
}

function renderHit(hit, rank) {
  const li = el("li", "hit");
  li.append(el("p", "text", hit.text));
  const meta = el("div", "meta");
  const score = el("span");
  score.append(el("span", "rank", "#" + rank), el("span", "score", hit.score === null ? "–" : hit.score.toFixed(4)));
  meta.append(score);
  const signals = Object.entries(hit.scores || {}).filter(([, value]) => value !== null);
  if (signals.length > 1) {  // the signals a fused score came from (the score itself is shown above)
    for (const [name, value] of signals) {
      if (value !== hit.score) meta.append(el("span", "chip", name + " " + value.toFixed(4)));
    }
  }
  meta.append(el("span", "chip", "id " + hit.id));
  for (const [key, value] of Object.entries(hit.metadata || {})) {
    meta.append(el("span", "chip", key + ": " + (typeof value === "string" ? value : JSON.stringify(value))));
  }
  li.append(meta);
  return li;
}

function renderResults(data) {
  const out = $("results");
  out.replaceChildren();
  let total = 0;
  for (const idx of data.indexes) {
    const hits = idx.results[0].hits;
    total += hits.length;
    const section = el("section", "index");
    section.append(el("h2", "", idx.name + " · " + hits.length + "건 · " + idx.mode + " · generation " +
      idx.generation));
    const list = el("ol", "hits");
    hits.forEach((h, i) => list.append(renderHit(h, i + 1)));
    section.append(list);
    out.append(section);
  }
  const modes = [...new Set(data.indexes.map((i) => i.mode))].join(", ");
  $("status").textContent = "검색 방식 " + modes + " · 결과 " + total + "건";
}

async function search(event) {
  event.preventDefault();
  const query = $("query").value.trim();
  if (!query) return;
  const checked = document.querySelector("input[name=mode]:checked");
  const body = { queries: [query], k: Number($("k").value) || 10 };
  if (checked) body.mode = checked.value;
  if ($("index").value) body.index = $("index").value;
  $("go").disabled = true;
  $("status").textContent = "검색 중…";
  try {
    renderResults(await call("POST", "/search", body));
    showError("");
  } catch (e) {
    $("status").textContent = "";
    showError(e.message);
  } finally {
    $("go").disabled = false;
  }
}

function saveToken() {
  const token = $("token").value.trim();
  if (token) sessionStorage.setItem(TOKEN_KEY, token); else sessionStorage.removeItem(TOKEN_KEY);
  $("token").value = "";
  loadInfo();
}

document.addEventListener("DOMContentLoaded", () => {
  $("search").addEventListener("submit", search);
  $("save-token").addEventListener("click", saveToken);
  $("token").addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); saveToken(); } });
  loadInfo();
});
