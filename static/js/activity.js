// Agent activity page: the live feed (newest first) from the activity WebSocket, which
// dashboard.js re-dispatches as `vibebox:event`; agent run events refresh the runs table.
(function () {
  "use strict";
  document.body.dataset.live = "1"; // dashboard.js connects the activity socket on pages that ask
  const MAX_ITEMS = 200;
  let pending = null;

  function link(href, text) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    return a;
  }

  function render(event) {
    const feed = document.getElementById("activity-feed");
    if (!feed) return;
    const data = event.data || {};
    const item = document.createElement("li");
    item.className = "feed-item";
    item.dataset.type = event.type || "";
    const time = document.createElement("time");
    const when = event.timestamp ? new Date(event.timestamp * 1000) : new Date();
    time.dateTime = when.toISOString();
    time.textContent = when.toLocaleTimeString();
    time.className = "muted small";
    const type = document.createElement("code");
    type.className = "feed-type";
    type.textContent = event.type || "event";
    const text = document.createElement("span");
    text.className = "feed-text";
    text.textContent = event.text || "";
    item.append(time, " ", type, " ", text);
    const sandboxId = event.sandboxId || data.sandboxId;
    if (sandboxId) {
      item.append(" ", link(feed.dataset.sandboxUrl.replace("SANDBOX_ID", encodeURIComponent(sandboxId)), sandboxId));
    }
    if (data.runId) {
      item.append(" ", link(feed.dataset.runUrl.replace("RUN_ID", encodeURIComponent(data.runId)), data.name && !data.taskId ? data.name : data.runId));
    }
    if (data.error) {
      const error = document.createElement("div");
      error.className = "error small";
      error.textContent = data.error;
      item.append(error);
    }
    feed.prepend(item);
    while (feed.children.length > MAX_ITEMS) feed.lastElementChild.remove();
    const empty = document.getElementById("activity-empty");
    if (empty) empty.hidden = true;
  }

  function onEvent(e) {
    const event = e.detail || {};
    if (event.type && event.type.startsWith("billing.")) return; // the billing page's live numbers
    render(event);
    const state = document.getElementById("activity-state");
    if (state) state.textContent = "live";
    const rows = document.getElementById("run-rows");
    if (rows && event.type && event.type.startsWith("agent.")) {
      clearTimeout(pending);
      pending = setTimeout(() => window.htmx && htmx.trigger(rows, "refresh"), 300);
    }
  }

  if (!window.__vbActivityBound) {
    window.__vbActivityBound = true;
    window.addEventListener("vibebox:event", onEvent);
    document.addEventListener("click", (e) => {
      if (e.target.id === "activity-clear") {
        const feed = document.getElementById("activity-feed");
        if (feed) feed.replaceChildren();
        const empty = document.getElementById("activity-empty");
        if (empty) empty.hidden = false;
      }
    });
  }
  const state = document.getElementById("activity-state");
  if (state) state.textContent = "listening";
})();
