// ctae's scan viewer: a Streamlit component without a build step that draws slices with Canvas 2D
// from an Int16Array (no WebGL: a browser without a GPU draws a 512×512 slice in milliseconds).
// The scan arrives over HTTP as raw int16 slabs, the crosshair's slab first, so the first slice
// is drawn before the rest has arrived: a coarse preview of the whole series (every fourth voxel
// along each axis, 1/64 of the bytes) makes every slice drawable at once, a finer one (every
// second voxel) follows, and the slabs nearest the current slice replace them as they arrive. Scrolling, window/level (a lookup
// table), zoom/pan, the linked crosshair and the overlays run here, with no server round trip.
// Only a failure is reported back, so that the page can fall back to its server-rendered slices.
"use strict";

const PLANES = ["axial", "coronal", "sagittal"];
const FETCHES = 4; // slab requests in flight
const state = (window.ctaeViewer = {
  ready: false, key: null, firstDrawMs: null, scrollableMs: null, loadMs: null, draws: 0, error: null,
  at: {}, // epoch ms (performance.timeOrigin-based) of the first draw, scrollable and loaded
  cursor: () => (scan ? scan.cursor.slice() : null),
  shape: () => (scan ? scan.shape.slice() : null),
  overlays: () => (scan ? Object.keys(scan.overlays).sort() : []),
  window: () => [view.width, view.level],
  tile: (plane) => tiles.find((t) => t.plane === plane) || null,
  loadedSlices: () => (scan ? scan.loaded.reduce((a, b) => a + b, 0) : 0),
  shown: () => (scan ? resolutionAt(scan.cursor[2]) : null), // at the crosshair's slice
  scrollable: () => Boolean(scan && (scan.preview || state.ready)),
  previewFactor: () => (scan && scan.preview ? scan.preview.factor : null),
  regions: () => (scan ? scan.regions.map((r) => r.slice()) : []), // each region's peak (x, y, z)
});
const canvas = document.getElementById("view");
const ctx = canvas.getContext("2d");
const ui = (id) => document.getElementById(id);
let args = null;
let scan = null; // the open scan: voxels, overlays, cursor (x, y, z)
let tiles = [];
const view = { layout: 3, zoom: 1, panX: 0, panY: 0, width: 400, level: 40, hover: 0, drag: null };
const planeImages = [null, null, null]; // {canvas, image, index}
const dirty = new Set();
let lut = new Uint32Array(65536);
let framePending = false;

function post(type, data) {
  window.parent.postMessage(Object.assign({ isStreamlitMessage: true, type }, data), "*");
}

// ---- window / level: one RGBA word per int16 value -------------------------------------------
function buildLut() {
  const low = view.level - view.width / 2;
  const scale = 255 / Math.max(view.width, 1);
  const little = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
  for (let v = 0; v < 65536; v++) {
    const g = Math.max(0, Math.min(255, Math.round((v - 32768 - low) * scale)));
    lut[v] = little ? (0xff000000 | (g << 16) | (g << 8) | g) >>> 0 : ((g << 24) | (g << 16) | (g << 8) | 0xff) >>> 0;
  }
  dirty.add(0).add(1).add(2);
}

// ---- plane geometry ---------------------------------------------------------------------------
// axial: columns x, rows y; coronal: columns x, rows z (head up); sagittal: columns y, rows z.
function planeShape(p) {
  const [nz, ny, nx] = scan.shape;
  const [sz, sy, sx] = scan.spacing;
  if (p === 0) return { cols: nx, rows: ny, colMm: sx, rowMm: sy };
  if (p === 1) return { cols: nx, rows: nz, colMm: sx, rowMm: sz };
  return { cols: ny, rows: nz, colMm: sy, rowMm: sz };
}

