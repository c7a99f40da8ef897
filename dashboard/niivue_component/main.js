// ctae's scan viewer: NiiVue (vendored, BSD-2) as a Streamlit component without a build step.
// The scan is fetched once as NIfTI files over HTTP; scrolling, window/level, zoom/pan and the linked
// crosshair run here, with no server round trip. Only "no WebGL2" is reported back, so that the
// page can fall back to its server-rendered slices.
"use strict";

const state = (window.ctaeViewer = { ready: false, key: null, loadMs: null, slices: 0, error: null, nv: null });
let nv = null;
let NV = null;
let lastArgs = null;

function post(type, data) {
  window.parent.postMessage(Object.assign({ isStreamlitMessage: true, type }, data), "*");
}

async function loadNiivue() {
  // Stored gzip-compressed (0.8 MB instead of 2.3 MB); the browser inflates it natively.
  const response = await fetch("niivue.umd.js.gz");
  const code = await new Response(response.body.pipeThrough(new DecompressionStream("gzip"))).text();
  const url = URL.createObjectURL(new Blob([code], { type: "text/javascript" }));
  await new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = url;
    script.onload = resolve;
    script.onerror = () => reject(new Error("could not load the NiiVue bundle"));
    document.head.appendChild(script);
  });
  return window.niivue;
}

function hasWebGL2() {
  try {
    return !!document.createElement("canvas").getContext("webgl2");
  } catch (err) {
    return false;
  }
}

function windowRange(args) {
  const [width, level] = args.window_hu;
  return [level - width / 2, level + width / 2];
}

function applySettings(args) {
  const [lo, hi] = windowRange(args);
  const recon = document.getElementById("recon").checked;
  nv.volumes.forEach((volume, i) => {
    const meta = i === 0 ? { role: "scan" } : args.overlays[i - 1];
    if (meta.role === "scan" || meta.role === "reconstruction") {
      volume.cal_min = lo;
      volume.cal_max = hi;
    }
    if (meta.role === "reconstruction") volume.opacity = recon ? 1 : 0;
    if (meta.role === "error") {
      volume.cal_min = meta.cal_min;
      volume.cal_max = meta.cal_max;
      volume.opacity = Number(document.getElementById("opacity").value);
    }
  });
  nv.updateGLVolume();
}

function showLocation(location) {
  state.slices += 1;
  const values = location.values
    .map((v, i) => `${i === 0 ? "HU" : lastArgs.overlays[i - 1].role} ${Math.round(v.value)}`)
    .join(" · ");
  const mm = Array.from(location.mm.slice(0, 3), (v) => v.toFixed(1)).join(", ");
  const vox = location.vox.join(", ");
  document.getElementById("status").textContent = `voxel (${vox}) · ${mm} mm RAS · ${values}`;
}

async function setUp(args) {
  NV = await loadNiivue();
  nv = new NV.Niivue({
    backColor: [0, 0, 0, 1],
    crosshairColor: [0.1, 0.9, 0.3, 0.7],
    crosshairWidth: 1,
    isRadiologicalConvention: true, // patient's left on the screen's right, as radiologists read
    multiplanarLayout: NV.MULTIPLANAR_TYPE.ROW,
    multiplanarShowRender: NV.SHOW_RENDER.NEVER,
    dragMode: NV.DRAG_MODE.windowing, // right drag: window / level
    dragModePrimary: NV.DRAG_MODE.crosshair,
    isColorbar: false,
    show3Dcrosshair: false,
  });
  await nv.attachTo("gl");
  state.nv = nv;
  nv.onLocationChange = showLocation;
  nv.setSliceType(NV.SLICE_TYPE.MULTIPLANAR);
  document.getElementById("layout").onchange = (e) => nv.setSliceType(Number(e.target.value));
  document.getElementById("drag").onchange = (e) => {
    nv.opts.dragModePrimary = Number(e.target.value);
  };
  document.getElementById("recon").onchange = () => applySettings(lastArgs);
  document.getElementById("opacity").oninput = () => applySettings(lastArgs);
  document.getElementById("reset").onclick = () => {
    nv.scene.pan2Dxyzmm = [0, 0, 0, 1];
    applySettings(lastArgs);
    nv.drawScene();
  };
}

async function fetchBytes(args, file) {
  const response = await fetch(new URL(args.files_base + file, window.location.href));
  if (!response.ok) throw new Error(`${file}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

async function loadScan(args) {
  const started = performance.now();
  state.ready = false;
  while (nv.volumes.length) nv.removeVolume(nv.volumes[nv.volumes.length - 1]);
  const [lo, hi] = windowRange(args);
  const scan = await NV.NVImage.loadFromUrl({
    url: await fetchBytes(args, args.volume), name: "scan.nii.gz", colormap: "gray",
    cal_min: lo, cal_max: hi,
    trustCalMinMax: true,
  });
  nv.addVolume(scan);
  for (let i = 0; i < args.overlays.length; i++) {
    const meta = args.overlays[i];
    const overlay = await NV.NVImage.loadFromUrl({
      url: await fetchBytes(args, meta.file), name: `${meta.role}.nii.gz`, colormap: meta.colormap,
      opacity: meta.opacity, cal_min: meta.cal_min, cal_max: meta.cal_max, trustCalMinMax: true,
    });
    nv.addVolume(overlay);
  }
  applySettings(args);
  if (args.crosshair_mm) nv.scene.crosshairPos = nv.mm2frac(args.crosshair_mm);
  nv.drawScene();
  nv.createOnLocationChange();
  state.loadMs = performance.now() - started;
  state.key = args.scan_key;
  state.ready = true;
}

async function render(args) {
  lastArgs = args;
  document.getElementById("stage").style.height = `${args.height}px`;
  post("streamlit:setFrameHeight", { height: args.height + 70 });
  if (!hasWebGL2()) {
    state.error = "no WebGL2";
    document.getElementById("message").hidden = false;
    document.getElementById("message").textContent =
      "This browser offers no WebGL2: the server-rendered slices are shown instead.";
    post("streamlit:setComponentValue", { value: { webgl: false }, dataType: "json" });
    return;
  }
  document.getElementById("source").textContent = args.source_note;
  if (!nv) {
    document.getElementById("opacity").value = args.error_opacity;
    await setUp(args);
  }
  if (state.key !== args.scan_key) await loadScan(args);
  else applySettings(args);
}

let queue = Promise.resolve();
window.addEventListener("message", (event) => {
  if (event.data && event.data.type === "streamlit:render") {
    const args = event.data.args;
    queue = queue.then(() => render(args)).catch((err) => {
      state.error = String(err);
      document.getElementById("status").textContent = `Viewer error: ${err}`;
    });
  }
});
post("streamlit:componentReady", { apiVersion: 1 });
