// The fleet page: polls /api/fleet every 2 s and redraws the table. What stations report is
// only ever set as textContent, never parsed as markup.
"use strict";

const POLL_MS = 2000;
const DASH = "–";

function number(value, digits, unit) {
  return typeof value === "number" ? `${value.toFixed(digits)}${unit}` : DASH;
}

function ago(seconds) {
  if (typeof seconds !== "number") return DASH;
  const s = Math.max(0, seconds);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

function cell(tr, className, text) {
  const td = document.createElement("td");
  const none = text === null || text === undefined || text === "" || text === DASH;
  td.className = none ? `${className} none` : className;
  td.textContent = none ? DASH : String(text);
  tr.appendChild(td);
}

function rowFor(row) {
  const tr = document.createElement("tr");
  tr.dataset.device = row.device;
  tr.dataset.condition = row.condition;
  cell(tr, "device", row.device);
  cell(tr, "status", row.condition);
  cell(tr, "version", row.version);
  cell(tr, "bundle", row.bundle);
  cell(tr, "shadow", row.shadow);
  cell(tr, "num fps", number(row.fps, 1, ""));
  cell(tr, "num temp", number(row.cpu_temp_c, 0, " °C"));
  const rate = typeof row.alarm_rate === "number" ? 100 * row.alarm_rate : null;
  cell(tr, "num alarms", number(rate, 1, " %"));
  const desired = row.desired ? `${row.desired.mode} ${row.desired.state}` : null;
  cell(tr, "desired", desired);
  cell(tr, "num seen", ago(row.last_seen_s));
  cell(tr, "fault", row.fault || (row.problems || []).join("; "));
  return tr;
}

function showRollout(record) {
  const section = document.getElementById("rollout");
  section.hidden = !record;
  if (!record) return;
  section.dataset.state = record.state;
  const bundle = record.bundle || {};
  document.getElementById("rollout-id").textContent =
    `${record.id} · ${bundle.name} ${String(bundle.sha256).slice(0, 12)}`;
  const stations = (record.stations || []).length;
  const sizes = record.sizes || [];
  const active = record.state === "running" || record.state === "interrupted";
  const step = active && record.step ? ` (${record.step})` : "";
  let where = `${record.state}: ring ${record.ring} of ${sizes.length}${step}, ` +
    `${record.done} of ${stations} stations done`;
  if (record.reason) where += ` (${record.reason})`;
  document.getElementById("rollout-where").textContent = where;
  const items = (record.log || []).slice(-8).map((item) => {
    const li = document.createElement("li");
    li.textContent = `${new Date(1000 * item.at).toLocaleTimeString()} ${item.line}`;
    return li;
  });
  document.getElementById("rollout-log").replaceChildren(...items);
}

function show(data) {
  const rows = Array.isArray(data.rows) ? data.rows : [];
  document.getElementById("rows").replaceChildren(...rows.map(rowFor));
  document.getElementById("empty").hidden = rows.length > 0;
  const ok = rows.filter((r) => r.condition === "ok").length;
  const summary = document.getElementById("summary");
  summary.textContent = `${rows.length} stations, ${ok} ok, ${rows.length - ok} not ok`;
  summary.classList.toggle("bad", ok < rows.length);
  showRollout(data.rollout);
  const link = document.getElementById("link");
  const at = new Date(1000 * data.at).toLocaleTimeString();
  if (data.connected) {
    link.textContent = `broker ${data.broker} · updated ${at}`;
    link.dataset.state = "up";
  } else {
    const why = data.error ? `: ${data.error}` : "";
    link.textContent = `broker ${data.broker} not connected${why}, retrying · ${at}`;
    link.dataset.state = "down";
  }
}

async function poll() {
  try {
    const response = await fetch("/api/fleet", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    show(await response.json());
    document.body.dataset.ready = "true";
  } catch (err) {
    const link = document.getElementById("link");
    link.textContent = `the fleet page's server is not answering (${err.message}), retrying`;
    link.dataset.state = "down";
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