function pixelVoxel(p, c, r) { // the voxel (x, y, z) shown at column c, row r of plane p
  const [nz] = scan.shape;
  const [x, y, z] = scan.cursor;
  if (p === 0) return [c, r, z];
  if (p === 1) return [c, y, nz - 1 - r];
  return [x, c, nz - 1 - r];
}

const COLUMN_STEP = [[1, 0, 0], [1, 0, 0], [0, 1, 0]];

// ---- drawing one plane into its own canvas at voxel resolution ---------------------------------
function overlayRow(o, start, step) { // the overlay voxel of column 0 and its change per column
  const m = o.to;
  const at = (v, w) => [0, 1, 2].map((i) => m[i][0] * v[0] + m[i][1] * v[1] + m[i][2] * v[2] + w * m[i][3]);
  return [at(start, 1), at(step, 0)];
}

function sampleRow(o, start, step, cols, out) { // nearest overlay values along a row; NaN outside
  const [o0, d] = overlayRow(o, start, step);
  const [onz, ony, onx] = o.shape;
  for (let c = 0; c < cols; c++) {
    const i = Math.round(o0[0] + c * d[0]), j = Math.round(o0[1] + c * d[1]), k = Math.round(o0[2] + c * d[2]);
    out[c] = i < 0 || j < 0 || k < 0 || i >= onx || j >= ony || k >= onz ? NaN : o.data[(k * ony + j) * onx + i];
  }
}

function renderPlane(p) {
  const { cols, rows } = planeShape(p);
  let img = planeImages[p];
  if (!img || img.canvas.width !== cols || img.canvas.height !== rows) {
    const c = document.createElement("canvas");
    c.width = cols;
    c.height = rows;
    img = planeImages[p] = { canvas: c, ctx: c.getContext("2d"), image: new ImageData(cols, rows) };
    img.mask = new Uint8Array(cols * rows);
    img.row = new Float32Array(cols);
  }
  const out = new Uint32Array(img.image.data.buffer);
  const [nz, ny, nx] = scan.shape;
  const data = scan.data;
  const recon = ui("recon").checked ? scan.overlays.reconstruction : null;
  const error = scan.overlays.error;
  const region = ui("outline").checked ? scan.overlays.region : null;
  const opacity = Number(ui("opacity").value);
  const errMin = 0.2 * args.error_max_hu, errSpan = 0.8 * args.error_max_hu;
  const step = COLUMN_STEP[p];
  const [x, y, z] = scan.cursor;
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    // grey: the scan itself, or the reconstruction in its place
    if (recon) {
      sampleRow(recon, pixelVoxel(p, 0, r), step, cols, img.row);
      for (let c = 0; c < cols; c++) {
        const v = img.row[c];
        out[base + c] = v === v ? lut[(v + 32768) & 0xffff] : lut[0];
      }
    } else if (!scan.loaded[p === 0 ? z : nz - 1 - r]) {
      if (scan.preview) previewRow(p, r, out, base, cols);
      else out.fill(lut[0], base, base + cols);
    } else if (p === 0) {
      const off = z * nx * ny + r * nx;
      for (let c = 0; c < cols; c++) out[base + c] = lut[data[off + c] + 32768];
    } else if (p === 1) {
      const off = (nz - 1 - r) * nx * ny + y * nx;
      for (let c = 0; c < cols; c++) out[base + c] = lut[data[off + c] + 32768];
    } else {
      const off = (nz - 1 - r) * nx * ny + x;
      for (let c = 0; c < cols; c++) out[base + c] = lut[data[off + c * nx] + 32768];
    }
    if (error && opacity > 0) {
      sampleRow(error, pixelVoxel(p, 0, r), step, cols, img.row);
      const px = img.image.data;
      for (let c = 0; c < cols; c++) {
        const a = opacity * Math.min(1, (img.row[c] - errMin) / errSpan);
        if (!(a > 0)) continue;
        const t = Math.min(1, Math.max(0, (img.row[c] - errMin) / errSpan));
        const q = (base + c) * 4; // warm: red rising to yellow
        px[q] = px[q] * (1 - a) + 255 * a;
        px[q + 1] = px[q + 1] * (1 - a) + 255 * t * a;
        px[q + 2] = px[q + 2] * (1 - a);
      }
    }
    if (region) {
      sampleRow(region, pixelVoxel(p, 0, r), step, cols, img.row);
      for (let c = 0; c < cols; c++) img.mask[base + c] = img.row[c] > 0 ? 1 : 0;
    }
  }
  if (region) outline(img, cols, rows, out);
  img.ctx.putImageData(img.image, 0, 0);
  img.index = scan.cursor[2 - p];
}

