// The pages of the web console: each fills itself from /api and redraws when /api/events says
// something it shows changed. Values from the host are always set as text, never as HTML.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

// -- the API ------------------------------------------------------------------------------
// Every change sends the session's CSRF token, which the server put into the page.
function headers(extra = {}) {
  const token = $("meta[name=csrf-token]")?.content;
  return token ? { "X-CSRF-Token": token, ...extra } : { ...extra };
}

// A host's pages on a fleet's console ask /api/hosts/NAME/... (the page's data-api) for what a
// one-host console asks /api/...; the fleet's own routes (/api/hosts, /api/fleet/...) stay as they are.
const API = document.body.dataset.api || "/api";
function apiPath(path) {
  return /^\/api\/(?!hosts(\/|$)|fleet\/)/.test(path) ? API + path.slice(4) : path;
}

async function api(method, path, body) {
  const options = { method, headers: headers() };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(apiPath(path), options);
  if (response.status === 401 && document.body.dataset.page !== "login") {
    location.href = "/login?next=" + encodeURIComponent(location.pathname);
    throw new Error("log in first");
  }
  const text = await response.text();
  const type = response.headers.get("Content-Type") || "";
  const data = type.includes("json") && text ? JSON.parse(text) : text;
  if (!response.ok) {
    const err = new Error(data.error || data.detail || `${method} ${path}: ${response.status}`);
    err.status = response.status;
    err.option = data.option;
    err.ways = data.ways;  // the core's ways out (force, ...): dialogs.js offers them as buttons
    throw withWayOut(err, method, path, body);
  }
  changeMade(method, path, body, data);  // lists.js: the success notice of the action
  return data;
}

function showError(err) {
  const box = $("#error");
  box.textContent = err ? err.message : "";
  if (err && err.retry) box.append(" ", waysOutButton(err));
  box.hidden = !err;
  if (err && err.retry) offerWaysOut(err);
}

// An operator's action: the last refusal is cleared first, and a new one shown.
async function act(work) {
  showError(null);
  const tell = watchChanges();  // lists.js: says what the action changed, once it is done
  try {
    return await load(work);
  } finally {
    tell();
  }
}

// A redraw (after an event, say): shows a failure, but keeps the sentence of a refusal on screen.
async function load(work) {
  try {
    return await work();
  } catch (err) {
    showError(err);
    return undefined;
  }
}

// -- shared pieces ----------------------------------------------------------------------------
const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
function size(bytes) {
  if (bytes === null || bytes === undefined) return "-";
  let value = bytes, unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return unit === 0 ? `${value} B` : `${value.toFixed(2)} ${units[unit]}`;
}
// What changes with no libvirt event (leases and so a VM's IPs, volumes, a pool's usage, a job's
// progress) is asked this often while a page shows it, and redrawn only when it changed.
const POLL_MS = 3000;
const yesNo = (value) => (value === null || value === undefined ? "-" : value ? "yes" : "no");

// Every table: lists.js draws it (empty states, search, sort and pages where the table asks).
function table(node, columns, rows, rowAttrs = () => ({})) {
  drawTable(node, columns, rows, rowAttrs);
}

// How dnsmasq knows a static host: an IPv4 one by MAC or by the name its client sends, an IPv6 one
// by DUID or name (libvirt's rules; the core's AddressHost).
const knownBy = (h) => (h.mac ? `MAC ${h.mac}` : h.id ? `DUID ${h.id}` : `its name only (${h.name})`);

// A pool's allocation against its capacity, as a bar with the percentage beside it.
function usageBar(pool) {
  if (!pool.active || !pool.capacity) return "-";
  const percent = Math.round((100 * pool.allocation) / pool.capacity);
  return el("span", { class: "usage" }, el("meter", { min: 0, max: pool.capacity, value: pool.allocation, high: 0.9 * pool.capacity,
    title: `${size(pool.allocation)} of ${size(pool.capacity)} allocated` }), ` ${percent}%`);
}

// Other files (parity.js) add controls at these hooks: hook(NAME, ...) answers extras[NAME](...),
// a node or a list of nodes, or null when no file fills it.
const extras = {};
const hook = (name, ...args) => (extras[name] ? extras[name](...args) : null);

const button = (label, onclick, attrs = {}) => el("button", { type: "button", onclick, ...attrs }, label);

