// A page per object (web/objects.py, templates/object.html): /vms/NAME, /networks/NAME,
// /pools/NAME, /pools/POOL/volumes/VOL (on a fleet's console under /hosts/HOST/), with tabs whose
// name is the URL's last part (/vms/NAME/devices). A tab chosen in the page is pushed onto the
// history, so back, forward and reload keep the place.
//
// THE HOOK for other features: each kind's tabs are lists of renderers, run in order the first
// time the tab is shown:
//     objectPages.vm.settings.push((ctx) => node);     // objectPages.{vm,network,pool,volume}.TAB
// A renderer returns a Node to append to its tab's panel (or nothing). What it gets, ctx:
//   kind, name, pool (a volume's pool, else null), ref (NAME or POOL/VOL), path (its /api path),
//   data            the latest GET of path (VmInfo, NetworkInfo, PoolInfo, VolumeInfo)
//   watch(fn)       fn(data) now and after every redraw (libvirt's events, polls); may be async
//   refresh()       redraw now (after a change that announces no event)
//   poll(fn)        fn() every POLL_MS while the page is visible (for what has no event)
//   gone()          after deleting the object: back to its list page
//   tab(name)       switch to another tab
// Load the feature's script from templates/object.html, after objects.js.
"use strict";

const objectPages = {
  vm: { overview: [], devices: [], settings: [], xml: [], console: [] },
  network: { overview: [], devices: [], settings: [], xml: [] },
  pool: { overview: [], devices: [], settings: [], xml: [] },
  volume: { overview: [], settings: [], xml: [] },
};
const OBJECT_API = { vm: "vms", network: "networks", pool: "pools" };
const OBJECT_EVENTS = { vm: ["domain", "network", "pool", "volume"], network: ["network", "domain"],
  pool: ["pool", "volume", "domain"], volume: ["volume", "pool", "domain"] };
const uriName = encodeURIComponent;  // (parity.js has its own enc: scripts share one global scope)

pages.object = () => {
  const body = document.body.dataset;
  const { kind, name } = body, pool = body.pool || null;
  const ref = pool ? `${pool}/${name}` : name;
  const path = pool ? `/api/pools/${uriName(pool)}/volumes/${uriName(name)}` : `/api/${OBJECT_API[kind]}/${uriName(name)}`;
  const watchers = [];
  const ctx = {
    kind, name, pool, ref, path, data: null,
    watch(fn) {  // the first call waits for the renderer's node to be in its panel (tables need a parent)
      watchers.push(fn);
      if (ctx.data) Promise.resolve().then(() => load(async () => fn(ctx.data)));
    },
    refresh: () => redraw(),
    poll: (ask) => setInterval(() => { if (!document.hidden) load(ask); }, POLL_MS),  // while the page is shown
    gone: () => { location.href = body.list; },
    tab: (tab) => choose(tab),
  };
  let last = null;
  const redraw = async (quiet = false) => {  // quiet (a poll): the watchers only hear of a change
    let data;
    try {
      data = await api("GET", path);
    } catch (err) {
      if (err.status === 404) showGone(); else showError(err);
      return;
    }
    const text = JSON.stringify(data);
    if (quiet === true && text === last) return;
    last = text;
    ctx.data = data;
    for (const fn of watchers) await load(async () => fn(data));
  };
  const showGone = () => {
    const note = $("#object-gone");
    note.replaceChildren(`${document.title.split(" · ")[0]} is no longer on this host. `, el("a", { href: body.list }, "Back to the list"));
    note.hidden = false;
  };

  // The tabs: shown from the URL; a click pushes the tab's URL, back and forward show theirs.
  const tabs = $$("nav.tabs [data-tab]").map((link) => link.dataset.tab);
  const rendered = new Set();
  const show = (tab) => {
    for (const link of $$("nav.tabs [data-tab]")) link.setAttribute("aria-selected", String(link.dataset.tab === tab));
    for (const panel of $$("[data-panel]")) panel.hidden = panel.dataset.panel !== tab;
    body.tab = tab;
    if (rendered.has(tab)) return;
    rendered.add(tab);
    const panel = $(`[data-panel="${tab}"]`);
    for (const render of objectPages[kind][tab] || []) {
      const node = render(ctx);
      if (node) panel.append(node);
    }
  };
  const tabOfUrl = () => {
    const rest = decodeURIComponent(location.pathname).slice(decodeURIComponent(body.url).length + 1);
    return tabs.includes(rest) ? rest : tabs[0];
  };
  const choose = (tab) => {
    if (tab === body.tab && rendered.has(tab)) return;
    history.pushState({ tab }, "", `${body.url}/${tab}`);
    show(tab);
  };
  for (const link of $$("nav.tabs [data-tab]")) {
    link.onclick = (event) => { event.preventDefault(); choose(link.dataset.tab); };
  }
  window.addEventListener("popstate", () => show(tabOfUrl()));

  show(tabOfUrl());  // at once: its forms are wired before the first answer comes (their watchers wait for it)
  redraw();
  live(OBJECT_EVENTS[kind], redraw);
  watchThisHost(redraw);
  if (kind === "vm") ctx.poll(async () => { if (ctx.data && ctx.data.running && ctx.data.nics.length) await redraw(true); });
  // A volume made, resized or deleted by another client (the CLI, virsh) and a pool's usage with it
  // come with no libvirt event: asked quietly, redrawn only when they changed.
  if (kind === "pool" || kind === "volume") ctx.poll(() => redraw(true));
};

