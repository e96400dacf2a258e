// The mmbind explorer page: the map (Plotly scattergl), queries, dropped files, pinned items.
// The page's state (query, target, k, colouring, collections shown, pins) lives in its URL.
"use strict";

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
  "#bcbd22", "#17becf", "#393b79", "#ad494a", "#8ca252", "#ce6dbd", "#e7ba52", "#5254a3", "#843c39",
  "#637939", "#7b4173", "#3182bd"];
const NO_LABEL = "(no label)";
const $ = (id) => document.getElementById(id);

const state = {
  meta: null,        // /api/meta
  xy: null,          // Float32Array: x, y per point
  labelCode: null,   // Uint16Array: index into meta.labels per point
  collectionOf: null, // Uint16Array: index into meta.collections per point
  groups: [],        // per map trace: Uint32Array of the point indices it draws
  traces: [],        // the map's traces (kept, so legend toggles survive a redraw)
  highlight: [],     // result and query traces
  result: null,      // the last search answer
  pins: [],          // pinned point indices
  items: new Map(),  // point index -> /api/item answer (cache)
};

// --- small helpers ----------------------------------------------------------------------------
async function getJSON(url, options) {
  const response = await fetch(url, options);
  let body;
  try { body = await response.json(); } catch { body = { error: `${response.status} ${response.statusText}` }; }
  if (!response.ok) throw Object.assign(new Error(body.error || response.statusText), { body });
  return body;
}

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function setStatus(text) { $("status").textContent = text; }

function showError(error) {
  const box = $("error");
  box.replaceChildren();
  const body = error.body || {};
  const [first, ...rest] = (body.error || String(error.message || error)).split("\n");
  box.append(element("div", {}, first));
  if (rest.length) box.append(element("pre", {}, rest.join("\n")));
  box.classList.remove("hidden");
  if (body.position !== undefined && body.expression === $("query").value.trim()) {
    const input = $("query");
    const start = input.value.indexOf(body.expression) + body.position;
    input.focus();
    input.setSelectionRange(start, start + 1);
  }
  setStatus("error");
}

function hideError() { $("error").classList.add("hidden"); }

function pointOf(index) {
  const c = state.meta.collections[state.collectionOf[index]];
  return { collection: c.name, row: index - c.offset };
}

// --- URL state --------------------------------------------------------------------------------
function readURL() {
  const params = new URLSearchParams(location.search);
  const names = state.meta.collections.map((c) => c.name);
  if (params.get("target") && names.includes(params.get("target"))) $("target").value = params.get("target");
  if (params.get("k")) $("k").value = params.get("k");
  if (params.get("color")) $("color").value = params.get("color");
  if (params.get("q")) $("query").value = params.get("q");
  if (params.has("show")) {
    const shown = new Set(params.get("show").split(",").filter(Boolean));
    for (const box of document.querySelectorAll("#collections input")) box.checked = shown.has(box.value);
  }
  for (const ref of (params.get("pins") || "").split(",").filter(Boolean)) {
    const [name, row] = ref.split("/#");
    const c = state.meta.collections.find((x) => x.name === name);
    if (c && Number(row) < c.count) state.pins.push(c.offset + Number(row));
  }
}

function writeURL() {
  const params = new URLSearchParams();
  const q = $("query").value.trim();
  if (q) params.set("q", q);
  params.set("target", $("target").value);
  params.set("k", $("k").value);
  params.set("color", $("color").value);
  const boxes = [...document.querySelectorAll("#collections input")];
  if (boxes.some((b) => !b.checked)) params.set("show", boxes.filter((b) => b.checked).map((b) => b.value).join(","));
  if (state.pins.length) {
    params.set("pins", state.pins.map((i) => { const p = pointOf(i); return `${p.collection}/#${p.row}`; }).join(","));
  }
  history.replaceState(null, "", `?${params}`);
}

