// Billing page: the running sandboxes' cost so far and rate per hour, the month to date and the
// forecast, updated from the `billing.cost` events of the activity WebSocket (apps/billing/live.py),
// which dashboard.js re-dispatches as `vibebox:event`. Only the page's organization's events count.
(function () {
  "use strict";
  document.body.dataset.live = "1"; // dashboard.js connects the activity socket on pages that ask

  // Display only: the amounts arrive as decimal strings and are never added up here.
  function money(currency, value, places) {
    return currency + " " + Number(value).toFixed(places);
  }

  function setAmount(node, currency, value, places, suffix) {
    if (!node) return;
    node.dataset.value = value;
    node.textContent = money(currency, value, places) + (suffix || "");
  }

  function row(body, sandbox, currency) {
    let tr = body.querySelector(`tr[data-sandbox="${CSS.escape(sandbox.sandboxId)}"]`);
    if (!tr) {
      tr = document.createElement("tr");
      tr.dataset.sandbox = sandbox.sandboxId;
      const name = document.createElement("td");
      const link = document.createElement("a");
      link.href = body.dataset.sandboxUrl.replace("SANDBOX_ID", encodeURIComponent(sandbox.sandboxId));
      link.textContent = sandbox.name || sandbox.sandboxId;
      name.append(link);
      const template = document.createElement("td");
      template.textContent = sandbox.template || "";
      const cost = document.createElement("td");
      cost.className = "cost";
      const rate = document.createElement("td");
      rate.className = "rate";
      tr.append(name, template, cost, rate);
      body.append(tr);
    }
    setAmount(tr.querySelector(".cost"), currency, sandbox.total, 4);
    setAmount(tr.querySelector(".rate"), currency, sandbox.ratePerHour, 4, "/h");
    return tr;
  }

  function onEvent(e) {
    const event = e.detail || {};
    const page = document.getElementById("billing");
    if (!page || event.type !== "billing.cost") return;
    const data = event.data || {};
    if (data.orgId !== page.dataset.org) return; // another organization's (the user is in several)
    const currency = data.currency || page.dataset.currency;
    setAmount(document.getElementById("billing-mtd"), currency, data.monthToDate, 2);
    setAmount(document.getElementById("billing-forecast"), currency, data.forecast, 2);
    setAmount(document.getElementById("billing-rate"), currency, data.ratePerHour, 4, "/h");
    const body = document.querySelector("#billing-live tbody");
    if (body) {
      const current = new Set();
      for (const sandbox of data.sandboxes || []) current.add(row(body, sandbox, currency));
      for (const tr of Array.from(body.children)) if (!current.has(tr)) tr.remove(); // stopped meanwhile
      const empty = document.getElementById("billing-live-empty");
      if (empty) empty.hidden = current.size > 0;
    }
    const state = document.getElementById("billing-live-state");
    if (state) {
      const when = data.at ? new Date(data.at) : new Date();
      state.textContent = "live, updated " + when.toLocaleTimeString();
      state.dataset.at = data.at || "";
    }
  }

  if (!window.__vbBillingBound) {
    window.__vbBillingBound = true;
    window.addEventListener("vibebox:event", onEvent);
  }
})();
