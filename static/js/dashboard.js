// VibeBox dashboard: live updates from the activity WebSocket (session auth), and small helpers.
(function () {
  "use strict";
  let socket = null;
  let retry = 1000;
  let pending = null;

  function wsUrl(path) {
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
  }

  // A sandbox event refreshes the live list (debounced) and the status badge of an open sandbox.
  function onEvent(event) {
    window.dispatchEvent(new CustomEvent("vibebox:event", { detail: event }));
    const rows = document.getElementById("sandbox-rows");
    if (rows && event.type && event.type.startsWith("sandbox.")) {
      clearTimeout(pending);
      pending = setTimeout(() => window.htmx && htmx.trigger(rows, "refresh"), 150);
    }
    const badge = document.getElementById("sandbox-status");
    if (badge && event.sandboxId === badge.dataset.sandbox && event.type.startsWith("sandbox.")) {
      const status = { created: "running", started: "running", restarted: "running", stopped: "stopped",
        paused: "paused", resumed: "running", destroyed: "destroyed" }[event.type.split(".")[1]];
      if (status) { badge.textContent = status; badge.className = "status status-" + status; }
    }
  }

  function connect() {
    if (!document.body.dataset.live && !document.getElementById("sandbox-rows") && !document.getElementById("sandbox-status")) {
      return;
    }
    if (socket && socket.readyState <= 1) return;
    socket = new WebSocket(wsUrl("/ws/activity"));
    socket.onmessage = (message) => { try { onEvent(JSON.parse(message.data)); } catch (e) { /* not an event */ } };
    // body[data-socket=open] while the feed is connected (what the browser tests wait for).
    socket.onopen = () => { retry = 1000; document.body.dataset.socket = "open"; };
    socket.onclose = () => {
      socket = null;
      delete document.body.dataset.socket;
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 15000);
    };
  }

  // htmx drops an error answer (4xx/5xx) or a lost connection without a word: a boosted form
  // would look as if nothing happened. Say what happened, in the page's message list.
  function report(text) {
    const main = document.getElementById("main");
    if (!main) return;
    let list = main.querySelector(".messages");
    if (!list) {
      list = document.createElement("ul");
      list.className = "messages";
      list.setAttribute("role", "status");
      main.prepend(list);
    }
    const item = document.createElement("li");
    item.className = "error";
    item.textContent = text;
    list.replaceChildren(item);
  }
  document.addEventListener("htmx:responseError", (event) => {
    const xhr = event.detail.xhr;
    // A 403 page names the missing permission (templates/403.html): show that.
    const named = /data-error-message="([^"]+)"/.exec(xhr.responseText || "");
    if (named) {
      const text = new DOMParser().parseFromString(named[1], "text/html").documentElement.textContent;
      report(`${text} Nothing was changed.`);
      return;
    }
    report(`The server answered ${xhr.status} ${xhr.statusText || ""}: the request was not carried out. Try again.`);
  });
  document.addEventListener("htmx:sendError", () => report("The server could not be reached. Try again."));
  document.addEventListener("htmx:timeout", () => report("The server took too long to answer. Try again."));

  document.addEventListener("DOMContentLoaded", connect);
  document.addEventListener("htmx:afterSettle", connect);
  window.VibeBox = { wsUrl: wsUrl };
})();