// -- pieces every kind uses -------------------------------------------------------------------------
const factList = (id, pairs) => el("dl", { class: "facts", id }, ...pairs.flatMap(([key, value]) =>
  [el("dt", {}, key), el("dd", { "data-fact": key }, value instanceof Node ? value : String(value ?? "-"))]));

// A fact list redrawn from every answer: facts(data) gives its [label, value] pairs.
const factsTab = (id, facts) => (ctx) => {
  const holder = el("div", {});
  ctx.watch((data) => holder.replaceChildren(factList(id, facts(data))));
  return holder;
};

// A bar of buttons redrawn from every answer: buttons(data, ctx) gives them.
const actionsTab = (id, buttons) => (ctx) => {
  const bar = el("div", { class: "actions", id });
  ctx.watch((data) => bar.replaceChildren(...buttons(data, ctx).filter(Boolean)));
  return bar;
};

// libvirt's own XML of the object, refreshed with it, to read or save (virsh dumpxml > FILE).
const xmlTab = (filename) => (ctx) => {
  const text = el("pre", { id: "object-xml", tabindex: 0, role: "region", "aria-label": `libvirt's XML of ${ctx.ref}` });  // scrolls by keyboard too
  const save = el("a", { id: "object-xml-save", href: "#", download: filename(ctx) }, "Save as file");
  ctx.watch(async () => {
    const xml = await api("GET", `${ctx.path}/xml`);
    if (xml === text.textContent) return;
    text.textContent = xml;
    URL.revokeObjectURL(save.href);
    save.href = URL.createObjectURL(new Blob([xml], { type: "application/xml" }));
  });
  return el("div", {}, text, save);
};

// Options of a select, keeping what the operator chose when it is still offered.
function refill(select, options) {
  const chosen = select.value;
  select.replaceChildren(...options.map(([value, label]) => el("option", { value }, label)));
  if (options.some(([value]) => value === chosen)) select.value = chosen;
}

// A disruptive action (dialogs.js): the core's cost of it on this object (GET PATH/impact?action=...)
// in a dialog; on Confirm the request with the option the core says it needs. Null when cancelled.
const askFirst = (ctx, { action, device, title, confirmLabel, method = "POST", path = ctx.path }) => {
  const query = [action && `action=${action}`, device && `device=${uriName(device)}`].filter(Boolean).join("&");
  return disruptive({ impact: `${ctx.path}/impact${query ? "?" + query : ""}`, title, confirmLabel, method, path });
};