// libvirt's own XML of an object, to read or save (virsh dumpxml > FILE); a saved network
// file defines the network again from the Networks page.
async function showXml(title, path, filename) {
  const text = await act(() => api("GET", path));
  if (text === undefined) return;
  $("#xml-title").textContent = title;
  $("#xml-text").textContent = text;
  const save = $("#xml-save");
  URL.revokeObjectURL(save.href);
  save.href = URL.createObjectURL(new Blob([text], { type: "application/xml" }));
  save.download = filename;
  $("#xml-view").hidden = false;
}

function formValues(form) {
  const values = {};
  for (const field of form.elements) {
    if (!field.name) continue;
    if (field.type === "checkbox") values[field.name] = field.checked;
    else if (field.type === "radio") { if (field.checked) values[field.name] = field.value; }
    else if (field.value.trim() !== "") values[field.name] = field.value.trim();
  }
  return values;
}

// Live updates: one event stream per page; each page says which kinds of object it shows.
function live(kinds, redraw) {
  const badge = $("#live");
  const source = new EventSource(apiPath("/api/events"));
  let pending = null;
  source.onopen = () => { badge.textContent = "live"; badge.dataset.state = "live"; };
  source.onerror = () => {
    badge.textContent = "reconnecting";
    badge.dataset.state = "down";
    if (source.readyState === EventSource.CLOSED) load(() => api("GET", "/api/host"));  // ended with the session: to the login page
  };
  source.addEventListener("host", (event) => {  // the daemon restarted: everything may have changed
    const message = JSON.parse(event.data);
    badge.textContent = message.event === "disconnected" ? "host disconnected" : "live";
    badge.dataset.state = message.event === "disconnected" ? "down" : "live";
    if (message.event === "reconnected") redraw(message);
  });
  for (const kind of kinds) {
    source.addEventListener(kind, (event) => {
      badge.dataset.last = event.data;
      clearTimeout(pending);  // a burst of events (a network start) redraws once
      pending = setTimeout(() => redraw(JSON.parse(event.data)), 100);
    });
  }
}

// A wizard: numbered fieldsets, Back and Forward, a summary as the last step (dialogs.js: the
// step indicator, focus, keys, and no second submit while the first runs).
function wizard(form, { summary, finish }) {
  const steps = $$("fieldset[data-step]", form);
  const last = steps.length - 1, indicate = stepIndicator(form, steps);
  let at = 0, opener = null;
  const show = () => {
    steps.forEach((step, i) => { step.hidden = i !== at; });
    $("[data-back]", form).disabled = at === 0;
    $("[data-next]", form).hidden = at === last;
    $("[data-finish]", form).hidden = at !== last;
    if (at === last) {
      $(".summary", form).replaceChildren(...summary(formValues(form)).flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v ?? "-")]));
    }
    indicate(at);
    focusFirst(steps[at], $(at === last ? "[data-finish]" : "[data-next]", form));  // a step without fields: Forward
  };
  const next = () => { if (steps[at].querySelector(":invalid") === null) { at = Math.min(last, at + 1); show(); } else form.reportValidity(); };
  const close = () => { form.hidden = true; if (opener && opener.isConnected) opener.focus(); };
  $("[data-back]", form).onclick = () => { at = Math.max(0, at - 1); show(); };
  $("[data-next]", form).onclick = next;
  $("[data-cancel]", form).onclick = close;
  wizardKeys(form, { onLastStep: () => at === last, next, cancel: close });
  form.onsubmit = async (event) => {
    event.preventDefault();
    if (at !== last) { next(); return; }  // an implicit submit in a step moves on, never finishes
    const values = formValues(form);
    const done = await whileBusy(form, () => act(() => finish(values)));
    if (done !== undefined) { close(); form.reset(); }
  };
  return () => { opener = document.activeElement; form.reset(); at = 0; form.hidden = false; show(); };
}

// -- pages --------------------------------------------------------------------------------------
const pages = {};

// Where to go after logging in: a path on this server only (never javascript:, //host, http://,
// backslashes); anything else goes to "/". The server checked it too (data-next).
function safeNext(target) {
  // A colon is safe after the leading slash (no scheme can start there), and fleet pages have one.
  if (typeof target !== "string" || !/^\/(?![\/\\])[A-Za-z0-9._~\/:-]*$/.test(target)) return "/";
  const url = new URL(target, location.origin);
  return url.origin === location.origin ? url.pathname : "/";
}

pages.login = () => {
  $("#login-form").onsubmit = async (event) => {
    event.preventDefault();
    const done = await act(() => api("POST", "/login", { password: event.target.password.value }));
    if (done !== undefined) location.href = safeNext(document.body.dataset.next);
  };
};

