// The dashboard page: loads the API once, then again whenever pg-sink commits new rows (pushed
// by server-sent events). No polling, no framework, no third-party code.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const $ = (selector) => document.querySelector(selector);

async function getJson(path) {
  const response = await fetch(path, { headers: { accept: "application/json" } });
  if (response.status === 404) return null;
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function svg(name, attributes, text) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function time(iso) {
  return new Date(iso).toLocaleString(undefined, { hour12: false });
}

const seenAlerts = new Set();
let firstLoad = true;

function renderAlerts(alerts) {
  const list = $("#alerts");
  list.replaceChildren();
  for (const a of alerts) {
    const id = `${a.sensor_id}#${a.seq}`;
    const item = document.createElement("li");
    item.dataset.sensor = a.sensor_id;
    item.dataset.seq = a.seq;
    if (!firstLoad && !seenAlerts.has(id)) item.classList.add("new");
    seenAlerts.add(id);
    const sensor = document.createElement("span");
    sensor.className = "sensor";
    sensor.textContent = a.sensor_id;
    const temp = document.createElement("span");
    temp.className = "temp";
    temp.textContent = `${a.temperature.toFixed(2)} °C`;
    const when = document.createElement("span");
    when.className = "time";
    when.textContent = `seq ${a.seq} · ${time(a.timestamp)} · threshold ${a.threshold} °C`;
    item.append(sensor, temp, when);
    list.append(item);
  }
  $("#alerts-empty").classList.toggle("hidden", alerts.length > 0);
}

function sparkline(values) {
  const width = 120, height = 24;
  const line = svg("svg", { class: "spark", width, height, viewBox: `0 0 ${width} ${height}` });
  if (values.length < 2) return line;
  const min = Math.min(...values), max = Math.max(...values);
  const span = max - min || 1;
  const points = values.map((v, i) =>
    `${(i / (values.length - 1)) * (width - 2) + 1},${height - 2 - ((v - min) / span) * (height - 4)}`);
  line.append(svg("polyline", { points: points.join(" ") }));
  return line;
}

function renderSensors(body) {
  const rows = $("#sensors tbody");
  rows.replaceChildren();
  for (const s of body.sensors) {
    const row = document.createElement("tr");
    row.dataset.sensor = s.sensor_id;
    const cell = (text, numeric) => {
      const td = document.createElement("td");
      if (numeric) td.className = "num";
      td.textContent = text;
      return td;
    };
    row.addEventListener("click", () => choose(s.sensor_id));
    const trend = document.createElement("td");
    trend.append(sparkline(s.trend));
    row.append(
      cell(s.sensor_id),
      cell(s.last_seq, true),
      cell(s.last_average === null ? "–" : s.last_average.toFixed(2), true),
      trend,
      cell(s.alert_count, true),
      cell(s.last_alert_temperature === null ? "–" : `${s.last_alert_temperature.toFixed(2)} °C`, true),
    );
    rows.append(row);
  }
  $("#sensor-total").textContent = `(${body.total})`;
  $("#sensors-empty").classList.toggle("hidden", body.sensors.length > 0);
}

// The original's plt.bar, as horizontal SVG bars: one per address, longest first.
function renderBars(figure, data) {
  const chart = figure.querySelector("svg");
  chart.replaceChildren();
  const caption = figure.querySelector("figcaption");
  const label = figure.id === "chart-current" ? "Current window" : "Previous window";
  if (!data || data.top.length === 0) {
    caption.textContent = `${label}: no counts yet`;
    figure.dataset.window = "";
    return;
  }
  caption.textContent = `${label}: ${time(data.window_start)} – ${time(data.window_end)}`;
  figure.dataset.window = data.window_start;
  const width = chart.clientWidth || 480;
  // Room for an IPv6 address (up to 39 characters) beside its bar.
  const labelWidth = 260, valueWidth = 60, rowHeight = 26;
  const max = Math.max(...data.top.map((t) => t.count));
  chart.setAttribute("viewBox", `0 0 ${width} ${data.top.length * rowHeight}`);
  data.top.forEach((t, i) => {
    const y = i * rowHeight;
    const bar = svg("g", { class: "bar", "data-ip": t.ip, "data-count": t.count });
    const length = Math.max(2, ((width - labelWidth - valueWidth) * t.count) / max);
    bar.append(
      svg("text", { x: labelWidth - 8, y: y + 17, "text-anchor": "end", class: "label" }, t.ip),
      svg("rect", { x: labelWidth, y: y + 4, width: length, height: rowHeight - 8, rx: 3 }),
      svg("text", { x: labelWidth + length + 6, y: y + 17, class: "value" }, t.count),
    );
    chart.append(bar);
  });
}

// The sensor the forecast chart shows: `#sensor=ID` in the address, else the one a click chose,
// else the sensor of the latest anomaly, else the first sensor.
function chosenSensor() {
  const match = /^#sensor=(.+)$/.exec(location.hash);
  return match ? decodeURIComponent(match[1]) : null;
}

function choose(sensor) {
  location.hash = `sensor=${encodeURIComponent(sensor)}`;
}

function renderAnomalies(anomalies) {
  const list = $("#anomalies");
  list.replaceChildren();
  for (const a of anomalies.slice(0, 12)) {
    const item = document.createElement("li");
    item.dataset.sensor = a.sensor_id;
    item.dataset.seq = a.seq;
    item.addEventListener("click", () => choose(a.sensor_id));
    const sensor = document.createElement("span");
    sensor.className = "sensor";
    sensor.textContent = `${a.sensor_id} · ${a.kind}`;
    const temp = document.createElement("span");
    temp.className = "temp";
    temp.textContent = `${a.temperature.toFixed(2)} °C`;
    const when = document.createElement("span");
    when.className = "time";
    when.textContent = `seq ${a.seq} · score ${a.score.toFixed(2)} · expected ${a.expected.toFixed(2)} °C · ${time(a.timestamp)}`;
    item.append(sensor, temp, when);
    list.append(item);
  }
  $("#anomalies-empty").classList.toggle("hidden", anomalies.length > 0);
}

// One sensor's readings (those the forecasts were made after) against the band each forecast
// gave for the next reading, the expected value as a line, and its anomalies as red dots.
function renderForecast(sensor, predictions, anomalies) {
  const chart = $("#forecast svg");
  chart.replaceChildren();
  chart.dataset.sensor = sensor || "";
  $("#forecast-sensor").textContent = sensor ? `(${sensor})` : "";
  const forecasts = predictions.slice().reverse();
  const first = forecasts.length ? forecasts[0].seq : Infinity;
  const marked = anomalies.filter((a) => a.seq >= first).reverse();
  const empty = forecasts.length === 0;
  $("#forecast-empty").classList.toggle("hidden", !empty);
  $("#forecast").classList.toggle("hidden", empty);
  if (empty) return;
  const width = chart.clientWidth || 800, height = 260;
  const pad = { left: 48, right: 12, top: 10, bottom: 24 };
  chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const xs = [...forecasts.map((p) => p.seq + 1), ...marked.map((a) => a.seq)];
  const ys = [
    ...forecasts.flatMap((p) => [p.low, p.high, p.temperature].filter((v) => v !== null)),
    ...marked.map((a) => a.temperature),
  ];
  const [x0, x1] = [Math.min(first, ...xs), Math.max(...xs)];
  const [lo, hi] = [Math.min(...ys), Math.max(...ys)];
  const margin = (hi - lo) * 0.08 || 1;
  const [y0, y1] = [lo - margin, hi + margin];
  const x = (seq) => pad.left + ((seq - x0) / ((x1 - x0) || 1)) * (width - pad.left - pad.right);
  const y = (t) => height - pad.bottom - ((t - y0) / (y1 - y0)) * (height - pad.top - pad.bottom);
  const point = (seq, t) => `${x(seq).toFixed(1)},${y(t).toFixed(1)}`;
  const upper = forecasts.map((p) => point(p.seq + 1, p.high));
  const lower = forecasts.map((p) => point(p.seq + 1, p.low)).reverse();
  chart.append(
    svg("polygon", { class: "band", points: [...upper, ...lower].join(" ") }),
    svg("polyline", { class: "expected", points: forecasts.map((p) => point(p.seq + 1, p.expected)).join(" ") }),
  );
  const readings = forecasts.filter((p) => p.temperature !== null);
  chart.append(svg("polyline", { class: "reading", points: readings.map((p) => point(p.seq, p.temperature)).join(" ") }));
  for (const p of readings) chart.append(svg("circle", { class: "reading", cx: x(p.seq), cy: y(p.temperature), r: 2.5 }));
  for (const a of marked) {
    const dot = svg("circle", { class: "anomaly", cx: x(a.seq), cy: y(a.temperature), r: 5, "data-seq": a.seq, "data-kind": a.kind });
    dot.append(svg("title", {}, `seq ${a.seq}: ${a.kind}, ${a.temperature.toFixed(2)} °C (expected ${a.expected.toFixed(2)}, score ${a.score.toFixed(2)})`));
    chart.append(dot);
  }
  const axis = (attributes, text) => chart.append(svg("text", { class: "axis", ...attributes }, text));
  axis({ x: pad.left - 6, y: y(y1) + 10, "text-anchor": "end" }, `${y1.toFixed(1)} °C`);
  axis({ x: pad.left - 6, y: y(y0), "text-anchor": "end" }, `${y0.toFixed(1)} °C`);
  axis({ x: pad.left, y: height - 6 }, `seq ${x0}`);
  axis({ x: width - pad.right, y: height - 6, "text-anchor": "end" }, `seq ${x1}`);
}

async function loadForecast(latest, sensors) {
  const sensor = chosenSensor() || latest[0]?.sensor_id || sensors[0]?.sensor_id || null;
  if (!sensor) return renderForecast(null, [], []);
  const id = encodeURIComponent(sensor);
  const [predictions, anomalies] = await Promise.all([
    getJson(`/api/sensors/${id}/predictions?limit=120`),
    getJson(`/api/anomalies?sensor=${id}&limit=200`),
  ]);
  renderForecast(sensor, predictions ? predictions.predictions : [], anomalies ? anomalies.anomalies : []);
}

async function load() {
  const [alerts, sensors, windows, anomalies] = await Promise.all([
    getJson("/api/alerts?limit=30"),
    getJson("/api/sensors?limit=200&trend=20"),
    getJson("/api/ip/windows?limit=2"),
    getJson("/api/anomalies?limit=30"),
  ]);
  renderAlerts(alerts.alerts);
  renderSensors(sensors);
  renderAnomalies(anomalies.anomalies);
  await loadForecast(anomalies.anomalies, sensors.sensors);
  const starts = (windows ? windows.windows : []).map((w) => w.window_start);
  const tops = await Promise.all(starts.map((start) =>
    getJson(`/api/ip/top?n=10&window=${encodeURIComponent(start)}`)));
  renderBars($("#chart-current"), tops[0]);
  renderBars($("#chart-previous"), tops[1]);
  firstLoad = false;
  document.body.dataset.loads = String(Number(document.body.dataset.loads || 0) + 1);
}

// Several commits in a burst cause one reload.
let pending = null;
function reloadSoon() {
  if (pending) return;
  pending = setTimeout(() => {
    pending = null;
    load().catch(showError);
  }, 150);
}

function showError(error) {
  console.error(error);
  const status = $("#status");
  status.dataset.state = "offline";
  status.textContent = "error: see the console";
}

function connect() {
  const status = $("#status");
  const events = new EventSource("/api/events");
  events.addEventListener("open", () => {
    status.dataset.state = "live";
    status.textContent = "live";
    // Whatever committed while disconnected.
    reloadSoon();
  });
  events.addEventListener("results", reloadSoon);
  events.addEventListener("error", () => {
    status.dataset.state = "offline";
    status.textContent = "reconnecting…";
  });
}

window.addEventListener("hashchange", reloadSoon);

load().then(connect).catch((error) => {
  showError(error);
  connect();
});
