// The agent-runtime console: plain JavaScript over the public HTTP and WebSocket APIs.
// Hash routes:  #/  agents   #/agents/NAME  an agent and its instances
//               #/agents/NAME/ID  an instance   #/agents/NAME/ID/children/REF  a child
"use strict";

const API = new URL("../", location.href).href.replace(/\/$/, "");
const store = window.sessionStorage;
const view = document.getElementById("view");
let live = null; // the open WebSocket or poll of the instance page, closed on navigation

// --- small helpers --------------------------------------------------------------------

// h("a", {href: "#/"}, "text", child): an element; text is always set as text, never HTML.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const enc = encodeURIComponent;
const token = () => store.getItem("token") || "";
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");
const seconds = (a, b) => (a && b ? ((new Date(b) - new Date(a)) / 1000).toFixed(2) + " s" : "");

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && (body.error.message || body.error)) || `HTTP ${status}`);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (token()) headers.authorization = `Bearer ${token()}`;
  if (options.json !== undefined) {
    headers["content-type"] = "application/json";
    options.body = JSON.stringify(options.json);
  }
  const response = await fetch(API + path, { method: options.method || "GET", headers, body: options.body });
  if (options.raw) {
    if (!response.ok) throw new ApiError(response.status, null);
    return response;
  }
  const text = await response.text();
  const body = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

function section(title, ...children) {
  return h("section", { "aria-label": title }, h("h2", {}, title), ...children);
}

function failure(error) {
  return h("p", { class: "error", role: "alert" }, error.message);
}

// A panel filled by `load`, showing `missing` instead on a 404 (routes this deployment lacks);
// `reload(notice)` refills it with `notice` (an element) above the content.
function panel(title, load, missing) {
  const body = h("div", {}, h("p", { class: "muted" }, "loading…"));
  const el = section(title, body);
  el.reload = async (notice) => {
    try {
      const content = await load();
      body.replaceChildren(...[notice, content].filter(Boolean));
    } catch (error) {
      body.replaceChildren(error.status === 404 && missing ? h("p", { class: "muted" }, missing) : failure(error));
    }
  };
  el.reload();
  return el;
}

// --- agents -----------------------------------------------------------------------------

function list(items, render) {
  return items.length ? h("ul", {}, items.map((item) => h("li", {}, render(item)))) : h("p", { class: "muted" }, "none");
}

function describe(agent) {
  return h(
    "div",
    {},
    h("p", {}, agent.description || h("span", { class: "muted" }, "no description")),
    h("p", {}, `model ${agent.model} · concurrency ${agent.concurrency} · max turns ${agent.max_turns} · ` +
      `retry ${agent.retry} · timeout ${agent.timeout} s · WebSocket ${agent.websocket ? "yes" : "no"}`),
    h("details", {}, h("summary", {}, `Tools (${agent.tools.length})`), list(agent.tools, (t) => [h("code", {}, t.name), " ", t.description])),
    h("details", {}, h("summary", {}, `Subagents (${agent.subagents.length})`),
      list(agent.subagents, (s) => [h("code", {}, s.name), ` (${s.blocking ? "blocking" : "non-blocking"}${s.resumable ? ", resumable" : ""}) `, s.description])),
    h("details", {}, h("summary", {}, `Handoffs (${agent.handoffs.length})`), list(agent.handoffs, (x) => [h("code", {}, x.name), " ", x.description || ""])),
    h("details", {}, h("summary", {}, `Skills (${agent.skills.length})`), list(agent.skills, (s) => [h("code", {}, s.name), " ", s.description])),
    h("details", {}, h("summary", {}, `Variables (${agent.variables.length})`),
      list(agent.variables, (v) => [h("code", {}, v.name), v.secret ? " (secret, value hidden)" : "", v.required ? " required" : "", " ", v.description])),
  );
}

async function agentsPage() {
  const { agents } = await api("/agents");
  const cards = agents.map((a) =>
    panel(a.name, async () => h("div", {}, describe(await api(`/agents/${enc(a.name)}`)), h("a", { href: `#/agents/${enc(a.name)}` }, "Instances →"))),
  );
  return [h("h1", {}, "Agents"), agents.length ? h("div", { class: "grid" }, cards) : h("p", {}, "No agent is reachable with these credentials.")];
}

