// Live console pages: an EventSource on the page's stream; when ledger rows settle, the page is
// fetched again and each element marked data-live is swapped for its fresh copy. Forms are never
// touched. Pages work fully without this script (reload to refresh).
(function () {
  "use strict";
  var url = document.body.getAttribute("data-live-stream");
  var status = document.querySelector("[data-live-status]");
  if (!url || !window.EventSource || !window.fetch) return;
  var busy = false, again = false;
  function say(text) { if (status) status.textContent = text; }
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live][id]").forEach(function (el) {
          var next = fresh.getElementById(el.id);
          if (next) el.replaceWith(document.importNode(next, true));
        });
        say("Live · updated " + new Date().toLocaleTimeString());
      })
      .catch(function () { say("Live · update failed, retrying on the next change"); })
      .then(function () {
        busy = false;
        if (again) { again = false; setTimeout(refresh, 250); }
      });
  }
  var source = new EventSource(url);
  source.addEventListener("open", function () { say("Live · waiting for changes"); });
  source.addEventListener("ledger", refresh);
  source.addEventListener("signed_out", function () { source.close(); location.reload(); });
  source.addEventListener("error", function () { say("Live · reconnecting…"); });
})();
