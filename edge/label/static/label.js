// The one page of the labelling tool: the seed's OpenCV window, in a browser.
//
// Keys as in the seed: n next, p previous, one toggle key per label (g e b l), s save, q quit;
// buttons do the same. Every change is saved at once. A frame not yet saved shows its
// suggestion (the model's or the operator's, from samples.csv) or nothing set; Enter (or a)
// saves what is shown and moves on.
"use strict";
const ui = {};
let config = null;      // /api/state: labels, keys, mode, count, start, saved
let index = 0;          // current frame
let values = {};        // label -> bool shown for the current frame
let saved = false;      // current frame has a saved row and values equal it
let suggested = "";     // "model" | "operator" | "": where unsaved values came from
let savedCount = 0;
let strip = {start: 0, cells: []};
let stopped = false;

const SUGGESTED = {model: "suggested by the model", operator: "said by the operator"};

function $(id) { return document.getElementById(id); }

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
  const response = await fetch(path, init);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function say(text, isError) {
  ui.message.textContent = text;
  ui.message.className = isError ? "error" : "";
}

function renderStrip() {
  const cells = [];
  strip.cells.forEach((isSaved, k) => {
    const at = strip.start + k;
    const cell = document.createElement("span");
    cell.dataset.index = String(at);
    cell.dataset.saved = String(isSaved);
    cell.title = `frame ${at}`;
    if (at === index) cell.setAttribute("aria-current", "true");
    cell.addEventListener("click", () => run(() => show(at)));
    cells.push(cell);
  });
  ui.strip.replaceChildren(...cells);
}

function render() {
  ui.position.textContent = `frame ${index} / ${config.count - 1}`;
  const state = saved ? "saved" : suggested ? "suggested" : "unsaved";
  ui.status.dataset.state = state;
  ui.status.textContent = saved ? "saved" : suggested ? SUGGESTED[suggested] : "not saved";
  for (const label of config.labels) {
    const button = ui.buttons[label];
    button.setAttribute("aria-pressed", String(values[label]));
    button.querySelector(".value").textContent = values[label] ? "True" : "False";
  }
  ui.progress.max = config.count;
  ui.progress.value = savedCount;
  ui.progress.textContent = ui.progressText.textContent = `${savedCount} / ${config.count} labelled`;
  renderStrip();
  document.body.dataset.index = String(index);
  document.body.dataset.saved = String(saved);
  document.body.dataset.suggested = saved ? "" : suggested;
}

function blank() {
  const none = {};
  for (const label of config.labels) none[label] = false;
  return none;
}

async function show(target) {
  if (stopped || target < 0 || target >= config.count) return;
  const info = await api(`/api/frame/${target}`);
  index = target;
  saved = info.saved;
  suggested = info.saved || !info.suggestion ? "" : info.suggested;
  values = Object.assign(blank(), info.saved ? info.values : info.suggestion || {});
  savedCount = info.saved_count;
  strip = {start: info.strip_start, cells: info.strip};
  ui.name.textContent = info.name;
  ui.frame.src = `/api/image/${target}.png`;
  render();
}

async function save() {
  if (stopped) return false;
  if (config.mode === "multiclass" && !config.labels.some((label) => values[label])) {
    say("choose a class first", true);
    return false;
  }
  const result = await api("/api/save", {index: index, values: values});
  saved = true;
  suggested = "";
  savedCount = result.saved_count;
  const k = index - strip.start;
  if (k >= 0 && k < strip.cells.length) strip.cells[k] = true;
  say(`saved ${result.name} (${result.saved_count} labelled)`);
  render();
  return true;
}

async function toggle(label) {
  if (stopped) return;
  if (config.mode === "multiclass") {
    for (const other of config.labels) values[other] = other === label;
  } else {
    values[label] = !values[label];
  }
  saved = false;
  suggested = "";
  render();
  await save();
}

async function accept() {
  if (!(await save())) return;
  if (index + 1 < config.count) await show(index + 1);
  else say(`saved ${ui.name.textContent}: that was the last frame`);
}

async function quit() {
  if (stopped) return;
  await api("/api/quit", {});
  stopped = true;
  document.body.dataset.stopped = "true";
  say("stopped: you can close this tab");
}

// Actions run one after another in key order, so "n n b" typed fast still saves frame+2.
let queue = Promise.resolve();
function run(action) {
  queue = queue.then(action).catch((err) => {
    say(err.message, true);
    ui.status.dataset.state = "error";
  });
}

function onKey(event) {
  if (event.ctrlKey || event.altKey || event.metaKey || event.repeat) return;
  const key = event.key.toLowerCase();
  if (key === "n") run(() => show(index + 1));
  else if (key === "p") run(() => show(index - 1));
  else if (key === "s") run(save);
  else if (key === "enter" || key === "a") run(accept);
  else if (key === "q") run(quit);
  else if (key in config.byKey) run(() => toggle(config.byKey[key]));
  else return;
  event.preventDefault();
}

function build() {
  ui.buttons = {};
  config.byKey = {};
  for (const label of config.labels) {
    const key = config.keys[label];
    config.byKey[key] = label;
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.label = label;
    const kbd = document.createElement("kbd");
    kbd.textContent = key;
    const name = document.createElement("span");
    name.textContent = ` ${label} `;
    const value = document.createElement("span");
    value.className = "value";
    button.append(kbd, name, value);
    button.addEventListener("click", () => run(() => toggle(label)));
    item.append(button);
    ui.labels.append(item);
    ui.buttons[label] = button;
  }
}

async function start() {
  const ids = ["position", "name", "status", "frame", "labels", "message", "progress", "strip"];
  for (const id of ids) ui[id] = $(id);
  ui.progressText = $("progress-text");
  config = await api("/api/state");
  savedCount = config.saved;
  build();
  $("prev").addEventListener("click", () => run(() => show(index - 1)));
  $("next").addEventListener("click", () => run(() => show(index + 1)));
  $("accept").addEventListener("click", () => run(accept));
  $("save").addEventListener("click", () => run(save));
  $("quit").addEventListener("click", () => run(quit));
  document.addEventListener("keydown", onKey);
  await show(config.start);
  document.body.dataset.ready = "true";
}

document.addEventListener("DOMContentLoaded", () => run(start));