function previewAt(i, n) { // the preview's index (of n along that axis) holding voxel index i
  return Math.min(n - 1, Math.floor(i / scan.preview.factor));
}

function previewRow(p, r, out, base, cols) { // row r of plane p from the preview's voxels
  const { data: pd, shape: [pz, py, px] } = scan.preview;
  const [nz] = scan.shape;
  const [x, y, z] = scan.cursor;
  const at = previewAt;
  if (p === 0) {
    const off = (at(z, pz) * py + at(r, py)) * px;
    for (let c = 0; c < cols; c++) out[base + c] = lut[pd[off + at(c, px)] + 32768];
  } else if (p === 1) {
    const off = (at(nz - 1 - r, pz) * py + at(y, py)) * px;
    for (let c = 0; c < cols; c++) out[base + c] = lut[pd[off + at(c, px)] + 32768];
  } else {
    const off = at(nz - 1 - r, pz) * py * px + at(x, px);
    for (let c = 0; c < cols; c++) out[base + c] = lut[pd[off + at(c, py) * px] + 32768];
  }
}

function resolutionAt(z) { // what the axial slice z is drawn from
  if (scan.loaded[z]) return "full";
  return scan.preview ? "preview" : "loading";
}

function outline(img, cols, rows, out) { // the region's contour: inside pixels with an outside neighbour
  const m = img.mask;
  const w = cols > 256 ? 2 : 1; // two voxels wide on a fine grid, so that it stays visible
  const colour = new Uint32Array(new Uint8Array([0, 230, 255, 255]).buffer)[0];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      if (!m[r * cols + c]) continue;
      let edge = false;
      for (let d = 1; d <= w && !edge; d++) {
        edge = c < d || r < d || c + d >= cols || r + d >= rows ||
          !m[r * cols + c - d] || !m[r * cols + c + d] || !m[(r - d) * cols + c] || !m[(r + d) * cols + c];
      }
      if (edge) out[r * cols + c] = colour;
    }
  }
}

// ---- layout, composition and crosshair --------------------------------------------------------
function layoutTiles() {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const shown = view.layout === 3 ? [0, 1, 2] : [view.layout];
  const slot = width / shown.length;
  tiles = shown.map((p, i) => {
    const { cols, rows, colMm, rowMm } = planeShape(p);
    const fit = Math.min(slot / (cols * colMm), height / (rows * rowMm)) * view.zoom;
    const w = cols * colMm * fit, h = rows * rowMm * fit;
    return { plane: PLANES[p], p, slot: [i * slot, 0, slot, height], cols, rows,
             x: i * slot + (slot - w) / 2 + view.panX, y: (height - h) / 2 + view.panY, w, h };
  });
}

