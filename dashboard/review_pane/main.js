// ctae's review pane: a Streamlit component without a build step. It holds the reviewer's queue
// and the next scans' planes (fetched ahead), so a key press labels the scan and shows the next
// one here, with no server round trip. Labels go to the server as the component's value (every
// label not yet acknowledged, each with its own id) and are shown "Saved" only when the server
// lists them as written to the review journal. Unacknowledged labels are kept in sessionStorage,
// so a reload sends them again (the server writes a label id once).
"use strict";

const ui = (id) => document.getElementById(id);
const PLANES = ["axial", "coronal", "sagittal"];
let args = null;
let items = []; // the queue: {id, read, planes, suggested, others, model}
let pos = 0;
let mounted = null; // "session:reviewer" the pane was started for
let pending = []; // labels sent, not yet acknowledged: {id, scan, verdict, causes, note}
const local = new Map(); // scan -> {verdict, causes, note, state: "pending" | "saved"}
const chosen = new Map(); // scan -> Set of cause tags
const notes = new Map(); // scan -> note typed here
const images = new Map(); // url -> HTMLImageElement (fetched ahead, decoded)
const state = (window.ctaeReview = {
  shownAt: null, shown: null, sent: 0, acked: 0, error: null,
  pending: () => pending.map((l) => l.scan),
  loaded: (scan) => { // its planes are in memory, ready to draw
    const item = items.find((i) => i.id === scan);
    const urls = item ? planeUrls(item) : [];
    return urls.length > 0 && urls.every((u) => images.has(u) && images.get(u).complete && images.get(u).naturalWidth > 0);
  },
});

function post(type, data) {
  window.parent.postMessage(Object.assign({ isStreamlitMessage: true, type }, data), "*");
}

function storeKey() { return `ctae-review-pending:${mounted}`; }

function persist() {
  try { window.sessionStorage.setItem(storeKey(), JSON.stringify(pending)); } catch (e) { /* private mode */ }
}

function send() {
  const at = items[pos] ? items[pos].id : null;
  state.sent += 1;
  post("streamlit:setComponentValue", { value: { pending, at }, dataType: "json" });
}

function setStatus(kind, text) {
  const el = ui("status");
  el.className = kind;
  el.textContent = text;
}

function tagsOf(scan) {
  if (!chosen.has(scan)) {
    const item = items.find((i) => i.id === scan);
    const read = local.get(scan) || (item && item.read);
    chosen.set(scan, new Set(read ? read.causes : []));
  }
  return chosen.get(scan);
}

function planeUrls(item) { // item.planes: the file stem of its three planes (null: no volume)
  return item.planes ? PLANES.map((p) => `${args.files_base}${item.planes}-${p}.png`) : [];
}

// ---- images: fetched ahead, so the next scan is drawn from memory --------------------------------
function image(url) {
  let img = images.get(url);
  if (!img) {
    img = new Image();
    img.alt = "";
    img.dataset.tries = "0";
    img.onerror = () => { // the server may still be drawing it: ask again shortly
      const tries = Number(img.dataset.tries) + 1;
      img.dataset.tries = String(tries);
      if (tries < 40) setTimeout(() => { img.src = `${url}?try=${tries}`; }, 150);
    };
    img.src = url;
    images.set(url, img);
  }
  return img;
}

function fetchAhead() {
  const ahead = args ? args.ahead : 4;
  for (let i = Math.max(0, pos - 1); i <= Math.min(items.length - 1, pos + ahead); i++) {
    planeUrls(items[i]).forEach(image);
  }
  if (images.size > 60) { // forget images far from the shown scan
    const near = new Set();
    for (let i = Math.max(0, pos - 2); i <= Math.min(items.length - 1, pos + ahead + 1); i++) {
      planeUrls(items[i]).forEach((u) => near.add(u));
    }
    for (const url of [...images.keys()]) if (!near.has(url)) images.delete(url);
  }
}

// ---- drawing ------------------------------------------------------------------------------------
function drawImages(item) {
  const box = ui("images");
  if (!item.planes) {
    box.replaceChildren(Object.assign(document.createElement("div"), {
      className: "missing",
      textContent: "This scan's volume is missing from the store; label it from its facts.",
    }));
    return;
  }
  box.replaceChildren(...planeUrls(item).map((url, p) => {
    const figure = document.createElement("figure");
    const caption = document.createElement("figcaption");
    caption.textContent = PLANES[p];
    figure.append(image(url), caption);
    return figure;
  }));
}