async function agentPage(name) {
  const agent = await api(`/agents/${enc(name)}`);
  const rows = h("tbody");
  const more = h("button", { type: "button", hidden: true }, "More");
  const filter = h("input", { id: "filter", type: "search", placeholder: "part of an id" });
  let cursor = null;
  const shown = [];
  const render = () => {
    const text = filter.value.trim().toLowerCase();
    rows.replaceChildren(...shown.filter((i) => i.id.toLowerCase().includes(text)).map((i) =>
      h("tr", {}, h("td", {}, h("a", { href: `#/agents/${enc(name)}/${enc(i.id)}` }, i.id)),
        h("td", { class: `status-${i.status}` }, i.status), h("td", {}, `${i.settled}/${i.submissions}`), h("td", {}, when(i.last_activity)))));
  };
  const load = async () => {
    const query = new URLSearchParams({ limit: "50" });
    if (cursor) query.set("cursor", cursor);
    const page = await api(`/agents/${enc(name)}/instances?${query}`);
    shown.push(...page.instances);
    cursor = page.next_cursor;
    more.hidden = !cursor;
    render();
  };
  filter.addEventListener("input", render);
  more.addEventListener("click", load);
  await load();
  const open = h("form", { onsubmit: (e) => { e.preventDefault(); location.hash = `#/agents/${enc(name)}/${enc(e.target.elements.id.value)}`; } },
    h("label", {}, "Instance id", h("input", { name: "id", required: true, pattern: "[A-Za-z0-9._~\\-]{1,79}" })), " ", h("button", { type: "submit" }, "Open"));
  return [
    h("h1", {}, h("a", { href: "#/" }, "Agents"), ` / ${name}`),
    section("Agent", describe(agent)),
    section("Instances", h("div", {}, h("label", { for: "filter" }, "Filter by id"), filter, " ", open),
      h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "id"), h("th", {}, "status"), h("th", {}, "settled"), h("th", {}, "last activity"))), rows), more),
  ];
}

// --- an instance ------------------------------------------------------------------------

function usageCost(result) {
  if (!result) return "";
  const usage = result.usage || {};
  const cost = result.cost_usd === null || result.cost_usd === undefined ? "" : ` · $${result.cost_usd.toFixed(4)}`;
  return `${usage.input_tokens || 0} in / ${usage.output_tokens || 0} out${cost}`;
}

const duration = (s) => (s < 1 ? `${(s * 1000).toFixed(0)} ms` : `${s.toFixed(2)} s`);

// A span's tokens, from the GenAI conventions' gen_ai.usage.* attributes ("" when it has none).
function spanTokens(attributes) {
  const input = attributes["gen_ai.usage.input_tokens"];
  const output = attributes["gen_ai.usage.output_tokens"];
  return input === undefined && output === undefined ? "" : `${input ?? 0} in / ${output ?? 0} out tokens`;
}

// The spans as a tree, each child under its parent by start time, with its depth; a span
// whose parent is not in the list (the submission's own) is a root.
function spanTree(spans) {
  const byId = new Map(spans.map((s) => [s.span_id, s]));
  const children = new Map();
  const roots = [];
  for (const s of spans.slice().sort((a, b) => a.start - b.start)) {
    if (s.parent_span_id && byId.has(s.parent_span_id) && s.parent_span_id !== s.span_id) {
      if (!children.has(s.parent_span_id)) children.set(s.parent_span_id, []);
      children.get(s.parent_span_id).push(s);
    } else roots.push(s);
  }
  const rows = [];
  const walk = (s, depth) => {
    const kids = children.get(s.span_id) || [];
    rows.push({ span: s, depth, kids });
    kids.forEach((c) => walk(c, depth + 1));
  };
  roots.forEach((s) => walk(s, 0));
  return rows;
}

