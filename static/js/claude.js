// Claude tab: the live activity feed from /ws/sandboxes/{id}/claude (session cookie auth).
// When an ask finishes or changes are recorded, the conversation and pending changes reload.
(function () {
  "use strict";
  const feed = document.getElementById("claude-feed");
  if (!feed) return;
  const sandboxId = feed.dataset.sandbox;
  const askId = feed.dataset.ask;
  const state = document.getElementById("claude-state");
  let retry = 1000;
  let socket = null;

  function url() {
    const base = (location.protocol === "https:" ? "wss://" : "ws://") + location.host;
    return base + "/ws/sandboxes/" + encodeURIComponent(sandboxId) + "/claude" + (askId ? "?askId=" + encodeURIComponent(askId) : "");
  }

  function refresh(id) {
    const el = document.getElementById(id);
    if (el && window.htmx) htmx.trigger(el, "refresh");
  }

  function add(event) {
    const data = event.data || {};
    const item = document.createElement("li");
    const kind = data.kind || (event.type || "").replace(/^claude\./, "");
    item.className = "feed-item claude-" + kind.replace(/[^a-z_.-]/gi, "");
    const time = document.createElement("time");
    const when = event.timestamp ? new Date(event.timestamp * 1000) : new Date();
    time.dateTime = when.toISOString();
    time.textContent = when.toLocaleTimeString();
    time.className = "muted small";
    const type = document.createElement("code");
    type.className = "feed-type";
    type.textContent = kind;
    const text = document.createElement("span");
    text.textContent = event.text || "";
    item.append(time, " ", type, " ", text);
    feed.prepend(item);
    while (feed.children.length > 300) feed.lastElementChild.remove();
  }

  function connect() {
    if (!document.body.contains(feed)) return; // navigated away
    socket = new WebSocket(url());
    socket.onopen = () => { retry = 1000; if (state) state.textContent = "live"; };
    socket.onmessage = (message) => {
      let event;
      try { event = JSON.parse(message.data); } catch (e) { return; }
      if (!event || !event.type) return;
      add(event);
      if (event.type === "claude.ask.finished" || event.type === "claude.result") { refresh("claude-conversation"); refresh("claude-context"); }
      if (event.type.startsWith("claude.changes") || event.type === "claude.ask.finished") refresh("claude-changes");
    };
    socket.onclose = () => {
      if (state) state.textContent = "reconnecting…";
      if (document.body.contains(feed)) setTimeout(connect, retry);
      retry = Math.min(retry * 2, 15000);
    };
  }
  document.addEventListener("htmx:beforeSwap", function close(e) {
    if (e.detail.target === document.body && socket) { socket.onclose = null; socket.close(); document.removeEventListener("htmx:beforeSwap", close); }
  });
  connect();
})();