// A form sent to the API: disabled while its request runs (no second submit), then the page redrawn.
// Its submit button is enabled once wired: the template keeps it disabled until then.
function sendForm(ctx, form, send) {
  form.onsubmit = (event) => {
    event.preventDefault();
    const values = formValues(form);
    whileBusy(form, () => act(async () => { await send(values); await ctx.refresh(); }));
  };
  $("button[type=submit]", form).disabled = false;
}

const pageOf = (kind, name, pool) => {  // another object's page on this host
  const base = document.body.dataset.list.replace(/\/[^/]+$/, "");
  return pool ? `${base}/pools/${uriName(pool)}/volumes/${uriName(name)}` : `${base}/${OBJECT_API[kind]}/${uriName(name)}`;
};

// -- VMs ---------------------------------------------------------------------------------------------
const vmIps = (vm) => vm.nics.map((nic) => nic.ip).filter(Boolean).join(" ") || "-";

objectPages.vm.overview.push(
  (ctx) => {
    ctx.watch((vm) => $("#vm-facts").replaceWith(factList("vm-facts", [
      ["State", vm.state], ["vCPUs", vm.vcpus], ["Memory", size(vm.memory_bytes)], ["IP", vmIps(vm)],
      ["Guests run with", vm.virt_type], ["Persistent", yesNo(vm.persistent)], ["Autostart", yesNo(vm.autostart)],
      ["Disks", vm.disks.map((d) => d.target).join(" ") || "-"], ["NICs", vm.nics.length]])));
  },
  (ctx) => {
    ctx.watch((vm) => {
      const actions = vm.running ? ["shutdown", "reboot", "destroy", vm.state === "paused" ? "resume" : "suspend"] : ["start"];
      const run = (action) => (action === "destroy"  // force off: the guest loses what it has not written
        ? askFirst(ctx, { action, title: `Force off ${vm.name}?`, confirmLabel: "Force off", path: `${ctx.path}/actions/destroy` })
        : api("POST", `${ctx.path}/actions/${action}`));
      $("#vm-actions").replaceChildren(...actions.map((action) => button(action, () => act(() => run(action)))),
        vm.running ? button("Console", () => ctx.tab("console")) : null,
        button("Migrate", () => act(() => migrateVm(vm, ctx.path))), ...(hook("vmActions", vm, ctx.path) || []));
    });
  },
);

// The job libvirt runs on the VM (a move, whoever started it: this console, `virtops vm migrate`,
// virsh), with its progress: asked every POLL_MS while the VM runs, every JOB_MS while a job does.
const JOB_MS = 1000;
objectPages.vm.overview.push((ctx) => {
  const box = el("p", { id: "vm-job", role: "status", hidden: true });
  let timer = null;
  const show = (job) => {
    box.hidden = !job;
    if (!job) { box.replaceChildren(); delete box.dataset.operation; return; }
    const p = job.progress;
    box.dataset.operation = job.operation;
    box.replaceChildren(`${job.operation} under way for ${Math.round(job.elapsed_s)} s`, ...(p ? [": ", p.phase, " ",
      el("progress", { max: p.total, value: p.processed, "aria-label": `${job.operation} of ${ctx.name}` }),
      ` ${Math.floor((100 * p.processed) / p.total)}% (${size(p.processed)} of ${size(p.total)})`] : []));
  };
  const follow = async () => {
    clearTimeout(timer);
    if (!ctx.data || !ctx.data.running) { show(null); return; }
    const answer = document.hidden ? null : await api("GET", `${ctx.path}/job`).catch((err) => ({ gone: err.status === 404 }));
    show(answer && answer.job);
    if (answer && answer.gone) return;  // moved away or deleted: the page says so (showGone), nothing to ask
    timer = setTimeout(follow, answer && answer.job ? JOB_MS : POLL_MS);
  };
  ctx.watch(follow);
  return box;
});