// Bars placed from the submission span's start (it begins when the submission was accepted)
// to the last span's end; the part of a submission before its first attempt, its wait in the
// queue, is drawn lighter. Hovering a row shows its attributes.
function waterfall(spans) {
  if (!spans.length) return h("p", { class: "muted" }, "no spans");
  const rows = spanTree(spans);
  const origin = rows[0].span.start;
  const total = Math.max(...spans.map((s) => s.end)) - origin || 1;
  const pct = (t) => `${Math.max(0, Math.min(100, (t / total) * 100)).toFixed(2)}%`;
  return h("div", { class: "waterfall", role: "list" }, rows.map(({ span: s, depth, kids }) => {
    const attributes = s.attributes || {};
    const queued = attributes["agent_runtime.span"] === "submission" && kids.length ? Math.max(0, kids[0].start - s.start) : 0;
    const details = Object.entries(attributes).map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join("\n");
    return h("div", { class: "row", role: "listitem", "data-span": s.name, title: details },
      h("span", { class: "name", style: `padding-left:${depth}rem` }, s.name),
      h("div", { class: "track" }, h("div", { class: `bar span-${attributes["agent_runtime.span"] || "other"}`, style: `left:${pct(s.start - origin)};width:${pct(s.end - s.start)}` }),
        queued ? h("div", { class: "bar queued", style: `left:${pct(s.start - origin)};width:${pct(queued)}` }) : null),
      h("span", { class: "meta" }, duration(s.end - s.start), queued ? ` (queued ${duration(queued)})` : "", spanTokens(attributes) ? ` · ${spanTokens(attributes)}` : ""));
  }));
}

function submissionsTable(base, submissions, traces) {
  return h("table", {}, h("thead", {}, h("tr", {}, ["id", "kind", "status", "outcome", "attempts", "accepted", "took", "usage · cost", ""].map((c) => h("th", {}, c)))),
    h("tbody", {}, submissions.map((s) => h("tr", { "data-submission": s.id },
      h("td", {}, h("code", {}, s.id)), h("td", {}, s.kind), h("td", { class: `status-${s.status}` }, s.status),
      h("td", { class: `outcome-${s.outcome}` }, s.outcome || ""), h("td", {}, s.attempts), h("td", {}, when(s.accepted_at)),
      h("td", {}, seconds(s.started_at || s.accepted_at, s.settled_at)), h("td", {}, usageCost(s.result)),
      h("td", {}, traces ? h("button", { type: "button", class: "link", onclick: () => traces(s.id) }, "Trace") : "")))));
}

function partView(part, folded) {
  if (part.type === "text") return h("pre", {}, part.text);
  if (part.type === "tool_call" || part.type === "tool_use") {
    return h("details", { class: "tool" }, h("summary", {}, `tool call ${part.name}`), h("pre", {}, JSON.stringify(part.arguments || part.input || {}, null, 2)),
      folded[part.call_id || part.id] ? h("pre", {}, folded[part.call_id || part.id]) : null);
  }
  if (part.type === "tool_result") return null; // shown inside its call
  if (part.type === "file") return h("p", {}, `file ${part.path}`);
  return h("pre", { class: "muted" }, JSON.stringify(part));
}

function historyView(messages) {
  const results = {};
  for (const m of messages) for (const p of m.parts) if (p.type === "tool_result") results[p.call_id] = typeof p.content === "string" ? p.content : JSON.stringify(p.content ?? p.result ?? p);
  const shown = messages.filter((m) => m.parts.some((p) => p.type !== "tool_result"));
  if (!shown.length) return h("p", { class: "muted" }, "no messages");
  return h("div", {}, shown.map((m) => h("div", { class: "msg" }, h("span", { class: "role" }, m.role), m.synthetic ? " (synthetic)" : "", m.parts.map((p) => partView(p, results)))));
}

async function filePreview(base, file) {
  const item = h("li", {}, h("code", {}, file.path), ` ${file.media_type} · ${file.size} bytes`);
  if (file.media_type.startsWith("image/") && file.size < 5 * 1024 * 1024) {
    try {
      const blob = await (await api(`${base}/files${file.path.split("/").map(enc).join("/")}`, { raw: true })).blob();
      item.append(h("img", { src: URL.createObjectURL(blob), alt: `preview of ${file.path}` }));
    } catch (error) { item.append(failure(error)); }
  }
  return item;
}

