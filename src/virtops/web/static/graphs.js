// Usage graphs (uPlot, from npm) over the history `serve` keeps (/api/stats, /api/vms/NAME/stats):
// CPU, memory, disk and network, redrawn every 5 s as new points arrive. The pages only mark a
// slot: <section data-graphs="host"> or <section data-graphs="vm" data-vm="NAME">.
const REFRESH_MS = 5000;
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
  constructor(slot) { this.slot = slot; this.key = null; this.plots = []; this.timer = null; }

  show(kind, name) {
    const key = `${kind}:${name}`;
    if (key === this.key) return;
    this.close();
    this.key = key;
    this.slot.replaceChildren();
    if (kind === "vm" && !name) return;
    this.url = kind === "vm" ? `/api/vms/${encodeURIComponent(name)}/stats?range=1h` : "/api/stats?range=1h";
    const heading = document.createElement("h3");
    heading.textContent = "Usage, the last hour";
    this.slot.append(heading);
    this.plots = CHARTS[kind].map(([title, indexes, unit]) => {
      const holder = document.createElement("div");
      holder.className = "graph";
      this.slot.append(holder);
      const series = [{}, ...indexes.map((index, i) => ({ label: FIELDS[index], stroke: COLOURS[i], width: 1.5 }))];
      return { indexes, unit, plot: new uPlot({ title, width: WIDTH, height: HEIGHT, series }, [[], ...indexes.map(() => [])], holder) };
    });
    this.refresh();
    this.timer = setInterval(() => this.refresh(), REFRESH_MS);
  }

  async refresh() {
    const answer = await fetch(this.url, { credentials: "same-origin" });
    if (!answer.ok) return;
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

const slots = new WeakMap();
function update(slot) {
  if (!slots.has(slot)) slots.set(slot, new GraphSlot(slot));
  slots.get(slot).show(slot.dataset.graphs, slot.dataset.vm || "");
}

document.querySelectorAll("[data-graphs]").forEach(update);
new MutationObserver((changes) => {
  for (const change of changes) if (change.target.matches && change.target.matches("[data-graphs]")) update(change.target);
}).observe(document.body, { subtree: true, attributes: true, attributeFilter: ["data-vm"] });