pages.overview = () => {
  const draw = async () => {
    const info = await load(() => api("GET", "/api/host"));
    if (!info) return;
    const facts = [["Host name", info.hostname], ["URI", info.uri], ["Hypervisor", `${info.hypervisor} ${info.hypervisor_version}`],
      ["libvirt", info.libvirt_version], ["CPU", `${info.cpus} × ${info.cpu_model}`], ["Memory", size(info.memory_bytes)],
      ["Free memory", size(info.free_memory_bytes)], ["Guests run with", info.virt_type ? `${info.virt_type} (${info.virt_type_source})` : info.virt_type_source],
      ["Pools", info.pools], ["Networks", info.networks], ["VMs", `${info.domains} (${info.running_domains} running)`]];
    $("#host-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))]));
  };
  draw();
  live(["domain", "network", "pool"], draw);
  watchThisHost(draw);
};

pages.pools = () => {
  const poolPath = (p) => `/api/pools/${encodeURIComponent(p.name)}`;
  let shown = null;
  const draw = async (quiet = false) => {  // quiet (a poll): redrawn only when a pool changed
    const pools = await load(() => api("GET", "/api/pools"));
    if (!pools) return;
    const text = JSON.stringify(pools);
    if (quiet === true && text === shown) return;
    shown = text;
    table($("#pools"), [
      ["Name", (p) => objectLink("pools", p.name)],
      ["Type", (p) => p.type], ["State", (p) => p.state], ["Autostart", (p) => hook("autostart", "pool", p) ?? yesNo(p.autostart)],
      ["Capacity", (p) => size(p.capacity)], ["Allocation", (p) => size(p.allocation)], ["Available", (p) => size(p.available)],
      ["Usage", (p) => usageBar(p)],
      ["Target", (p) => p.target], ["Source", (p) => (p.source_host ? `${p.source_host}:${p.source_path}` : "-")],
      ["", (p) => el("span", {},
        button("XML", () => showXml(`Pool ${p.name}`, `/api/pools/${encodeURIComponent(p.name)}/xml`, `${p.name}_pool.xml`)),
        button(p.active ? "Stop" : "Start", () => act(() => (p.active
          ? disruptive({ impact: `${poolPath(p)}/impact?action=stop`, title: `Stop pool ${p.name}?`, confirmLabel: "Stop pool", method: "POST", path: `${poolPath(p)}/actions/stop` })
          : api("POST", `${poolPath(p)}/actions/start`)))),
        p.active ? button("Refresh", () => act(() => api("POST", `/api/pools/${encodeURIComponent(p.name)}/actions/refresh`))) : null,
        ...(hook("poolActions", p) || []),
        button("Delete", () => act(() => disruptive({ impact: `${poolPath(p)}/impact?action=delete`,  // with volumes: the core's two ways
          title: `Delete pool ${p.name}?`, confirmLabel: "Delete pool", method: "DELETE", path: poolPath(p) }))))],
    ], pools, (p) => ({ "data-name": p.name }));
  };
  const form = $("#pool-wizard");
  const typeFields = () => $$("[data-type]", form).forEach((div) => { div.hidden = div.dataset.type !== form.type.value; });
  form.type.onchange = typeFields;
  // Browse: the previous server's exports go as soon as another host is typed or asked; the core
  // bounds the question (15 s), the page shows a spinner while it runs.
  const exportsList = $("#pool-sources");
  form.host.addEventListener("input", () => exportsList.replaceChildren());
  $("#pool-browse").onclick = () => act(async () => {
    exportsList.replaceChildren();
    const found = await whileBusy($("#pool-browse"), () => api("GET", `/api/pool-sources?type=netfs&host=${encodeURIComponent(form.host.value.trim())}`));
    if (found) exportsList.replaceChildren(...found.map((s) => el("li", {}, button(`${s.host}:${s.path}`, () => { form.source_path.value = s.path; }))));
  });
  const open = wizard(form, {
    summary: (v) => [["Name", v.name], ["Type", v.type], ["Target", v.target],
      ...(v.type === "netfs" ? [["Source", `${v.host}:${v.source_path}`]] : [["Owner", v.owner], ["Group", v.group], ["Mode", v.mode]])],
    finish: (v) => {
      const body = { name: v.name, type: v.type, target: v.target };
      if (v.type === "dir") Object.assign(body, { owner: v.owner, group: v.group, mode: v.mode });
      else Object.assign(body, { host: v.host, source_path: v.source_path });
      return api("POST", "/api/pools", body);
    },
  });
  $("#pool-new").onclick = () => { open(); typeFields(); };
  draw();
  live(["pool", "volume", "domain"], draw);
  watchThisHost(draw);
  setInterval(() => { if (!document.hidden) draw(true); }, POLL_MS);  // usage changed by another client's volumes
};

pages.networks = () => {
  const draw = async () => {
    const nets = await load(() => api("GET", "/api/networks"));
    if (!nets) return;
    const path = (n) => `/api/networks/${encodeURIComponent(n.name)}`;
    table($("#networks"), [
      ["Name", (n) => objectLink("networks", n.name)], ["State", (n) => (n.active ? "active" : "inactive")], ["Autostart", (n) => hook("autostart", "network", n) ?? yesNo(n.autostart)],
      ["Persistent", (n) => yesNo(n.persistent)], ["Mode", (n) => n.mode + (n.dev ? ` via ${n.dev}` : "")], ["Bridge", (n) => n.bridge],
      ["IPv4", (n) => (n.subnet ? `${n.subnet} (gateway ${n.gateway})` : "-")], ["DHCP", (n) => n.dhcp_range], ["Leases", (n) => n.leases],
      ["", (n) => el("span", {},
        button("XML", () => showXml(`Network ${n.name}`, `${path(n)}/xml`, `${n.name}_net.xml`)),
        n.mode === "bridge" ? null : el("a", { href: `${objectHref("networks", n.name)}/settings`, class: "button", "aria-label": `Edit ${n.name}` }, "Edit"),
        ...(hook("networkActions", n) || []),
        button(n.active ? "Stop" : "Start", () => act(() => (n.active  // start re-plugs the NICs of its running guests
          ? disruptive({ impact: `${path(n)}/impact?action=stop`, title: `Stop network ${n.name}?`, confirmLabel: "Stop network", method: "POST", path: `${path(n)}/actions/stop` })
          : api("POST", `${path(n)}/actions/start`)))),
        button("Delete", () => act(() => disruptive({ impact: `${path(n)}/impact?action=delete`, title: `Delete network ${n.name}?`,
          confirmLabel: "Delete network", method: "DELETE", path: path(n) }))))],
    ], nets, (n) => ({ "data-name": n.name }));
  };
  const open = wizard($("#net-wizard"), {
    summary: (v) => [["Name", v.name], ["Network", v.subnet], ["Gateway", v.gateway || "the first address"],
      ["DHCP", v.dhcp_enabled ? `${v.dhcp_start || "default"} - ${v.dhcp_end || "default"}` : "disabled"],
      ["IPv6", v.ipv6 || "none"], ["IPv6 between guests", yesNo(v.ipv6_guests)],
      ["Mode", v.mode], ["Forwarding", v.mode === "isolated" ? "none" : v.dev || "any physical device"],
      ["NAT for IPv6", yesNo(v.nat_ipv6)]],
    finish: (v) => {
      const body = { name: v.name, subnet: v.subnet, gateway: v.gateway, mode: v.mode, ipv6: v.ipv6,
        ipv6_guests: v.ipv6_guests, nat_ipv6: v.nat_ipv6 };
      if (!v.dhcp_enabled) body.dhcp = false;
      else if (v.dhcp_start || v.dhcp_end) body.dhcp = `${v.dhcp_start || ""}-${v.dhcp_end || ""}`;
      if (v.mode !== "isolated" && v.dev) body.dev = v.dev;
      return api("POST", "/api/networks", body);
    },
  });
  $("#net-new").onclick = open;

  $("#net-define").onchange = (event) => act(async () => {  // virsh net-define FILE
    const file = event.target.files[0];
    event.target.value = "";
    const response = await fetch(apiPath("/api/networks/xml"), { method: "POST", headers: headers({ "Content-Type": "application/xml" }), body: await file.text() });
    if (!response.ok) throw new Error((await response.json()).error);
  });
  draw();
  live(["network", "domain"], draw);
  watchThisHost(draw);
};

// Move a VM to another host. On a fleet's console a chooser lists every other host, and for each
// one that cannot take the VM the core's pre-flight sentences why (GET .../destinations); a
// console of one host asks for the destination's name. The move runs on the server
// (POST .../migrate answers 202); the panel shows its progress from GET .../migrate and a Cancel
// that stops it, and stays when the VM has left this host's list.
async function migrateVm(vm, path) {
  const panel = $("#migrate"), form = $("#migrate-form");
  const draw = async () => {
    const found = await api("GET", `${path}/destinations?copy_storage=${form.copy_storage.checked}`);
    form.to.replaceChildren(...found.map((d) => el("option", { value: d.host, disabled: !d.ok }, d.ok ? d.host : `${d.host} (cannot take it)`)));
    const first = found.find((d) => d.ok);
    form.to.value = first ? first.host : "";
    $("#migrate-move").disabled = !first;
    $("#migrate-reasons").replaceChildren(...found.filter((d) => !d.ok)
      .map((d) => el("li", { "data-host": d.host }, `${d.host}: ${d.reasons.join(" ")}`)));
    return found.length > 0;
  };
  $("#migrate-title").textContent = `Move ${vm.name} to another host`;
  $("#migrate-status").textContent = "";
  form.copy_storage.checked = false;
  form.copy_storage.onchange = () => act(draw);
  $("#migrate-close").onclick = () => { panel.hidden = true; };
  form.onsubmit = (event) => {
    event.preventDefault();
    act(() => runMove(vm, path, form.to.value, form.copy_storage.checked));
  };
  if (await draw()) {
    panel.hidden = false;
    return;
  }
  const to = prompt(`Move ${vm.name} to which host (a registered name or lab:NAME)?`);
  if (to) await runMove(vm, path, to, false);
}

async function runMove(vm, path, to, copyStorage) {
  const panel = $("#migrate"), status = $("#migrate-status");
  await api("POST", `${path}/migrate`, { to, offline: !vm.running, copy_storage: copyStorage });
  panel.hidden = false;
  $("#migrate-form").hidden = true;
  status.dataset.state = "moving";
  status.textContent = `moving ${vm.name} to ${to}`;
  const cancel = button("Cancel move", () => act(() => api("POST", `${path}/migrate/cancel`)), { id: "migrate-cancel" });
  status.after(cancel);
  try {
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      const move = await api("GET", `${path}/migrate`);
      const p = move.progress;
      status.dataset.state = move.state;
      if (move.state === "moved") { status.textContent = `${vm.name} moved ${move.result.mode} to ${to} in ${move.result.seconds} s`; return; }
      if (move.state === "failed") { status.textContent = `${vm.name} stays here: ${move.error}`; throw new Error(move.error); }
      if (p && p.total) status.textContent = `moving ${vm.name} to ${to}: ${p.phase} ${Math.round(100 * p.processed / p.total)}%`;
    }
  } finally {
    cancel.remove();
    $("#migrate-form").hidden = false;
  }
}