function draw() {
  framePending = false;
  if (!scan) return;
  layoutTiles();
  const ratio = window.devicePixelRatio || 1;
  for (const t of tiles) {
    const img = planeImages[t.p];
    if (dirty.has(t.p) || !img || img.index !== scan.cursor[2 - t.p]) renderPlane(t.p);
    dirty.delete(t.p); // a hidden plane stays dirty until it is shown
  }
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.clientWidth, canvas.clientHeight);
  for (const t of tiles) {
    ctx.save();
    ctx.imageSmoothingEnabled = t.w / t.cols < 2; // magnified: show the voxels as they are
    ctx.beginPath();
    ctx.rect(...t.slot);
    ctx.clip();
    ctx.drawImage(planeImages[t.p].canvas, t.x, t.y, t.w, t.h);
    const [cx, cy] = crosshairPixel(t);
    ctx.strokeStyle = "rgba(26, 230, 77, 0.7)";
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(t.x + cx * t.w / t.cols, t.y);
    ctx.lineTo(t.x + cx * t.w / t.cols, t.y + t.h);
    ctx.moveTo(t.x, t.y + cy * t.h / t.rows);
    ctx.lineTo(t.x + t.w, t.y + cy * t.h / t.rows);
    ctx.stroke();
    ctx.fillStyle = "#ccc";
    ctx.fillText(`${t.plane} ${scan.cursor[2 - t.p] + 1}/${planeDepth(t.p)}`, t.slot[0] + 6, 14);
    ctx.restore();
  }
  state.draws += 1;
  showStatus();
}

function planeDepth(p) { return scan.shape[p]; }

function crosshairPixel(t) { // (column, row) + 0.5 of the cursor in tile t
  const [nz] = scan.shape;
  const [x, y, z] = scan.cursor;
  if (t.p === 0) return [x + 0.5, y + 0.5];
  if (t.p === 1) return [x + 0.5, nz - 1 - z + 0.5];
  return [y + 0.5, nz - 1 - z + 0.5];
}

function requestDraw() {
  if (!framePending) {
    framePending = true;
    requestAnimationFrame(draw);
  }
}

function showStatus() {
  const [x, y, z] = scan.cursor;
  const [nz, ny, nx] = scan.shape;
  const a = scan.affine;
  const mm = [0, 1, 2].map((i) => (a[i][0] * x + a[i][1] * y + a[i][2] * z + a[i][3]).toFixed(1));
  const parts = [`voxel (${x}, ${y}, ${z})`, `${mm.join(", ")} mm (LPS)`];
  if (scan.loaded[z]) parts.push(`HU ${scan.data[(z * ny + y) * nx + x]}`);
  else if (scan.preview) {
    const { data: pd, shape: [pz, py, px] } = scan.preview;
    parts.push(`HU ≈${pd[(previewAt(z, pz) * py + previewAt(y, py)) * px + previewAt(x, px)]}`);
  } else parts.push("HU …");
  for (const [role, name] of [["error", "|error|"], ["reconstruction", "reconstruction"]]) {
    const o = scan.overlays[role];
    if (!o) continue;
    const row = new Float32Array(1);
    sampleRow(o, [x, y, z], [1, 0, 0], 1, row);
    if (row[0] === row[0]) parts.push(`${name} ${Math.round(row[0])}`);
  }
  if (scan.overlays.region) {
    const row = new Float32Array(1);
    sampleRow(scan.overlays.region, [x, y, z], [1, 0, 0], 1, row);
    if (row[0] === 1) parts.push("in the hottest region");
    else if (row[0] > 1) parts.push(`in hottest region ${row[0]} of ${scan.regions.length}`);
  }
  const pending = nz - state.loadedSlices();
  if (pending > 0 && !scan.loaded[z] && scan.preview) {
    parts.push(`preview (1/${scan.preview.factor} resolution) · full resolution: ${pending} slices to come …`);
  } else if (pending > 0) parts.push(`full resolution here · loading ${pending} slices …`);
  else parts.push("full resolution");
  ui("status").textContent = parts.join(" · ");
}

// ---- interaction ------------------------------------------------------------------------------
function tileAt(ev) {
  const box = canvas.getBoundingClientRect();
  const px = ev.clientX - box.left, py = ev.clientY - box.top;
  const t = tiles.find((s) => px >= s.slot[0] && px < s.slot[0] + s.slot[2]) || tiles[0];
  return { t, c: ((px - t.x) / t.w) * t.cols, r: ((py - t.y) / t.h) * t.rows };
}

