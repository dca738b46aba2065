// The dashboard's only script: the live feed, the health figures and the print button.
// Plain DOM, no build step. Data from the server is set with textContent, never as HTML.
"use strict";

const FEED_EVERY_MS = 1500;
const HEALTH_EVERY_MS = 2000;

// Poll `url` every `everyMs` while the tab is visible; `handle` gets the parsed JSON.
// A 401 means the session ended: go to the login page.
function poll(url, everyMs, handle, onState) {
  let timer = null;
  async function tick() {
    timer = null;
    try {
      const response = await fetch(url(), { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (response.status === 401) {
        window.location.assign("/login");
        return;
      }
      if (!response.ok) throw new Error("HTTP " + response.status);
      handle(await response.json());
      onState(true);
    } catch (error) {
      onState(false);
    }
    schedule();
  }
  function schedule() {
    if (timer === null && !document.hidden) timer = window.setTimeout(tick, everyMs);
  }
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) schedule();
  });
  schedule();
}

function cell(tag, className, text) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  element.textContent = text;
  return element;
}

function feedRow(item) {
  const row = document.createElement("li");
  row.className = "feed-item fresh kind-" + item.kind;
  row.dataset.key = item.key;
  row.append(cell("span", "kind", item.kind), cell("time", "", item.at));
  const device = cell("a", "", item.device_id);
  device.href = item.href;
  row.append(device, cell("span", "summary", item.summary));
  return row;
}

function startFeed(list) {
  const keep = Number(list.dataset.keep) || 200;
  const state = document.getElementById("feed-state");
  const empty = document.getElementById("feed-empty");
  const url = () => list.dataset.source + "?after=" + encodeURIComponent(list.dataset.cursor);
  poll(url, FEED_EVERY_MS, (answer) => {
    // Items come newest first: insert from the oldest so the newest ends on top.
    for (const item of answer.items.slice().reverse()) {
      if (list.querySelector('[data-key="' + CSS.escape(item.key) + '"]')) continue;
      list.prepend(feedRow(item));
    }
    while (list.children.length > keep) list.lastElementChild.remove();
    list.dataset.cursor = answer.cursor;
    if (empty) empty.hidden = list.children.length > 0;
  }, (live) => {
    if (!state) return;
    state.textContent = live ? "live" : "reconnecting…";
    state.className = "badge " + (live ? "online" : "offline");
  });
}

function fillTable(body, counts) {
  body.replaceChildren(...Object.entries(counts).map(([name, count]) => {
    const row = document.createElement("tr");
    row.append(cell("td", "", name), cell("td", "num", String(count)));
    return row;
  }));
  const empty = document.querySelector('[data-empty="' + body.dataset.table + '"]');
  if (empty) empty.hidden = Object.keys(counts).length > 0;
}

function startHealth(panel) {
  poll(() => panel.dataset.healthSource, HEALTH_EVERY_MS, (figures) => {
    for (const element of document.querySelectorAll("[data-figure]")) {
      const value = figures[element.dataset.figure];
      element.textContent = value === null || value === undefined ? "—" : String(value);
    }
    for (const body of document.querySelectorAll("tbody[data-table]")) {
      if (figures[body.dataset.table]) fillTable(body, figures[body.dataset.table]);
    }
  }, () => {});
}

document.addEventListener("DOMContentLoaded", () => {
  const feed = document.getElementById("feed");
  if (feed) startFeed(feed);
  const health = document.querySelector("[data-health-source]");
  if (health) startHealth(health);
  for (const button of document.querySelectorAll("[data-print]")) {
    button.addEventListener("click", () => window.print());
  }
});