// --- the map ----------------------------------------------------------------------------------
async function loadMap() {
  const [meta, buffer] = await Promise.all([
    getJSON("/api/meta"), fetch("/api/map.bin").then((r) => r.arrayBuffer())]);
  const n = meta.total;
  state.meta = meta;
  state.xy = new Float32Array(buffer, 0, 2 * n);
  state.labelCode = new Uint16Array(buffer, 8 * n, n);
  state.collectionOf = new Uint16Array(n);
  meta.collections.forEach((c, i) => state.collectionOf.fill(i, c.offset, c.offset + c.count));
  state.items.clear();
  state.traces = [];
}

function colouring() {
  const { meta } = state;
  const mode = $("color").value;
  if (mode === "collection") return { names: meta.collections.map((c) => c.name), keyOf: (i) => state.collectionOf[i] };
  if (mode === "modality") {
    const names = [...new Set(meta.collections.map((c) => c.modality))];
    const code = meta.collections.map((c) => names.indexOf(c.modality));
    return { names, keyOf: (i) => code[state.collectionOf[i]] };
  }
  return { names: meta.labels, keyOf: (i) => state.labelCode[i] };
}

function buildTraces() {
  const { names, keyOf } = colouring();
  const shown = new Set([...document.querySelectorAll("#collections input:checked")].map((b) => b.value));
  const visible = state.meta.collections.map((c) => shown.has(c.name));
  const n = state.meta.total;
  const counts = new Uint32Array(names.length);
  for (let i = 0; i < n; i++) if (visible[state.collectionOf[i]]) counts[keyOf(i)]++;
  const groups = names.map((_, g) => new Uint32Array(counts[g]));
  const fill = new Uint32Array(names.length);
  for (let i = 0; i < n; i++) if (visible[state.collectionOf[i]]) { const g = keyOf(i); groups[g][fill[g]++] = i; }
  const size = n > 20000 ? 3 : 5;
  state.groups = groups;
  state.traces = names.map((name, g) => {
    const x = new Float32Array(groups[g].length);
    const y = new Float32Array(groups[g].length);
    groups[g].forEach((i, j) => { x[j] = state.xy[2 * i]; y[j] = state.xy[2 * i + 1]; });
    const colour = name === NO_LABEL ? "#bbbbbb" : PALETTE[g % PALETTE.length];
    return { type: "scattergl", mode: "markers", name: `${name} (${groups[g].length})`, x, y,
      hoverinfo: "none", showlegend: groups[g].length > 0, marker: { size, color: colour, opacity: 0.75 } };
  });
}

function highlightTraces() {
  const answer = state.result;
  const pins = state.pins;
  const traces = [];
  if (answer && answer.results.length) {
    traces.push({ type: "scattergl", mode: "markers", name: `results in ${answer.target}`, hoverinfo: "none",
      x: answer.results.map((r) => state.xy[2 * r.index]), y: answer.results.map((r) => state.xy[2 * r.index + 1]),
      marker: { size: 12, color: "rgba(0,0,0,0)", line: { color: "#000", width: 2 } } });
  }
  if (answer && answer.position) {
    traces.push({ type: "scattergl", mode: "markers", name: "query", hoverinfo: "none",
      x: [answer.position[0]], y: [answer.position[1]],
      marker: { size: 20, symbol: "star", color: "#ffd600", line: { color: "#000", width: 1.5 } } });
  }
  if (pins.length) {
    traces.push({ type: "scattergl", mode: "markers", name: "pinned", hoverinfo: "none",
      x: pins.map((i) => state.xy[2 * i]), y: pins.map((i) => state.xy[2 * i + 1]),
      marker: { size: 14, symbol: "diamond-open", color: "#d50000", line: { width: 2 } } });
  }
  state.highlight = traces;
  return traces;
}

