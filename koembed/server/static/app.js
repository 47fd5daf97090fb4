// The koembed search page: calls GET /info and POST /search of the server that served it. No libraries.
// The query, mode, k, index and filter live in the URL (?q=...&mode=...), so a search can be shared and Back works.
"use strict";

const MODE_LABELS = { hybrid: "하이브리드 (hybrid)", dense: "의미 (dense)", lexical: "키워드 (lexical)" };
const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "koembed-api-key";
const SNIPPET = 180;  // characters shown around the matched words; the rest behind "전체 보기"

// Korean messages for the API's error codes; the server's own (English) message follows in small print.
const ERROR_TEXT = {
  invalid_api_key: "API 키가 없거나 틀렸습니다. 위 칸에 키를 입력하세요.",
  too_long: "검색어가 너무 깁니다.",
  empty: "검색어가 비어 있습니다.",
  too_many: "요청이 너무 큽니다.",
  out_of_range: "결과 수가 허용 범위를 벗어났습니다.",
  unsupported: "이 색인에서는 그 검색 방식을 쓸 수 없습니다.",
  unknown_index: "그런 이름의 색인이 없습니다.",
  no_index: "이 서버에는 색인이 없습니다.",
  json_invalid: "요청 형식이 잘못되었습니다.",
};
const STATUS_TEXT = { 401: ERROR_TEXT.invalid_api_key, 413: "요청이 너무 큽니다.",
  503: "색인이 갱신되는 중입니다. 잠시 후 다시 검색하세요.", 500: "서버에서 오류가 났습니다. 서버 로그를 확인하세요." };
const OFFLINE = "서버에 연결할 수 없습니다. koembed serve가 실행 중인지, 주소가 맞는지 확인하세요.";

class ApiFailure extends Error {
  constructor(korean, detail, status) { super(korean); this.detail = detail; this.status = status; }
}

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

function showError(message, detail) {
  const box = $("error");
  box.replaceChildren();
  if (message) {
    box.append(el("span", "", message));
    if (detail) box.append(el("small", "detail", detail));
  }
  box.hidden = !message;
}