// The live event stream: WebSocket when the agent has one (resuming from the last offset),
// else long polls of the events route. Calls `onEvent` once per offset, in order.
function openStream(name, id, onEvent, useSocket) {
  let last = 0;
  let closed = false;
  let socket = null;
  const seen = (event) => { if (event.offset > last) { last = event.offset; onEvent(event); } };
  const base = `/agents/${enc(name)}/${enc(id)}`;
  const fetchRef = async (path) => { const page = await api(path); page.events.forEach(seen); };
  const poll = async () => {
    while (!closed) {
      try { const page = await api(`${base}/events?after=${last}&wait=10&limit=100`); page.events.forEach(seen); }
      catch (error) { await new Promise((r) => setTimeout(r, 2000)); }
    }
  };
  const wsUrl = store.getItem("wsUrl");
  const stream = { close() { closed = true; if (socket) socket.close(); }, send: null, mode: "http" };
  if (useSocket && wsUrl) {
    const query = new URLSearchParams({ agent: name, id });
    if (token()) query.set("token", token());
    socket = new WebSocket(`${wsUrl}?${query}`);
    stream.mode = "websocket";
    socket.onopen = () => socket.send(JSON.stringify({ v: 1, type: "subscribe", after: last }));
    socket.onmessage = (message) => {
      const frame = JSON.parse(message.data);
      if (frame.type === "event" && frame.event) seen(frame.event);
      else if (frame.type === "event" && frame.fetch) fetchRef(frame.fetch);
      if (stream.onFrame) stream.onFrame(frame);
    };
    socket.onclose = () => { if (!closed) { stream.mode = "http"; socket = null; poll(); } };
    stream.send = (frame) => (socket && socket.readyState === WebSocket.OPEN ? (socket.send(JSON.stringify(frame)), true) : false);
  } else {
    poll();
  }
  return stream;
}

