// pi-inspect console: polls the station's JSON API, shows the live view, runs actions.
"use strict";

const $ = (selector) => document.querySelector(selector);
const body = document.body;
const FPS = Number(body.dataset.fps) || 5;
const ui = {
  viewer: Math.random().toString(36).slice(2, 12),
  seq: 0,
  heat: false,
  page: 0,
  pageSize: 8,
  canAct: false,
  state: null,
  labels: [],
  liveUrl: null,
  station: null,  // the station shown full-size (null: the first; one station: always null)
  several: false,
};

// `path` for the station shown: every API call names it when the device has several
function at(path, station = ui.station) {
  if (!station) return path;
  return `${path}${path.includes("?") ? "&" : "?"}station=${encodeURIComponent(station)}`;
}

function say(text) {
  $("#msg").textContent = text;
}

async function getJson(path) {
  const response = await fetch(path, { credentials: "same-origin" });
  if (response.status === 401) {
    showLogin(true);
    throw new Error("log in first");
  }
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

async function post(path, payload) {
  const response = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-Pi-Inspect": "1", "Content-Type": "application/json" },
    body: JSON.stringify(payload || {}),
  });
  let reply = {};
  try {
    reply = await response.json();
  } catch (err) {
    reply = { ok: false, error: `HTTP ${response.status}` };
  }
  if (response.status === 401) showLogin(true);
  return reply;
}

function showLogin(show) {
  $("#login").hidden = !show;
}

function setActionsEnabled(enabled) {
  ui.canAct = enabled;
  for (const button of document.querySelectorAll(".act")) button.disabled = !enabled;
}

// -- live view ------------------------------------------------------------------------------
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function liveLoop() {
  const img = $("#live-img");
  for (;;) {
    const started = performance.now();
    if (document.hidden) {
      await sleep(1000);
      continue;
    }
    try {
      const query = `viewer=${ui.viewer}&heat=${ui.heat ? 1 : 0}&after=${ui.seq}`;
      const response = await fetch(at(`/api/live.jpg?${query}`), { credentials: "same-origin" });
      if (response.status === 200) {
        const blob = await response.blob();
        const url = URL.createObjectURL(blob);
        img.src = url;
        await img.decode().catch(() => {});  // the frame number below is the frame shown
        if (ui.liveUrl) URL.revokeObjectURL(ui.liveUrl);
        ui.liveUrl = url;
        ui.seq = Number(response.headers.get("X-Frame-Seq")) || ui.seq;
        img.dataset.frame = response.headers.get("X-Frame-Index") || "";
        const heat = response.headers.get("X-Heat");
        $("#live-caption").textContent =
          `frame ${img.dataset.frame}` + (heat ? ` · heat map of ${conditionOf(heat)}` : "");
      } else if (response.status === 401) {
        showLogin(true);
        await sleep(2000);
      } else {
        $("#live-caption").textContent = "no frames (camera starting or offline)";
        await sleep(1000);
      }
    } catch (err) {
      await sleep(1000);
    }
    const wait = 1000 / FPS - (performance.now() - started);
    if (wait > 0) await sleep(wait);
  }
}

// -- what labels mean -------------------------------------------------------------------------
// A label alarms when "present" (a score above its threshold) or "absent" (below it), as the
// data set declared it; the page speaks of the alarm condition with its meaning, as MQTT does.
function declared(label) {
  const model = ui.state && ui.state.model;
  return (model && model.meanings && model.meanings[label]) || null;
}

function conditionOf(label) {
  const d = declared(label);
  if (d && (d.alarm === "present" || d.alarm === "absent")) return `${label} ${d.alarm}`;
  const direction = ui.state && ui.state.alarms ? ui.state.alarms[label] : undefined;
  if (direction) return `${label} ${direction === "below" ? "absent" : "present"}`;
  return label;
}

function labelOf(condition) {
  const labels = (ui.state && ui.state.model && ui.state.model.labels) || [];
  return labels.find((label) => conditionOf(label) === condition) || condition;
}

// "length absent — stitch pitch is 2 mm" (the condition alone where nothing is declared)
function withMeaning(condition, meaning) {
  return meaning ? `${condition} — ${meaning}` : condition;
}

