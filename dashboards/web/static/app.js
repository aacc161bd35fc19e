// Live refresh for the runs table: fetch the table body for the current
// filters every few seconds, only while the tab is visible, and only on the
// first page (older pages do not change). No page reload, no dependencies.
(function () {
  "use strict";
  var PERIOD_MS = 5000;
  var toggle = document.getElementById("live-toggle");
  var body = document.getElementById("runs-body");
  var status = document.getElementById("live-status");
  if (!toggle || !body) { return; }
  var src = toggle.getAttribute("data-live-src");
  var paused = false;
  var timer = null;
  var inFlight = false;

  function say(text) { if (status) { status.textContent = text; } }

  function refresh() {
    if (paused || document.hidden || inFlight) { return; }
    inFlight = true;
    fetch(src, { headers: { "Accept": "text/html" }, credentials: "same-origin" })
      .then(function (resp) {
        if (resp.status === 401) { paused = true; say("Session ended: log in again to resume live updates."); return null; }
        if (!resp.ok) { throw new Error("HTTP " + resp.status); }
        return resp.text();
      })
      .then(function (html) {
        if (html === null || html === undefined) { return; }
        // Do not yank the rows from under the keyboard focus.
        if (body.contains(document.activeElement)) { return; }
        body.innerHTML = html;
        body.setAttribute("data-refreshed", String(Date.now()));
        say("Live: updated at " + new Date().toLocaleTimeString() + ".");
      })
      .catch(function (err) { say("Live update failed (" + err.message + "); retrying."); })
      .then(function () { inFlight = false; });
  }

  function schedule() {
    if (timer !== null) { clearInterval(timer); timer = null; }
    if (!paused && !document.hidden) { timer = setInterval(refresh, PERIOD_MS); }
  }

  toggle.addEventListener("click", function () {
    paused = !paused;
    toggle.setAttribute("aria-pressed", String(!paused));
    toggle.textContent = paused ? "Resume live updates" : "Pause live updates";
    say(paused ? "Live updates paused." : "Live: refreshes every 5 seconds while this tab is visible.");
    schedule();
    if (!paused) { refresh(); }
  });
  document.addEventListener("visibilitychange", function () {
    schedule();
    if (!document.hidden) { refresh(); }
  });
  schedule();
}());