function moveSlice(p, delta) {
  const axis = 2 - p;
  const depth = scan.shape[p];
  scan.cursor[axis] = Math.max(0, Math.min(depth - 1, scan.cursor[axis] + delta));
  requestDraw();
}

function pointAt(ev) {
  const { t, c, r } = tileAt(ev);
  const { cols, rows } = planeShape(t.p);
  const voxel = pixelVoxel(t.p, Math.floor(c), Math.floor(r));
  if (c < 0 || r < 0 || c >= cols || r >= rows) return;
  scan.cursor = voxel;
  requestDraw();
}

canvas.addEventListener("wheel", (ev) => {
  if (!scan || ev.deltaY === 0) return;
  ev.preventDefault();
  const { t } = tileAt(ev);
  view.hover = t.p;
  if (ui("drag").value === "pan") {
    view.zoom = Math.max(0.5, Math.min(16, view.zoom * (ev.deltaY < 0 ? 1.15 : 1 / 1.15)));
    requestDraw();
  } else {
    moveSlice(t.p, ev.deltaY < 0 ? 1 : -1);
  }
}, { passive: false });

canvas.addEventListener("contextmenu", (ev) => ev.preventDefault());
canvas.addEventListener("pointerdown", (ev) => {
  if (!scan) return;
  canvas.focus();
  canvas.setPointerCapture(ev.pointerId);
  const mode = ev.button === 2 ? "window" : ui("drag").value;
  view.drag = { mode, x: ev.clientX, y: ev.clientY, width: view.width, level: view.level,
                panX: view.panX, panY: view.panY };
  if (mode === "crosshair") pointAt(ev);
});
canvas.addEventListener("pointermove", (ev) => {
  if (!scan) return;
  view.hover = tileAt(ev).t.p;
  const d = view.drag;
  if (!d) return;
  const dx = ev.clientX - d.x, dy = ev.clientY - d.y;
  if (d.mode === "crosshair") pointAt(ev);
  else if (d.mode === "pan") {
    view.panX = d.panX + dx;
    view.panY = d.panY + dy;
    requestDraw();
  } else { // right or left drag: width to the right, level down the screen
    view.width = Math.max(1, d.width * Math.exp(dx / 200));
    view.level = d.level + (dy * d.width) / 300;
    ui("preset").value = "custom";
    buildLut();
    requestDraw();
  }
});
canvas.addEventListener("pointerup", () => { view.drag = null; });
canvas.addEventListener("keydown", (ev) => {
  if (!scan) return;
  const step = { ArrowUp: 1, ArrowDown: -1, PageUp: 10, PageDown: -10 }[ev.key];
  if (step) {
    ev.preventDefault();
    moveSlice(view.hover, step);
  }
});
ui("layout").onchange = (e) => { view.layout = Number(e.target.value); requestDraw(); };
ui("preset").onchange = (e) => {
  const preset = args.window_presets[e.target.value];
  if (!preset) return;
  [view.width, view.level] = preset;
  buildLut();
  requestDraw();
};
for (const id of ["recon", "opacity", "outline"]) {
  ui(id).oninput = () => { dirty.add(0).add(1).add(2); requestDraw(); };
}
ui("next_region").onclick = () => { // the crosshair to the next region's peak, round and round
  if (!scan || scan.regions.length < 2) return;
  scan.regionShown = (scan.regionShown + 1) % scan.regions.length;
  scan.cursor = scan.regions[scan.regionShown].slice();
  showRegionButton();
  dirty.add(0).add(1).add(2);
  requestDraw();
};

function showRegionButton() {
  const button = ui("next_region");
  button.hidden = !scan || scan.regions.length < 2;
  if (scan) button.textContent = `region ${scan.regionShown + 1} of ${scan.regions.length} ▸`;
}