function describeCondition(condition) {
  const d = declared(labelOf(condition));
  return withMeaning(condition, d && d.meaning);
}

// -- state, scores, stats -------------------------------------------------------------------
function renderState(state) {
  const lamps = state.lamps || {};
  const conditions = state.conditions || state.active;
  // With gpio.latch, red and the relay stay on after the defect ended until acknowledged:
  // the verdict is "ok" again, but the station is not showing OK.
  const held = (state.latched || []).filter((condition) => !conditions.includes(condition));
  const latched = !!lamps.red && state.verdict !== "starting" && (!state.active.length || held.length > 0);
  const shown = latched && state.verdict === "ok" ? "latched" : state.verdict;
  const parts = conditions.map(describeCondition);
  if (latched) {
    const what = held.length ? held.map(describeCondition).join("; ") : "a defect that has ended";
    parts.push(`${state.verdict === "ok" ? "" : "latched: "}${what} (press Acknowledge)`);
  }
  const verdict = $("#verdict");
  verdict.dataset.verdict = shown;
  $("#verdict-word").textContent = shown;
  $("#verdict-why").textContent = parts.length ? `: ${parts.join("; ")}` : "";
  verdict.title = latched ? "red LED and relay latched: the defect has ended, acknowledge to release them" : "";
  for (const name of ["green", "red", "amber"]) $(`#led-${name}`).dataset.on = String(!!lamps[name]);
  $("#relay").dataset.on = String(!!lamps.relay);
  const model = state.model;
  $("#model").textContent = model ? `${model.name} ${model.version} · ${model.sha256.slice(0, 12)}` : "no model";
  const fault = $("#fault");
  fault.hidden = !state.fault;
  fault.textContent = state.fault ? `fault: ${state.fault}` : "";
  const labels = Object.keys(state.thresholds || {});
  if (labels.join() !== ui.labels.join()) {
    ui.labels = labels;
    buildThresholdInputs(state);
  }
  const all = (model && model.labels) || [];
  if (all.join() !== (ui.rightLabels || []).join()) {
    ui.rightLabels = all;
    buildRightLabels(all);
  }
}

// one box per label of the model: the labels the operator says are right for this frame
function buildRightLabels(labels) {
  const box = $("#right-labels");
  box.textContent = "";
  for (const label of labels) {
    const wrap = document.createElement("label");
    const input = document.createElement("input");
    Object.assign(input, { type: "checkbox", name: label, className: "act" });
    input.disabled = !ui.canAct;
    wrap.append(input, ` ${label}`);
    box.append(wrap);
  }
}

// a score and its threshold with enough digits that they never read the same
function digits(score, threshold) {
  let n = 2;
  while (threshold !== undefined && n < 4 && score.toFixed(n) === threshold.toFixed(n)) n += 1;
  return n;
}

// What one row says, from one frame: its score against the threshold, and whether the label
// is raised after that frame (the debounce raises after k of n alarming frames and holds a
// defect until enough clean frames in a row), so the row and the verdict never disagree.
function scoreStatus(alarming, raised) {
  if (raised && alarming) return ["alarm", "ALARM"];
  if (raised) return ["held", "held by debounce"];
  if (alarming) return ["pending", "alarming, not raised yet"];
  return ["false", ""];
}

