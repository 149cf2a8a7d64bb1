// Terminal tab: xterm.js on the terminal WebSocket (session cookie auth), fitted to its box,
// resizing the PTY with the window; `?session=term_…` joins an open session instead.
(function () {
  "use strict";
  // After dashboard.js (deferred) on a full load; at once when htmx swaps the tab in.
  function start() {
  const box = document.getElementById("terminal");
  if (!box || box.dataset.started || !window.Terminal || !window.FitAddon) return;
  box.dataset.started = "1";
  const state = document.getElementById("terminal-state");
  const again = document.getElementById("terminal-reconnect");
  const kill = document.getElementById("terminal-kill");
  const encoder = new TextEncoder();
  const term = new Terminal({
    cursorBlink: true, scrollback: 5000, fontSize: 14,
    fontFamily: 'ui-monospace, "SFMono-Regular", Menlo, monospace',
  });
  const fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(box);
  try { fit.fit(); } catch (e) { /* not laid out yet */ }
  box.dataset.size = term.cols + "x" + term.rows;
  let socket = null;
  let session = box.dataset.session || "";
  let disposed = false;
  let resizeTimer = null;
  let pending = []; // keystrokes typed before the shell is attached; sent once it is
  let attached = false;

  function say(text) { if (state) state.textContent = text; }
  function open() { return socket && socket.readyState === WebSocket.OPEN; }
  function send(bytes) {
    if (attached && open()) socket.send(bytes);
    else if (socket && pending.length < 1000) pending.push(bytes);
  }

  const closeReasons = {
    4008: "Disconnected: this window fell behind the output.",
    4400: "The terminal refused the request.",
    4401: "Your session expired: sign in again.",
    4403: "Too many terminals are open.",
    4404: "That terminal session has ended (or is not yours).",
    4408: "The terminal was closed after being idle.",
    4409: "The sandbox is not running: start it first.",
    4502: "The container engine failed.",
    4503: "The container engine is unreachable.",
  };

  function connect() {
    if (box.dataset.running !== "1") return;
    again.hidden = true;
    const query = session
      ? "?session=" + encodeURIComponent(session)
      : "?cols=" + term.cols + "&rows=" + term.rows;
    say(session ? "Joining session " + session + "…" : "Connecting…");
    attached = false;
    pending = [];
    socket = new WebSocket(window.VibeBox.wsUrl(box.dataset.ws + query));
    socket.binaryType = "arraybuffer";
    socket.onmessage = function (message) {
      if (typeof message.data !== "string") {
        term.write(new Uint8Array(message.data));
        return;
      }
      let data;
      try { data = JSON.parse(message.data); } catch (e) { term.write(message.data); return; }
      if (data.type === "session") {
        const joined = !!session;
        attached = true;
        pending.forEach(function (bytes) { socket.send(bytes); });
        pending = [];
        session = data.sessionId;
        box.dataset.session = session;
        say((joined ? "Joined session " : "Session ") + session + " · " + data.shell + " · " +
          data.cols + "×" + data.rows + (joined ? " (shared: you see and type what the others do)" : ""));
        if (joined && (data.cols !== term.cols || data.rows !== term.rows)) {
          term.resize(data.cols, data.rows); // watch at the session's size until this window is resized
        }
        if (kill) kill.hidden = false;
        document.body.dispatchEvent(new CustomEvent("terminal-session", { bubbles: true }));
        term.focus();
      } else if (data.type === "exit") {
        say(data.reason === "idle" ? "The terminal was closed after being idle."
          : "The shell exited" + (data.exitCode === null || data.exitCode === undefined ? "." : " with code " + data.exitCode + "."));
        session = "";
      } else if (data.type === "error" && data.error) {
        say("Error: " + data.error.message);
      }
    };
    socket.onclose = function (event) {
      socket = null;
      if (kill) kill.hidden = true;
      attached = false;
      pending = [];
      if (disposed) return;
      if (event.code !== 1000) {
        say(closeReasons[event.code] || "Disconnected (" + event.code + ").");
      }
      if (event.code === 4404) session = "";
      again.textContent = session ? "Reconnect" : "Start a new shell";
      again.hidden = false;
    };
  }

  term.onData(function (data) { send(encoder.encode(data)); });
  term.onBinary(function (data) {
    send(Uint8Array.from(data, function (c) { return c.charCodeAt(0) & 255; }));
  });
  term.onResize(function (size) {
    box.dataset.size = size.cols + "x" + size.rows;
    if (attached && open()) socket.send(JSON.stringify({ type: "resize", cols: size.cols, rows: size.rows }));
  });

  function onWindowResize() {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () { try { fit.fit(); } catch (e) { /* hidden */ } }, 100);
  }
  window.addEventListener("resize", onWindowResize);
  again.addEventListener("click", function () { connect(); term.focus(); });
  // Leaving keeps the shell (it lives in the sandbox); this ends it for everyone.
  if (kill) kill.addEventListener("click", function () {
    if (attached && open()) socket.send(JSON.stringify({ type: "kill" }));
  });

  function dispose() {
    if (disposed) return;
    disposed = true;
    window.removeEventListener("resize", onWindowResize);
    document.removeEventListener("htmx:beforeSwap", beforeSwap);
    if (socket) socket.close(1000);
    term.dispose();
  }
  function beforeSwap(event) { if (event.detail.target && event.detail.target.contains(box)) dispose(); }
  document.addEventListener("htmx:beforeSwap", beforeSwap);
  window.addEventListener("pagehide", dispose);

  // A join link swaps the session without reloading the page.
  document.addEventListener("click", function (event) {
    const link = event.target.closest && event.target.closest("a.join-session");
    if (!link || disposed) return;
    event.preventDefault();
    event.stopPropagation();
    if (socket) { const old = socket; socket = null; old.onclose = null; old.close(1000); }
    session = link.dataset.session;
    history.replaceState(null, "", link.href);
    term.reset();
    connect();
  }, true);

  connect();
  term.focus();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