pages.vms = () => {
  const draw = async () => {
    const vms = await load(() => api("GET", "/api/vms?nics=true"));  // the list searches MACs and networks too
    if (!vms) return;
    table($("#vms"), [
      ["Name", (v) => objectLink("vms", v.name)],
      ["State", (v) => v.state], ["vCPUs", (v) => v.vcpus], ["Memory", (v) => size(v.memory_bytes)],
      ["Disks", (v) => v.disks.join(" ") || "-"], ["IP", (v) => v.ips.join(" ") || "-"],
      ["CPU", (v) => (v.running ? el("canvas", { "data-sparkline": v.name, width: 100, height: 24, class: "sparkline" }) : "-")],  // graphs.js draws it
    ], vms, (v) => ({ "data-name": v.name }));
  };
  // New VM: static/newvm.js, the wizard.

  draw();
  live(["domain", "network", "pool", "volume"], draw);
  watchThisHost(draw);
};

// -- the fleet --------------------------------------------------------------------------------
// A fleet's console asks GET /api/hosts every few seconds (the server answers from what each
// host's watcher last saw, never waiting for a host). A host's own pages grey out while it does
// not answer, and redraw when it is back.
const WATCH_MS = 2000;
const hostPage = (name, page = "overview") => `/hosts/${encodeURIComponent(name).replace(/%3A/g, ":")}/${page}`;
// An object's own page (web/objects.py): /vms/NAME, or /hosts/HOST/vms/NAME for a host of a fleet.
function objectHref(list, name, host = document.body.dataset.host) {
  return `${host ? hostPage(host, list) : `/${list}`}/${encodeURIComponent(name)}`;
}
const objectLink = (list, name, host) => el("a", { href: objectHref(list, name, host), class: "object-link" }, name);
const percent = (value) => (value === null || value === undefined ? "-" : `${Math.round(value)}%`);

