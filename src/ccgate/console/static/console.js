// ccgate console: the usage charts. No inline script anywhere (CSP script-src 'self'): the data
// comes from <script type="application/json" id="usage-data">, which the browser never runs.
(function () {
  "use strict";
  var COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#64748b"];

  function chart(el, x, named) {
    var names = Object.keys(named);
    var series = [{}];
    var data = [x];
    names.forEach(function (name, i) {
      series.push({ label: name, stroke: COLORS[i % COLORS.length], width: 2 });
      data.push(named[name]);
    });
    var width = Math.max(320, el.clientWidth || 800);
    return new uPlot({ width: width, height: 240, series: series, scales: { x: { time: true } } }, data, el);
  }

  function draw() {
    var holder = document.getElementById("usage-data");
    if (!holder || typeof uPlot === "undefined") { return; }
    var data = JSON.parse(holder.textContent);
    document.querySelectorAll("[data-chart]").forEach(function (el) {
      var which = el.getAttribute("data-chart");
      if (data[which]) { chart(el, data.x, data[which]); el.setAttribute("data-drawn", "yes"); }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
