// people.js — presence: your identity (name + colour, kept in localStorage)
// and the list of everyone in the workspace with the file they have open.

import { el } from "./ui.js";
import { initial } from "./feed.js";

const COLORS = ["#e91e63", "#9c27b0", "#3f51b5", "#0288d1", "#00897b", "#43a047", "#f4511e", "#6d4c41", "#c2185b", "#5e35b1"];
const ADJECTIVES = ["Brave", "Calm", "Clever", "Curious", "Eager", "Gentle", "Happy", "Jolly", "Kind", "Lucky", "Quick", "Witty"];
const ANIMALS = ["Otter", "Fox", "Panda", "Owl", "Lynx", "Heron", "Koala", "Badger", "Falcon", "Yak", "Gecko", "Puffin"];

const pick = (list) => list[Math.floor(Math.random() * list.length)];

/**
 * This tab's presence identity: {name, color}. Each tab is its own person
 * (two windows side by side is how the demo is tried), so it lives in
 * sessionStorage; a name the user chose is remembered in localStorage as the
 * default for new tabs. `?name=` in the URL wins (handy for demos and tests).
 */
export function loadIdentity() {
  let id = null;
  try { id = JSON.parse(sessionStorage.getItem("wsfs.identity") || "null"); } catch { id = null; }
  if (!id || typeof id.name !== "string" || typeof id.color !== "string") {
    id = { name: localStorage.getItem("wsfs.name") || `${pick(ADJECTIVES)} ${pick(ANIMALS)}`, color: pick(COLORS) };
  }
  const forced = new URLSearchParams(location.search).get("name");
  if (forced) id.name = forced.slice(0, 64);
  return id;
}

/** Keep this tab's identity; `chosen`: the user typed the name, make it the default. */
export function saveIdentity(id, { chosen = false } = {}) {
  sessionStorage.setItem("wsfs.identity", JSON.stringify({ name: id.name, color: id.color }));
  if (chosen) localStorage.setItem("wsfs.name", id.name);
}

export { COLORS };

export class People {
  /**
   * @param {HTMLElement} list   the <ul> in the side panel
   * @param {HTMLElement} strip  the avatar strip in the top bar
   * @param {object} hooks {me() -> {name, color, file}, open(path), editName()}
   */
  constructor(list, strip, hooks) {
    this.list = list;
    this.strip = strip;
    this.hooks = hooks;
  }

  render(peers) {
    const me = this.hooks.me();
    const others = [...peers.values()].filter((p) => p.name)
      .sort((a, b) => (a.name || "").localeCompare(b.name || ""));
    this.list.replaceChildren(
      this._row({ ...me, session: "me" }, true),
      ...others.map((p) => this._row(p, false)));
    const all = [me, ...others];
    const avatars = all.slice(0, 6).map((p) =>
      el("span", { class: "avatar", style: { background: p.color }, title: p.name }, initial(p.name)));
    if (all.length > 6) avatars.push(el("span", { class: "avatar more" }, `+${all.length - 6}`));
    this.strip.replaceChildren(...avatars);
    this.strip.setAttribute("aria-label", `${all.length} ${all.length === 1 ? "person" : "people"} here: ${all.map((p) => p.name).join(", ")}`);
  }

  _row(p, isMe) {
    const file = p.file
      ? el("button", { type: "button", class: "link", title: `Open ${p.file}`, onclick: () => this.hooks.open(p.file) }, p.file)
      : el("span", { class: "muted" }, "no file open");
    return el("li", { class: "person", "data-session": p.session, "data-name": p.name },
      el("span", { class: "avatar", style: { background: p.color || "#888" }, "aria-hidden": "true" }, initial(p.name)),
      el("span", { class: "person-text" },
        el("span", { class: "person-name" }, p.name || "?", isMe ? el("span", { class: "muted" }, " (you)") : null),
        el("span", { class: "person-file" }, file)),
      isMe ? el("button", { type: "button", class: "small", id: "edit-name", onclick: () => this.hooks.editName() }, "Rename") : null);
  }
}