// Map trace + point number -> point index (highlight traces: the results and pins they draw).
function indexAt(curve, point) {
  if (curve < state.groups.length) return state.groups[curve][point];
  const trace = state.highlight[curve - state.groups.length];
  if (trace.name.startsWith("results")) return state.result.results[point].index;
  if (trace.name === "pinned") return state.pins[point];
  return null;
}

const LAYOUT = {
  margin: { l: 0, r: 0, t: 0, b: 0 }, dragmode: "pan", hovermode: "closest", uirevision: "map",
  xaxis: { visible: false }, yaxis: { visible: false, scaleanchor: "x" },
  legend: { itemsizing: "constant", bgcolor: "rgba(255,255,255,0.85)", x: 1, xanchor: "right", y: 0.94 },
  paper_bgcolor: "#fafafa", plot_bgcolor: "#fafafa",
};
const CONFIG = { scrollZoom: true, displaylogo: false, responsive: true, modeBarButtonsToRemove: ["select2d", "lasso2d"] };

async function drawMap() {
  if (!state.traces.length) buildTraces();
  const map = $("map");
  await Plotly.react(map, [...state.traces, ...highlightTraces()], LAYOUT, CONFIG);
  if (!map.dataset.wired) {
    map.dataset.wired = "1";
    map.on("plotly_hover", (event) => { const p = event.points[0]; showHover(indexAt(p.curveNumber, p.pointNumber)); });
    map.on("plotly_unhover", () => $("hover").classList.add("hidden"));
    map.on("plotly_click", (event) => { const p = event.points[0]; pin(indexAt(p.curveNumber, p.pointNumber)); });
  }
  const info = state.meta.map;
  $("map-info").textContent = `${state.meta.total.toLocaleString()} points; map by ${info.method.toUpperCase()}` +
    `, computed ${info.created}` + (info.placed ? `; ${info.placed} added later, placed by their neighbours` : "");
}

// --- items: hover card, gallery cards, pins ---------------------------------------------------
async function item(index) {
  if (!state.items.has(index)) {
    const p = pointOf(index);
    state.items.set(index, getJSON(`/api/item/${encodeURIComponent(p.collection)}/${p.row}`));
  }
  return state.items.get(index);
}

function mediaURL(collection, row) { return `/api/media/${encodeURIComponent(collection)}/${row}`; }

const SMALL_PLOT = { height: 110, margin: { l: 34, r: 4, t: 4, b: 22 }, showlegend: false };

// What an item looks like; ``full`` adds the waveform and series plots of a pinned card.
function itemBody(it, full) {
  if (it.kind === "picture") return element("img", { src: mediaURL(it.collection, it.row), alt: it.label || it.id });
  if (it.kind === "words") return element("q", {}, it.words);
  if (it.kind === "sound") {
    const player = element("audio", { controls: true, preload: "none", src: mediaURL(it.collection, it.row) });
    if (!full || !it.envelope) return player;
    const plot = element("div", { class: "plot" });
    const t = it.envelope.max.map((_, j) => (j * it.seconds) / it.envelope.max.length);
    requestAnimationFrame(() => Plotly.newPlot(plot, [
      { x: t, y: it.envelope.max, type: "scatter", mode: "lines", line: { width: 0.5, color: "#1565c0" }, hoverinfo: "skip" },
      { x: t, y: it.envelope.min, type: "scatter", mode: "lines", fill: "tonexty", line: { width: 0.5, color: "#1565c0" }, hoverinfo: "skip" },
    ], { ...SMALL_PLOT, xaxis: { ticksuffix: " s" }, yaxis: { range: [-1, 1] } }, { staticPlot: true }));
    return element("div", {}, player, plot);
  }
  if (it.kind === "series") {
    if (!full) return element("div", { class: "sub" }, `${it.series.length} channels`);
    const plot = element("div", { class: "plot" });
    // Each channel minus its mean, so a constant offset (gravity on one axis) does not flatten the rest.
    const centred = it.series.map((y) => { const mean = y.reduce((a, b) => a + b, 0) / y.length; return y.map((v) => v - mean); });
    requestAnimationFrame(() => Plotly.newPlot(plot, centred.map((y, c) => (
      { y, type: "scatter", mode: "lines", name: `ch ${c + 1}`, line: { width: 1, color: PALETTE[c % PALETTE.length] } })),
    SMALL_PLOT, { staticPlot: true }));
    return element("div", {}, plot, element("div", { class: "sub" }, `${it.series.length} channels, each minus its mean`));
  }
  return element("div", { class: "sub" }, it.preview_error || "no preview: the store records no source for it");
}

