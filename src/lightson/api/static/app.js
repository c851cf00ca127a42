// The Lights On dashboard: a few pages over the operations API, refreshed every 5 s.
// No framework and no network beyond this server (sites run on closed networks).
"use strict";

const REFRESH_MS = 5000;
const main = document.getElementById("main");

// A token given in the address (#token=...) is kept in this browser and taken out of the
// address, so it is not left in the history or shared with a copied link.
(function takeToken() {
  const match = location.hash.match(/token=([^&]+)/);
  if (match) {
    localStorage.setItem("lightson-token", decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + "#/");
  }
})();

// The server's state: 200 ok, or 503 degraded with its problems (the page shows them).
function health() { return api("/health", { accept: [503] }); }

function token() { return localStorage.getItem("lightson-token"); }

// ``options.accept``: statuses answered with a body to read, such as /health's 503 "degraded".
async function api(path, options = {}) {
  const response = await fetch("/api" + path, {
    ...options,
    headers: { "Authorization": "Bearer " + token(), "Content-Type": "application/json" },
  });
  const body = await response.json();
  if (!response.ok && !(options.accept || []).includes(response.status)) {
    const message = (body.errors || []).map(e => (e.field ? e.field + ": " : "") + e.message);
    const error = new Error(message.join("; ") || response.statusText);
    error.status = response.status;
    throw error;
  }
  return body;
}

function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, c => ({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
  })[c]);
}

// Why a utility sees no power figure (too few sites for no one customer to show), if so.
function withheld(reason) {
  return reason ? `<p class="note" data-testid="power-withheld">No power figures: ${esc(reason)}.</p>` : "";
}
function kw(value) { return value === null || value === undefined ? "–" : Number(value).toFixed(1); }
function pct(value) { return value === null || value === undefined ? "–" : Math.round(value * 100) + " %"; }
let timeZone;  // the program's (from /api/health): event windows are local to it
function time(iso) {
  return iso ? new Date(iso).toLocaleString(undefined, timeZone ? { timeZone, timeZoneName: "short" } : {}) : "–";
}

function card(label, value, testid) {
  return `<div class="card"><div class="value" data-testid="${testid}">${esc(value)}</div>` +
    `<div class="label">${esc(label)}</div></div>`;
}

function mode(status) {
  // "no controller" (lightson api: the site's worker is gone) is one class, no-controller.
  return `<span class="mode ${esc(status.mode.replace(/ /g, "-"))}" title="${esc(status.reason)}">${esc(status.mode)}</span>`;
}

// --- pages ------------------------------------------------------------------------------------

