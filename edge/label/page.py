"""The one page of the labelling tool: the seed's OpenCV window, in a browser.

Keys as in the seed: ``n`` next, ``p`` previous, one toggle key per label (``g e b l``), ``s``
save, ``q`` quit; buttons do the same. Values carry over to the next unsaved frame, as the
seed's ``picstats`` did. Kept as strings so the wheel needs no package data.
"""

HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>pi-inspect label</title>
<link rel="stylesheet" href="/app.css">
<script src="/app.js" defer></script>
</head>
<body>
<header>
  <span id="position">loading…</span>
  <span id="name"></span>
  <span id="status" data-state="loading"></span>
</header>
<main>
  <img id="frame" alt="current frame">
  <aside>
    <ul id="labels"></ul>
    <div class="actions">
      <button id="prev" type="button"><kbd>p</kbd> previous</button>
      <button id="next" type="button"><kbd>n</kbd> next</button>
      <button id="save" type="button"><kbd>s</kbd> save</button>
      <button id="quit" type="button"><kbd>q</kbd> quit</button>
    </div>
    <p id="message" role="status"></p>
  </aside>
</main>
</body>
</html>
"""

STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; background: #1e1e1e; color: #eee; }
header { display: flex; gap: 1.5em; padding: .5em 1em; background: #333; }
main { display: flex; gap: 1em; padding: 1em; align-items: flex-start; }
#frame { width: 65vw; max-height: 85vh; object-fit: contain; image-rendering: pixelated; background: #000; }
#labels { list-style: none; padding: 0; margin: 0 0 1em; }
#labels li { margin: .3em 0; }
#labels button { width: 100%; text-align: left; font-size: 1.1em; }
#labels button[aria-pressed="true"] { background: #2e7d32; color: #fff; }
#labels button[aria-pressed="false"] { background: #555; color: #ddd; }
.actions button { margin: .2em 0; width: 100%; }
#status[data-state="saved"] { color: #81c784; }
#status[data-state="unsaved"] { color: #ffb74d; }
#status[data-state="error"], #message.error { color: #e57373; }
kbd { border: 1px solid #888; border-radius: 3px; padding: 0 .3em; }
"""

SCRIPT = r"""
"use strict";
const ui = {};
let config = null;   // /api/state: labels, keys, mode, count, start, carry
let index = 0;       // current frame
let values = {};     // label -> bool shown for the current frame
let saved = false;   // current frame has a saved row and values equal it
let stopped = false;

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

function render() {
  ui.position.textContent = `frame ${index} / ${config.count - 1}`;
  ui.status.dataset.state = saved ? "saved" : "unsaved";
  ui.status.textContent = saved ? "saved" : "not saved";
  for (const label of config.labels) {
    const button = ui.buttons[label];
    button.setAttribute("aria-pressed", String(values[label]));
    button.querySelector(".value").textContent = values[label] ? "True" : "False";
  }
  document.body.dataset.index = String(index);
  document.body.dataset.saved = String(saved);
}

async function show(target) {
  if (stopped || target < 0 || target >= config.count) return;
  const info = await api(`/api/frame/${target}`);
  index = target;
  if (info.saved) values = Object.assign({}, info.values);
  saved = info.saved;
  ui.name.textContent = info.name;
  ui.frame.src = `/api/image/${target}.png`;
  render();
}

function toggle(label) {
  if (stopped) return;
  if (config.mode === "multiclass") {
    for (const other of config.labels) values[other] = other === label;
  } else {
    values[label] = !values[label];
  }
  saved = false;
  render();
}

async function save() {
  if (stopped) return;
  const result = await api("/api/save", {index: index, values: values});
  saved = true;
  say(`saved ${result.name} (${result.count} labelled)`);
  render();
}

async function quit() {
  if (stopped) return;
  await api("/api/quit", {});
  stopped = true;
  document.body.dataset.stopped = "true";
  say("stopped: you can close this tab");
}

// Actions run one after another in key order, so "n n b s" typed fast still saves frame+2.
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
  else if (key === "q") run(quit);
  else if (key in config.byKey) run(async () => toggle(config.byKey[key]));
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
    button.addEventListener("click", () => run(async () => toggle(label)));
    item.append(button);
    ui.labels.append(item);
    ui.buttons[label] = button;
  }
}

async function start() {
  for (const id of ["position", "name", "status", "frame", "labels", "message"]) ui[id] = $(id);
  config = await api("/api/state");
  values = Object.assign({}, config.carry);
  build();
  $("prev").addEventListener("click", () => run(() => show(index - 1)));
  $("next").addEventListener("click", () => run(() => show(index + 1)));
  $("save").addEventListener("click", () => run(save));
  $("quit").addEventListener("click", () => run(quit));
  document.addEventListener("keydown", onKey);
  await show(config.start);
  document.body.dataset.ready = "true";
}

document.addEventListener("DOMContentLoaded", () => run(start));
"""