async function showHover(index) {
  if (index === null) return;
  const card = $("hover");
  card.dataset.index = index;
  const it = await item(index);
  if (card.dataset.index !== String(index)) return;  // the pointer has moved on
  card.replaceChildren(
    element("div", { class: "head" }, element("span", { class: "label" }, it.label ?? NO_LABEL),
      element("span", { class: "sub" }, `${it.collection}/#${it.row}`)),
    itemBody(it, false), element("div", { class: "sub" }, it.id));
  card.classList.remove("hidden");
}

async function pin(index) {
  if (index === null || state.pins.includes(index)) return;
  state.pins.unshift(index);
  await renderPins();
  drawMap();
  writeURL();
}

async function renderPins() {
  const cards = await Promise.all(state.pins.map(async (index) => {
    const it = await item(index).catch((error) => ({ error }));
    if (it.error) return element("div", { class: "card pin" }, String(it.error.message));
    const ref = `id:${it.collection}/#${it.row}`;
    const useAsQuery = element("button", { type: "button", onclick: () => { $("query").value = ref; search(); } }, "query with it");
    const unpin = element("button", { type: "button", onclick: () => {
      state.pins = state.pins.filter((i) => i !== index); renderPins(); drawMap(); writeURL(); } }, "unpin");
    return element("div", { class: "card pin", "data-collection": it.collection, "data-row": it.row },
      element("div", { class: "head" }, element("span", { class: "label" }, it.label ?? NO_LABEL),
        element("span", { class: "sub" }, `${it.collection}/#${it.row} (${it.modality})`)),
      itemBody(it, true), element("div", { class: "sub" }, it.id),
      element("pre", {}, JSON.stringify(it.meta, null, 1)), element("div", { class: "actions" }, useAsQuery, unpin));
  }));
  $("pins").replaceChildren(...cards);
}

// --- queries ----------------------------------------------------------------------------------
async function search() {
  writeURL();
  const q = $("query").value.trim();
  if (!q) return;
  setStatus("searching…");
  try {
    const params = new URLSearchParams({ q, target: $("target").value, k: $("k").value });
    const answer = await getJSON(`/api/search?${params}`);
    hideError();
    if (answer.version !== state.meta.version) { await loadMap(); fillControls(); }
    state.result = answer;
    renderResults(answer);
    await drawMap();
    setStatus(`${answer.results.length} results in ${answer.elapsed_ms} ms`);
  } catch (error) {
    showError(error);
  }
}

function renderResults(answer) {
  $("terms").textContent = `= ${answer.terms}  in ${answer.target}`;
  $("results").replaceChildren(...answer.results.map((r, rank) => {
    const it = { ...r, kind: r.kind };
    const card = element("li", { class: "card result", "data-collection": r.collection, "data-row": r.row,
      "data-label": r.label ?? "", onclick: () => pin(r.index) },
    element("div", { class: "head" }, element("span", { class: "label" }, `${rank + 1}. ${r.label ?? NO_LABEL}`),
      element("span", { class: "score" }, r.score.toFixed(3))),
    r.kind ? itemBody(it, false) : element("div", { class: "sub" }, r.id));
    return card;
  }));
}

