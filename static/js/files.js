// Files tab: uploads by the file input or drag and drop, with a progress bar (XHR with the
// CSRF token to the dashboard's upload endpoint), then the listing is refreshed in place.
(function () {
  "use strict";
  // After dashboard.js (deferred) on a full load; at once when htmx swaps the tab in.
  function start() {
  const form = document.getElementById("file-upload-form");
  if (!form || form.dataset.started) return;
  form.dataset.started = "1";
  const input = document.getElementById("file-input");
  const progress = document.getElementById("upload-progress");
  const status = document.getElementById("upload-status");
  const submit = document.getElementById("file-upload-submit");
  const limit = Number(form.dataset.limit || 0);
  let busy = false;
  submit.hidden = true; // choosing files uploads them

  function csrf() {
    const field = form.querySelector("input[name=csrfmiddlewaretoken]");
    return field ? field.value : "";
  }

  function refresh() {
    if (window.htmx) {
      return htmx.ajax("GET", form.dataset.listUrl, { target: "#file-listing", swap: "innerHTML" });
    }
    location.reload();
  }

  function upload(fileList) {
    const chosen = Array.from(fileList || []);
    if (!chosen.length || busy) return;
    const tooBig = chosen.find(function (f) { return limit && f.size > limit; });
    if (tooBig) { status.className = "small error"; status.textContent = tooBig.name + " is too large."; return; }
    const body = new FormData();
    body.append("dir", form.querySelector("input[name=dir]").value);
    chosen.forEach(function (f) { body.append("file", f, f.name); });
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("X-CSRFToken", csrf());
    xhr.setRequestHeader("Accept", "application/json");
    busy = true;
    progress.hidden = false;
    progress.value = 0;
    status.className = "small";
    status.textContent = "Uploading " + chosen.map(function (f) { return f.name; }).join(", ") + "…";
    xhr.upload.onprogress = function (event) {
      if (event.lengthComputable) progress.value = Math.round((event.loaded / event.total) * 100);
    };
    xhr.onload = function () {
      busy = false;
      let data = {};
      try { data = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) {
        progress.value = 100;
        status.textContent = data.message || "Uploaded.";
        input.value = "";
        refresh();
      } else {
        status.className = "small error";
        status.textContent = (data.error && data.error.message) || "Upload failed (" + xhr.status + ").";
      }
      setTimeout(function () { progress.hidden = true; }, 800);
    };
    xhr.onerror = function () {
      busy = false;
      progress.hidden = true;
      status.className = "small error";
      status.textContent = "Upload failed: the connection dropped.";
    };
    xhr.send(body);
  }

  input.addEventListener("change", function () { upload(input.files); });
  if (input.files && input.files.length) upload(input.files); // chosen before this script ran
  form.addEventListener("submit", function (event) { event.preventDefault(); upload(input.files); });

  // Drag and drop: anywhere on the tab body, highlighted on the form.
  const zone = document.querySelector(".tab-body") || form;
  let depth = 0;
  zone.addEventListener("dragenter", function (event) {
    if (!event.dataTransfer || Array.from(event.dataTransfer.types).indexOf("Files") < 0) return;
    event.preventDefault();
    depth += 1;
    form.classList.add("dragging");
  });
  zone.addEventListener("dragover", function (event) {
    if (!event.dataTransfer || Array.from(event.dataTransfer.types).indexOf("Files") < 0) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  });
  zone.addEventListener("dragleave", function () {
    depth = Math.max(0, depth - 1);
    if (!depth) form.classList.remove("dragging");
  });
  zone.addEventListener("drop", function (event) {
    if (!event.dataTransfer || !event.dataTransfer.files.length) return;
    event.preventDefault();
    depth = 0;
    form.classList.remove("dragging");
    upload(event.dataTransfer.files);
  });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