function renderScores(state, result) {
  const tbody = $("#scores tbody");
  tbody.textContent = "";
  const scores = result ? result.scores : {};
  const raised = result ? result.active || [] : [];
  const notes = new Set();
  for (const label of Object.keys(scores)) {
    const threshold = state && state.thresholds ? state.thresholds[label] : undefined;
    const direction = state && state.alarms ? state.alarms[label] : undefined;
    const score = scores[label];
    const alarming = threshold !== undefined && (direction === "below" ? score < threshold : score > threshold);
    const [kind, status] = scoreStatus(alarming, raised.includes(label));
    const row = tbody.insertRow();
    row.dataset.label = label;
    row.dataset.alarm = kind;
    const name = row.insertCell();
    const condition = document.createElement("span");
    condition.className = "condition";
    condition.textContent = conditionOf(label);
    name.append(condition);
    const d = declared(label);
    if (d && d.meaning) {
      const meaning = document.createElement("small");
      meaning.className = "meaning";
      meaning.textContent = d.meaning;
      name.append(meaning);
    }
    const bar = document.createElement("div");
    bar.className = "bar";
    const fill = document.createElement("i");
    fill.style.width = `${Math.round(score * 100)}%`;
    bar.append(fill);
    if (threshold !== undefined) {
      const mark = document.createElement("b");
      mark.style.left = `${threshold * 100}%`;
      bar.append(mark);
    }
    const n = digits(score, threshold);
    const cell = row.insertCell();
    cell.append(bar);
    cell.append(` ${score.toFixed(n)}`);
    row.insertCell().textContent =
      threshold === undefined ? "never" : `${direction === "below" ? "<" : ">"} ${threshold.toFixed(n)}`;
    row.insertCell().textContent = status;
    if (kind === "held") notes.add(`${conditionOf(label)} is held: ${score.toFixed(n)} does not alarm on this frame, the defect ends after enough clean frames in a row`);
    if (kind === "pending") notes.add(`${conditionOf(label)} alarms on this frame: raised once enough recent frames alarm`);
  }
  const note = $("#scores-note");
  note.textContent = [...notes].join(". ");
  note.hidden = notes.size === 0;
  $("#scores-frame").textContent = result ? `frame ${result.frame_index}` : "";
}

function buildThresholdInputs(state) {
  const box = $("#threshold-inputs");
  box.textContent = "";
  for (const label of ui.labels) {
    const wrap = document.createElement("label");
    wrap.textContent = label;
    const input = document.createElement("input");
    Object.assign(input, { type: "number", min: "0", max: "1", step: "any", name: label });
    // the threshold exactly as in force (never rounded): an input left as shown is not sent
    input.value = String(state.thresholds[label]);
    input.dataset.shown = input.value;
    input.className = "act";
    input.disabled = !ui.canAct;
    wrap.append(input);
    box.append(wrap);
  }
}

function drawChart(name, history) {
  const canvas = $(`#chart-${name}`);
  const values = history.map((point) => point[name]).filter((v) => v !== null && v !== undefined);
  const latest = values.length ? values[values.length - 1] : null;
  $(`#v-${name}`).textContent = latest === null ? "–" : (Math.round(latest * 10) / 10).toString();
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (values.length < 2) return;
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  const span = hi - lo || 1;
  ctx.strokeStyle = "#8ab4f8";
  ctx.lineWidth = 2;
  ctx.beginPath();
  values.forEach((v, i) => {
    const x = (i / (values.length - 1)) * (canvas.width - 4) + 2;
    const y = canvas.height - 4 - ((v - lo) / span) * (canvas.height - 8);
    if (i === 0) ctx.moveTo(x, y);
    else ctx.lineTo(x, y);
  });
  ctx.stroke();
}

async function refreshOverview() {
  const data = await getJson(at("/api/overview"));
  renderStations(data.stations || [], data.station);
  ui.state = data.state;
  if (data.state) renderState(data.state);
  renderScores(data.state, data.result);
  for (const name of ["fps", "latency_ms", "dropped", "spool_depth", "cpu_temp_c"]) drawChart(name, data.history);
  renderLearning((data.stats && data.stats.extra) || {});
}

// one tile per station (a device of several): its verdict at a glance; a click shows it full-size
function renderStations(tiles, shown) {
  const nav = $("#stations");
  ui.several = tiles.length > 1;
  nav.hidden = !ui.several;
  if (!ui.several) return;
  if (!ui.station) ui.station = shown;
  nav.textContent = "";
  for (const tile of tiles) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "tile";
    button.dataset.station = tile.name;
    button.dataset.verdict = tile.verdict;
    button.setAttribute("aria-pressed", String(tile.name === ui.station));
    const name = document.createElement("b");
    name.textContent = tile.name;
    const what = document.createElement("span");
    what.textContent = tile.fault || (tile.active.length ? tile.active.join(", ") : tile.verdict);
    const fps = document.createElement("small");
    fps.textContent = tile.fps === null ? "" : `${tile.fps.toFixed(1)} fps`;
    button.append(name, what, fps);
    button.addEventListener("click", () => showStation(tile.name));
    nav.append(button);
  }
}