objectPages.vm.devices.push((ctx) => {
  for (const [id, part] of [["#disk-form", "disks"], ["#nic-form", "nics"]]) {
    sendForm(ctx, $(id), (values) => api("POST", `${ctx.path}/${part}`, values));
  }
  const detach = (vm, kind, device) => act(() => askFirst(ctx, { action: `detach-${kind}`, device, method: "DELETE",
    title: `Detach ${kind === "disk" ? "disk" : "NIC"} ${device} from ${vm.name}?`, confirmLabel: "Detach",
    path: `${ctx.path}/${kind}s/${uriName(device)}` }));
  ctx.watch(async (vm) => {
    table($("#vm-disks"), [["Target", (d) => d.target], ["Type", (d) => d.type], ["Source", (d) => d.source], ["Bus", (d) => d.bus],
      ["Device", (d) => d.device], ["Format", (d) => d.format],
      ["", (d) => button("Detach", () => detach(vm, "disk", d.target))]],
    vm.disks, (d) => ({ "data-name": d.target }));
    table($("#vm-nics"), [["MAC", (n) => n.mac], ["Type", (n) => n.type],
      ["Source", (n) => (n.source || "-") + (n.source_mode ? ` (${n.source_mode})` : "")], ["Model", (n) => n.model], ["IP", (n) => n.ip],
      ["", (n) => button("Detach", () => detach(vm, "nic", n.mac))]],
    vm.nics, (n) => ({ "data-name": n.mac }));
    const [pools, nets] = await Promise.all([api("GET", "/api/pools"), api("GET", "/api/networks")]);
    const volumes = (await Promise.all(pools.filter((p) => p.active).map((p) => api("GET", `/api/pools/${uriName(p.name)}/volumes`)))).flat();
    refill($("#disk-form").volume, volumes.map((v) => [`${v.pool}/${v.name}`, `${v.pool}/${v.name}`]));
    refill($("#nic-form").network, [["", "none (a bridge or device)"], ...nets.map((n) => [n.name, n.name])]);
  });
});

objectPages.vm.settings.push((ctx) => {
  ctx.watch((vm) => $("#vm-settings-actions").replaceChildren(
    button("Delete", () => act(async () => {  // its volumes stay: the CLI's --remove-storage is for that
      const done = await askFirst(ctx, { action: "delete", method: "DELETE", title: `Delete VM ${vm.name}?`, confirmLabel: "Delete VM" });
      if (done) ctx.gone();
    }))));
});

objectPages.vm.xml.push(xmlTab((ctx) => `${ctx.name}.xml`));