async function queryWithFile(file, modality) {
  hideError();
  $("choose").classList.add("hidden");
  if (file.size > state.meta.upload_limit) {
    showError(new Error(`${file.name}: ${file.size} bytes is over the upload limit of ${state.meta.upload_limit} bytes`));
    return;
  }
  setStatus(`embedding ${file.name}…`);
  const params = new URLSearchParams({ filename: file.name });
  if (modality || $("embed-as").value) params.set("modality", modality || $("embed-as").value);
  if ($("store-upload").checked) params.set("store", "1");
  try {
    const answer = await getJSON(`/api/upload?${params}`, { method: "POST", body: file });
    if (answer.choose) {
      const box = $("choose");
      box.replaceChildren(`${file.name} could be any of these; embed it as: `,
        ...answer.choose.map((m) => element("button", { type: "button", onclick: () => queryWithFile(file, m) }, m)));
      box.classList.remove("hidden");
      setStatus("choose a modality");
      return;
    }
    $("query").value = answer.operand;
    if (answer.stored) { await loadMap(); fillControls(); }
    await search();
    setStatus(`${file.name} embedded as ${answer.modality}; ${$("status").textContent}`);
  } catch (error) {
    showError(error);
  }
}

// --- controls ---------------------------------------------------------------------------------
// Fill the controls from /api/meta, keeping what is selected (the store may have grown).
function fillControls() {
  const { meta } = state;
  $("store").textContent = meta.store;
  const target = $("target").value || (meta.collections.find((c) => c.modality === meta.anchor) || {}).name;
  $("target").replaceChildren(...meta.collections.map((c) => element("option", { value: c.name }, `${c.name} (${c.count})`)));
  if (target) $("target").value = target;
  const hidden = new Set([...document.querySelectorAll("#collections input")].filter((b) => !b.checked).map((b) => b.value));
  $("collections").replaceChildren($("collections").querySelector("legend"), ...meta.collections.map((c) =>
    element("label", {}, element("input", { type: "checkbox", value: c.name, checked: !hidden.has(c.name) }), ` ${c.name} `)));
  const embedAs = $("embed-as").value;
  $("embed-as").replaceChildren(element("option", { value: "" }, "auto"),
    ...meta.modalities.filter((m) => !m.language).map((m) => element("option", { value: m.name }, m.name)));
  $("embed-as").value = embedAs;
  $("store-upload-label").classList.toggle("hidden", !meta.allow_embed);
}

function wireControls() {
  $("query-form").addEventListener("submit", (event) => { event.preventDefault(); search(); });
  $("target").addEventListener("change", () => { if ($("query").value.trim()) search(); else writeURL(); });
  $("k").addEventListener("change", () => { if ($("query").value.trim()) search(); else writeURL(); });
  $("color").addEventListener("change", () => { state.traces = []; drawMap(); writeURL(); });
  $("collections").addEventListener("change", () => { state.traces = []; drawMap(); writeURL(); });
  $("clear-pins").addEventListener("click", () => { state.pins = []; renderPins(); drawMap(); writeURL(); });
  $("file").addEventListener("change", (event) => { if (event.target.files[0]) queryWithFile(event.target.files[0]); });

  const overlay = $("drop-overlay");
  document.addEventListener("dragover", (event) => { event.preventDefault(); overlay.classList.remove("hidden"); });
  document.addEventListener("dragleave", (event) => { if (!event.relatedTarget) overlay.classList.add("hidden"); });
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    overlay.classList.add("hidden");
    if (event.dataTransfer.files.length) queryWithFile(event.dataTransfer.files[0]);
  });
}

async function main() {
  try {
    setStatus("loading the map…");
    performance.mark("script");
    await loadMap();
    performance.mark("map-data");
    fillControls();
    wireControls();
    readURL();
    await drawMap();
    performance.mark("map-drawn");
    setStatus(`${state.meta.total.toLocaleString()} points in ${state.meta.collections.length} collections`);
    document.body.dataset.ready = String(performance.now());
    if (state.pins.length) renderPins();
    if ($("query").value.trim()) await search();
  } catch (error) {
    showError(error);
  }
}

main();