function drawForm(item) {
  const tags = tagsOf(item.id);
  ui("tags").replaceChildren(...args.tags.map((tag, i) => {
    const b = document.createElement("button");
    b.textContent = `${tags.has(tag) ? "☑" : "☐"} ${tag} `;
    b.append(Object.assign(document.createElement("code"), { textContent: String(i + 1) }));
    b.onclick = () => toggleTag(i);
    return b;
  }));
  const accept = ui("accept");
  accept.hidden = !item.suggested.length;
  accept.textContent = `Accept suggested: ${item.suggested.join(", ")} `;
  accept.append(Object.assign(document.createElement("code"), { textContent: "a" }));
  ui("model").textContent = item.model || "";
  ui("others").textContent = item.others ? `Other reviewers: ${item.others}` : "";
  const note = ui("note");
  if (document.activeElement !== note) note.value = notes.get(item.id) ?? (item.read && item.read.note) ?? "";
}

function drawHeading(item) {
  const read = local.get(item.id) || item.read;
  const done = items.filter((i) => local.has(i.id) || i.read).length;
  ui("progress").textContent = `Scan ${pos + 1} of ${items.length} · read ${done} of ${items.length}`;
  ui("bar").firstElementChild.style.width = `${(100 * done) / Math.max(items.length, 1)}%`;
  const heading = ui("heading");
  heading.textContent = "Scan ";
  heading.append(Object.assign(document.createElement("code"), { textContent: item.id }));
  const yours = ui("yours");
  if (!read) yours.textContent = "";
  else if (read.state === "pending") yours.textContent = `Your read: ${read.verdict} (waiting for the server)`;
  else yours.textContent = `Your read: ${read.verdict} (a new one replaces it)`;
  ui("prev").disabled = pos === 0;
  ui("next").disabled = pos >= items.length - 1;
}

function show() {
  const item = items[pos];
  if (!item) return;
  if (state.shown !== item.id) drawImages(item);
  drawHeading(item);
  drawForm(item);
  state.shown = item.id;
  state.shownAt = performance.now();
  fetchAhead();
}

new ResizeObserver(() => { // images arriving, the status line wrapping
  post("streamlit:setFrameHeight", { height: document.documentElement.scrollHeight + 4 });
}).observe(document.body);

// ---- actions ------------------------------------------------------------------------------------
function move(to) {
  const next = Math.min(Math.max(to, 0), items.length - 1);
  if (next === pos) return;
  pos = next;
  show();
  send();
}

function label(verdict) {
  const item = items[pos];
  if (!item) return;
  const causes = [...tagsOf(item.id)].sort();
  const note = (notes.get(item.id) ?? ui("note").value ?? "").trim() || null;
  const id = `${Date.now().toString(16)}-${crypto.getRandomValues(new Uint32Array(2)).join("")}`;
  pending.push({ id, scan: item.id, verdict, causes, note });
  local.set(item.id, { verdict, causes, note, state: "pending" });
  persist();
  setStatus("pending", `Saving: ${item.id} → ${verdict} …`);
  pos = Math.min(pos + 1, items.length - 1); // the next scan at once, from memory
  show();
  send();
}

function toggleTag(i) {
  const item = items[pos];
  const tag = args.tags[i];
  if (!item || !tag) return;
  const tags = tagsOf(item.id);
  if (tags.has(tag)) tags.delete(tag); else tags.add(tag);
  drawForm(item);
}

function acceptSuggested() {
  const item = items[pos];
  if (!item || !item.suggested.length) return;
  item.suggested.forEach((t) => tagsOf(item.id).add(t));
  drawForm(item);
}

