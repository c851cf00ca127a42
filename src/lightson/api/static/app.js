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

function token() { return localStorage.getItem("lightson-token"); }

async function api(path, options = {}) {
  const response = await fetch("/api" + path, {
    ...options,
    headers: { "Authorization": "Bearer " + token(), "Content-Type": "application/json" },
  });
  const body = await response.json();
  if (!response.ok) {
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
  return `<span class="mode ${esc(status.mode)}" title="${esc(status.reason)}">${esc(status.mode)}</span>`;
}

// --- pages ------------------------------------------------------------------------------------

async function overview() {
  const [program, sites] = await Promise.all([api("/program"), api("/sites")]);
  const next = program.next_event;
  let html = `<h1 data-testid="program-name">${esc(program.name)}</h1><div class="cards">` +
    card("sites", program.sites, "sites-count") +
    card("vehicles", program.vehicles, "vehicles-count") +
    card("chargers", program.chargers, "chargers-count") +
    card("vehicle power now, kW (− = to the buildings and grid)", kw(program.vehicles_kw_now), "power-now") +
    card("kW available for an event now", kw(program.available_discharge_kw_now), "available-kw") +
    card("next event", next ? `${next.program_id} ${time(next.start)}` : "none", "next-event") +
    `</div>` + withheld(program.power_withheld) + `<table data-testid="sites"><thead><tr><th>site</th><th>kind</th><th>utility</th>` +
    `<th>state</th><th class="num">building kW</th><th class="num">vehicles kW</th>` +
    `<th class="num">grid kW</th><th class="num">available kW</th></tr></thead><tbody>`;
  for (const site of sites) {
    const s = site.status;
    const name = "vehicles" in site ? `<a href="#/site/${esc(site.site_id)}">${esc(site.site_id)}</a>` : esc(site.site_id);
    html += `<tr data-site="${esc(site.site_id)}"><td>${name}</td><td>${esc(site.kind)}</td>` +
      `<td>${esc(site.utility)}</td><td>${mode(s)} <span class="reason">${esc(s.reason)}</span></td>` +
      `<td class="num">${kw(s.load_kw)}</td><td class="num" data-testid="vehicles-kw">${kw(s.vehicles_kw)}</td>` +
      `<td class="num">${kw(s.grid_kw)}</td><td class="num">${kw(site.available_discharge_kw)}</td></tr>`;
  }
  return html + "</tbody></table>";
}

async function sitePage(siteId) {
  const id = encodeURIComponent(siteId);
  const [site, plan, backup] = await Promise.all([
    api(`/sites/${id}`), api(`/sites/${id}/plan`), api(`/sites/${id}/backup`),
  ]);
  const s = site.status;
  let html = `<h1 data-testid="site-name">${esc(site.site_id)}</h1>` +
    `<p>${mode(s)} <span class="reason" data-testid="site-reason">${esc(s.reason)}</span></p>` +
    `<h2>Power now (kW)</h2><div class="cards">` +
    card("building", kw(s.load_kw), "flow-building") + card("PV", kw(s.pv_kw), "flow-pv") +
    card("vehicles, as set (+ charging)", kw(s.vehicles_kw), "flow-vehicles") +
    card("grid (+ import)", kw(s.grid_kw), "flow-grid") + `</div>` +
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
  html += `<h2>Backup if the grid went down now</h2><div class="cards">`;
  for (const [tier, hours] of Object.entries(backup.hours)) {
    const shown = hours >= backup.horizon_h ? `≥ ${backup.horizon_h} h` : `${hours.toFixed(1)} h`;
    html += card(`${tier} load`, shown, `backup-${tier}`);
  }
  html += `</div><h2>The plan ahead</h2>` + planChart(plan);
  return html;
}

function planChart(plan) {
  if (!plan.start) return "<p>No plan yet.</p>";
  const series = [{ name: "site net (grid) kW", values: plan.site_net_kw, color: "#12325a" }];
  const colors = ["#d95f02", "#1b9e77", "#7570b3", "#e7298a", "#66a61e"];
  plan.vehicles.forEach((v, i) => series.push({ name: v.vehicle_id + " kW", values: v.power_kw, color: colors[i % colors.length] }));
  const n = plan.site_net_kw.length, W = 900, H = 260, pad = 40;
  const all = series.flatMap(s => s.values).concat([0]);
  const lo = Math.min(...all), hi = Math.max(...all), span = hi - lo || 1;
  const x = i => pad + (W - 2 * pad) * i / Math.max(n - 1, 1);
  const y = v => H - pad - (H - 2 * pad) * (v - lo) / span;
  let svg = `<svg data-testid="plan-chart" width="${W}" height="${H}" role="img" aria-label="plan">` +
    `<line x1="${pad}" x2="${W - pad}" y1="${y(0)}" y2="${y(0)}" stroke="#999" stroke-dasharray="4"/>` +
    `<text x="4" y="${y(hi) + 4}" font-size="11">${hi.toFixed(0)}</text><text x="4" y="${y(lo) + 4}" font-size="11">${lo.toFixed(0)}</text>`;
  series.forEach((s, k) => {
    const points = s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    svg += `<polyline fill="none" stroke="${s.color}" stroke-width="1.6" points="${points}"/>` +
      `<text x="${pad + 10 + 170 * k}" y="14" font-size="11" fill="${s.color}">${esc(s.name)}</text>`;
  });
  const hours = n * plan.step_minutes / 60;
  svg += `<text x="${pad}" y="${H - 8}" font-size="11">${esc(time(plan.start))}</text>` +
    `<text x="${W - pad - 60}" y="${H - 8}" font-size="11">+${hours} h</text></svg>`;
  return svg;
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
  const [events, sites, program, health] = await Promise.all(
    [api("/events"), api("/sites"), api("/program"), api("/health")]);
  let html = `<h1>Demand-response events</h1>${openadr(health.dr)}<div class="cards">` +
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
    if (!timeZone) timeZone = (await api("/health")).timezone;
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
    const health = await api("/health");
    document.getElementById("clock").textContent = "program time " + time(health.now);
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