// Program time of day ("15:00") and day-and-time for chart axes and labels.
function clockTime(iso) {
  return new Date(iso).toLocaleTimeString("en-GB", { timeZone, hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
}
function zoneName(iso) {
  const part = new Intl.DateTimeFormat("en-US", { timeZone, timeZoneName: "short" })
    .formatToParts(new Date(iso)).find(p => p.type === "timeZoneName");
  return part ? part.value : timeZone;
}

// Colour-blind-safe (Okabe-Ito) colours, one per quantity.
const COLOURS = { grid: "#0072B2", charge: "#009E73", discharge: "#D55E00", building: "#555555" };
const VEHICLE_COLOURS = ["#E69F00", "#CC79A7", "#56B4E9", "#009E73", "#D55E00", "#999999"];

// A line chart drawn as SVG: series of equally spaced values (null: not yet), a time axis in
// the program's zone with hour ticks, a kW axis with round ticks and titles, shaded windows,
// and the legend as HTML under the chart (never cut off).
function lineChart({ testid, label, start, stepMinutes, series, shaded = [], yTitle = "kW" }) {
  const n = Math.max(...series.map(s => s.values.length));
  const W = 960, H = 300, left = 56, right = 16, top = 14, bottom = 46;
  const stepMs = stepMinutes * 60000, t0 = Date.parse(start), t1 = t0 + n * stepMs;
  const all = series.flatMap(s => s.values).filter(v => v !== null).concat([0]);
  let lo = Math.min(...all), hi = Math.max(...all);
  if (hi - lo < 1) hi = lo + 1;
  const tick = niceStep((hi - lo) / 5);
  lo = Math.floor(lo / tick) * tick; hi = Math.ceil(hi / tick) * tick;
  const x = ms => left + (W - left - right) * (ms - t0) / (t1 - t0);
  const y = v => H - bottom - (H - top - bottom) * (v - lo) / (hi - lo);
  let svg = `<svg data-testid="${testid}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(label)}" class="chart">`;
  for (const w of shaded) {
    const a = Math.max(Date.parse(w.start), t0), b = Math.min(Date.parse(w.end), t1);
    if (b <= a) continue;
    svg += `<rect class="shade" x="${x(a).toFixed(1)}" y="${top}" width="${(x(b) - x(a)).toFixed(1)}" height="${H - top - bottom}" fill="#F0E442" fill-opacity="0.35"/>` +
      `<text x="${(x(a) + 4).toFixed(1)}" y="${top + 12}" font-size="11" fill="#6b5d00">${esc(w.label)}</text>`;
  }
  for (let v = lo; v <= hi + tick / 2; v += tick) {
    svg += `<line x1="${left}" x2="${W - right}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="${Math.abs(v) < tick / 2 ? "#888" : "#e5e5e5"}"/>` +
      `<text class="y-tick" x="${left - 6}" y="${(y(v) + 4).toFixed(1)}" font-size="11" text-anchor="end">${Math.round(v)}</text>`;
  }
  const hourMs = 3600000, spanH = (t1 - t0) / hourMs, every = spanH > 30 ? 6 : spanH > 12 ? 3 : 1;
  for (let ms = Math.ceil(t0 / hourMs) * hourMs; ms <= t1; ms += hourMs) {
    const hour = Number(clockTime(new Date(ms).toISOString()).slice(0, 2));
    if (hour % every) continue;
    // Midnight gives the day instead: a 36-hour plan crosses one.
    const label = hour === 0 && ms > t0
      ? new Date(ms).toLocaleDateString("en-US", { timeZone, month: "short", day: "numeric" })
      : clockTime(new Date(ms).toISOString());
    svg += `<line x1="${x(ms).toFixed(1)}" x2="${x(ms).toFixed(1)}" y1="${H - bottom}" y2="${H - bottom + 4}" stroke="#888"/>` +
      `<text class="x-tick" x="${x(ms).toFixed(1)}" y="${H - bottom + 16}" font-size="11" text-anchor="middle">${label}</text>`;
  }
  svg += `<text class="axis-title" x="${(left + W - right) / 2}" y="${H - 6}" font-size="12" text-anchor="middle">time (${esc(timeZone)}, ${esc(zoneName(start))})</text>` +
    `<text class="axis-title" transform="translate(14 ${(top + H - bottom) / 2}) rotate(-90)" font-size="12" text-anchor="middle">${esc(yTitle)}</text>`;
  for (const s of series) {
    let path = "", pen = false;
    s.values.forEach((v, i) => {
      if (v === null) { pen = false; return; }
      // A step line: the value holds over its interval.
      path += `${pen ? "L" : "M"}${x(t0 + i * stepMs).toFixed(1)},${y(v).toFixed(1)}L${x(t0 + (i + 1) * stepMs).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    });
    svg += `<path d="${path}" fill="none" stroke="${s.color}" stroke-width="2"${s.dash ? ' stroke-dasharray="5 3"' : ""}/>`;
  }
  svg += `</svg><ul class="legend" data-testid="${testid}-legend">` +
    series.map(s => `<li><span class="swatch" style="background:${s.color}"></span>${esc(s.name)}</li>`).join("") +
    shaded.slice(0, 1).map(() => `<li><span class="swatch shade"></span>event window</li>`).join("") + `</ul>`;
  return svg;
}

function niceStep(raw) {
  const power = 10 ** Math.floor(Math.log10(raw || 1));
  return [1, 2, 5, 10].map(k => k * power).find(k => k >= raw) || power * 10;
}

// --- overview -------------------------------------------------------------------------------

// The site table's sort and filters, kept across the 5-second refreshes.
const view = { sort: "attention", ascending: true, kind: "", utility: "", state: "" };
const STATE_ORDER = { islanded: 0, "no controller": 1, fallback: 2, starting: 3, grid: 4, parallel: 4 };

function runningEvent(running, expectedKw, withheldReason) {
  if (!running) return "";
  const share = running.kw_average === null ? null : running.kw_average / expectedKw;
  const width = share === null ? 0 : Math.max(0, Math.min(100, Math.round(share * 100)));
  return `<section class="event-now" data-testid="event-now"><h2>Event running now: ${esc(running.event_ids.join(", "))}</h2>` +
    `<p>${time(running.start)} – ${clockTime(running.end)}, ${running.sites_called} sites called, ${running.sites_measured} measured so far</p>` +
    `<div class="cards">` +
    card("kW now (net discharge the vehicles are set to)", kw(running.kw_now), "event-kw-now") +
    card("kW averaged so far (as settlement measures it)", kw(running.kw_average), "event-kw-average") +
    card(`of the ${(expectedKw / 1000).toFixed(0)} MW the program expects`, share === null ? "–" : Math.round(share * 100) + " %", "event-share") +
    card("minutes left", running.minutes_left, "event-minutes-left") + `</div>` +
    `<div class="progress" title="kW averaged so far against ${expectedKw} kW"><div class="progress-bar" style="width:${width}%"></div></div>` +
    withheld(withheldReason) + `</section>`;
}

function islandedList(islanded) {
  if (!islanded.length) return "";
  let html = `<section class="alert islanded"><h2>Islanded now</h2><table data-testid="islanded"><thead><tr><th>site</th><th>kind</th>` +
    `<th>carrying</th><th class="num">critical backup</th><th class="num">essential</th><th class="num">whole building</th></tr></thead><tbody>`;
  const hours = (s, tier) => s.backup_hours ? (s.backup_hours[tier] >= s.horizon_h ? `≥ ${s.horizon_h} h` : `${s.backup_hours[tier].toFixed(1)} h`) : "–";
  for (const s of islanded) {
    const carried = s.backup_hours ? (s.tier ? `${esc(s.tier)} loads` : "not even the critical loads") : "–";
    html += `<tr data-islanded="${esc(s.site_id)}"><td><a href="#/site/${esc(s.site_id)}">${esc(s.site_id)}</a></td><td>${esc(s.kind)}</td>` +
      `<td>${carried}</td><td class="num" data-testid="backup-left">${hours(s, "critical")}</td><td class="num">${hours(s, "essential")}</td><td class="num">${hours(s, "full")}</td></tr>`;
  }
  return html + "</tbody></table></section>";
}

function faultList(faults) {
  if (!faults.length) return "";
  let html = `<section class="alert faults"><h2>Needs a look</h2><table data-testid="faults"><thead><tr><th>site</th><th>what</th><th>chargers</th><th>detail</th></tr></thead><tbody>`;
  const what = { "no-controller": "no controller", fallback: "on the charge-only default", refused: "setpoint not accepted", unreachable: "charger not reachable", "stale-plan": "plan stale", silent: "silent charger" };
  for (const f of faults) {
    html += `<tr data-fault="${esc(f.site_id)}"><td><a href="#/site/${esc(f.site_id)}">${esc(f.site_id)}</a></td><td>${esc(what[f.kind] || f.kind)}</td>` +
      `<td>${esc(f.evse_ids)}</td><td class="reason">${esc(f.message)}</td></tr>`;
  }
  return html + "</tbody></table></section>";
}

function dayChart(day) {
  if (day.grid_kw === null) return "";
  return `<h2>Program power today</h2>` + lineChart({
    testid: "day-chart", label: "program power today", start: day.start, stepMinutes: day.step_minutes,
    series: [
      { name: "grid import kW", values: day.grid_kw, color: COLOURS.grid },
      { name: "vehicles charging kW", values: day.charge_kw, color: COLOURS.charge },
      { name: "vehicles discharging kW", values: day.discharge_kw, color: COLOURS.discharge },
    ],
    shaded: eventWindows(day.events),
  });
}

// Events of the same window (the residential and the C&I call) shaded once, named together.
function eventWindows(events) {
  const windows = [];
  for (const e of events) {
    const same = windows.find(w => w.start === e.start && w.end === e.end);
    if (same) same.label += ", " + e.event_id; else windows.push({ start: e.start, end: e.end, label: e.event_id });
  }
  return windows;
}

function siteFilters(sites) {
  const choice = (name, values) => `<label>${name} <select data-filter="${name}"><option value="">all</option>` +
    [...new Set(values)].sort().map(v => `<option${view[name] === v ? " selected" : ""}>${esc(v)}</option>`).join("") + `</select></label>`;
  // A form: the refresh waits while one of its lists is open.
  return `<form class="filters" data-testid="site-filters">` + choice("kind", sites.map(s => s.kind)) + " " +
    choice("utility", sites.map(s => s.utility)) + " " + choice("state", sites.map(s => s.status.mode)) + `</form>`;
}

function sortedSites(sites) {
  const key = {
    attention: s => [STATE_ORDER[s.status.mode] ?? 4, s.site_id],
    site: s => [s.site_id], kind: s => [s.kind, s.site_id], utility: s => [s.utility, s.site_id],
    state: s => [s.status.mode, s.site_id], building: s => [s.status.load_kw ?? -Infinity],
    vehicles: s => [s.status.vehicles_kw ?? -Infinity], grid: s => [s.status.grid_kw ?? -Infinity],
    available: s => [s.available_discharge_kw ?? -Infinity],
  }[view.sort];
  const compare = (a, b) => {
    const ka = key(a), kb = key(b);
    for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i]) return ka[i] < kb[i] ? -1 : 1;
    return 0;
  };
  const shown = sites.filter(s => (!view.kind || s.kind === view.kind) && (!view.utility || s.utility === view.utility) &&
    (!view.state || s.status.mode === view.state));
  shown.sort((a, b) => view.ascending ? compare(a, b) : -compare(a, b));
  return shown;
}

function siteTable(sites) {
  const header = (key, text, num) => `<th class="sortable${num ? " num" : ""}" data-sort="${key}"` +
    ` aria-sort="${view.sort === key ? (view.ascending ? "ascending" : "descending") : "none"}">${text}${view.sort === key ? (view.ascending ? " ▲" : " ▼") : ""}</th>`;
  const shown = sortedSites(sites);
  let html = siteFilters(sites) + `<table data-testid="sites"><thead><tr>` + header("site", "site") + header("kind", "kind") +
    header("utility", "utility") + header("state", "state") + header("building", "building kW", true) +
    header("vehicles", "vehicles kW", true) + header("grid", "grid kW", true) + header("available", "available kW", true) +
    `</tr></thead><tbody>`;
  for (const site of shown) {
    const s = site.status;
    const name = "vehicles" in site ? `<a href="#/site/${esc(site.site_id)}">${esc(site.site_id)}</a>` : esc(site.site_id);
    html += `<tr data-site="${esc(site.site_id)}"><td>${name}</td><td>${esc(site.kind)}</td>` +
      `<td>${esc(site.utility)}</td><td>${mode(s)} <span class="reason">${esc(s.reason)}</span></td>` +
      `<td class="num">${kw(s.load_kw)}</td><td class="num" data-testid="vehicles-kw">${kw(s.vehicles_kw)}</td>` +
      `<td class="num">${kw(s.grid_kw)}</td><td class="num">${kw(site.available_discharge_kw)}</td></tr>`;
  }
  if (!shown.length) html += `<tr><td colspan="8">no site matches the filters</td></tr>`;
  return html + `</tbody></table><p class="note" data-testid="sites-shown">${shown.length} of ${sites.length} sites shown;` +
    ` click a column to sort (first: islanded, then without a controller, then on the safe default).</p>`;
}

async function overview() {
  const [program, sites, now] = await Promise.all([api("/program"), api("/sites"), api("/overview")]);
  const next = program.next_event;
  const upcoming = next && !now.running ? `<p data-testid="next-event">Next event: ${esc(next.program_id)} ${time(next.start)}</p>` : "";
  return `<h1 data-testid="program-name">${esc(program.name)}</h1>` +
    runningEvent(now.running, now.expected_kw, now.power_withheld) + upcoming +
    islandedList(now.islanded) + faultList(now.faults) + `<div class="cards">` +
    card("sites", program.sites, "sites-count") +
    card("vehicles", program.vehicles, "vehicles-count") +
    card("chargers", program.chargers, "chargers-count") +
    card("vehicle power now, kW (− = to the buildings and grid)", kw(program.vehicles_kw_now), "power-now") +
    card("kW available for an event now", kw(program.available_discharge_kw_now), "available-kw") +
    `</div>` + withheld(program.power_withheld) + dayChart(now.day) + `<h2>Sites</h2>` + siteTable(sites);
}

main.addEventListener("change", event => {
  const name = event.target.dataset && event.target.dataset.filter;
  if (!name) return;
  view[name] = event.target.value;
  render();
});

main.addEventListener("click", event => {
  const th = event.target.closest("th[data-sort]");
  if (!th) return;
  const key = th.dataset.sort;
  view.ascending = view.sort === key ? !view.ascending : true;
  view.sort = key;
  render();
});

// --- site -----------------------------------------------------------------------------------

async function sitePage(siteId) {
  const id = encodeURIComponent(siteId);
  const [site, plan, backup, freshness] = await Promise.all([
    api(`/sites/${id}`), api(`/sites/${id}/plan`), api(`/sites/${id}/backup`), api(`/sites/${id}/plan/status`),
  ]);
  const s = site.status;
  let html = `<h1 data-testid="site-name">${esc(site.site_id)}</h1>` +
    `<p>${mode(s)} <span class="reason" data-testid="site-reason">${esc(s.reason)}</span></p>` +
    `<h2>Power now (kW)</h2><div class="cards">` +
    card("building", kw(s.load_kw), "flow-building") + card("PV", kw(s.pv_kw), "flow-pv") +
    card("vehicles, as set (+ charging)", kw(s.vehicles_kw), "flow-vehicles") +
    card(site.islanded ? "grid (down: islanded)" : "grid (+ import)", kw(s.grid_kw), "flow-grid") + `</div>` +
    `<h2>Vehicles</h2><table data-testid="vehicles"><thead><tr><th>vehicle</th><th>model</th>` +
    `<th>charger</th><th>plugged</th><th>state of charge</th><th class="num">setpoint kW</th><th>next departure asked for</th></tr></thead><tbody>`;
  for (const v of site.vehicles) {
    const width = v.soc === null ? 0 : Math.round(v.soc * 100);
    html += `<tr><td>${esc(v.vehicle_id)}</td><td>${esc(v.model)}</td><td>${esc(v.evse_id)}</td>` +
      `<td>${v.plugged ? "yes" : "no"}</td><td><span class="bar-box"><span class="bar" style="width:${width}%"></span></span>${pct(v.soc)}</td>` +
      `<td class="num" data-vehicle="${esc(v.vehicle_id)}">${kw(v.power_kw)}</td>` +
      `<td>${v.departure ? time(v.departure.at) + (v.departure.target_soc === null ? "" : ", " + pct(v.departure.target_soc)) : "usual trips"}</td></tr>`;
  }
  html += `</tbody></table>` + departureForm(site);
  html += `<h2>${site.islanded ? "Backup left" : "Backup if the grid went down now"}</h2><div class="cards">`;
  for (const [tier, hours] of Object.entries(backup.hours)) {
    const shown = hours >= backup.horizon_h ? `≥ ${backup.horizon_h} h` : `${hours.toFixed(1)} h`;
    html += card(`${tier} load`, shown, `backup-${tier}`);
  }
  html += `</div>`;
  if (site.islanded) return html + islandedDispatch(site);
  return html + `<h2>The plan ahead</h2>` + planChart(plan, freshness);
}

// While islanded the site follows the outage dispatch (the vehicles carry the building's
// load tiers), not its grid plan: show that, never an import from a grid that is down.
function islandedDispatch(site) {
  const s = site.status;
  const carried = { critical: "its critical loads", essential: "its critical and essential loads", full: "the whole building" }[s.tier] || "not even its critical loads";
  let html = `<h2>Islanded dispatch</h2><p data-testid="islanded-dispatch">The grid is down: the vehicles carry ${carried}` +
    ` (${kw(s.load_kw)} kW of building load${s.critical_unserved_kw > 0 ? `, ${kw(s.critical_unserved_kw)} kW of critical load not served` : ""}).` +
    ` The grid plan resumes once the grid is back.</p><table data-testid="dispatch"><thead><tr><th>vehicle</th><th class="num">to the building, kW</th><th>state of charge</th></tr></thead><tbody>`;
  for (const v of site.vehicles) {
    html += `<tr><td>${esc(v.vehicle_id)}</td><td class="num">${kw(-v.power_kw)}</td><td>${pct(v.soc)}</td></tr>`;
  }
  return html + "</tbody></table>";
}

// A plan is stale when the site has not re-planned when it should have (hourly, and at
// once on a plug-in or an event): GET /api/sites/{id}/plan/status says so.
function planChart(plan, freshness) {
  if (!plan.start) return "<p>No plan yet.</p>";
  const stale = freshness.stale
    ? `<p class="stale" data-testid="plan-stale">Stale: this plan starts ${time(plan.start)}, ${Math.round(freshness.age_minutes)} min ago; ` +
      `a site re-plans within ${freshness.due_minutes} min and this one has not.</p>` : "";
  // One line per quantity: the grid, the vehicles together, the building less its PV
  // (site net power less the vehicles'); each vehicle's power is in the table above.
  const vehicles = plan.site_net_kw.map((_, t) => plan.vehicles.reduce((sum, v) => sum + v.power_kw[t], 0));
  const series = [
    { name: "grid (+ import, − export)", values: plan.site_net_kw, color: COLOURS.grid },
    { name: "vehicles (+ charging, − discharging)", values: vehicles, color: COLOURS.discharge },
    { name: "building less PV", values: plan.site_net_kw.map((net, t) => net - vehicles[t]), color: COLOURS.building, dash: true },
  ];
  return stale + lineChart({ testid: "plan-chart", label: "plan", start: plan.start, stepMinutes: plan.step_minutes, series });
}

// --- departures: an owner tells the site when a vehicle leaves next ------------------------------

function departureForm(site) {
  const options = site.vehicles.map(v => `<option value="${esc(v.vehicle_id)}">${esc(v.vehicle_id)}</option>`).join("");
  return `<form id="departure-form" data-site="${esc(site.site_id)}" class="departure">` +
    `<label>vehicle <select name="vehicle">${options}</select></label> ` +
    `<label>leaves at (${esc(timeZone)}) <input name="at" type="datetime-local" required></label> ` +
    `<label>with <input name="soc" type="number" min="0" max="100" step="1" placeholder="as usual"> %</label> ` +
    `<button name="set">Set departure</button> <button name="clear" type="button">Back to usual trips</button>` +
    `<span class="error" data-testid="departure-error"></span></form>`;
}

// A wall time in the program's zone (what the owner types) as an instant with its offset:
// the zone's offset from Intl, taken again at the first answer (daylight-saving changes).
function zoneOffsetMs(instantMs, zone) {
  const parts = Object.fromEntries(new Intl.DateTimeFormat("en-US", {
    timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  }).formatToParts(new Date(instantMs)).map(p => [p.type, p.value]));
  const wall = Date.UTC(+parts.year, +parts.month - 1, +parts.day, +parts.hour, +parts.minute, +parts.second);
  return wall - instantMs;
}

function zonedIso(local, zone) {
  const wall = Date.parse(local + ":00Z");  // the digits typed, as if they were UTC
  let instant = wall - zoneOffsetMs(wall, zone);
  instant = wall - zoneOffsetMs(instant, zone);
  return new Date(instant).toISOString();
}

main.addEventListener("submit", async event => {
  const form = event.target;
  if (form.id !== "departure-form") return;
  event.preventDefault();
  const body = { departure: zonedIso(form.at.value, timeZone) };
  if (form.soc.value !== "") body.target_soc = Number(form.soc.value) / 100;
  await sendDeparture(form, "PUT", body);
});

main.addEventListener("click", async event => {
  if (event.target.name !== "clear") return;
  const form = event.target.closest("#departure-form");
  if (form) await sendDeparture(form, "DELETE", undefined);
});

async function sendDeparture(form, method, body) {
  const path = `/sites/${encodeURIComponent(form.dataset.site)}/vehicles/${encodeURIComponent(form.vehicle.value)}/departure`;
  try {
    await api(path, { method, body: body === undefined ? undefined : JSON.stringify(body) });
    render();
  } catch (error) {
    form.querySelector('[data-testid="departure-error"]').textContent = error.message;
  }
}

function openadr(dr) {
  // The server's OpenADR VEN (lightson serve --openadr-vtn): is the utility's VTN reachable?
  if (!dr || dr.state === "disabled") {
    return `<p data-testid="openadr">OpenADR VEN: not configured</p>`;
  }
  let text = `OpenADR VEN ${dr.ven_name} (${dr.utility}): ${dr.state}`;
  if (dr.state === "registering") {
    text += `, attempt ${dr.registration_attempts}, next at ${time(dr.next_attempt_at)}`;
  }
  text += `; last poll ${time(dr.last_poll)}; ${dr.events_received} events received, ` +
    `${dr.events_refused} refused`;
  if (dr.last_error) text += `; last error ${time(dr.last_error_at)}: ${dr.last_error}`;
  return `<p data-testid="openadr">${esc(text)}</p>`;
}

async function eventsPage() {
  // The totals come from /program: a utility sees them, not each home's power.
  const [events, sites, program, state] = await Promise.all(
    [api("/events"), api("/sites"), api("/program"), health()]);
  let html = `<h1>Demand-response events</h1>${openadr(state.dr)}<div class="cards">` +
    card("vehicle power now, kW", kw(program.vehicles_kw_now), "events-power-now") +
    card("kW available now", kw(program.available_discharge_kw_now), "events-available") + `</div>` +
    withheld(program.power_withheld) +
    `<table data-testid="events"><thead><tr><th>event</th><th>program</th><th>start</th><th>end</th>` +
    `<th>state</th><th>sites</th><th>opted out</th></tr></thead><tbody>`;
  for (const e of events) {
    const link = `<a href="#/event/${encodeURIComponent(e.event_id)}">${esc(e.event_id)}</a>`;
    html += `<tr><td>${link}</td><td>${esc(e.program_id)}</td><td>${time(e.start)}</td>` +
      `<td>${time(e.end)}</td><td>${esc(e.state)}</td><td>${esc(e.sites.join(", ") || "all enrolled")}</td>` +
      `<td>${esc(e.opt_outs.join(", "))}</td></tr>`;
  }
  html += `</tbody></table><h2>Sites in events now</h2><table data-testid="event-sites"><thead><tr>` +
    `<th>site</th><th>enrolled in</th><th class="num">vehicles kW</th><th class="num">available kW</th></tr></thead><tbody>`;
  for (const s of sites.filter(s => s.enrollments.length)) {
    html += `<tr><td>${esc(s.site_id)}</td><td>${esc(s.enrollments.join(", "))}</td>` +
      `<td class="num">${kw(s.status.vehicles_kw)}</td><td class="num">${kw(s.available_discharge_kw)}</td></tr>`;
  }
  return html + "</tbody></table>";
}

async function dataPage(me) {
  const lines = await api("/completeness?hours=24");
  let html = `<h1>Data completeness, last 24 h</h1>` +
    `<p>Share of the time a vehicle was plugged in that its charger's readings covered (a reading ` +
    `counts for 15 minutes: the control loop's own limit before it leaves a charger to its safe default).</p>` +
    `<table data-testid="completeness"><thead><tr><th>charger</th><th>site</th><th class="num">plugged h</th>` +
    `<th class="num">covered</th><th class="num">readings</th><th>last reading</th>` +
    `<th class="num">sequence gaps</th><th class="num">setpoints not accepted</th>` +
    `<th class="num">quarantined</th></tr></thead><tbody>`;
  for (const l of lines) {
    html += `<tr data-station="${esc(l.station_id)}"><td>${esc(l.station_id)}</td><td>${esc(l.site_id)}</td>` +
      `<td class="num">${kw(l.plugged_hours)}</td><td class="num" data-testid="covered">${pct(l.completeness)}</td>` +
      `<td class="num">${esc(l.samples)}</td><td>${time(l.last_reading_at)}</td>` +
      `<td class="num">${esc(l.sequence_gaps)}</td>` +
      `<td class="num">${esc(l.setpoints_not_accepted)} of ${esc(l.setpoints_sent)}</td>` +
      `<td class="num" data-testid="quarantined">${esc(l.quarantined)}</td></tr>`;
  }
  html += "</tbody></table>";
  if (me.role !== "admin") return html;  // the raw frames are the operator's to see
  const kept = await api("/quarantine?hours=24");
  html += `<h2>Quarantined readings, last 24 h</h2>` +
    `<p>Refused or implausible values (SoC outside 0-100 %, power beyond 1.5 times the rating, ` +
    `times outside the server's window, malformed fields): never stored for the planner; ` +
    `the whole frame or body is kept.</p>` +
    `<table data-testid="quarantine"><thead><tr><th>received</th><th>from</th><th>charger or site</th>` +
    `<th>message</th><th>field</th><th>value</th><th>reason</th><th>frame</th></tr></thead><tbody>`;
  for (const q of kept) {
    html += `<tr data-quarantined="${esc(q.station_id || q.site_id)}"><td>${time(q.received_at)}</td>` +
      `<td>${esc(q.source)}</td><td>${esc(q.station_id || q.site_id)}</td><td>${esc(q.action)}</td>` +
      `<td>${esc(q.field)}</td><td>${esc(q.value)}</td><td data-testid="reason">${esc(q.reason)}</td>` +
      `<td><code>${esc(q.raw_excerpt)}</code></td></tr>`;
  }
  if (!kept.length) html += `<tr><td colspan="8">none</td></tr>`;
  return html + "</tbody></table>";
}

async function eventPage(eventId) {
  const e = await api(`/events/${encodeURIComponent(eventId)}/performance`);
  let html = `<h1 data-testid="event-name">${esc(e.event_id)}</h1>` +
    `<p>${esc(e.program_id)}, ${time(e.start)} – ${time(e.end)}, ${esc(e.state)}</p><div class="cards">` +
    card("kW delivered so far (sites measured)", kw(e.total_kw), "event-total-kw") + `</div>` +
    withheld(e.power_withheld) +
    `<p>Measured as settlement measures it: net discharge of each site's V2X equipment over the ` +
    `event so far, islanded time left out, capped at the building load where the site may not export.</p>` +
    `<table data-testid="event-performance"><thead><tr><th>site</th><th>kind</th><th class="num">kW</th>` +
    `<th class="num">chargers can give, kW</th><th class="num">kWh</th><th>opted out</th></tr></thead><tbody>`;
  for (const s of e.sites) {
    html += `<tr data-site="${esc(s.site_id)}"><td>${esc(s.site_id)}</td><td>${esc(s.kind)}</td>` +
      `<td class="num" data-testid="site-kw">${!e.site_power_shown ? "–" : s.kw === null ? "no data" : kw(s.kw)}</td>` +
      `<td class="num">${kw(s.capacity_kw)}</td><td class="num">${kw(s.net_discharge_kwh)}</td>` +
      `<td>${s.opted_out ? "yes" : ""}</td></tr>`;
  }
  return html + "</tbody></table>";
}

function reportsPage() {
  // Not refreshed: a report is made on request (it reads every reading of the period).
  return `<h1>Reports</h1><p>The live season's report: the program report (overview, value by site kind, ` +
    `event performance and why sites fell short, backup, drivers and buses) measured from what the chargers, ` +
    `site meters and grid signals recorded, with equipment, data completeness and settlement. The same as ` +
    `<code>lightson report --db</code>.</p>` +
    `<form class="report" id="report-form"><label>last <input name="days" type="number" min="1" max="400" value="30"> days</label> ` +
    `<label>or the year <input name="season" type="number" min="1901" max="2199" placeholder="2026"></label> ` +
    `<button name="show" value="html">Show</button> <button name="show" value="pdf" type="button" id="report-pdf">Download PDF</button></form>` +
    `<p id="report-status" data-testid="report-status"></p>` +
    `<iframe id="report-frame" data-testid="report-frame" title="season report" sandbox="allow-same-origin" hidden></iframe>`;
}

function reportQuery(form, format) {
  const query = new URLSearchParams({ format });
  if (form.season.value) query.set("season", form.season.value); else query.set("days", form.days.value);
  return query.toString();
}

async function fetchReport(form, format) {
  // One at a time: the server makes one report at a time anyway (429 otherwise).
  const status = document.getElementById("report-status");
  const buttons = form.querySelectorAll("button");
  buttons.forEach(b => { b.disabled = true; });
  status.className = "";
  status.textContent = "Making the report… a season of readings takes a while.";
  try {
    const response = await fetch("/api/report?" + reportQuery(form, format), {
      headers: { "Authorization": "Bearer " + token() },
    });
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`;
      try {
        const body = await response.json();
        message = (body.errors || []).map(e => (e.field ? e.field + ": " : "") + e.message).join("; ") || message;
      } catch (_) { /* not JSON: a proxy's or server's own page */ }
      throw new Error(message);
    }
    const content = format === "pdf" ? await response.blob() : await response.text();
    status.textContent = "";
    return content;
  } catch (error) {
    status.textContent = "No report: " + error.message;
    status.className = "error";
    return null;
  } finally {
    buttons.forEach(b => { b.disabled = false; });
  }
}

function bindReports() {
  const form = document.getElementById("report-form");
  if (!form) return;
  form.addEventListener("submit", async event => {
    event.preventDefault();
    const page = await fetchReport(form, "html");
    const frame = document.getElementById("report-frame");
    if (page === null || !frame) return;  // refused, or the page was left meanwhile
    frame.srcdoc = page;
    frame.hidden = false;
  });
  document.getElementById("report-pdf").addEventListener("click", async () => {
    const pdf = await fetchReport(form, "pdf");
    if (pdf === null) return;
    const link = document.createElement("a");
    link.href = URL.createObjectURL(pdf);
    link.download = "lightson-season-report.pdf";
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60_000);  // after the download began
  });
}

function tokenForm(message) {
  return `<p class="error">${esc(message)}</p><form class="token" id="token-form">` +
    `<label>API token <input name="token" type="password" autocomplete="off"></label> ` +
    `<button>Open</button></form><p>Ask the program's staff for a token (<code>lightson token add</code>).</p>`;
}

// --- routing and refresh -----------------------------------------------------------------------

async function render() {
  if (!token()) { main.innerHTML = tokenForm("This dashboard needs an API token."); bindForm(); return; }
  const hash = location.hash || "#/";
  try {
    if (!timeZone) timeZone = (await health()).timezone;
    const me = await api("/me");
    document.getElementById("who").textContent = `${me.name} (${me.role})`;
    document.getElementById("nav-data").hidden = me.role === "utility";  // not theirs to see
    document.getElementById("nav-reports").hidden = me.role !== "admin";  // names every site
    let html;
    if (hash.startsWith("#/site/")) html = await sitePage(decodeURIComponent(hash.slice(7)));
    else if (hash.startsWith("#/event/")) html = await eventPage(decodeURIComponent(hash.slice(8)));
    else if (hash.startsWith("#/events")) html = await eventsPage();
    else if (hash.startsWith("#/data")) html = await dataPage(me);
    else if (hash.startsWith("#/reports")) html = reportsPage();
    else html = await overview();
    main.innerHTML = html;
    bindReports();
    const state = await health();
    document.getElementById("clock").textContent = "program time " + time(state.now);
    const problems = document.getElementById("problems");
    problems.textContent = state.problems.join("; ");
    problems.hidden = !state.problems.length;
  } catch (error) {
    if (error.status === 401) { localStorage.removeItem("lightson-token"); main.innerHTML = tokenForm(error.message); bindForm(); }
    else main.innerHTML = `<p class="error" data-testid="error">${esc(error.message)}</p>`;
  }
}

function bindForm() {
  const form = document.getElementById("token-form");
  if (!form) return;
  form.addEventListener("submit", event => {
    event.preventDefault();
    localStorage.setItem("lightson-token", form.token.value.trim());
    render();
  });
}

window.addEventListener("hashchange", render);
render();
setInterval(() => {
  const typing = document.activeElement && document.activeElement.closest("form");
  const reading = location.hash.startsWith("#/reports");  // a report is made on request only
  if (!document.getElementById("token-form") && !typing && !reading) render();  // not under someone's typing
}, REFRESH_MS);