function onKey(event) {
  const target = event.target;
  const typing = target && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
  if (typing || event.ctrlKey || event.metaKey || event.altKey || event.repeat || !args) return;
  const key = event.key.toLowerCase();
  const verdict = Object.keys(args.verdict_keys).find((v) => args.verdict_keys[v] === key);
  let act = null;
  if (verdict) act = () => label(verdict);
  else if (key === "arrowleft") act = () => move(pos - 1);
  else if (key === "arrowright") act = () => move(pos + 1);
  else if (key === "a") act = acceptSuggested;
  else if (/^[1-9]$/.test(key) && Number(key) <= args.tags.length) act = () => toggleTag(Number(key) - 1);
  if (!act) return;
  event.preventDefault();
  window.parent.__ctaeLastShortcutAt = window.parent.performance.now(); // for the benchmark
  act();
}

// ---- the server's side --------------------------------------------------------------------------
function acknowledge(acks) {
  let saved = null;
  let refused = null;
  pending = pending.filter((l) => {
    if (!(l.id in acks)) return true;
    if (acks[l.id] === "") {
      saved = l;
    } else {
      local.delete(l.scan);
      refused = [l, acks[l.id]];
    }
    state.acked += 1;
    return false;
  });
  if (saved && !pending.some((l) => l.scan === saved.scan)) { // no newer read of it waiting
    local.set(saved.scan, { verdict: saved.verdict, causes: saved.causes, note: saved.note, state: "saved" });
  }
  if (saved || refused) persist();
  if (refused) setStatus("error", `Not saved: ${refused[0].scan} → ${refused[0].verdict}: ${refused[1]}`);
  else if (saved) {
    const more = pending.length ? ` · ${pending.length} waiting for the server` : "";
    setStatus("ok", `Saved: ${saved.scan} → ${saved.verdict}${more}`);
  }
}

function render(a) {
  const theme = a.theme || {};
  if (theme.textColor) document.body.style.color = theme.textColor;
  if (theme.primaryColor) document.body.style.setProperty("--primary", theme.primaryColor);
  args = a.args;
  const fresh = mounted !== `${args.session_id}:${args.reviewer}`;
  items = args.items;
  if (fresh) {
    ui("verdicts").replaceChildren(...Object.entries(args.verdict_keys).map(([verdict, key]) => {
      const b = document.createElement("button");
      b.className = "verdict";
      b.textContent = `${verdict[0].toUpperCase()}${verdict.slice(1)} `;
      b.append(Object.assign(document.createElement("code"), { textContent: key }));
      b.onclick = () => label(verdict);
      return b;
    }));
    mounted = `${args.session_id}:${args.reviewer}`;
    pos = Math.min(Math.max(args.start, 0), items.length - 1);
    try { pending = JSON.parse(window.sessionStorage.getItem(storeKey()) || "[]"); } catch (e) { pending = []; }
    pending.forEach((l) => local.set(l.scan, { verdict: l.verdict, causes: l.causes, note: l.note, state: "pending" }));
  }
  for (const item of items) { // the journal is the truth once a read is saved (a bulk label too)
    const mine = local.get(item.id);
    if (mine && mine.state === "saved" && item.read) local.delete(item.id);
  }
  acknowledge(args.acks);
  show();
  if (fresh && pending.length) { // a reload: send what was never acknowledged again
    setStatus("pending", `Saving ${pending.length} label(s) given before the reload …`);
    send();
  }
}

ui("prev").onclick = () => move(pos - 1);
ui("next").onclick = () => move(pos + 1);
ui("accept").onclick = acceptSuggested;
ui("note").addEventListener("input", (e) => { if (items[pos]) notes.set(items[pos].id, e.target.value); });
document.addEventListener("keydown", onKey);
try { // the page's own keys too (same origin): the reviewer need not click into this frame
  if (window.parent.__ctaeReviewKeys) window.parent.document.removeEventListener("keydown", window.parent.__ctaeReviewKeys);
  window.parent.__ctaeReviewKeys = onKey;
  window.parent.document.addEventListener("keydown", onKey);
} catch (e) { /* not same-origin: keys work once the pane has the focus */ }

window.addEventListener("message", (event) => {
  if (event.data && event.data.type === "streamlit:render") {
    try {
      render(event.data);
    } catch (err) {
      state.error = String(err);
      post("streamlit:setComponentValue", { value: { failed: String(err) }, dataType: "json" });
    }
  }
});
post("streamlit:componentReady", { apiVersion: 1 });
