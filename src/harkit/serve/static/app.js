// harkit live page: one WebSocket to /stream, the signal and the activity drawn on canvases.
// Nothing is loaded from elsewhere. The latest event is also kept in data attributes of
// #activity (label, decision, window, end, confidence) and the page state in <body
// data-state>, so tests and scripts can read what is shown.
"use strict";

(function () {
  const PALETTE = ["#1d4ed8", "#b91c1c", "#15803d", "#a16207", "#7e22ce", "#0e7490",
                   "#be185d", "#4d7c0f", "#c2410c", "#334155", "#0369a1", "#86198f"];
  const SIGNAL_COLORS = ["#1d4ed8", "#b91c1c", "#15803d"];
  const MAX_CHANNELS_SHOWN = 3;
  const SIGNAL_SECONDS = 10;
  const MAX_EVENTS = 120;  // windows shown on the timeline

  const params = new URLSearchParams(location.search);
  const $ = (id) => document.getElementById(id);
  const body = document.body;
  const activity = $("activity");

  let info = null;              // the server's hello message
  let ring = [];                // per shown channel: Float32Array ring buffer of samples
  let ringLen = 0, ringPos = 0; // samples held, next write position
  const events = [];            // recent events, oldest first
  let nEvents = 0;
  let dirty = false;

  function setState(state, text) {
    body.dataset.state = state;
    $("status").textContent = text || state;
  }

  function showMessage(text) { $("message").textContent = text || ""; }

  function classColor(label) {
    const i = info ? info.classes.indexOf(label) : -1;
    return i < 0 ? "#9ca3af" : PALETTE[i % PALETTE.length];
  }

  function legend(el, items) {
    el.replaceChildren();
    for (const [name, color] of items) {
      const span = document.createElement("span");
      const sw = document.createElement("i");
      sw.style.background = color;
      span.append(sw, document.createTextNode(name));  // text, never markup
      el.append(span);
    }
  }

  function onHello(msg) {
    info = msg;
    const shown = Math.min(MAX_CHANNELS_SHOWN, msg.channels.length);
    const cap = Math.max(2 * msg.window_len, Math.round(msg.sampling_rate * SIGNAL_SECONDS));
    ring = Array.from({ length: shown }, () => new Float32Array(cap));
    ringLen = 0; ringPos = 0;
    $("model").textContent = msg.model + " \u00b7 " + msg.classes.length + " classes \u00b7 " +
      msg.channels.length + " channels \u00b7 " + msg.sampling_rate + " Hz";
    legend($("signal-legend"), msg.channels.slice(0, shown).map((c, i) => [c, SIGNAL_COLORS[i]]));
    legend($("timeline-legend"), msg.classes.map((c) => [c, classColor(c)]));
    $("demo").disabled = !msg.demo;
    setState("ready", "connected");
    if (params.get("demo") === "1") {
      if (msg.demo) startDemo();
      else showMessage("this server has no demo recording (start it with --demo)");
    }
  }

  function onSamples(rows) {
    if (!ring.length) return;
    const cap = ring[0].length;
    for (const row of rows) {
      for (let c = 0; c < ring.length; c++) ring[c][ringPos] = row[c];
      ringPos = (ringPos + 1) % cap;
      ringLen = Math.min(ringLen + 1, cap);
    }
    dirty = true;
  }

  function onEvent(ev) {
    events.push(ev);
    if (events.length > MAX_EVENTS) events.shift();
    nEvents += 1;
    body.dataset.events = String(nEvents);
    activity.textContent = ev.decision;
    activity.style.color = classColor(ev.decision);
    activity.dataset.label = ev.label;
    activity.dataset.decision = ev.decision;
    activity.dataset.window = String(ev.window);
    activity.dataset.end = String(ev.end);
    activity.dataset.confidence = String(ev.decision_confidence);
    const pct = (100 * ev.decision_confidence).toFixed(1) + "%";
    $("confidence").textContent = "confidence " + pct +
      (ev.label !== ev.decision ? " (this window alone: " + ev.label + ")" : "");
    $("confidence-bar").style.width = pct;
    $("window-info").textContent = "window " + ev.window + ", samples " + ev.start + "\u2013" +
      ev.end + ", t = " + ev.timestamp.toFixed(2) + " s";
    dirty = true;
  }

  function fitCanvas(canvas) {
    const ratio = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(canvas.clientWidth * ratio));
    const h = Math.max(1, Math.round(canvas.clientHeight * ratio));
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    return [w, h];
  }

  function drawSignal() {
    const canvas = $("signal");
    const [w, h] = fitCanvas(canvas);
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, w, h);
    if (!ringLen) return;
    const cap = ring[0].length;
    let lo = Infinity, hi = -Infinity;
    for (const buf of ring) {
      for (let i = 0; i < ringLen; i++) {
        const v = buf[(ringPos - ringLen + i + cap) % cap];
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    }
    if (hi - lo < 1e-9) { hi += 1; lo -= 1; }
    const pad = 0.08 * (hi - lo);
    lo -= pad; hi += pad;
    ctx.strokeStyle = "#e5e7eb";
    ctx.beginPath();
    const zero = h - ((0 - lo) / (hi - lo)) * h;
    if (zero > 0 && zero < h) { ctx.moveTo(0, zero); ctx.lineTo(w, zero); }
    ctx.stroke();
    ctx.lineWidth = Math.max(1, (window.devicePixelRatio || 1) * 1.2);
    ring.forEach((buf, c) => {
      ctx.strokeStyle = SIGNAL_COLORS[c];
      ctx.beginPath();
      for (let i = 0; i < ringLen; i++) {
        const v = buf[(ringPos - ringLen + i + cap) % cap];
        const x = w - ((ringLen - 1 - i) / (cap - 1)) * w;  // newest sample at the right edge
        const y = h - ((v - lo) / (hi - lo)) * h;
        if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
      }
      ctx.stroke();
    });
  }

  function drawTimeline() {
    const canvas = $("timeline");
    const [w, h] = fitCanvas(canvas);
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, w, h);
    if (!events.length) return;
    const slot = w / MAX_EVENTS;
    const offset = MAX_EVENTS - events.length;  // newest event at the right edge
    events.forEach((ev, i) => {
      const barH = Math.max(2, ev.decision_confidence * (h - 4));
      ctx.fillStyle = classColor(ev.decision);
      ctx.fillRect((offset + i) * slot, h - barH, Math.max(1, slot - 1), barH);
      if (ev.changed) {  // a tick where the decision changes
        ctx.fillStyle = "#111827";
        ctx.fillRect((offset + i) * slot, 0, Math.max(1, slot - 1), 4);
      }
    });
  }

  function frame() {
    if (dirty) { dirty = false; drawSignal(); drawTimeline(); }
    requestAnimationFrame(frame);
  }

  // --- the socket -------------------------------------------------------------------------
  const query = new URLSearchParams();
  for (const k of ["smoothing", "k", "margin", "threshold", "hop", "unknown"]) {
    if (params.has(k)) query.set(k, params.get(k));
  }
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host +
    "/stream" + (query.toString() ? "?" + query.toString() : "");
  const ws = new WebSocket(url);

  function startDemo() {
    const speed = Number(params.get("speed") || $("speed").value) || 1;
    ws.send(JSON.stringify({ type: "demo", speed: speed }));
  }

  ws.addEventListener("message", (e) => {
    let msg;
    try { msg = JSON.parse(e.data); } catch (err) { showMessage("bad message from server"); return; }
    switch (msg.type) {
      case "hello": onHello(msg); break;
      case "samples": onSamples(msg.samples); break;
      case "event": onEvent(msg); break;
      case "demo_start":
        events.length = 0; ringLen = 0; ringPos = 0; dirty = true;
        $("stop").disabled = false;
        showMessage("");
        setState("demo", "demo \u00d7" + msg.speed);
        break;
      case "demo_end":
        $("stop").disabled = true;
        setState("done", msg.stopped ? "demo stopped" : "demo finished");
        break;
      case "reset": events.length = 0; ringLen = 0; ringPos = 0; dirty = true; break;
      case "error": showMessage(msg.message); break;
      default: break;
    }
  });
  ws.addEventListener("close", (e) => {
    $("demo").disabled = true; $("stop").disabled = true;
    setState("closed", "disconnected" + (e.reason ? ": " + e.reason : ""));
  });
  ws.addEventListener("error", () => showMessage("cannot reach " + url));

  $("demo").addEventListener("click", startDemo);
  $("stop").addEventListener("click", () => ws.send(JSON.stringify({ type: "stop" })));
  if (params.has("speed")) {
    const sel = $("speed");
    const want = params.get("speed");
    if (![...sel.options].some((o) => o.value === want)) sel.add(new Option(want, want));
    sel.value = want;
  }
  window.addEventListener("resize", () => { dirty = true; });
  requestAnimationFrame(frame);
})();