function watchHosts(onChange) {
  let last = null;
  const ask = async () => {
    const hosts = await api("GET", "/api/hosts").catch(() => null);
    if (hosts) {
      const states = JSON.stringify(hosts.map((h) => [h.name, h.reachable]));
      onChange(hosts, states !== last);
      last = states;
    }
  };
  ask();
  return setInterval(ask, WATCH_MS);
}

function watchThisHost(redraw) {
  const name = document.body.dataset.host;
  if (!name) return;  // a console of one host: its event stream says when the daemon goes away
  const badge = $("#host-state");
  watchHosts((hosts, changed) => {
    const me = hosts.find((h) => h.name === name);
    if (!me) return;
    const wasAway = document.body.dataset.hostState === "away";
    document.body.dataset.hostState = me.reachable ? "up" : "away";
    badge.hidden = me.reachable;
    badge.textContent = me.reachable ? "" : `not answering: ${me.reason}`;
    if (changed && wasAway && me.reachable) redraw();
  });
}

pages.fleet = () => {
  const tile = (h) => el("section", { class: "tile", "data-host": h.name, "data-state": h.reachable ? "up" : "away" },
    el("h2", {}, el("a", { href: hostPage(h.name) }, h.name)),
    el("p", { class: "state" }, h.reachable ? "answering" : `not answering: ${h.reason}`),
    el("dl", { class: "facts" },
      el("dt", {}, "CPU"), el("dd", { "data-figure": "cpu" }, percent(h.cpu_percent)),
      el("dt", {}, "Memory"), el("dd", { "data-figure": "memory" }, h.memory_bytes ? `${size(h.memory_used_bytes)} of ${size(h.memory_bytes)}` : "-"),
      el("dt", {}, "VMs"), el("dd", { "data-figure": "vms" }, h.vms === null ? "-" : `${h.vms_running} running of ${h.vms}`)),
    el("ul", { class: "problems" }, ...h.problems.map((p) => el("li", {}, p))),
    el("nav", {}, ...Object.entries({ vms: "VMs", networks: "Networks", pools: "Storage" })
      .map(([page, label]) => el("a", { href: hostPage(h.name, page) }, label))));
  const draw = (hosts) => $("#tiles").replaceChildren(...hosts.map(tile));
  watchHosts((hosts) => draw(hosts));
  live(["domain"], () => api("GET", "/api/hosts").then(draw, showError));
};

