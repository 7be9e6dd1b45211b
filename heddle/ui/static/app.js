// heddle ui: the one script. It streams the fleet table, refreshes the work lists, posts the
// What-if and Advice forms, follows their runs, uploads files and asks before draining.
// No framework and nothing from the network: the server renders every piece of HTML.
"use strict";

const HEADERS = { "X-Heddle-UI": "1" };  // the server refuses changes without it (CSRF)
const POLL_MS = 500;

function toast(text) {
  const box = document.getElementById("toast");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, 6000);
}

async function post(url, body, extra) {
  const response = await fetch(url, { method: "POST", headers: { ...HEADERS, ...(extra || {}) }, body });
  let data = {};
  try { data = await response.json(); } catch (e) { data = { error: response.statusText }; }
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

// -- Fleet: a server-sent event stream replaces the table whenever the fleet changes --------
function streamFleet(box) {
  const source = new EventSource(box.dataset.stream);
  source.addEventListener("fleet", (event) => { box.innerHTML = JSON.parse(event.data).html; });
  window.addEventListener("pagehide", () => source.close());
}

document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-drain]");
  if (!button) return;
  const node = button.dataset.drain;
  if (!window.confirm(`Drain ${node}? It finishes the work it has, takes no new work, then leaves the fleet.`)) return;
  button.disabled = true;
  try {
    toast((await post(`/fleet/drain/${encodeURIComponent(node)}`)).message);
  } catch (e) {
    toast(e.message);
    button.disabled = false;
  }
});

// -- Work: lists refreshed every few seconds ------------------------------------------------
function refresh(box) {
  const every = Number(box.dataset.every || 2000);
  setInterval(async () => {
    if (document.hidden) return;
    try {
      const response = await fetch(box.dataset.refresh);
      if (response.ok) box.innerHTML = await response.text();
    } catch (e) { /* the server restarting: try again next time */ }
  }, every);
}

// -- What-if and Advice: post the form, then follow the run until its results are in -------
function formValues(form) {
  const values = {};
  for (const field of form.querySelectorAll("input[type=checkbox]:checked, select")) {
    if (field.type === "checkbox") (values[field.name] = values[field.name] || []).push(field.value);
    else values[field.name] = field.value;
  }
  return values;
}

async function showRun(runId) {
  const response = await fetch(`/runs/${encodeURIComponent(runId)}/card`);
  document.getElementById("run").innerHTML = await response.text();
  const card = document.querySelector("[data-run]");
  if (card) follow(card);
}

function follow(card) {
  if (card.dataset.state === "done" || card.dataset.state === "failed") return;
  const runId = card.dataset.run;
  const timer = setInterval(async () => {
    let run;
    try { run = await (await fetch(`/runs/${encodeURIComponent(runId)}`)).json(); } catch (e) { return; }
    if (run.state === "done" || run.state === "failed") {
      clearInterval(timer);
      showRun(runId);
      return;
    }
    const bar = card.querySelector("progress");
    if (bar && run.progress !== null) bar.value = run.progress;
    const message = card.querySelector("[data-message]");
    if (message) message.textContent = run.message;
  }, POLL_MS);
}

function wireForm(form) {
  const error = form.querySelector("[data-error]");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const run = await post(form.dataset.post, JSON.stringify(formValues(form)), { "Content-Type": "application/json" });
      history.replaceState(null, "", `?run=${encodeURIComponent(run.id)}`);
      await showRun(run.id);
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
  for (const input of form.querySelectorAll("input[data-upload]")) {
    input.addEventListener("change", () => upload(form, input, error));
  }
}

async function upload(form, input, error) {
  const file = input.files[0];
  if (!file) return;
  const kind = input.dataset.upload;
  error.hidden = true;
  try {
    // Header values must be Latin-1: the name travels percent-encoded.
    const saved = await post(`/upload/${kind}`, file, { "X-Filename": encodeURIComponent(file.name) });
    const list = form.querySelector(`[data-list=${kind}]`);
    if (list.tagName === "SELECT") {
      list.add(new Option(saved.label, saved.key, true, true));
    } else {
      const label = document.createElement("label");
      const box = Object.assign(document.createElement("input"), { type: "checkbox", name: list.querySelector("input").name, value: saved.key, checked: true });
      label.append(box, " " + saved.label);
      list.append(label);
    }
    toast(`${file.name} added`);
  } catch (e) {
    error.textContent = e.message;
    error.hidden = false;
  }
  input.value = "";
}

// The advisor's report sits in a frame as tall as the report, so the page scrolls as one.
function fitFrame(frame) {
  frame.addEventListener("load", () => {
    const doc = frame.contentDocument;
    if (doc && doc.body) frame.style.height = `${doc.documentElement.scrollHeight + 24}px`;
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-stream]").forEach(streamFleet);
  document.querySelectorAll("[data-refresh]").forEach(refresh);
  document.querySelectorAll("form[data-post]").forEach(wireForm);
  document.querySelectorAll("[data-run]").forEach(follow);
  new MutationObserver(() => document.querySelectorAll("iframe.report:not([data-fit])").forEach((f) => {
    f.dataset.fit = "1";
    fitFrame(f);
  })).observe(document.body, { childList: true, subtree: true });
  document.querySelectorAll("iframe.report").forEach((f) => { f.dataset.fit = "1"; fitFrame(f); });
});
