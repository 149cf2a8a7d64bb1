// Exec tab: the command form streams over the exec WebSocket (session cookie auth) into
// #exec-output; the snippet form is plain htmx (a POST answered with the result partial).
(function () {
  "use strict";
  // After dashboard.js (deferred) on a full load; at once when htmx swaps the tab in.
  function start() {
  const form = document.getElementById("exec-command-form");
  if (!form || form.dataset.started) return;
  form.dataset.started = "1";
  const input = document.getElementById("exec-command");
  const timeout = document.getElementById("exec-command-timeout");
  const run = document.getElementById("exec-command-run");
  const stop = document.getElementById("exec-command-stop");
  const stdinRow = document.getElementById("exec-stdin-row");
  const stdin = document.getElementById("exec-stdin");
  const output = document.getElementById("exec-output");
  let socket = null;

  function span(cls, text) {
    const el = document.createElement("span");
    el.className = cls;
    el.textContent = text;
    return el;
  }

  function finish() {
    run.disabled = false;
    stop.hidden = true;
    stdinRow.hidden = true;
    socket = null;
    document.body.dispatchEvent(new CustomEvent("exec-history", { bubbles: true }));
  }

  form.addEventListener("submit", function (event) {
    if (!window.WebSocket || !window.VibeBox) return; // the plain POST runs it instead
    event.preventDefault();
    const command = input.value;
    if (!command.trim() || socket) return;
    output.innerHTML = "";
    const summary = span("small exec-summary muted", "Running " + command + " …");
    const pre = document.createElement("pre");
    pre.className = "output";
    pre.id = "exec-stream";
    output.append(summary, pre);
    run.disabled = true;
    stop.hidden = false;
    stdinRow.hidden = false;
    socket = new WebSocket(window.VibeBox.wsUrl(form.dataset.ws));
    const start = { command: command };
    if (timeout && timeout.value.trim()) start.timeout = timeout.value.trim();
    socket.onopen = function () { socket.send(JSON.stringify(start)); };
    socket.onmessage = function (message) {
      let data;
      try { data = JSON.parse(message.data); } catch (e) { return; }
      if (data.type === "stdout" || data.type === "stderr") {
        const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
        pre.append(span(data.type, data.data));
        if (atBottom) pre.scrollTop = pre.scrollHeight;
      } else if (data.type === "exit") {
        summary.className = "small exec-summary";
        summary.textContent = "";
        summary.append(span("status status-" + data.status, data.status));
        summary.append(" exit " + (data.exitCode === null ? "—" : data.exitCode) + " · " + data.duration + " ms" +
          (data.truncated ? " · output truncated" : "") + (data.oomKilled ? " · killed: out of memory" : "") +
          " · " + data.executionId);
      } else if (data.type === "error" && data.error) {
        output.prepend(span("error", data.error.message + " "));
      }
    };
    socket.onclose = function (event) {
      if (event.code >= 4000) {
        const reasons = { 4401: "Your session expired: sign in again.", 4404: "No such sandbox.",
          4409: "The sandbox is not running: start it first." };
        summary.className = "small exec-summary error";
        summary.textContent = reasons[event.code] || "The server refused the command (" + event.code + ").";
      }
      finish();
    };
  });

  stop.addEventListener("click", function () {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "signal", signal: "INT" }));
  });
  stdin.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || !socket || socket.readyState !== WebSocket.OPEN) return;
    event.preventDefault();
    socket.send(JSON.stringify({ type: "stdin", data: stdin.value + "\n" }));
    stdin.value = "";
  });

  // Ctrl/Cmd+Enter runs the snippet.
  const code = document.getElementById("exec-code");
  if (code) {
    code.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        document.getElementById("exec-run").click();
      }
    });
  }

  function beforeSwap(event) {
    if (event.detail.target === output && event.detail.xhr && event.detail.xhr.status >= 400) {
      event.detail.shouldSwap = true; // show why the snippet was refused (the partial says so)
      event.detail.isError = false;
      return;
    }
    if (event.detail.target && event.detail.target.contains(form)) {
      if (socket) socket.close(1000);
      document.removeEventListener("htmx:beforeSwap", beforeSwap);
    }
  }
  document.addEventListener("htmx:beforeSwap", beforeSwap);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
