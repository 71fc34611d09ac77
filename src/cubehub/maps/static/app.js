// cubehub serve's page: one tile layer (variable x season x percentile) of a store on a Leaflet
// map, its legend, and the seasonal profile of a clicked pixel. Every URL is relative.
"use strict";

const page = { stores: [], store: null, map: null, tiles: null, marker: null, profile: null, tilesLoaded: 0 };
const $ = (id) => document.getElementById(id);

function option(select, value, text) {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = text;
  select.appendChild(o);
}

function fmt(v, digits = 4) {
  return v === null || v === undefined ? "–" : Number(v).toFixed(digits).replace(/\.?0+$/, "");
}

function currentLayer() {
  const s = page.store;
  const variable = $("variable").value;
  const season = $("season").value;
  const byPercentile = s.layers.some((l) => l.variable === variable && l.percentile !== null);
  $("percentile").disabled = !byPercentile;
  const q = byPercentile ? Number($("percentile").value) : null;
  return s.layers.find((l) => l.variable === variable && l.season === season && l.percentile === q);
}

function chooseStore(name) {
  page.store = page.stores.find((s) => s.name === name);
  page.profile = null;
  const s = page.store;
  for (const id of ["variable", "season", "percentile"]) $(id).replaceChildren();
  for (const [name, v] of Object.entries(s.variables)) option($("variable"), name, name);
  for (const season of s.seasons) option($("season"), season.label, season.label);
  for (const q of s.percentiles) option($("percentile"), String(q), `p${q}`);
  if (s.percentiles.includes(50)) $("percentile").value = "50";
  const [w, so, e, n] = s.bounds;
  page.map.fitBounds([[so, w], [n, e]]);
  showLayer();
}

function showLayer() {
  const s = page.store;
  const layer = currentLayer();
  if (!layer) return;
  if (page.tiles) page.map.removeLayer(page.tiles);
  page.tilesLoaded = 0;
  document.body.dataset.tiles = "loading";
  const url = `${s.name}/layers/${encodeURIComponent(layer.id)}/tiles/WebMercatorQuad/{z}/{x}/{y}.png`;
  const [w, so, e, n] = s.bounds;
  page.tiles = L.tileLayer(url, { tileSize: 256, maxZoom: 19, bounds: [[so, w], [n, e]] });
  page.tiles.on("tileload", () => { page.tilesLoaded += 1; });
  page.tiles.on("load", () => { document.body.dataset.tiles = "loaded"; });
  page.tiles.on("tileerror", () => { $("status").textContent = "some tiles failed to load"; });
  page.tiles.addTo(page.map);
  document.body.dataset.layer = layer.id;
  drawLegend(layer);
  if (page.profile) renderProfile($("profile"), page.profile, layer.variable);
}

function drawLegend(layer) {
  const v = page.store.variables[layer.variable];
  const season = page.store.seasons.find((x) => x.label === layer.season);
  $("legend-title").textContent = `${v.long_name}` + (layer.percentile !== null ? `, p${layer.percentile}` : "");
  $("legend-bar").style.background = `linear-gradient(to right, ${v.legend.join(", ")})`;
  $("legend-low").textContent = fmt(v.range[0], 3);
  $("legend-high").textContent = fmt(v.range[1], 3);
  $("legend-units").textContent = v.units === "1" ? "(unitless)" : v.units;
  $("legend-season").textContent = `${season.label}: ${season.start} .. ${season.end} (inclusive)`;
}

async function showProfile(latlng) {
  const s = page.store;
  const panel = $("profile");
  panel.dataset.ready = "0";
  if (page.marker) page.map.removeLayer(page.marker);
  page.marker = L.circleMarker(latlng, { radius: 5, color: "#000", weight: 2, fill: false }).addTo(page.map);
  const response = await fetch(`${s.name}/profile?lon=${latlng.lng}&lat=${latlng.lat}`);
  const profile = await response.json();
  if (!response.ok) {
    panel.innerHTML = `<p class="hint">${profile.error}</p>`;
    panel.dataset.ready = "1";
    return;
  }
  page.profile = profile;
  renderProfile(panel, profile, $("variable").value);
  panel.dataset.ready = "1";
}