ui("reset").onclick = () => {
  Object.assign(view, { zoom: 1, panX: 0, panY: 0 });
  setWindow(args);
  requestDraw();
};
new ResizeObserver(() => scan && requestDraw()).observe(canvas);

function setWindow(a) {
  [view.width, view.level] = a.window_hu;
  const select = ui("preset");
  if (!select.options.length) { // the presets, once: soft tissue, lung, bone, metal, custom
    for (const name of [...Object.keys(a.window_presets), "custom"]) select.add(new Option(name, name));
  }
  const named = Object.keys(a.window_presets)
    .find((n) => String(a.window_presets[n]) === String(a.window_hu));
  select.value = named || "custom";
  buildLut();
}

// ---- loading ----------------------------------------------------------------------------------
async function fetchGz(file, signal) {
  // no-store: a series is tens of MB, which would push Streamlit's own scripts (and their
  // compiled code) out of the browser's cache, so that every visit would start cold
  const url = new URL(args.files_base + file, window.location.href);
  const response = await fetch(url, { signal, cache: "no-store" });
  if (!response.ok) throw new Error(`${file}: HTTP ${response.status}`);
  const body = response.body.pipeThrough(new DecompressionStream("gzip"));
  return new Int16Array(await new Response(body).arrayBuffer());
}

let loading = null; // AbortController of the scan being fetched
let loadingKey = null;
let lastWindow = null;

async function loadScan(a) {
  const started = performance.now();
  if (loading) loading.abort();
  const controller = (loading = new AbortController());
  const s = a.scan;
  const [nz, ny, nx] = s.shape_zyx;
  state.ready = false;
  state.firstDrawMs = null;
  state.scrollableMs = null;
  state.at = {};
  const data = new Int16Array(nz * ny * nx); // slices not here yet come from a preview (loaded[])
  const cursor = s.crosshair_xyz ? s.crosshair_xyz.slice() : [nx >> 1, ny >> 1, nz >> 1];
  const overlays = {};
  const loadOverlay = async (o) => {
    overlays[o.role] = { shape: o.shape_zyx, to: o.to_overlay, data: await fetchGz(o.file, controller.signal) };
  };
  // the |error| map and its region are drawn from the start; the reconstruction (shown when
  // toggled) follows the first slice
  const overlayLoads = s.overlays.filter((o) => o.role !== "reconstruction").map(loadOverlay);
  const next = { shape: s.shape_zyx, spacing: s.spacing_zyx_mm, affine: s.affine, data,
                 loaded: new Uint8Array(nz), cursor, overlays, preview: null,
                 regions: s.regions_xyz || [], regionShown: 0 };
  const perSlab = s.slab_slices;
  const pending = new Set(s.slabs.map((f, k) => k));
  const nearest = () => { // the slab nearest the slice shown now (the reader may have scrolled)
    const z = (scan === next ? scan.cursor : cursor)[2];
    let best = -1;
    for (const k of pending) {
      if (best < 0 || Math.abs(k * perSlab + perSlab / 2 - z) < Math.abs(best * perSlab + perSlab / 2 - z)) best = k;
    }
    pending.delete(best);
    return best;
  };
  const scrollable = () => {
    if (state.scrollableMs === null && scan === next && (next.preview || !pending.size)) {
      state.scrollableMs = performance.now() - started;
      state.at.scrollable = performance.timeOrigin + performance.now();
    }
  };
  const fetchSlab = async (k) => {
    const slab = await fetchGz(s.slabs[k], controller.signal);
    if (controller.signal.aborted) return;
    data.set(slab, k * perSlab * ny * nx);
    next.loaded.fill(1, k * perSlab, Math.min(nz, (k + 1) * perSlab));
    if (scan === next) {
      dirty.add(1).add(2);
      if (k * perSlab <= next.cursor[2] && next.cursor[2] < (k + 1) * perSlab) dirty.add(0);
      requestDraw();
    }
  };
  const fetchPreview = async (p) => { // a finer preview replaces a coarser one, never the reverse
    const pd = await fetchGz(p.file, controller.signal);
    if (controller.signal.aborted || (next.preview && next.preview.factor <= p.factor)) return;
    next.preview = { data: pd, factor: p.factor, shape: p.shape_zyx };
    dirty.add(0).add(1).add(2);
    if (scan === next) requestDraw();
    scrollable();
  };
  // the first slice needs only the coarsest preview (1/64 of the series) or, for a series of one
  // slab, that slab; the crosshair's slab follows (nothing shares the link with the first bytes)
  // and replaces the preview where it lands
  const [coarse, ...finer] = s.previews;
  const crosshairSlab = () => fetchSlab(nearest()).then(() => {
    state.at.crosshairFull = performance.timeOrigin + performance.now(); // its slice at full resolution
  });
  let firstSlab = coarse ? null : crosshairSlab();
  await Promise.all([coarse ? fetchPreview(coarse) : firstSlab, ...overlayLoads]);
  if (!firstSlab) firstSlab = crosshairSlab();
  if (controller.signal.aborted) return;
  scan = next; // show the scan now, with its overlays
  showRegionButton();
  dirty.add(0).add(1).add(2);
  draw();
  state.firstDrawMs = performance.now() - started;
  state.at.first = performance.timeOrigin + performance.now();
  state.key = a.scan_key;
  scrollable();
  const recon = s.overlays.find((o) => o.role === "reconstruction");
  const later = [firstSlab, ...finer.map(fetchPreview)];
  if (recon) later.push(loadOverlay(recon).then(() => { dirty.add(0).add(1).add(2); requestDraw(); }));
  const worker = async () => {
    while (pending.size && !controller.signal.aborted) await fetchSlab(nearest());
  };
  await Promise.all([...later, ...Array.from({ length: FETCHES }, worker)]);
  if (controller.signal.aborted) return;
  next.preview = null; // every slice is here at full resolution
  scrollable();
  state.loadMs = performance.now() - started;
  state.at.loaded = performance.timeOrigin + performance.now();
  state.ready = true;
  dirty.add(0).add(1).add(2);
  requestDraw();
}

