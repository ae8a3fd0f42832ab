// The emulator's console: plain JavaScript, no build step. Every value
// from the emulator goes into the page as text (textContent), never as
// HTML, so usernames, transaction texts and refused paths cannot inject
// markup. Changes are sent with the X-Authphone-Console header, which a
// cross-site form cannot set.
"use strict";

const headers = { "X-Authphone-Console": "1" };
let lastEventID = 0;
let refreshTimer = null;

function el(tag, props, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return e;
}

function showError(msg) {
  const p = document.getElementById("error");
  p.textContent = msg;
  p.hidden = !msg;
}

async function api(method, path) {
  const r = await fetch(path, { method, headers, credentials: "same-origin" });
  if (r.status === 401) {
    location.assign("/console");
    throw new Error("signed out");
  }
  if (!r.ok) {
    let msg = r.statusText;
    try { msg = (await r.json()).message || msg; } catch (_) {}
    throw new Error(msg);
  }
  return r.status === 204 ? null : r.json();
}

function statusCell(status, reason) {
  return el("td", { class: "status status-" + status }, reason ? status + " (" + reason + ")" : status);
}

function time(t) {
  return t ? new Date(t).toLocaleTimeString() : "";
}

function action(label, fn, cls) {
  return el("button", { type: "button", class: cls || "", onclick: async (ev) => {
    ev.target.disabled = true;
    try { await fn(); showError(""); } catch (e) { showError(label + ": " + e.message); }
    ev.target.disabled = false;
    refresh();
  } }, label);
}

function renderUsers(users) {
  const body = document.querySelector("#users tbody");
  body.replaceChildren(...users.map((u) => {
    const auths = el("ul");
    for (const a of u.authenticators || []) {
      auths.append(el("li", { "data-authenticator-id": a.authenticatorId },
        (a.name || "unnamed") + " · " + (a.authenticatorType || a.type || "") + " ",
        el("span", { class: "mono" }, a.authenticatorId), " ",
        action("Remove", () => api("DELETE", "/api/v1/authenticators/" + encodeURIComponent(a.authenticatorId)))));
    }
    return el("tr", { "data-user-id": u.userId },
      el("td", { class: "username" }, u.username || ""), el("td", { class: "mono" }, u.userId),
      el("td", {}, u.status), el("td", {}, auths));
  }));
}

function renderOperations(ops) {
  const pending = ops.filter((o) => o.status === "pending");
  const cards = document.getElementById("pending");
  if (pending.length === 0) {
    cards.replaceChildren(el("p", { class: "empty" }, "Nothing is waiting."));
  } else {
    cards.replaceChildren(...pending.map((o) => {
      const card = el("div", { class: "card", "data-op-id": o.id },
        el("strong", {}, o.kind + " for " + (o.username || o.userId || "?")));
      if (o.qrCode && /^data:image\/png;base64,[A-Za-z0-9+/=]+$/.test(o.qrCode.dataUri)) {
        card.append(el("img", { class: "qr", src: o.qrCode.dataUri, alt: "QR code of " + o.kind }));
      }
      if (o.message) card.append(el("div", { class: "text" }, o.message));
      if (o.appLink) card.append(el("div", { class: "mono" }, o.appLink));
      card.append(el("div", {}, "expires " + time(o.expiresAt) + " · inbox " + (o.inbox || []).length + " "),
        action("Expire", () => api("POST", "/api/v1/admin/operations/" + encodeURIComponent(o.id) + "/expire")));
      return card;
    }));
  }
  const body = document.querySelector("#operations tbody");
  body.replaceChildren(...ops.slice().reverse().slice(0, 100).map((o) =>
    el("tr", { "data-op-id": o.id },
      el("td", {}, time(o.createdAt)), el("td", {}, o.kind), statusCell(o.status, o.reason),
      el("td", {}, o.username || ""), el("td", { class: "message" }, o.message || ""), el("td", { class: "mono" }, o.id))));
}

function details(e) {
  const parts = [];
  if (e.operationId) parts.push("op " + e.operationId);
  if (e.status) parts.push(e.status);
  if (e.reason) parts.push(e.reason);
  for (const [k, v] of Object.entries(e.data || {})) parts.push(k + "=" + v);
  return parts.join(" · ");
}

function addEvent(e) {
  if (e.id <= lastEventID) return;
  lastEventID = e.id;
  const body = document.querySelector("#events tbody");
  body.prepend(el("tr", { "data-event-id": String(e.id) },
    el("td", {}, String(e.id)), el("td", {}, time(e.time)), el("td", { class: "type" }, e.type),
    el("td", {}, e.username || ""), el("td", { class: "details" }, details(e))));
  while (body.children.length > 500) body.lastChild.remove();
}

async function refresh() {
  clearTimeout(refreshTimer);
  refreshTimer = null;
  try {
    const [users, ops, state] = await Promise.all([api("GET", "/api/v1/users"),
      api("GET", "/api/v1/admin/operations?status=all&qr=true"), api("GET", "/api/v1/admin/state")]);
    renderUsers(users.users || []);
    renderOperations(ops.operations || []);
    document.getElementById("summary").textContent = state.users + " users · " + state.authenticators +
      " authenticators · " + state.pendingOperations + " pending";
  } catch (e) {
    showError(e.message);
  }
}

function soon() {
  if (!refreshTimer) refreshTimer = setTimeout(refresh, 50);
}

function follow() {
  const live = document.getElementById("live");
  const es = new EventSource("/api/v1/admin/events/stream?since=" + lastEventID);
  es.onopen = () => { live.textContent = "live"; };
  es.onmessage = (m) => {
    addEvent(JSON.parse(m.data));
    soon();
  };
  es.onerror = () => { live.textContent = "reconnecting…"; };
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("reset").onclick = async () => {
    try { await api("POST", "/api/v1/admin/reset"); showError(""); } catch (e) { showError("Reset: " + e.message); }
    refresh();
  };
  refresh();
  follow();
});
