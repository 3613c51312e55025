// The people page: one waiting image at a time, answered by a click or a key. The token comes from the
// address's fragment (#token=..., never sent to the server in a URL) or the sign-in form, and is kept
// for this tab only. Seconds are timed from the moment the image is shown to the answer.
"use strict";

const KEYS = "1234567890qwertyuiop";  // shortcut per class, in label order
const POLL_MS = 1000;
let token = null;
let classes = [];
let lookId = null;
let shownAt = null;
let answered = 0;
let busy = false;
let lastError = "";

function $(id) { return document.getElementById(id); }
function say(text) { $("status").textContent = text; }

async function call(path, options = {}) {
  const headers = Object.assign({ "Authorization": "Bearer " + token }, options.headers || {});
  const response = await fetch(path, Object.assign({}, options, { headers }));
  const body = await response.json().catch(() => ({ error: "the server sent no JSON" }));
  if (!response.ok) { throw Object.assign(new Error(body.error || response.statusText), { status: response.status }); }
  return body;
}

function tokenFromAddress() {
  const match = window.location.hash.match(/token=([^&]+)/);
  if (match) {
    sessionStorage.setItem("hgen-token", decodeURIComponent(match[1]));
    history.replaceState(null, "", window.location.pathname);  // the token leaves the address bar
  }
  return sessionStorage.getItem("hgen-token");
}

function drawButtons() {
  const box = $("classes");
  box.replaceChildren();
  classes.forEach((name, label) => {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.label = String(label);
    const key = document.createElement("kbd");
    key.textContent = KEYS[label] || "";
    button.append(key, name);
    button.addEventListener("click", () => answer(label));
    box.append(button);
  });
}

async function next() {
  try {
    const look = await call("/v1/people/next");
    if (!look.look_id) {
      lookId = null;
      $("task").hidden = true;
      say((lastError ? lastError + " " : "") + "Nothing is waiting for you. This page checks again every second.");
      lastError = "";
      setTimeout(next, POLL_MS);
      return;
    }
    lookId = null;  // no answer counts until the image is on screen: its seconds start there
    $("image").onload = () => { lookId = look.look_id; shownAt = performance.now(); };
    $("image").src = look.image;
    $("task").hidden = false;
    say(lastError);
    lastError = "";
  } catch (error) {
    say("Cannot fetch the next image: " + error.message);
    setTimeout(next, POLL_MS * 3);
  }
}

async function answer(label) {
  if (!lookId || busy) { return; }
  busy = true;
  const seconds = (performance.now() - shownAt) / 1000;
  try {
    await call("/v1/people/answer", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ look_id: lookId, label, seconds }),
    });
    answered += 1;
    $("answered").textContent = String(answered);
  } catch (error) {
    lastError = error.message;  // shown with the next image, which would otherwise clear it
  } finally {
    busy = false;
    lookId = null;
    next();
  }
}

function onKey(event) {
  if (event.ctrlKey || event.altKey || event.metaKey || event.repeat) { return; }  // a shortcut, or a held key
  const label = KEYS.indexOf(event.key);
  if (label >= 0 && label < classes.length) { answer(label); }
}

async function start() {
  token = tokenFromAddress();
  if (!token) {
    $("sign-in").hidden = false;
    return;
  }
  try {
    const me = await call("/v1/people/me");
    classes = me.classes;
    $("who").textContent = "Signed in as " + me.person + ".";
    $("sign-in").hidden = true;
    drawButtons();
    document.addEventListener("keydown", onKey);
    next();
  } catch (error) {
    sessionStorage.removeItem("hgen-token");
    $("sign-in").hidden = false;
    say("Sign-in failed: " + error.message);
  }
}

// Another person's link opened in this tab (only the fragment changes): start again as them.
window.addEventListener("hashchange", () => { if (window.location.hash.includes("token=")) { window.location.reload(); } });
$("sign-in").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem("hgen-token", $("token").value.trim());
  start();
});
start();