async function render(a) {
  args = a;
  document.getElementById("stage").style.height = `${a.height}px`;
  post("streamlit:setFrameHeight", { height: a.height + 90 }); // + tool bar and status line
  ui("source").textContent = a.source_note;
  if (state.key === null) ui("opacity").value = a.error_opacity;
  if (!ctx || typeof DecompressionStream === "undefined") {
    throw new Error("this browser lacks Canvas 2D or DecompressionStream");
  }
  if (String(a.window_hu) !== lastWindow) { // a preset chosen on the page; a drag stays otherwise
    lastWindow = String(a.window_hu);
    setWindow(a);
  }
  if (loadingKey !== a.scan_key) {
    loadingKey = a.scan_key;
    ui("opacity").value = a.error_opacity;
    loadScan(a).catch(fail); // not awaited: a later render (another scan) may abort it
  } else {
    dirty.add(0).add(1).add(2);
    requestDraw();
  }
}

function fail(err) {
  if (err && err.name === "AbortError") return;
  state.error = String(err);
  ui("status").textContent = `Viewer error: ${err}`;
  ui("message").hidden = false;
  ui("message").textContent = "The interactive viewer failed: the server-rendered slices are shown instead.";
  post("streamlit:setComponentValue", { value: { failed: String(err) }, dataType: "json" });
}

let queue = Promise.resolve();
window.addEventListener("message", (event) => {
  if (event.data && event.data.type === "streamlit:render") {
    const a = event.data.args;
    queue = queue.then(() => render(a)).catch(fail);
  }
});
post("streamlit:componentReady", { apiVersion: 1 });
