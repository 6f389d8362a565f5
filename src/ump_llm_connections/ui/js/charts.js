// Time charts: uPlot, loaded on the first chart only (a <script> tag: it defines window.uPlot),
// drawn in the theme's colours, with the numbers beside it as a table for screen readers.
import { html, useEffect, useRef, useState } from "./html.js";
import { loadStyle } from "./components.js";

loadStyle("charts.css");

const BASE = "/ai-compute/connections/assets/vendor/";
let loading = null;

export function loadCharts() {
  if (window.uPlot) return Promise.resolve(window.uPlot);
  loading ??= new Promise((resolve, reject) => {
    const css = document.createElement("link");
    css.rel = "stylesheet";
    css.href = `${BASE}uPlot.min.css`;
    const script = document.createElement("script");
    script.src = `${BASE}uPlot.iife.min.js`;
    script.onload = () => resolve(window.uPlot);
    script.onerror = () => { loading = null; reject(new Error("the chart library did not load")); };
    document.head.append(css, script);
  });
  return loading;
}

const dark = window.matchMedia("(prefers-color-scheme: dark)");

function palette() {
  const style = getComputedStyle(document.documentElement);
  const get = (name) => style.getPropertyValue(name).trim();
  return { text: get("--muted"), line: get("--line"), series: [get("--accent"), get("--warn"), get("--good"), get("--bad")] };
}

// series: [{label, values, format}] over x (Date objects or ISO strings); format turns a value
// into text (axis, table). The chart itself is hidden from assistive tech: the table says it all.
export function Chart({ title, x, series, height = 220, summary }) {
  const box = useRef(null);
  const [failed, setFailed] = useState(null);
  const [scheme, setScheme] = useState(dark.matches);
  useEffect(() => {
    const change = () => setScheme(dark.matches);
    dark.addEventListener("change", change);
    return () => dark.removeEventListener("change", change);
  }, []);
  useEffect(() => {
    let plot = null;
    let observer = null;
    let gone = false;
    loadCharts().then((uPlot) => {
      if (gone || !box.current) return;
      const colours = palette();
      const axis = {
        stroke: colours.text, grid: { stroke: colours.line, width: 1 }, ticks: { stroke: colours.line },
      };
      const format = series[0]?.format ?? String;
      const options = {
        width: box.current.clientWidth || 600, height,
        legend: { show: true },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true } },
        axes: [axis, { ...axis, size: 64, values: (_, ticks) => ticks.map((v) => format(v)) }],
        series: [{}, ...series.map((s, i) => ({
          label: s.label, stroke: colours.series[i % colours.series.length], width: 2,
          points: { show: x.length < 40 }, spanGaps: false,
          value: (_, v) => (v == null ? "—" : (s.format ?? String)(v)),
        }))],
      };
      const data = [x.map((t) => new Date(t).getTime() / 1000), ...series.map((s) => s.values)];
      plot = new uPlot(options, data, box.current);
      observer = new ResizeObserver(() => {
        if (box.current) plot.setSize({ width: box.current.clientWidth, height });
      });
      observer.observe(box.current);
      box.current.dataset.drawn = "true";
    }).catch((error) => setFailed(error.message));
    return () => { gone = true; observer?.disconnect(); plot?.destroy(); };
  }, [x, series, scheme]);
  return html`<figure class="chart">
    <figcaption>${title}</figcaption>
    ${summary && html`<p class="chart-summary">${summary}</p>`}
    ${failed ? html`<p class="error">${failed}</p>` : html`<div class="chart-box" ref=${box} aria-hidden="true"></div>`}
    <details class="chart-data">
      <summary>Data table<span class="sr-only">: ${title}</span></summary>
      <div class="table-wrap"><table class="list data">
        <caption class="sr-only">${title}</caption>
        <thead><tr><th scope="col">Time</th>${series.map((s) => html`<th scope="col" class="num">${s.label}</th>`)}</tr></thead>
        <tbody>${x.map((t, i) => html`<tr><th scope="row">${new Date(t).toLocaleString()}</th>
          ${series.map((s) => html`<td class="num">${s.values[i] == null ? "—" : (s.format ?? String)(s.values[i])}</td>`)}</tr>`)}</tbody>
      </table></div>
    </details>
  </figure>`;
}
