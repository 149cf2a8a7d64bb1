// Claude page: a Chart.js bar chart of asks per day, with the tokens (in + out) through the gateway.
(function () {
  "use strict";
  const canvas = document.getElementById("claude-chart");
  const source = document.getElementById("claude-data");
  if (!canvas || !source || !window.Chart) return;
  const data = JSON.parse(source.textContent);
  const css = getComputedStyle(document.body);
  const fg = css.getPropertyValue("--muted").trim() || "#888";
  const existing = window.Chart.getChart(canvas);
  if (existing) existing.destroy();
  new window.Chart(canvas, {
    type: "bar",
    data: {
      labels: data.labels.map((d) => d.slice(5)),
      datasets: [
        { label: "Asks", data: data.asks, yAxisID: "y", backgroundColor: "rgba(79, 125, 243, 0.75)" },
        { label: "Tokens (in + out)", data: data.tokens, yAxisID: "y1", backgroundColor: "rgba(46, 160, 67, 0.65)" },
      ],
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      plugins: { legend: { labels: { color: fg } } },
      scales: {
        x: { ticks: { color: fg } },
        y: { beginAtZero: true, position: "left", ticks: { color: fg, precision: 0 }, title: { display: true, text: "asks", color: fg } },
        y1: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false }, ticks: { color: fg }, title: { display: true, text: "tokens", color: fg } },
      },
    },
  });
})();