// The serial console: xterm.js (from npm) over a WebSocket that carries the guest's bytes. It
// opens when the tab is shown for a running VM; once it closes (the VM stopped, another console
// took it, the server went away) a Reconnect button opens it again.
objectPages.vm.console.push((ctx) => {
  const state = $("#console-state"), reconnect = $("#console-reconnect"), close = $("#console-close");
  let open = null, wanted = true;
  const connect = () => {
    disconnect();
    wanted = true;
    const terminal = new Terminal({ convertEol: false, cursorBlink: true, rows: 24 });
    const fit = new FitAddon.FitAddon();
    terminal.loadAddon(fit);
    $("#terminal").replaceChildren();
    terminal.open($("#terminal"));
    fit.fit();
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}${apiPath(`${ctx.path}/console`)}`);
    socket.binaryType = "arraybuffer";
    socket.onopen = () => { state.textContent = "connected"; };
    socket.onmessage = (event) => terminal.write(new Uint8Array(event.data));
    socket.onclose = (event) => {
      if (open?.socket !== socket) return;
      const why = event.reason || (event.code === 1006 ? "the connection was lost" : "");
      terminal.write(`\r\n[console closed${why ? ": " + why : ""}]\r\n`);
      state.textContent = `The console closed${why ? ": " + why : ""}.`;
      open.closed = true;
      offer();
    };
    terminal.onData((keys) => { if (socket.readyState === WebSocket.OPEN) socket.send(keys); });
    terminal.focus();
    open = { socket, terminal, closed: false };
    offer();
  };
  const disconnect = () => {
    if (!open) return;
    const { socket, terminal } = open;
    open = null;
    socket.close();
    terminal.dispose();
  };
  const offer = () => {  // Reconnect for a running VM whose console is not open; Close while it is
    const running = Boolean(ctx.data && ctx.data.running);
    close.hidden = !open || open.closed;
    reconnect.hidden = !running || (open && !open.closed);
  };
  reconnect.onclick = connect;
  close.onclick = () => { wanted = false; disconnect(); $("#terminal").replaceChildren(); state.textContent = "Closed."; offer(); };
  ctx.watch((vm) => {
    $("#vm-screen").dataset.vm = vm.running ? vm.name : "";  // screen.js fills the slot
    if (!vm.running) state.textContent = open ? state.textContent : `${vm.name} is not running: start it to use its console.`;
    if (vm.running && !open && wanted) connect();
    offer();
  });
});

// -- networks ------------------------------------------------------------------------------------------
objectPages.network.overview.push(
  factsTab("net-facts", (n) => [["State", n.active ? "active" : "inactive"], ["Autostart", hook("autostart", "network", n) ?? yesNo(n.autostart)],
    ["Persistent", yesNo(n.persistent)], ["Mode", n.mode + (n.dev ? ` via ${n.dev}` : "")], ["Bridge", n.bridge],
    ["IPv4", n.subnet ? `${n.subnet} (gateway ${n.gateway})` : "-"], ["DHCP", n.dhcp_range], ["IPv6", n.ipv6],
    ["Domain", n.domain], ["MTU", n.mtu], ["Leases", n.leases]]),
  actionsTab("net-actions", (n, ctx) => [
    button(n.active ? "Stop" : "Start", () => act(() => (n.active  // start re-plugs the NICs of its running guests
      ? askFirst(ctx, { action: "stop", title: `Stop network ${n.name}?`, confirmLabel: "Stop network", path: `${ctx.path}/actions/stop` })
      : api("POST", `${ctx.path}/actions/start`)))),
    ...(hook("networkActions", n) || [])]),
);

objectPages.network.devices.push((ctx) => {
  const ranges = el("table", { id: "net-ranges", "data-empty": "No IP addresses: the network only bridges." });
  const hosts = el("table", { id: "net-hosts", "data-empty": "No static hosts." });
  const leases = el("table", { id: "net-leases", "data-empty": "No leases yet." });
  const note = el("p", { class: "hint", id: "net-leases-note" });
  ctx.watch((n) => {
    table(ranges, [["Address", (a) => a.address], ["Family", (a) => a.family],
      ["DHCP ranges", (a) => a.dhcp_ranges.join(", ") || "none"]], n.addresses, (a) => ({ "data-address": a.address }));
    table(hosts, [["Known by", knownBy], ["IP", (h) => h.ip], ["Name", (h) => h.name]],
      n.addresses.flatMap((a) => a.hosts), (h) => ({ "data-mac": h.mac, "data-ip": h.ip }));
  });
  const drawLeases = async () => {
    if (!ctx.data) return;
    note.textContent = ctx.data.active ? "" : "The network is not running, so it has no leases.";
    leases.hidden = !ctx.data.active;
    if (!ctx.data.active) return;
    const found = await api("GET", `${ctx.path}/leases`);
    table(leases, [["MAC", (l) => l.mac], ["IP", (l) => `${l.ip}/${l.prefix}`], ["Host name", (l) => l.hostname],
      ["Expires", (l) => new Date(l.expiry_time * 1000).toLocaleString()], ["Type", (l) => l.type]], found, (l) => ({ "data-mac": l.mac }));
  };
  ctx.watch(drawLeases);
  ctx.poll(drawLeases);
  return el("div", {}, el("h3", {}, "Addresses"), ranges, el("h3", {}, "Static hosts"), hosts,
    el("h3", {}, "Leases"), note, leases);
});

// Edit: the fields that differ from the network as it was shown go to the core, which answers with a
// plan; a plan that restarts the network runs only when the operator applies it. The form is filled
// once (a live redraw does not overwrite what is being typed), again after a change is done or on Reset.
objectPages.network.settings.push((ctx) => {
  const form = $("#net-edit"), outcome = $("#net-edit-outcome"), plan = $("#net-edit-plan"), apply = $("#net-edit-apply");
  let shown = null, changes = null;
  const fill = (n) => {
    shown = n;
    form.reset();
    form.hidden = n.mode === "bridge";  // a bridge network has no addresses or mode of its own to edit
    form.subnet.value = n.subnet || "";
    form.gateway.value = n.gateway || "";
    form.dhcp_enabled.checked = Boolean(n.dhcp_start);
    form.dhcp_start.value = n.dhcp_start || "";
    form.dhcp_end.value = n.dhcp_end || "";
    form.ipv6.value = n.ipv6 || "";
    form.mode.value = n.mode;
    form.dev.value = n.dev || "";
    form.ipv6_guests.checked = Boolean(n.ipv6_guests);
    form.nat_ipv6.checked = Boolean(n.nat_ipv6);
    $("#net-edit-fields").disabled = false;  // filled: now they can be changed and sent
    $("button[type=submit]", form).disabled = false;
  };
  const wanted = () => {
    const v = formValues(form), n = shown, body = {};
    if ((v.subnet || "") !== (n.subnet || "")) body.subnet = v.subnet;
    if ((v.gateway || "") !== (n.gateway || "")) body.gateway = v.gateway;
    if (!v.dhcp_enabled && n.dhcp_start) body.dhcp = false;
    else if (v.dhcp_enabled && (v.dhcp_start !== n.dhcp_start || v.dhcp_end !== n.dhcp_end)) body.dhcp = `${v.dhcp_start || ""}-${v.dhcp_end || ""}`;
    if ((v.ipv6 || "") !== (n.ipv6 || "")) body.ipv6 = v.ipv6 || "";  // emptied: the IPv6 address goes
    if (v.mode !== n.mode) body.mode = v.mode;
    if ((v.dev || "") !== (n.dev || "")) body.dev = v.dev || "";
    for (const flag of ["ipv6_guests", "nat_ipv6"]) if (v[flag] !== Boolean(n[flag])) body[flag] = v[flag];
    return body;
  };
  const send = async (yes) => {
    const answer = await api("POST", `${ctx.path}/edit`, { ...changes, yes });
    const steps = answer.plan.steps;
    plan.replaceChildren(...steps.map((step) => el("li", {}, step)));
    outcome.textContent = !steps.length ? "Nothing to change." : answer.done ? "Done:" : "Plan (nothing changed yet):";
    apply.hidden = answer.done;
    if (answer.done) { await ctx.refresh(); fill(ctx.data); }
  };
  form.onsubmit = (event) => { event.preventDefault(); changes = wanted(); whileBusy(form, () => act(() => send(false))); };
  // A restart cuts the running guests' NICs off for a moment: asked first, with the core's cost.
  apply.onclick = () => whileBusy(form, () => act(async () => {
    const asked = await confirmImpact(`${ctx.path}/impact?action=restart`, { title: `Restart network ${ctx.name}?`, confirmLabel: "Restart network" });
    if (asked) await send(true);
  }));
  $("#net-edit-reset").onclick = () => { fill(ctx.data); plan.replaceChildren(); outcome.textContent = ""; apply.hidden = true; };
  ctx.watch((n) => { if (!shown) fill(n); });
});

objectPages.network.settings.push(actionsTab("net-settings-actions", (n, ctx) => [
  button("Delete", () => act(async () => {
    const done = await askFirst(ctx, { action: "delete", method: "DELETE", title: `Delete network ${n.name}?`, confirmLabel: "Delete network" });
    if (done) ctx.gone();
  }))]));

objectPages.network.xml.push(xmlTab((ctx) => `${ctx.name}_net.xml`));

// -- pools and volumes ------------------------------------------------------------------------------------
objectPages.pool.overview.push(
  factsTab("pool-facts", (p) => [["Type", p.type], ["State", p.state], ["Autostart", hook("autostart", "pool", p) ?? yesNo(p.autostart)],
    ["Capacity", size(p.capacity)], ["Allocation", size(p.allocation)], ["Available", size(p.available)], ["Usage", usageBar(p)],
    ["Target", p.target], ["Source", p.source_host ? `${p.source_host}:${p.source_path}` : "-"]]),
  actionsTab("pool-actions", (p, ctx) => [
    button(p.active ? "Stop" : "Start", () => act(() => (p.active
      ? askFirst(ctx, { action: "stop", title: `Stop pool ${p.name}?`, confirmLabel: "Stop pool", path: `${ctx.path}/actions/stop` })
      : api("POST", `${ctx.path}/actions/start`)))),
    p.active ? button("Refresh", () => act(() => api("POST", `${ctx.path}/actions/refresh`))) : null,
    ...(hook("poolActions", p) || [])]),
);

objectPages.pool.devices.push((ctx) => {
  const form = $("#volume-form");
  sendForm(ctx, form, async (values) => { await api("POST", `${ctx.path}/volumes`, values); form.reset(); });
  let shown = null;
  const drawVolumes = async (p, quiet = false) => {  // quiet (a poll): redrawn only when they changed
    form.hidden = !p.active;
    $("#volumes").dataset.empty = p.active ? "No volumes in this pool yet — make one below."
      : "The pool is not running: start it to see its volumes.";
    const vols = p.active ? await api("GET", `${ctx.path}/volumes`) : [];
    const text = JSON.stringify(vols);
    if (quiet && text === shown) return;
    shown = text;
    table($("#volumes"), [
      ["Name", (v) => el("a", { href: pageOf("volume", v.name, v.pool) }, v.name)], ["Format", (v) => v.format],
      ["Capacity", (v) => size(v.capacity)], ["Allocation", (v) => size(v.allocation)], ["Path", (v) => v.path],
      ["Used by", (v) => v.used_by.join(", ") || "-"],
      ["", (v) => el("span", {}, ...(hook("volumeActions", v) || []), button("Delete", () => act(async () => {
        if (await deleteVolume(v)) await ctx.refresh();
      })))],
    ], vols, (v) => ({ "data-name": v.name }));
  };
  ctx.watch((p) => drawVolumes(p));
  ctx.poll(() => ctx.data && ctx.data.active && drawVolumes(ctx.data, true));  // another client's volumes too
});

objectPages.pool.settings.push(actionsTab("pool-settings-actions", (p, ctx) => [
  button("Delete", () => act(async () => {  // a pool with volumes: the core's two ways (delete them too, or keep the data)
    const done = await askFirst(ctx, { action: "delete", method: "DELETE", title: `Delete pool ${p.name}?`, confirmLabel: "Delete pool" });
    if (done) ctx.gone();
  }))]));

objectPages.pool.xml.push(xmlTab((ctx) => `${ctx.name}_pool.xml`));

// A volume's delete, from its pool's page or its own: the core says which VMs lose a disk.
function deleteVolume(v) {
  const path = `/api/pools/${uriName(v.pool)}/volumes/${uriName(v.name)}`;
  return disruptive({ impact: `${path}/impact`, title: `Delete volume ${v.pool}/${v.name}?`, confirmLabel: "Delete volume", method: "DELETE", path });
}

objectPages.volume.overview.push(factsTab("volume-facts", (v) => [["Pool", el("a", { href: pageOf("pool", v.pool) }, v.pool)],
  ["Format", v.format], ["Capacity", size(v.capacity)], ["Allocation", size(v.allocation)], ["Path", v.path],
  ["Used by", v.used_by.length ? el("span", {}, ...v.used_by.flatMap((vm, i) => [i ? " " : "", el("a", { href: pageOf("vm", vm) }, vm)])) : "-"]]));

objectPages.volume.settings.push(actionsTab("volume-settings-actions", (v, ctx) => [
  ...(hook("volumeActions", v) || []),
  button("Delete", () => act(async () => {
    if (await deleteVolume(v)) location.href = pageOf("pool", v.pool) + "/devices";
  }))]));

objectPages.volume.xml.push(xmlTab((ctx) => `${ctx.pool}_${ctx.name}_vol.xml`));
