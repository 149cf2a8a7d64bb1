// Dashboard pages' daily bar charts (usage, Claude): each <canvas data-daily-chart="<json_script id>"
// data-bars='[[key, label, axis title], [key, label, axis title]]'> gets two series per day from that
// JSON ({labels: ["YYYY-MM-DD", ...], <key>: [numbers]}), the first on the left axis, the second on the right.
(function () {
  "use strict";
  if (!window.Chart) return;
  const css = getComputedStyle(document.body);
  const fg = css.getPropertyValue("--muted").trim() || "#888";
  const colors = ["rgba(79, 125, 243, 0.75)", "rgba(46, 160, 67, 0.65)"];
  for (const canvas of document.querySelectorAll("canvas[data-daily-chart]")) {
    const source = document.getElementById(canvas.dataset.dailyChart);
    if (!source) continue;
    const data = JSON.parse(source.textContent);
    const bars = JSON.parse(canvas.dataset.bars);
    const axes = ["y", "y1"];
    const existing = window.Chart.getChart(canvas);
    if (existing) existing.destroy();
    new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels.map((d) => d.slice(5)),
        datasets: bars.map(([key, label], i) => ({ label, data: data[key], yAxisID: axes[i], backgroundColor: colors[i] })),
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        plugins: { legend: { labels: { color: fg } } },
        scales: {
          x: { ticks: { color: fg } },
          y: { beginAtZero: true, position: "left", ticks: { color: fg, precision: 0 }, title: { display: true, text: bars[0][2], color: fg } },
          y1: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false }, ticks: { color: fg }, title: { display: true, text: bars[1][2], color: fg } },
        },
      },
    });
  }
})();