function showStation(name) {
  if (name === ui.station) return;
  ui.station = name;
  ui.seq = 0;
  ui.page = 0;
  $("#station-name").textContent = name;
  refreshOverview().catch(() => {});
  refreshEvents().catch(() => {});
}

// the candidate in shadow and the drift check, as the stats line reports them
function renderLearning(extra) {
  const shadow = $("#shadow");
  const s = extra.shadow;
  shadow.hidden = !s;
  if (s && s.error) shadow.textContent = `shadow: ${s.error}`;
  else if (s) {
    const flips = Object.entries(s.flips || {})
      .map(([label, f]) => `${label} raised ${f.raised}, cleared ${f.cleared}`).join("; ");
    const agreement = s.agreement === null ? "–" : `${(100 * s.agreement).toFixed(1)} %`;
    shadow.textContent = `shadow: ${s.candidate.name} ${s.candidate.version} agrees on ${agreement} ` +
      `of ${s.frames} frames${flips ? ` (${flips})` : ""}`;
  }
  shadow.dataset.frames = s ? String(s.frames || 0) : "";
  const drift = $("#drift");
  const d = extra.drift;
  drift.hidden = !(d && d.warning);
  drift.textContent = d && d.warning ? `drift: ${d.warning}` : "";
  renderParts(extra.parts, extra.reject);
}

// triggered parts: every trigger ends as one result; missed and late ones stand out
function renderParts(p, reject) {
  const line = $("#parts");
  line.hidden = !p;
  if (!p) return;
  const rejectLate = reject && reject.late ? `, ${reject.late} rejects too late` : "";
  line.textContent = `parts: ${p.triggers} triggered, ${p.ok} OK, ${p.ng} NG, ${p.missed} missed, ` +
    `${p.late} late, ${p.errors} errors${rejectLate}`;
  line.classList.toggle("warn", Boolean(p.missed || p.late || p.errors || rejectLate));
  line.dataset.missed = String(p.missed);
}

// -- events -----------------------------------------------------------------------------------
function fmtTime(t) {
  return t ? new Date(t * 1000).toLocaleTimeString() : "…";
}

// The peak as the label alarms: an "absent" label alarms on low scores, so its peak is its
// lowest score, and its frames are those that fell below the threshold.
function peakText(event, condition) {
  const below = condition === `${event.label} absent` ||
    (!event.condition && ui.state && ui.state.alarms && ui.state.alarms[event.label] === "below");
  const frames = `${event.frames} frame${event.frames === 1 ? "" : "s"}`;
  return below
    ? `lowest score ${event.peak_score.toFixed(2)}, ${frames} below the threshold`
    : `highest score ${event.peak_score.toFixed(2)}, ${frames} above the threshold`;
}

async function refreshEvents() {
  const data = await getJson(at(`/api/events?page=${ui.page}&size=${ui.pageSize}`));
  $("#events-total").textContent = `(${data.total})`;
  $("#page").textContent = String(ui.page + 1);
  $("#newer").disabled = ui.page === 0;
  $("#older").disabled = (ui.page + 1) * ui.pageSize >= data.total;
  const list = $("#events");
  const row = $("#event-row");
  list.textContent = "";
  for (const event of data.events) {
    const item = row.content.firstElementChild.cloneNode(true);
    item.dataset.eventId = event.event_id;
    item.dataset.kind = event.kind;
    const link = item.querySelector(".thumb");
    if (event.snapshot) {
      const heat = event.snapshot.replace(/\.jpg$/, ".heat.jpg");
      link.href = at(`/api/snapshots/${heat}`, event.station);
      link.querySelector("img").src = at(`/api/snapshots/${heat}`, event.station);
    } else {
      link.remove();
    }
    const condition = event.condition || conditionOf(event.label);
    item.querySelector(".label").textContent = withMeaning(condition, event.meaning);
    item.querySelector(".peak").textContent = peakText(event, condition);
    item.querySelector(".when").textContent =
      `${fmtTime(event.started_at)} – ${event.kind === "end" ? fmtTime(event.ended_at) : "ongoing"}` +
      ` · frames ${event.first_frame}–${event.last_frame ?? "…"}`;
    item.querySelector(".by").textContent = `${event.model || "?"} ${event.model_version || ""} · ${(event.model_sha256 || "").slice(0, 12)}`;
    const wrong = item.querySelector(".wrong-event");
    wrong.disabled = !ui.canAct || !event.snapshot;
    wrong.addEventListener("click", () => keepForReview({ event_id: event.event_id }));
    list.append(item);
  }
}