async function call(method, path, body) {
  let res;
  try {
    res = await fetch(path, { method, headers: headers(body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {  // the browser's "Failed to fetch": the server is down or unreachable
    throw new ApiFailure(OFFLINE, "", 0);
  }
  let data = null;
  try { data = await res.json(); } catch (e) { data = null; }
  if (res.status === 401) {
    $("auth").hidden = false;
    $("token").focus();
  }
  if (!res.ok) {
    const err = data && data.error ? data.error : {};
    const korean = ERROR_TEXT[err.code] || STATUS_TEXT[res.status] || "요청이 거부되었습니다 (" + res.status + ").";
    throw new ApiFailure(korean, err.message || res.status + " " + res.statusText, res.status);
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
  const info = await call("GET", "/info");
  $("auth").hidden = !info.auth;
  $("model").textContent = "모델 " + info.model.name + " · " + info.model.dim + "차원 · 색인 " +
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
  return info;
}

// -- snippets ----------------------------------------------------------------------------------------------
// The window of SNIPPET characters holding the most highlighted characters (the start of the text when none).
function snippetWindow(text, spans) {
  if (text.length <= SNIPPET || !spans.length) return [0, Math.min(text.length, SNIPPET)];
  let best = [0, -1];
  for (const [s] of spans) {
    const start = Math.max(0, Math.min(s - 30, text.length - SNIPPET));
    const end = start + SNIPPET;
    let covered = 0;
    for (const [a, b] of spans) covered += Math.max(0, Math.min(b, end) - Math.max(a, start));
    if (covered > best[1]) best = [start, covered];
  }
  return [best[0], best[0] + SNIPPET];
}

// Text from..to with the spans inside it marked; highlights are [start, end) in code points, as Python counts.
function marked(chars, spans, from, to) {
  const frag = document.createDocumentFragment();
  let at = from;
  for (const [a, b] of spans) {
    const s = Math.max(a, from), e = Math.min(b, to);
    if (e <= s) continue;
    if (s > at) frag.append(chars.slice(at, s).join(""));
    frag.append(el("mark", "", chars.slice(s, e).join("")));
    at = e;
  }
  if (at < to) frag.append(chars.slice(at, to).join(""));
  return frag;
}

function renderText(hit) {
  const chars = Array.from(hit.text);  // code points, like the server's spans
  const spans = hit.highlights || [];
  const p = el("p", "text");
  const [from, to] = snippetWindow(chars, spans);
  if (from > 0) p.append("…");
  p.append(marked(chars, spans, from, to));
  if (to < chars.length) p.append("…");
  if (from === 0 && to === chars.length) return [p];
  const more = el("button", "more", "전체 보기");
  more.type = "button";
  more.addEventListener("click", () => {
    p.replaceChildren(marked(chars, spans, 0, chars.length));
    more.remove();
  });
  return [p, more];
}

// -- scores -------------------------------------------------------------------------------------------------
function fmt(v) { return v === null || v === undefined ? "–" : v.toFixed(4); }

function explain(hit, mode) {
  const s = hit.scores || {};
  if (mode === "dense") return "의미 점수: 질의와 문서 벡터의 코사인 유사도 (1에 가까울수록 뜻이 비슷함)";
  if (mode === "lexical") return "키워드 점수: BM25 (검색어의 낱말이 많이, 드문 낱말일수록 높음; 상한 없음)";
  return "종합 점수: 의미(" + fmt(s.dense) + ")·키워드(" + fmt(s.lexical) + ") 점수를 이 결과 목록 안에서 맞춘 뒤 " +
    "모델의 가중치로 합친 값";
}

function renderHit(hit, rank, mode) {
  const li = el("li", "hit");
  li.append(...renderText(hit));
  const meta = el("div", "meta");
  const score = el("span");
  score.append(el("span", "rank", "#" + rank), el("span", "score", fmt(hit.score)));
  meta.append(score);
  const signals = Object.entries(hit.scores || {}).filter(([, value]) => value !== null);
  if (signals.length > 1) {  // the signals a fused score came from (the score itself is shown above)
    for (const [name, value] of signals) {
      if (value !== hit.score) meta.append(el("span", "chip", name + " " + fmt(value)));
    }
  }
  meta.append(el("span", "chip", "id " + hit.id));
  for (const [key, value] of Object.entries(hit.metadata || {})) {
    meta.append(el("span", "chip", key + ": " + (typeof value === "string" ? value : JSON.stringify(value))));
  }
  li.append(meta, el("p", "why", explain(hit, mode)));
  return li;
}

function emptyHint(mode, filtered) {
  const box = el("div", "empty panel");
  box.append(el("p", "", "결과가 없습니다. 검색어의 철자를 확인해 보세요."));
  const tips = el("ul");
  if (mode === "lexical") tips.append(el("li", "", "키워드 검색은 글자가 겹치는 문서만 찾습니다. 의미 검색은 뜻이 비슷한 문서를 찾습니다."));
  if (filtered) tips.append(el("li", "", "필터에 맞는 문서가 없을 수 있습니다. 필터를 비워 보세요."));
  box.append(tips);
  if (mode !== "dense" && document.querySelector("#modes input[value=dense]")) {
    const b = el("button", "", "의미 검색(dense)으로 다시 찾기");
    b.type = "button";
    b.id = "try-dense";
    b.addEventListener("click", () => { setMode("dense"); run(true); });
    box.append(b);
  }
  return box;
}

function renderResults(data, filtered) {
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
    hits.forEach((h, i) => list.append(renderHit(h, i + 1, idx.mode)));
    section.append(list);
    out.append(section);
  }
  const modes = [...new Set(data.indexes.map((i) => i.mode))].join(", ");
  $("status").textContent = "검색 방식 " + modes + " · 결과 " + total + "건";
  if (!total) out.prepend(emptyHint(data.indexes.length ? data.indexes[0].mode : "", filtered));
}

// -- filters: "topic=날씨, year=2024" -> {"topic": "날씨", "year": [2024, "2024"]} -----------------------------
function parseFilters(text) {
  const filters = {};
  for (const part of text.split(",").map((s) => s.trim()).filter(Boolean)) {
    const eq = part.indexOf("=");
    if (eq <= 0) throw new ApiFailure("필터는 이름=값 꼴로 쓰세요 (여럿이면 쉼표로 나눔): " + part, "", 0);
    const key = part.slice(0, eq).trim(), raw = part.slice(eq + 1).trim();
    let value = raw;  // a number or true/false also matches the same written as text
    if (/^-?\d+(\.\d+)?$/.test(raw)) value = [Number(raw), raw];
    else if (raw === "true" || raw === "false") value = [raw === "true", raw];
    filters[key] = value;
  }
  return filters;
}

// -- URL state ----------------------------------------------------------------------------------------------
function setMode(mode) {
  const input = document.querySelector("#modes input[value=" + CSS.escape(mode) + "]");
  if (input) input.checked = true;
}

function stateFromForm() {
  const checked = document.querySelector("input[name=mode]:checked");
  return { q: $("query").value.trim(), mode: checked ? checked.value : "", k: $("k").value,
           index: $("index").value, filter: $("filter").value.trim() };
}

function applyState(params) {
  $("query").value = params.get("q") || "";
  if (params.get("mode")) setMode(params.get("mode"));
  if (params.get("k")) $("k").value = params.get("k");
  if (params.has("index")) $("index").value = params.get("index");
  $("filter").value = params.get("filter") || "";
}

function urlOf(state) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(state)) if (value) params.set(key, value);
  return "?" + params.toString();
}

async function run(push) {
  const state = stateFromForm();
  if (!state.q) return;
  if (push && location.search !== urlOf(state)) history.pushState(state, "", urlOf(state));
  const body = { queries: [state.q], k: Number(state.k) || 10, highlight: true };
  if (state.mode) body.mode = state.mode;
  if (state.index) body.index = state.index;
  $("go").disabled = true;
  $("status").textContent = "검색 중…";
  try {
    if (state.filter) body.filters = parseFilters(state.filter);
    renderResults(await call("POST", "/search", body), Boolean(state.filter));
    showError("");
  } catch (e) {
    $("status").textContent = "";
    showError(e.message, e.detail);
  } finally {
    $("go").disabled = false;
  }
}

// -- API key ------------------------------------------------------------------------------------------------
async function saveToken() {
  const token = $("token").value.trim();
  if (token) sessionStorage.setItem(TOKEN_KEY, token); else sessionStorage.removeItem(TOKEN_KEY);
  $("token").value = "";
  const note = $("auth-status");
  note.className = "muted";
  note.textContent = "키를 확인하는 중…";
  try {
    await loadInfo();
    note.className = "ok";
    note.textContent = token ? "키가 맞습니다. 이 탭을 닫을 때까지 기억합니다." : "키를 지웠습니다.";
    if ($("query").value.trim()) run(false);
  } catch (e) {
    note.className = "error-text";
    note.textContent = e.status === 401 ? "키가 틀렸습니다. 다시 입력하세요." : e.message;
  }
}

async function start() {
  try {
    await loadInfo();
  } catch (e) {
    showError(e.message, e.detail);
    if (e.status !== 401) return;
  }
  applyState(new URLSearchParams(location.search));
  history.replaceState(stateFromForm(), "", location.search || location.pathname);
  if ($("query").value.trim()) run(false);
}

document.addEventListener("DOMContentLoaded", () => {
  $("search").addEventListener("submit", (event) => { event.preventDefault(); run(true); });
  $("save-token").addEventListener("click", saveToken);
  $("token").addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); saveToken(); } });
  window.addEventListener("popstate", () => {  // Back / Forward: the search that URL names
    applyState(new URLSearchParams(location.search));
    if ($("query").value.trim()) run(false); else { $("results").replaceChildren(); $("status").textContent = ""; }
  });
  start();
});
