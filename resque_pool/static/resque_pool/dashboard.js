// Refreshes the live part of the Resque overview without reloading the page.
(function () {
  "use strict";
  var box = document.getElementById("resque-live");
  if (!box || !window.fetch) { return; }
  var url = box.getAttribute("data-poll-url");
  var seconds = parseFloat(box.getAttribute("data-poll-seconds")) || 3;
  var state = document.getElementById("resque-live-state");
  var busy = false;

  function stamp(text, stale) {
    if (!state) { return; }
    state.textContent = text;
    state.parentNode.classList.toggle("stale", !!stale);
  }

  function refresh() {
    if (busy || document.hidden) { return; }
    busy = true;
    fetch(url, {credentials: "same-origin", headers: {"X-Requested-With": "XMLHttpRequest"}, cache: "no-store"})
      .then(function (response) {
        if (!response.ok || response.redirected) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (html) {
        box.innerHTML = html;
        // The server's clock, with its zone, as on the first render: one clock throughout.
        var figures = box.querySelector("[data-updated]");
        stamp("updated " + (figures ? figures.getAttribute("data-updated") : "?"), false);
      })
      .catch(function (error) { stamp("not updated: " + error.message, true); })
      .then(function () { busy = false; });
  }

  window.setInterval(refresh, seconds * 1000);
  document.addEventListener("visibilitychange", refresh);
})();