function renderProfile(panel, p, variable) {
  const v = p.variables[variable];
  const counts = p.variables.valid_count;
  const qs = v.by_percentile ? p.percentiles : [null];
  const head = `<tr><th>season</th>${qs.map((q) => `<th>${q === null ? variable : `p${q}`}</th>`).join("")}<th>clear obs.</th></tr>`;
  const rows = p.seasons.map((season, k) => {
    const cells = qs.map((q, j) =>
      `<td data-variable="${variable}" data-season="${season.label}" data-percentile="${q === null ? "" : q}" data-value="${v.values[k][j] ?? ""}">${fmt(v.values[k][j])}</td>`
    ).join("");
    const n = counts ? counts.values[k][0] : null;
    const title = `${season.start} .. ${season.end}${season.complete ? "" : " (tile not complete)"}`;
    return `<tr title="${title}"><td class="${season.complete ? "" : "incomplete"}">${season.label}</td>${cells}<td>${fmt(n, 0)}</td></tr>`;
  }).join("");
  panel.innerHTML =
    `<div><strong>${v.long_name}</strong> at row ${p.row}, col ${p.col} (${p.crs} ${fmt(p.x, 1)}, ${fmt(p.y, 1)})</div>` +
    chart(p, v, qs) + `<table>${head}${rows}</table>`;
}

// p50 (or the value) per season name, one line per year, with the p25..p75 band.
function chart(p, v, qs) {
  const names = [...new Set(p.seasons.map((s) => s.name))];
  const years = [...new Set(p.seasons.map((s) => s.year))];
  const mid = qs.indexOf(50) >= 0 ? qs.indexOf(50) : 0;
  const lo = qs.indexOf(25), hi = qs.indexOf(75);
  const all = v.values.flat().filter((x) => x !== null);
  if (!all.length) return "<p class='hint'>no values at this pixel</p>";
  const ymin = Math.min(...all), ymax = Math.max(...all) + 1e-9;
  const W = 320, H = 150, pad = 28;
  const X = (i) => pad + (names.length > 1 ? (i * (W - 2 * pad)) / (names.length - 1) : (W - 2 * pad) / 2);
  const Y = (y) => H - pad + ((y - ymin) / (ymax - ymin)) * (2 * pad - H);
  const colours = ["#1b6ca8", "#d9711c", "#2a9d4b", "#9c3fb5"];
  let svg = `<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="seasonal profile">`;
  svg += `<text x="2" y="12" font-size="10">${fmt(ymax, 3)}</text><text x="2" y="${H - pad}" font-size="10">${fmt(ymin, 3)}</text>`;
  names.forEach((name, i) => { svg += `<text x="${X(i)}" y="${H - 8}" font-size="10" text-anchor="middle">${name}</text>`; });
  years.forEach((year, n) => {
    const colour = colours[n % colours.length];
    const pts = p.seasons.map((s, k) => ({ i: names.indexOf(s.name), k, s })).filter((e) => e.s.year === year);
    if (lo >= 0 && hi >= 0) {
      const top = pts.filter((e) => v.values[e.k][hi] !== null).map((e) => `${X(e.i)},${Y(v.values[e.k][hi])}`);
      const bottom = pts.filter((e) => v.values[e.k][lo] !== null).reverse().map((e) => `${X(e.i)},${Y(v.values[e.k][lo])}`);
      svg += `<polygon points="${[...top, ...bottom].join(" ")}" fill="${colour}" opacity="0.18"/>`;
    }
    const line = pts.filter((e) => v.values[e.k][mid] !== null).map((e) => `${X(e.i)},${Y(v.values[e.k][mid])}`);
    svg += `<polyline points="${line.join(" ")}" fill="none" stroke="${colour}" stroke-width="2"/>`;
    svg += `<text x="${W - pad}" y="${12 + 11 * n}" font-size="10" fill="${colour}" text-anchor="end">${year || ""}</text>`;
  });
  return svg + "</svg>";
}

async function main() {
  page.map = L.map("map", { zoomSnap: 1 });
  const response = await fetch("stores.json");
  page.stores = (await response.json()).stores;
  for (const s of page.stores) option($("store"), s.name, s.title === s.name ? s.name : `${s.name}`);
  $("store").addEventListener("change", () => chooseStore($("store").value));
  for (const id of ["variable", "season", "percentile"]) $(id).addEventListener("change", showLayer);
  page.map.on("click", (e) => showProfile(e.latlng));
  chooseStore(page.stores[0].name);
  window.cubehubPage = page;
}

main().catch((err) => { $("status").textContent = String(err); });