// -- actions ----------------------------------------------------------------------------------
async function act(verb, payload) {
  const reply = await post(at(`/api/action/${verb}`), payload);
  if (!reply.ok) {
    say(`${verb} refused: ${reply.error}`);
    return null;
  }
  return reply.result || {};
}

async function keepForReview(payload) {
  const reply = await post(at("/api/review"), payload);
  say(reply.ok ? `kept for review as ${reply.id}` : `not kept: ${reply.error}`);
  if (reply.ok) body.dataset.lastReview = reply.id;
}

function wire() {
  $("#heat").addEventListener("click", (e) => {
    ui.heat = !ui.heat;
    e.currentTarget.setAttribute("aria-pressed", String(ui.heat));
  });
  $("#ack").addEventListener("click", async () => {
    if ((await act("acknowledge")) !== null) say("acknowledged");
  });
  $("#trigger").addEventListener("click", async () => {
    if ((await act("trigger")) !== null) say("triggered");
  });
  $("#snap").addEventListener("click", async () => {
    const result = await act("snapshot");
    if (result) say(result.snapshot ? `snapshot ${result.snapshot}` : "no frame to snapshot yet");
  });
  $("#wrong").addEventListener("click", () => keepForReview({}));
  $("#collect-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const right = [...document.querySelectorAll("#right-labels input:checked")].map((i) => i.name);
    const result = await act("collect", { right });
    if (result) {
      say(`kept as sample ${result.sample} (${right.length ? right.join(", ") : "good"})`);
      body.dataset.lastSample = result.sample;
    }
  });
  $("#thresholds-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    // only the thresholds the operator edited are sent: the others stay as they are
    const wanted = {};
    const changes = [];
    for (const input of document.querySelectorAll("#threshold-inputs input")) {
      if (input.value === input.dataset.shown) continue;
      const value = Number(input.value);
      if (input.value.trim() === "" || !Number.isFinite(value) || value < 0 || value > 1) {
        return say(`threshold for ${input.name} must be a number from 0 to 1`);
      }
      const now = ui.state.thresholds[input.name];
      if (value !== now) {
        wanted[input.name] = value;
        changes.push(`${input.name}: ${now} → ${value}`);
      }
    }
    if (!changes.length) return say("no threshold changed");
    const question = `Change ${changes.join(", ")}?\n\nThis lasts until the daemon restarts or reloads its config; to keep it, set model.thresholds in the config file.`;
    if (!window.confirm(question)) return say("thresholds unchanged");
    const result = await act("thresholds", wanted);
    if (result) {
      say(`thresholds now ${JSON.stringify(result.thresholds)}; ${result.persistent ? "kept after a restart" : "not kept after a restart"}`);
      ui.labels = [];
    }
  });
  $("#newer").addEventListener("click", () => { ui.page = Math.max(0, ui.page - 1); refreshEvents(); });
  $("#older").addEventListener("click", () => { ui.page += 1; refreshEvents(); });
  $("#login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const reply = await post("/api/login", { token: $("#token").value });
    $("#token").value = "";
    if (!reply.ok) return say(`login refused: ${reply.error}`);
    say("logged in");
    await start();
  });
}

async function start() {
  const session = await getJson("/api/session");
  showLogin(session.login_required || (session.token_needed && !session.can_act));
  setActionsEnabled(session.can_act);
  if (session.login_required) return;
  if (!ui.looping) {
    ui.looping = true;
    liveLoop();
    poll(refreshOverview, 1000);
    poll(refreshEvents, 2000);
  }
  body.dataset.ready = "true";
}

async function poll(fn, period) {
  for (;;) {
    try {
      await fn();
    } catch (err) {
      // shown by the functions themselves (login) or transient: try again
    }
    await sleep(period);
  }
}

wire();
start();
