"""
The hub monitor's page: HTML, script and style, served by
:mod:`._monitor_web` with nothing fetched from anywhere else.

The script builds the page with ``textContent`` only (never HTML from
data), so client metadata and message contents cannot inject markup.
"""

__all__ = ["PAGE_CSS", "PAGE_HTML", "PAGE_JS"]

PAGE_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>SAMP hub monitor</title>
<link rel="stylesheet" href="monitor.css">
<script src="monitor.js" defer></script>
</head>
<body>
<header>
  <h1>SAMP hub monitor</h1>
  <span id="status" role="status" aria-live="polite">connecting…</span>
</header>
<section aria-labelledby="facts-h">
  <h2 id="facts-h">Hub</h2>
  <dl id="facts"></dl>
</section>
<main>
<section aria-labelledby="clients-h" id="clients-section">
  <h2 id="clients-h">Clients <span id="client-count"></span></h2>
  <table id="clients">
    <thead><tr><th scope="col">Id</th><th scope="col">Name</th><th scope="col">Callable</th>
    <th scope="col">Profile</th><th scope="col">Details</th></tr></thead>
    <tbody></tbody>
  </table>
  <form id="who" role="search">
    <label for="who-mtype">Who receives the MType</label>
    <input id="who-mtype" type="text" placeholder="table.load.votable" autocomplete="off" spellcheck="false">
    <output id="who-result" for="who-mtype"></output>
  </form>
</section>
<section aria-labelledby="log-h" id="log-section">
  <h2 id="log-h">Messages <span id="message-count"></span></h2>
  <div class="filters">
    <label for="filter-client">Client</label>
    <select id="filter-client"><option value="">all</option></select>
    <label for="filter-mtype">MType</label>
    <input id="filter-mtype" type="text" placeholder="table.*" autocomplete="off" spellcheck="false">
    <label><input id="filter-events" type="checkbox" checked> hide hub events</label>
  </div>
  <table id="log">
    <thead><tr><th scope="col">Time</th><th scope="col">Kind</th><th scope="col">From</th>
    <th scope="col">To</th><th scope="col">MType</th><th scope="col">Params</th>
    <th scope="col">Status</th><th scope="col">Result or error</th><th scope="col">Round trip</th></tr></thead>
    <tbody></tbody>
  </table>
