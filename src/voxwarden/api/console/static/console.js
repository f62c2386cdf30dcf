// voxwarden review console: small progressive enhancements; every page works without this file.
(function () {
  "use strict";

  // While a flagged segment plays, move a playhead across the alert's span on the timeline.
  function wirePlayhead() {
    var svg = document.getElementById("timeline");
    var head = document.getElementById("playhead");
    if (!svg || !head) return;
    var x0 = parseFloat(svg.getAttribute("data-span-x0"));
    var x1 = parseFloat(svg.getAttribute("data-span-x1"));
    if (!isFinite(x0) || !isFinite(x1)) return;
    document.querySelectorAll("audio.evidence-audio").forEach(function (audio) {
      function move() {
        if (!isFinite(audio.duration) || audio.duration <= 0) return;
        var x = x0 + (x1 - x0) * Math.min(1, audio.currentTime / audio.duration);
        head.setAttribute("x1", x.toFixed(1));
        head.setAttribute("x2", x.toFixed(1));
        head.setAttribute("visibility", "visible");
      }
      audio.addEventListener("timeupdate", move);
      audio.addEventListener("seeked", move);
      audio.addEventListener("ended", function () { head.setAttribute("visibility", "hidden"); });
    });
  }

  // No double submits of a verdict, note or item update while the request runs.
  function wireForms() {
    document.querySelectorAll("form.verdicts, form.note-form, form.item-form").forEach(function (f) {
      f.addEventListener("submit", function () {
        f.querySelectorAll("button").forEach(function (b) { setTimeout(function () { b.disabled = true; }, 0); });
      });
    });
  }

  // Filter selects apply at once.
  function wireFilters() {
    var form = document.getElementById("filters");
    if (!form) return;
    form.querySelectorAll("select").forEach(function (s) {
      s.addEventListener("change", function () { form.requestSubmit ? form.requestSubmit() : form.submit(); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    wirePlayhead();
    wireForms();
    wireFilters();
  });
})();
