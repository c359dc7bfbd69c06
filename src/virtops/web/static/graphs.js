// Usage graphs (uPlot, from npm) over the history `serve` keeps (/api/stats, /api/vms/NAME/stats):
// CPU, memory, disk and network over the last hour, 24 hours or 30 days (a switch above them),
// redrawn as new points arrive. The pages only mark a slot: <section data-graphs="host"> or
// <section data-graphs="vm" data-vm="NAME">; and the VM list a <canvas data-sparkline="NAME"> per
// VM, which gets the last 5 minutes of its CPU, all VMs from one request.
const RANGES = { "1h": "the last hour", "24h": "the last 24 hours", "30d": "the last 30 days" };
const REFRESH_MS = { "1h": 5000, "24h": 60000, "30d": 60000 };  // a point every 5 s, 1 min, 1 h
const WIDTH = 460, HEIGHT = 160;
const FIELDS = ["time", "cpu_percent", "memory_used_bytes", "disk_read_bytes_per_s", "disk_write_bytes_per_s",
  "net_rx_bytes_per_s", "net_tx_bytes_per_s"];
const CHARTS = {
  // title, the point's values it draws, the unit they are divided by
  host: [["CPU %", [1], 1], ["Memory used (MiB)", [2], 2 ** 20]],
  vm: [["CPU % of its vCPUs", [1], 1], ["Memory (MiB)", [2], 2 ** 20], ["Disk read/write (KiB/s)", [3, 4], 1024],
    ["Network rx/tx (KiB/s)", [5, 6], 1024]],
};
const COLOURS = ["#1f77b4", "#d62728"];

function columns(points) {
  return FIELDS.map((_field, index) => points.map((point) => point[index]));
}

class GraphSlot {
  constructor(slot) { this.slot = slot; this.key = null; this.range = "1h"; this.plots = []; this.timer = null; }

  show(kind, name) {
    const key = `${kind}:${name}`;
    if (key === this.key) return;
    this.close();
    this.key = key;
    this.slot.replaceChildren();
    if (kind === "vm" && !name) return;
    const api = document.body.dataset.api || "/api";  // a fleet's host page: /api/hosts/NAME
    this.base = kind === "vm" ? `${api}/vms/${encodeURIComponent(name)}/stats` : `${api}/stats`;
    this.heading = document.createElement("h3");
    this.slot.append(this.heading, this.switcher());
    this.plots = CHARTS[kind].map(([title, indexes, unit]) => {
      const holder = document.createElement("div");
      holder.className = "graph";
      this.slot.append(holder);
      const series = [{}, ...indexes.map((index, i) => ({ label: FIELDS[index], stroke: COLOURS[i], width: 1.5 }))];
      return { indexes, unit, plot: new uPlot({ title, width: WIDTH, height: HEIGHT, series }, [[], ...indexes.map(() => [])], holder) };
    });
    this.choose(this.range);
  }

  switcher() {
    const group = document.createElement("div");
    group.className = "graph-ranges";
    group.setAttribute("role", "group");
    group.setAttribute("aria-label", "range");
    this.buttons = Object.keys(RANGES).map((range) => {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = range;
      button.dataset.range = range;
      button.addEventListener("click", () => this.choose(range));
      return button;
    });
    group.append(...this.buttons);
    return group;
  }

  choose(range) {
    this.range = range;
    this.slot.dataset.range = range;
    this.heading.textContent = `Usage, ${RANGES[range]}`;
    this.buttons.forEach((button) => button.setAttribute("aria-pressed", String(button.dataset.range === range)));
    this.url = `${this.base}?range=${range}`;
    delete this.slot.dataset.points;  // counted again when this range's points are drawn
    clearInterval(this.timer);
    this.refresh();
    this.timer = setInterval(() => this.refresh(), REFRESH_MS[range]);
  }

  async refresh() {
    const url = this.url;
    const answer = await fetch(url, { credentials: "same-origin" });
    if (!answer.ok || url !== this.url) return;  // a range chosen meanwhile draws its own
    const data = columns((await answer.json()).points);
    const scaled = (values, unit) => values.map((value) => (value === null ? null : value / unit));
    for (const { indexes, unit, plot } of this.plots) plot.setData([data[0], ...indexes.map((index) => scaled(data[index], unit))]);
    this.slot.dataset.points = String(data[0].length);
  }

  close() {
    clearInterval(this.timer);
    this.plots.forEach(({ plot }) => plot.destroy());
    this.plots = [];
  }
}

// -- sparklines in the VM list: one request for every VM, redrawn every 5 s and whenever the list is
const SPARK_URL = `${document.body.dataset.api || "/api"}/stats/vms?range=1h&figures=cpu_percent&last=60`;  // a fleet's host page: its host's
let sparkPoints = null;  // VM name: its CPU points, [time, percent]; null until the first answer

function drawSparkline(canvas) {
  const points = (sparkPoints?.get(canvas.dataset.sparkline) || []).filter(([, cpu]) => cpu !== null);
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  canvas.dataset.points = String(points.length);
  canvas.title = points.length ? `CPU ${points[points.length - 1][1]}% (last 5 min)` : "no CPU figures yet";
  if (!points.length) return;
  const [first, last] = [points[0][0], points[points.length - 1][0]];
  const x = (at) => (last === first ? canvas.width - 1 : ((at - first) / (last - first)) * (canvas.width - 1));
  const y = (cpu) => canvas.height - 1 - (Math.min(cpu, 100) / 100) * (canvas.height - 2);
  context.strokeStyle = COLOURS[0];
  context.lineWidth = 1;
  context.beginPath();
  points.forEach(([at, cpu], index) => (index ? context.lineTo(x(at), y(cpu)) : context.moveTo(x(at), y(cpu))));
  if (points.length === 1) context.lineTo(x(first) - 2, y(points[0][1]));
  context.stroke();
}

let sparkAsked = false;
async function refreshSparklines() {
  if (!document.querySelector("canvas[data-sparkline]") || (sparkPoints === null && sparkAsked)) return;
  sparkAsked = true;
  const answer = await fetch(SPARK_URL, { credentials: "same-origin" });
  if (!answer.ok) return;
  sparkPoints = new Map((await answer.json()).map((series) => [series.name, series.points]));
  document.querySelectorAll("canvas[data-sparkline]").forEach(drawSparkline);
}

const slots = new WeakMap();
function update(slot) {
  if (!slots.has(slot)) slots.set(slot, new GraphSlot(slot));
  slots.get(slot).show(slot.dataset.graphs, slot.dataset.vm || "");
}

document.querySelectorAll("[data-graphs]").forEach(update);
new MutationObserver((changes) => {
  for (const change of changes) {
    if (change.type === "attributes" && change.target.matches("[data-graphs]")) update(change.target);
    for (const node of change.addedNodes || []) {  // a list redrawn: its sparklines from the last answer
      if (node.querySelectorAll) node.querySelectorAll("canvas[data-sparkline]").forEach(drawSparkline);
    }
    if (sparkPoints === null && change.addedNodes?.length) refreshSparklines();  // the list's first drawing
  }
}).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-vm"] });
refreshSparklines();
setInterval(refreshSparklines, REFRESH_MS["1h"]);