function chat(name, id, stream, refresh) {
  const base = `/agents/${enc(name)}/${enc(id)}`;
  const answer = h("div", { class: "answer", id: "answer", "aria-live": "polite" });
  const tools = h("div", { id: "tools" });
  const state = h("p", { class: "muted", id: "chat-state" });
  const message = h("textarea", { id: "message", name: "message", rows: 3, required: true });
  const attachment = h("input", { id: "attachment", type: "file" });
  let current = null;
  const form = h("form", { onsubmit: async (e) => {
    e.preventDefault();
    answer.textContent = ""; tools.replaceChildren(); state.textContent = "sending…";
    try {
      const attachments = [];
      for (const file of attachment.files) {
        const path = `/attachments/${file.name.replace(/[^A-Za-z0-9._-]/g, "_")}`;
        await api(`${base}/files${path}`, { method: "PUT", body: file, headers: { "content-type": file.type || "application/octet-stream" } });
        attachments.push(path);
      }
      const requestId = `console-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
      const frame = { v: 1, type: "prompt", request_id: requestId, message: message.value, attachments };
      if (!(stream.send && stream.send(frame))) {
        const reply = await api(base, { method: "POST", json: { message: message.value, attachments, wait: 0 } });
        current = reply.submission.id;
      }
      state.textContent = "running…"; message.value = ""; attachment.value = "";
    } catch (error) { state.textContent = error.message; }
  } },
    h("label", { for: "message" }, "Message"), message,
    h("div", {}, h("label", { for: "attachment" }, "Attach a file"), attachment),
    h("button", { type: "submit" }, "Send"), " ",
    h("button", { type: "button", class: "danger", onclick: async () => {
      try { const r = await api(`${base}/abort`, { method: "POST" }); state.textContent = `abort asked of ${r.aborted.length} submission(s)`; }
      catch (error) { state.textContent = error.message; }
    } }, "Abort"));
  stream.onFrame = (frame) => { if (frame.type === "accepted" && frame.submission) current = frame.submission.id; };
  const onEvent = (event) => {
    if (current && event.submission_id && event.submission_id !== current) return;
    if (event.type === "submission_queued" && !current) { // another client's, or a replayed one: show it alone
      current = event.submission_id; answer.textContent = ""; tools.replaceChildren();
    }
    if (event.type === "text_delta") answer.append(event.text);
    if (event.type === "tool_start") tools.append(h("div", { class: "tool", "data-call": event.call_id }, `tool ${event.name} `, h("code", {}, JSON.stringify(event.arguments))));
    if (event.type === "tool_call") {
      const row = tools.querySelector(`[data-call="${CSS.escape(event.call_id)}"]`) || tools.appendChild(h("div", { class: "tool" }, `tool ${event.name}`));
      row.append(h("span", { class: event.status === "ok" ? "outcome-completed" : "error" }, ` → ${event.status}: ${event.result ?? event.error ?? ""}`));
    }
    if (event.type === "agent_end") {
      state.textContent = `settled: ${event.outcome}`;
      if (!answer.textContent && event.result && event.result.text) answer.textContent = event.result.text;
      current = null;
      refresh();
    }
  };
  return { el: section("Chat", form, state, h("h3", {}, "Answer"), answer, h("h3", {}, "Tool calls"), tools), onEvent };
}

// The instance's effects, soonest due first; a scheduled one has Cancel, which refreshes the
// list and, when the effect fired or was cancelled meanwhile (409), says so above it.
function effectsPanel(base) {
  const cancel = async (effect) => {
    let notice = null;
    try { await api(`${base}/effects/${enc(effect.id)}`, { method: "DELETE" }); }
    catch (error) { notice = failure(error); }
    el.reload(notice);
  };
  const row = (e) => h("tr", { "data-effect": e.id },
    h("td", {}, h("code", {}, e.name)), h("td", {}, h("code", {}, JSON.stringify(e.args))),
    h("td", { class: `status-${e.status}` }, e.status), h("td", {}, when(e.due_at)),
    h("td", {}, e.status === "scheduled" ? h("button", { type: "button", class: "danger", onclick: () => cancel(e) }, "Cancel")
      : e.status === "fired" ? [`fired ${when(e.fired_at)} as `, h("code", {}, e.submission_id || "…")] : `cancelled ${when(e.cancelled_at)}`));
  const el = panel("Effects", async () => {
    const { effects } = await api(`${base}/effects`);
    return effects.length ? h("table", { id: "effects" }, h("thead", {}, h("tr", {}, ["name", "args", "status", "due", ""].map((c) => h("th", {}, c)))),
      h("tbody", {}, effects.map(row))) : h("p", { class: "muted" }, "no effects");
  }, "no effects route on this deployment");
  return el;
}

async function instancePage(name, id, ref) {
  const parent = `/agents/${enc(name)}/${enc(id)}`;
  const base = ref ? `${parent}/children/${enc(ref)}` : parent;
  const agent = ref ? null : await api(`/agents/${enc(name)}`);
  // Traces are read by the parent instance's route: a child's spans are in its parent's trace.
  const trace = h("div", {}, h("p", { class: "muted" }, ref ? "a child's spans are in its parent submission's trace" : "choose a submission's Trace"));
  let traced = null;
  const showTrace = ref ? null : async (sid, quietly) => {
    traced = sid;
    if (!quietly) trace.replaceChildren(h("p", { class: "muted" }, `trace of ${sid}…`));
    try {
      const found = await api(`${base}/submissions/${enc(sid)}/trace`);
      if (traced !== sid) return; // another submission's Trace was chosen meanwhile
      trace.replaceChildren(h("p", {}, "submission ", h("code", {}, sid), " · trace ", h("code", {}, found.trace_id)), waterfall(found.spans));
    } catch (error) { trace.replaceChildren(error.status === 404 ? h("p", { class: "muted" }, `no trace of ${sid} (yet)`) : failure(error)); }
  };
  const submissions = panel("Submissions", async () => {
    if (ref) {
      const child = (await api(`${parent}/children?limit=100`)).children.find((c) => c.ref === ref);
      return child ? submissionsTable(base, [await api(`${base}/submissions/${enc(child.submission_id)}`)], showTrace) : h("p", {}, "no such child");
    }
    return submissionsTable(base, (await api(`${base}/submissions?limit=100`)).submissions, showTrace);
  });
  submissions.classList.add("wide");
  const history = panel("History (session default)", async () => historyView((await api(`${base}/sessions/default/messages?limit=500`)).messages));
  const events = h("div", { class: "log", id: "events", role: "log" });
  const effects = ref ? null : effectsPanel(base);
  const refresh = () => { submissions.reload(); history.reload(); if (effects) effects.reload(); };
  const traceSection = section("Trace", trace);
  traceSection.classList.add("wide");
  const sections = [submissions, traceSection];
  let talk = null;
  if (!ref) {
    live = openStream(name, id, (event) => {
      events.append(h("div", {}, `${event.offset} ${event.type}${event.text ? " " + event.text : ""}${event.name ? " " + event.name : ""}`));
      events.scrollTop = events.scrollHeight;
      if (talk) talk.onEvent(event);
      // The last spans of a run are written before its `idle`: a trace read earlier is redrawn.
      if (event.type === "idle" && traced) showTrace(traced, true);
    }, agent.websocket);
    talk = chat(name, id, live, refresh);
    talk.el.classList.add("wide");
    sections.unshift(talk.el);
    effects.classList.add("wide");
    sections.push(effects, section(`Live events (${live.mode})`, events), history,
      panel("Children", async () => {
        const { children } = await api(`${base}/children?limit=100`);
        return children.length ? h("ul", { class: "tree" }, children.map((c) => h("li", {},
          h("a", { href: `#/agents/${enc(name)}/${enc(id)}/children/${enc(c.ref)}` }, `${c.agent}/${c.id}`), ` ${c.status} ${c.outcome || ""}`))) : h("p", { class: "muted" }, "no children");
      }),
      panel("Files", async () => {
        const { files } = await api(`${base}/files?limit=100`);
        return files.length ? h("ul", { class: "files" }, await Promise.all(files.map((f) => filePreview(base, f)))) : h("p", { class: "muted" }, "no files");
      }),
      panel("Variables", async () => {
        const { variables } = await api(`${base}/variables`);
        return list(variables, (v) => [h("code", {}, v.name), v.secret ? " (secret)" : "", v.set ? (v.secret ? " set, value hidden" : ` = ${v.value}`) : " not set"]);
      }));
  } else {
    sections.push(history);
  }
  const title = ref ? [h("a", { href: `#/agents/${enc(name)}/${enc(id)}` }, `${name}/${id}`), ` / child ${ref}`] : [h("a", { href: `#/agents/${enc(name)}` }, name), ` / ${id}`];
  return [h("h1", {}, h("a", { href: "#/" }, "Agents"), " / ", ...title), h("div", { class: "grid" }, sections)];
}

