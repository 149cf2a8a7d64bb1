// Logs tab: the live log stream over the logs WebSocket (session cookie auth), a
// stdout/stderr/events filter of the view, and pause/resume (lines are buffered while paused).
(function () {
  "use strict";
  // After dashboard.js (deferred) on a full load; at once when htmx swaps the tab in.
  function start() {
  const view = document.getElementById("log-output");
  if (!view || view.dataset.started) return;
  view.dataset.started = "1";
  const state = document.getElementById("log-state");
  const pause = document.getElementById("log-pause");
  const MAX_LINES = 5000;
  const filters = { stdout: "log-stdout", stderr: "log-stderr", vibebox: "log-events" };
  let paused = false;
  let buffer = [];
  let socket = null;
  let disposed = false;
  let lastTimestamp = null;
  let retry = 1000;
  let count = 0;

  function say(text) { state.textContent = text; }

  function render(entry) {
    const line = document.createElement("div");
    const stream = entry.stream || "vibebox";
    line.className = "log-line log-" + stream;
    line.dataset.stream = stream;
    const time = document.createElement("time");
    const when = new Date(entry.timestamp * 1000);
    time.dateTime = when.toISOString();
    time.textContent = when.toLocaleTimeString();
    const label = document.createElement("span");
    label.className = "log-stream";
    label.textContent = entry.type === "event" ? (entry.event || "event") : stream;
    const text = document.createElement("span");
    text.className = "log-text";
    text.textContent = entry.text;
    line.append(time, " ", label, " ", text);
    return line;
  }

  function append(entries) {
    if (!entries.length) return;
    const atBottom = view.scrollTop + view.clientHeight >= view.scrollHeight - 8;
    const fragment = document.createDocumentFragment();
    entries.forEach(function (entry) { fragment.append(render(entry)); });
    view.append(fragment);
    while (view.childElementCount > MAX_LINES) view.firstElementChild.remove();
    if (atBottom) view.scrollTop = view.scrollHeight;
  }

  function applyFilters() {
    Object.keys(filters).forEach(function (stream) {
      view.classList.toggle("hide-" + stream, !document.getElementById(filters[stream]).checked);
    });
  }

  function status() {
    if (paused) say("Paused: " + buffer.length + " new line(s) waiting.");
    else say(socket ? "Live · " + count + " line(s)" : "Disconnected.");
  }

  function connect() {
    if (disposed) return;
    let query = "?tail=" + encodeURIComponent(view.dataset.tail || "200");
    const resumeAfter = lastTimestamp;
    if (resumeAfter !== null) query = "?tail=all&since=" + Math.floor(resumeAfter);
    socket = new WebSocket(window.VibeBox.wsUrl(view.dataset.ws + query));
    socket.onopen = function () { retry = 1000; status(); };
    socket.onmessage = function (message) {
      let entry;
      try { entry = JSON.parse(message.data); } catch (e) { return; }
      if (entry.type === "error" && entry.error) { say("Error: " + entry.error.message); return; }
      if (entry.type !== "log" && entry.type !== "event") return;
      if (resumeAfter !== null && entry.timestamp <= resumeAfter) return; // seen before the reconnect
      lastTimestamp = Math.max(lastTimestamp || 0, entry.timestamp);
      count += 1;
      if (paused) { buffer.push(entry); if (buffer.length > MAX_LINES) buffer.shift(); }
      else append([entry]);
      status();
    };
    socket.onclose = function (event) {
      socket = null;
      if (disposed) return;
      const reasons = { 4401: "Your session expired: sign in again.", 4404: "No such sandbox." };
      if (reasons[event.code]) { say(reasons[event.code]); return; }
      say("Disconnected; reconnecting…");
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 15000);
    };
  }

  Object.keys(filters).forEach(function (stream) {
    document.getElementById(filters[stream]).addEventListener("change", applyFilters);
  });
  pause.addEventListener("click", function () {
    paused = !paused;
    pause.setAttribute("aria-pressed", paused ? "true" : "false");
    pause.textContent = paused ? "Resume" : "Pause";
    if (!paused) { append(buffer); buffer = []; }
    status();
  });
  document.getElementById("log-clear").addEventListener("click", function () { view.textContent = ""; buffer = []; status(); });

  function dispose() {
    disposed = true;
    document.removeEventListener("htmx:beforeSwap", beforeSwap);
    if (socket) socket.close(1000);
  }
  function beforeSwap(event) { if (event.detail.target && event.detail.target.contains(view)) dispose(); }
  document.addEventListener("htmx:beforeSwap", beforeSwap);
  window.addEventListener("pagehide", dispose);
  applyFilters();
  connect();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