</section>
</main>
</body>
</html>
"""

PAGE_CSS = """
:root { font-family: system-ui, sans-serif; font-size: 14px; color: #1a1a1a; background: #fafafa; }
body { margin: 0 1rem 1rem; }
header { display: flex; align-items: baseline; gap: 1rem; }
h1 { font-size: 1.3rem; margin: .6rem 0; }
h2 { font-size: 1.05rem; margin: .8rem 0 .3rem; }
#status { padding: .1rem .5rem; border-radius: .3rem; background: #eee; }
#status.live { background: #d7f5d7; }
#status.down { background: #f8d0d0; }
dl#facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(16rem, 1fr)); gap: .1rem 1rem; margin: 0; }
dl#facts div { display: flex; gap: .4rem; overflow-wrap: anywhere; }
dl#facts dt { font-weight: 600; white-space: nowrap; }
dl#facts dd { margin: 0; }
main > section { min-width: 0; overflow-x: auto; }
main { display: grid; grid-template-columns: minmax(min-content, 2fr) 5fr; gap: 1rem; align-items: start; }
@media (max-width: 1250px) { main { grid-template-columns: 1fr; } }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; vertical-align: top; padding: .2rem .4rem; border-bottom: 1px solid #ddd; overflow-wrap: break-word; }
td.mtype, td.result { overflow-wrap: anywhere; }
td.mtype { min-width: 9rem; }
th { background: #f0f0f0; position: sticky; top: 0; }
td img { width: 20px; height: 20px; vertical-align: middle; margin-right: .3rem; }
details summary { cursor: pointer; }
pre { margin: 0; white-space: pre-wrap; font-size: .85rem; max-height: 12rem; overflow: auto; }
.filters { display: flex; flex-wrap: wrap; gap: .4rem; align-items: center; margin-bottom: .4rem; }
input[type=text] { width: 14rem; }
:focus-visible { outline: 2px solid #1a5fb4; outline-offset: 1px; }
tr.failed td { background: #fde4e4; }
tr.left td, tr.dropped td { background: #fff4d6; }
tr.event td { color: #666; }
.status-ok { color: #1e7a1e; font-weight: 600; }
.status-bad { color: #b00020; font-weight: 600; }
#who { margin-top: .6rem; display: flex; flex-wrap: wrap; gap: .4rem; align-items: center; }
#who-result { display: block; width: 100%; }
"""

PAGE_JS = r"""
"use strict";
(function () {
  const state = { clients: new Map(), messages: [], facts: {}, offset: 0 };
  const MAX_ROWS = 2000;
  const $ = (id) => document.getElementById(id);

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function collapsed(label, value) {
    const d = el("details");
    d.appendChild(el("summary", label));
    d.appendChild(el("pre", JSON.stringify(value, null, 1)));
    return d;
  }
  function clientName(id) {
    const c = state.clients.get(id);
    return c && c.name ? c.name + " (" + id + ")" : id;
  }
  function timeText(t) {
    return new Date(t * 1000).toLocaleTimeString([], { hour12: false }) + "." +
      String(Math.floor((t % 1) * 1000)).padStart(3, "0");
  }
  function duration(s) {
    if (s < 60) return s.toFixed(0) + " s";
    if (s < 3600) return Math.floor(s / 60) + " min";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  }

  function renderFacts() {
    const f = state.facts, dl = $("facts");
    dl.replaceChildren();
    const rows = [
      ["URL", f.url], ["Lockfile", f.lockfile], ["Profiles", (f.profiles || []).join(", ")],
      ["TLS", f.tls ? "yes" : "no"], ["Uptime", f.uptime !== undefined ? duration(f.uptime) : ""],
      ["Messages", f.messages], ["Calls pending", f.calls_pending],
      ["Deliveries in flight", f.in_flight], ["Log kept", (f.kept || 0) + " messages"],
    ];
    for (const [k, v] of rows) {
      const div = el("div");
      div.appendChild(el("dt", k));
      const dd = el("dd", v === undefined ? "" : v);
      dd.dataset.fact = k;
      div.appendChild(dd);
      dl.appendChild(div);
    }
  }

  function clientRow(c) {
    const tr = el("tr");
    tr.dataset.clientId = c.id;
    tr.appendChild(el("td", c.id));
    const name = el("td");
    if (typeof c.icon === "string" && /^(https?:|data:image\/)/.test(c.icon)) {
      const img = el("img");
      img.src = c.icon; img.alt = ""; img.referrerPolicy = "no-referrer";
      name.appendChild(img);
    }
    name.appendChild(el("span", c.name || "(no samp.name)", "client-name"));
    if (c.description) name.appendChild(el("div", c.description));
    if (typeof c.doc === "string" && /^https?:/.test(c.doc)) {
      const a = el("a", "documentation");
      a.href = c.doc; a.rel = "noreferrer noopener"; a.target = "_blank";
      name.appendChild(a);
    }
    tr.appendChild(name);
    tr.appendChild(el("td", c.callable ? "yes" : "no"));
    tr.appendChild(el("td", c.profile));
    const subs = el("td");
    const list = el("ul", null, "subscriptions");
    for (const mtype of Object.keys(c.subscriptions || {}).sort()) {
      const li = el("li", mtype);
      li.dataset.mtype = mtype;
      const ann = c.subscriptions[mtype];
      if (ann && typeof ann === "object" && Object.keys(ann).length) li.title = JSON.stringify(ann);
      list.appendChild(li);
    }
    const sd = el("details");
    sd.appendChild(el("summary", Object.keys(c.subscriptions || {}).length + " subscriptions"));
    sd.appendChild(list);
    subs.appendChild(sd);
    subs.appendChild(collapsed("metadata", c.metadata || {}));
    tr.appendChild(subs);
    return tr;
  }

  function renderClients() {
    const body = $("clients").tBodies[0];
    body.replaceChildren(...[...state.clients.values()].map(clientRow));
    $("client-count").textContent = "(" + state.clients.size + ")";
    const select = $("filter-client"), chosen = select.value;
    select.replaceChildren(el("option", "all"));
    select.options[0].value = "";
    for (const c of state.clients.values()) {
      const o = el("option", clientName(c.id));
      o.value = c.id;
      select.appendChild(o);
    }
    select.value = chosen;
    if (select.value !== chosen) select.value = "";
  }

  function mtypeMatches(pattern, mtype) {
    if (!pattern) return true;
    if (pattern === "*") return true;
    if (pattern.endsWith(".*")) return mtype.startsWith(pattern.slice(0, -1)) || mtype === pattern.slice(0, -2);
    return mtype.includes(pattern);
  }
  function shown(m) {
    const who = $("filter-client").value;
    if (who && m.sender !== who && !m.recipients.includes(who)) return false;
    if ($("filter-events").checked && m.kind === "event") return false;
    return mtypeMatches($("filter-mtype").value.trim(), m.mtype);
  }

  function messageRow(m) {
    const tr = el("tr");
    tr.dataset.seq = m.seq;
    tr.dataset.mtype = m.mtype;
    tr.dataset.kind = m.kind;
    const failed = (m.status && m.status !== "pending" && m.status !== "samp.ok" && m.status !== "samp.warning");
    tr.className = m.kind + (failed ? " failed" : "");
    tr.appendChild(el("td", timeText(m.time)));
    tr.appendChild(el("td", m.kind));
    tr.appendChild(el("td", clientName(m.sender)));
    tr.appendChild(el("td", m.recipients.map(clientName).join(", ")));
    tr.appendChild(el("td", m.mtype, "mtype"));
    const params = el("td");
    if (m.params) params.appendChild(collapsed(Object.keys(m.params).join(", ") || "{}", m.params));
    tr.appendChild(params);
    tr.appendChild(el("td", m.status || "", failed ? "status-bad" : (m.status === "samp.ok" ? "status-ok" : "")));
    const result = el("td", null, "result");
    if (m.result !== null && m.result !== undefined) {
      if (typeof m.result === "string") result.textContent = m.result;
      else result.appendChild(collapsed("result", m.result));
    }
    if (m.closed && (m.status === "closed" || m.result === null)) result.appendChild(el("div", m.closed));
    tr.appendChild(result);
    tr.appendChild(el("td", m.rtt === null || m.rtt === undefined ? "" : (m.rtt * 1000).toFixed(1) + " ms"));
    return tr;
  }

  function renderLog() {
    const body = $("log").tBodies[0];
    const rows = [];
    for (let i = state.messages.length - 1; i >= 0 && rows.length < MAX_ROWS; i--) {
      if (shown(state.messages[i])) rows.push(messageRow(state.messages[i]));
    }
    body.replaceChildren(...rows);
    $("message-count").textContent = "(" + state.messages.length + " kept)";
  }

  let pending = false;
  function later() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; renderClients(); renderLog(); renderFacts(); });
  }

  function connect() {
    const source = new EventSource("events");
    const status = $("status");
    source.onopen = () => { status.textContent = "live"; status.className = "live"; };
    source.onerror = () => { status.textContent = "reconnecting…"; status.className = "down"; };
    source.addEventListener("snapshot", (e) => {
      const s = JSON.parse(e.data);
      state.facts = s.facts;
      state.clients = new Map(s.clients.map((c) => [c.id, c]));
      state.messages = s.messages;
      later();
    });
    source.addEventListener("facts", (e) => { state.facts = JSON.parse(e.data); renderFacts(); });
    source.addEventListener("client", (e) => {
      const c = JSON.parse(e.data);
      state.clients.set(c.id, c);
      later();
    });
    source.addEventListener("left", (e) => { state.clients.delete(JSON.parse(e.data).id); later(); });
    source.addEventListener("message", (e) => {
      const m = JSON.parse(e.data);
      state.messages.push(m);
      if (state.messages.length > (state.facts.max_messages || 2000)) state.messages.shift();
      if (m.kind !== "left" && m.kind !== "dropped") state.facts.messages = (state.facts.messages || 0) + 1;
      state.facts.kept = state.messages.length;
      later();
    });
    source.addEventListener("update", (e) => {
      const m = JSON.parse(e.data);
      for (let i = state.messages.length - 1; i >= 0; i--) {
        if (state.messages[i].seq === m.seq) { state.messages[i] = m; break; }
      }
      later();
    });
  }

  async function whoReceives() {
    const mtype = $("who-mtype").value.trim();
    const out = $("who-result");
    if (!mtype) { out.textContent = ""; return; }
    const r = await fetch("receivers?mtype=" + encodeURIComponent(mtype), { cache: "no-store" });
    const list = await r.json();
    out.replaceChildren();
    if (!list.length) { out.textContent = "nobody is subscribed to " + mtype; return; }
    const ul = el("ul");
    for (const c of list) {
      const li = el("li", clientName(c.id) + (c.callable ? "" : " (not callable)"));
      li.dataset.clientId = c.id;
      ul.appendChild(li);
    }
    out.appendChild(ul);
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const id of ["filter-client", "filter-events"]) $(id).addEventListener("change", renderLog);
    $("filter-mtype").addEventListener("input", renderLog);
    $("who").addEventListener("submit", (e) => { e.preventDefault(); whoReceives(); });
    $("who-mtype").addEventListener("input", whoReceives);
    renderFacts();
    connect();
  });
})();
"""
