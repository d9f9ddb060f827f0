// Draws every element with data-figure="<id of a json_script element>" with Plotly.
// Figures come from the server as plain JSON (charts.py); no inline scripts.
(function () {
  function draw(el) {
    var source = document.getElementById(el.dataset.figure);
    if (!source || typeof Plotly === "undefined") return;
    var fig = JSON.parse(source.textContent);
    Plotly.newPlot(el, fig.data, fig.layout, { responsive: true, displaylogo: false });
  }
  function drawAll() { document.querySelectorAll("[data-figure]").forEach(draw); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", drawAll);
  else drawAll();
})();