// The fleet-wide lists: every host's rows in one table (lists.js searches, sorts in natural order:
// n1, n2, n10, filters by host and pages it); a host that did not answer is named above.
const FLEET_LISTS = {
  "fleet-vms": { kinds: ["domain"], path: "vms", page: "vms", columns: [
    ["State", (v) => v.state], ["vCPUs", (v) => v.vcpus], ["Memory", (v) => size(v.memory_bytes)], ["IP", (v) => v.ips.join(" ") || "-"]] },
  "fleet-networks": { kinds: ["network"], path: "networks", page: "networks", columns: [
    ["State", (n) => (n.active ? "active" : "inactive")], ["Mode", (n) => n.mode], ["IPv4", (n) => n.subnet], ["DHCP", (n) => n.dhcp_range]] },
  "fleet-pools": { kinds: ["pool", "volume"], path: "pools", page: "pools", columns: [
    ["Type", (p) => p.type], ["State", (p) => p.state], ["Capacity", (p) => size(p.capacity)], ["Available", (p) => size(p.available)]] },
};
for (const [name, list] of Object.entries(FLEET_LISTS)) {
  pages[name] = () => {
    const draw = async () => {
      const answer = await load(() => api("GET", `/api/fleet/${list.path}`));
      if (!answer) return;
      table($("#fleet-rows"), [["Name", (r) => objectLink(list.page, r.name, r.host)],
        ["Host", (r) => el("a", { href: hostPage(r.host, list.page) }, r.host)], ...list.columns], answer.rows,
        (r) => ({ "data-name": r.name, "data-host": r.host }));
      $("#fleet-failures").replaceChildren(...answer.failures.map((f) => el("li", { "data-host": f.host }, `host ${f.host}: ${f.error}`)));
    };
    draw();
    watchHosts((_hosts, changed) => { if (changed) draw(); });
    live(list.kinds, draw);
  };
}

document.addEventListener("DOMContentLoaded", () => {
  for (const closer of $$("[data-close]")) closer.onclick = () => { $(`#${closer.dataset.close}`).hidden = true; };
  const logout = $("#logout");
  if (logout) logout.onclick = async () => { await api("POST", "/logout"); location.href = "/login"; };
  const page = pages[document.body.dataset.page];
  if (page) page();
});
