// A VM's screen on its page: a thumbnail (GET /api/vms/NAME/screenshot) and, on demand, the live
// display in noVNC (from npm) over the WebSocket /api/vms/NAME/vnc that `serve` joins to the VM's
// VNC server. The pages only mark a slot: <section data-vm-screen data-vm="NAME">; this module
// fills it whenever data-vm changes (empty: no VM, or not running). A VM without a graphical screen
// (the API's 422 to the first screenshot) is said to have none, and asked no more.
import RFB from "/vendor/@novnc/novnc/core/rfb.js";

const THUMBNAIL_WIDTH = 320;
const THUMBNAIL_EVERY_MS = 10_000;

function node(tag, attributes = {}, ...children) {
  const made = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) made.setAttribute(key, value);
  made.append(...children);
  return made;
}

function screenUrl(name, path) {
  const api = document.body.dataset.api || "/api";  // a fleet's host page: /api/hosts/NAME
  return `${api}/vms/${encodeURIComponent(name)}/${path}`;
}

class ScreenSlot {
  constructor(slot) {
    this.slot = slot;
    this.name = "";
    this.rfb = null;
    this.timer = null;
  }

  show(name) {
    if (name === this.name) return;
    this.close();
    this.name = name;
    this.slot.replaceChildren();
    this.slot.hidden = true;
    if (!name) return;
    const thumbnail = node("img", { class: "vm-thumbnail", alt: `screen of ${name}`, width: THUMBNAIL_WIDTH });
    const open = node("button", { type: "button" }, "Screen");
    const keys = node("button", { type: "button", disabled: "" }, "Send Ctrl-Alt-Del");
    const shut = node("button", { type: "button", hidden: "" }, "Close screen");
    const status = node("span", { class: "vm-screen-status", role: "status" });
    const display = node("div", { class: "vm-display", hidden: "" });
    this.parts = { thumbnail, open, keys, shut, status, display };
    open.onclick = () => this.connect();
    keys.onclick = () => this.rfb && this.rfb.sendCtrlAltDel();
    shut.onclick = () => this.disconnect();
    this.slot.append(node("h3", {}, "Screen"), thumbnail,
      node("div", { class: "actions" }, open, keys, shut, status), display);
    this.refreshThumbnail();
    this.timer = setInterval(() => this.refreshThumbnail(), THUMBNAIL_EVERY_MS);
  }

  async refreshThumbnail() {
    if (this.rfb || !this.name) return;
    const name = this.name, { thumbnail } = this.parts;
    const answer = await fetch(`${screenUrl(name, "screenshot")}?width=${THUMBNAIL_WIDTH}`, { cache: "no-store" }).catch(() => null);
    if (name !== this.name || this.rfb) return;  // another VM, or the live display, meanwhile
    if (answer && answer.status === 422) { this.noScreen(); return; }
    if (!answer || !answer.ok) { this.slot.hidden = true; return; }  // it stopped, or the server went away
    const picture = URL.createObjectURL(await answer.blob());
    thumbnail.onload = () => { URL.revokeObjectURL(picture); this.slot.hidden = false; };
    thumbnail.src = picture;
  }

  // The VM has no graphics device: said once, and no more screenshots asked for while it runs.
  noScreen() {
    clearInterval(this.timer);
    this.timer = null;
    this.slot.replaceChildren(node("h3", {}, "Screen"), node("p", { class: "vm-screen-status", role: "status" }, "No graphical screen: this VM has a serial console only."));
    this.slot.hidden = false;
  }

  connect() {
    const { thumbnail, open, keys, shut, status, display } = this.parts;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    display.hidden = false;
    display.replaceChildren();
    this.rfb = new RFB(display, `${scheme}://${location.host}${screenUrl(this.name, "vnc")}`);
    this.rfb.scaleViewport = true;
    this.rfb.addEventListener("connect", () => { status.textContent = "connected"; keys.disabled = false; this.rfb.focus(); });
    this.rfb.addEventListener("disconnect", (event) => {
      status.textContent = event.detail.clean ? "display closed" : "display lost";
      this.rfb = null;
      keys.disabled = true;
      open.hidden = false;
      shut.hidden = true;
      thumbnail.hidden = false;
      this.refreshThumbnail();
    });
    thumbnail.hidden = true;
    open.hidden = true;
    shut.hidden = false;
    status.textContent = "connecting";
  }

  disconnect() {
    if (this.rfb) this.rfb.disconnect();
    this.parts.display.hidden = true;
  }

  close() {
    clearInterval(this.timer);
    if (this.rfb) this.rfb.disconnect();
    this.rfb = null;
  }
}

const slots = new WeakMap();
function update(slot) {
  if (!slots.has(slot)) slots.set(slot, new ScreenSlot(slot));
  slots.get(slot).show(slot.dataset.vm || "");
}

function watch() {
  document.querySelectorAll("[data-vm-screen]").forEach(update);
  new MutationObserver((changes) => {
    for (const change of changes) {
      if (change.type === "attributes" && change.target.matches("[data-vm-screen]")) update(change.target);
      for (const added of change.addedNodes || []) {
        if (added.nodeType !== 1) continue;
        if (added.matches("[data-vm-screen]")) update(added);
        added.querySelectorAll("[data-vm-screen]").forEach(update);
      }
    }
  }).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-vm"] });
}

watch();