// --- routing and credentials ----------------------------------------------------------------

async function route() {
  if (live) { live.close(); live = null; }
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  view.replaceChildren(h("p", { class: "muted" }, "loading…"));
  try {
    let content;
    if (parts[0] === "agents" && parts.length === 2) content = await agentPage(parts[1]);
    else if (parts[0] === "agents" && parts.length === 3) content = await instancePage(parts[1], parts[2]);
    else if (parts[0] === "agents" && parts.length === 5 && parts[3] === "children") content = await instancePage(parts[1], parts[2], parts[4]);
    else content = await agentsPage();
    view.replaceChildren(...content);
  } catch (error) {
    view.replaceChildren(failure(error));
  }
}

async function start() {
  const form = document.getElementById("credentials");
  if (!store.getItem("wsUrl")) {
    try { const config = await api("/console/config.json"); if (config.websocket_url) store.setItem("wsUrl", config.websocket_url); } catch (error) { /* no WebSocket API */ }
  }
  form.elements.token.value = token();
  form.elements["ws-url"].value = store.getItem("wsUrl") || "";
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    store.setItem("token", form.elements.token.value);
    store.setItem("wsUrl", form.elements["ws-url"].value);
    route();
  });
  window.addEventListener("hashchange", route);
  route();
}

start();
