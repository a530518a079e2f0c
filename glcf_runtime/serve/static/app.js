// The live page of `glcf inspect --serve`: server-sent events for counters and records, the
// latest annotated frame fetched at most 10 times a second (one request in flight, frames in
// between are dropped), and a score timeline drawn on a <canvas>. No libraries, no CDN.
// Several cameras: a grid of tiles (tiles.js), one per camera, each with its own frame,
// verdict, counters and timeline; the totals, model card and gallery stay.
// With a token, the page was opened as /?token=T and the server set an HttpOnly cookie: every
// request below carries it, none carries the token.
"use strict";

(() => {
  const WINDOW_S = 300; // the timeline shows the last 5 minutes
  const FRAME_INTERVAL_MS = 100;
  const MAX_POINTS = 6000; // points kept for the timeline
  const THUMB_WIDTH = 360; // gallery images; a click opens the full-size frame
  const GALLERY_INTERVAL_MS = 2000; // the gallery changes at most this often (each change loads images)
  const RETRY_MS = 2000; // an event stream the browser gave up on (401, 503) is reopened after this
  const $ = (id) => document.getElementById(id);

  const points = []; // {t, score, anomalous, error} in arrival order
  let status = null;
  let lastFrame = -1;
  let latest = null; // the record of the frame on screen, else the last record
  let shownSeq = null; // seq of the frame on screen
  let galleryKey = "";
  let galleryTime = -Infinity;
  let events = null;
  let lastSeq = 0; // several cameras: the write the records received reach
  const glcf = { points, tiles: null }; // tiles: the grid of cameras (tiles.js)

  const fmt = (value, digits = 4) =>
    value === null || value === undefined ? "–" : Number(value).toPrecision(digits);
  const ms = (value) => (value === null || value === undefined ? "–" : `${value.toFixed(1)} ms`);

  function duration(seconds) {
    const s = Math.floor(seconds);
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return h ? `${h} h ${m} min` : m ? `${m} min ${s % 60} s` : `${s} s`;
  }

  function addRecords(records) {
    if (glcf.tiles) return glcf.tiles.add(records);
    for (const r of records) {
      if (r.frame !== undefined && r.frame <= lastFrame) continue;
      lastFrame = Math.max(lastFrame, r.frame ?? lastFrame);
      const t = r.timestamp ?? Date.now() / 1000; // error records carry no timestamp
      points.push({ t, score: r.score, anomalous: r.anomalous, error: Boolean(r.error) });
      if (r.error || shownSeq === null) latest = r;
    }
    trim(points);
  }

  function trim(points) { // the last WINDOW_S seconds, at most MAX_POINTS
    const newest = points.length ? points[points.length - 1].t : 0;
    while (points.length && points[0].t < newest - WINDOW_S) points.shift();
    if (points.length > MAX_POINTS) { // a fast loop: thin out, keep every anomalous point
      const thinned = points.filter((p, i) => i % 2 === 0 || p.anomalous || p.error);
      points.splice(0, points.length, ...thinned);
    }
  }

  function renderVerdict(box = $("verdict"), shown = latest) {
    if (!shown) return;
    const latest = shown;
    const threshold = status ? status.model.threshold : null;
    box.className = "verdict";
    if (latest.error) {
      box.textContent = `${latest.health ? `UNUSABLE (${latest.health})` : "ERROR"} frame ${latest.frame}: ${latest.error}`;
      box.classList.add("bad");
    } else if (latest.anomalous === null || threshold === null) {
      box.textContent = `NOT CALIBRATED · score ${fmt(latest.score)} · frame ${latest.frame}`;
    } else {
      const bad = latest.anomalous;
      box.textContent = `${bad ? "ANOMALOUS" : "GOOD"} · score ${fmt(latest.score)} ${bad ? "≥" : "<"} threshold ${fmt(threshold)} · frame ${latest.frame}`;
      box.classList.add(bad ? "bad" : "good");
    }
  }

  function renderCard(model) {
    const rows = [
      ["category", model.category], ["model", model.model], ["backend", model.runtime],
      ["precision", model.precision], ["input", model.input],
      ["score rule", `${model.score_rule} (branches: ${model.branch_mode}, ${model.normalisation} normalisation)`],
      ["Φ_L", `${model.backbone}, weights ${model.weights}` +
        (model.weights_sha256 ? ` (sha256 ${model.weights_sha256.slice(0, 12)}…)` : "")],
      ["region of interest", model.roi ? model.roi.join(", ") : "whole frame"],
      ["threshold", model.threshold === null ? "not calibrated" : fmt(model.threshold, 6)],
      ["threshold from", model.threshold_origin],
    ];
    const table = $("card");
    table.replaceChildren(...rows.map(([key, value]) => {
      const tr = document.createElement("tr");
      const th = document.createElement("th"), td = document.createElement("td");
      th.textContent = key;
      td.textContent = value ?? "–";
      tr.append(th, td);
      return tr;
    }));
  }

  function renderGallery(flagged) {
    const key = flagged.map((f) => f.id).join(",");
    const now = performance.now();
    if (key === galleryKey || now - galleryTime < GALLERY_INTERVAL_MS) return;
    galleryKey = key;
    galleryTime = now;
    const box = $("gallery");
    if (!flagged.length) return;
    box.replaceChildren(...flagged.map((f) => {
      const link = document.createElement("a");
      link.href = `flagged/${f.id}.jpg`;
      link.target = "_blank";
      link.title = "open full size";
      const img = document.createElement("img");
      img.src = `flagged/${f.id}.jpg?width=${THUMB_WIDTH}`;
      const camera = glcf.tiles ? `${f.camera} · ` : "";
      img.alt = `flagged frame ${f.frame}${camera && ` of ${f.camera}`}`;
      const caption = document.createElement("span");
      caption.textContent = `${camera}frame ${f.frame} · score ${fmt(f.score)}`;
      link.append(img, caption);
      return link;
    }));
  }

  function renderStatus(s) {
    status = s;
    $("category").textContent = s.model.category;
    $("frames").textContent = s.frames;
    $("anomalies").textContent = s.anomalies;
    const kinds = Object.entries(s.errors).map(([k, n]) => `${k} ${n}`).join(", ");
    $("errors").textContent = s.errors_total ? `${s.errors_total} (${kinds})` : "0";
    $("fps").textContent = s.fps.toFixed(1);
    $("p50").textContent = ms(s.latency_p50_ms);
    $("p95").textContent = ms(s.latency_p95_ms);
    $("reconnects").textContent = s.source.reconnects;
    $("uptime").textContent = duration(s.uptime_s);
    const several = s.cameras.length > 1;
    $("source").textContent = several ? `${s.cameras.length} cameras`
      : s.source.name ? `source ${s.source.name}` : "";
    const state = $("state");
    const down = s.running && !s.source.up;
    const what = several ? `camera down: ${(s.source.down || []).join(", ")}` : "source down";
    state.textContent = !s.running ? "stopped" : down ? what : "running";
    state.className = `pill ${!s.running ? "stopped" : down ? "down" : "running"}`;
    renderCard(s.model);
    renderGallery(s.flagged);
    if (glcf.tiles) glcf.tiles.render(s);
    else if (several) location.reload(); // a second camera appeared: the grid
    else renderVerdict();
  }

  function drawTimeline(canvas = $("timeline"), points = glcf.points) {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth, height = canvas.clientHeight;
    if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    const left = 52, right = width - 8, top = 8, bottom = height - 20;
    const threshold = status ? status.model.threshold : null;
    const scores = points.filter((p) => p.score !== null && p.score !== undefined);
    canvas.dataset.points = scores.length;
    let top_value = Math.max(threshold === null ? 0 : threshold * 1.25, ...scores.map((p) => p.score));
    top_value = top_value > 0 ? top_value * 1.05 : 1;
    const end = points.length ? points[points.length - 1].t : Date.now() / 1000;
    const span = points.length ? Math.min(WINDOW_S, Math.max(10, end - points[0].t)) : WINDOW_S;
    const x = (t) => right - ((end - t) / span) * (right - left);
    const y = (v) => bottom - (Math.max(0, v) / top_value) * (bottom - top);
    g.font = "11px system-ui, sans-serif";
    g.fillStyle = "#8b929c";
    g.strokeStyle = "#2a2f37";
    g.beginPath();
    for (const v of [0, top_value / 2, top_value]) {
      g.moveTo(left, y(v)); g.lineTo(right, y(v));
      g.fillText(fmt(v, 3), 4, y(v) + 4);
    }
    g.stroke();
    g.fillText(span >= 60 ? `−${(span / 60).toFixed(1)} min` : `−${Math.round(span)} s`, left, height - 4);
    g.fillText("now", right - 22, height - 4);
    g.strokeStyle = "#4aa3ff";
    g.lineWidth = 1.5;
    g.beginPath();
    scores.forEach((p, i) => (i ? g.lineTo(x(p.t), y(p.score)) : g.moveTo(x(p.t), y(p.score))));
    g.stroke();
    g.fillStyle = "#f0433a";
    for (const p of scores) {
      if (p.anomalous) { g.beginPath(); g.arc(x(p.t), y(p.score), 3, 0, 2 * Math.PI); g.fill(); }
    }
    if (threshold !== null) {
      g.strokeStyle = "#f0433a";
      g.setLineDash([6, 4]);
      g.beginPath(); g.moveTo(left, y(threshold)); g.lineTo(right, y(threshold)); g.stroke();
      g.setLineDash([]);
    }
  }

  async function showFrame(url, img) { // the newest frame into img: {seq, shown}, else null
    try {
      const response = await fetch(url, { cache: "no-store" });
      if (!response.ok) return null;
      const seq = Number(response.headers.get("X-Frame-Seq"));
      const shown = JSON.parse(response.headers.get("X-Frame-Record"));
      const blob = URL.createObjectURL(await response.blob());
      await new Promise((resolve) => { img.onload = img.onerror = resolve; img.src = blob; });
      if (img.dataset.url) URL.revokeObjectURL(img.dataset.url);
      img.dataset.url = blob;
      img.dataset.seq = seq;
      return { seq, shown };
    } catch (error) {
      return null; // the server went away; the event stream reports it
    }
  }

  async function frameLoop(url, img, wanted, onShown, interval = FRAME_INTERVAL_MS) {
    for (let seen = null; ;) { // wanted(): {seq, running} of the newest frame, or null
      const started = performance.now();
      const want = wanted();
      if (want && want.seq !== null && want.seq !== seen) {
        const found = await showFrame(url, img);
        if (found) { seen = found.seq; onShown(found.shown, found.seq); }
      }
      if (want && !want.running && seen === want.seq) return;
      const wait = interval - (performance.now() - started);
      await new Promise((resolve) => setTimeout(resolve, Math.max(10, wait)));
    }
  }

  async function refused(response) { // the server's one-line reason, on the verdict line
    const body = await response.json().catch(() => ({}));
    $("verdict").textContent = body.error ?? `the server answered HTTP ${response.status}`;
  }

  async function reconnect() { // reopen the stream, unless the token (cookie) or Host is refused
    const response = await fetch("api/status", { cache: "no-store" }).catch(() => null);
    if (response && (response.status === 401 || response.status === 403)) return refused(response);
    connect();
  }

  function connect() {
    events = new EventSource(glcf.tiles ? `api/events?after=${lastSeq}` : `api/events?since=${lastFrame}`);
    events.onmessage = (message) => {
      const data = JSON.parse(message.data);
      lastSeq = data.seq ?? lastSeq;
      addRecords(data.records);
      renderStatus(data.status);
      if (glcf.tiles) glcf.tiles.draw();
      else drawTimeline();
    };
    events.addEventListener("end", () => events.close());
    events.onerror = () => {
      const state = $("state");
      state.textContent = "reconnecting";
      state.className = "pill down";
      if (events.readyState === EventSource.CLOSED) setTimeout(reconnect, RETRY_MS);
    };
  }

  async function start() {
    const first = await fetch("api/status", { cache: "no-store" });
    if (!first.ok) return refused(first);
    const initial = await first.json();
    if (initial.cameras.length > 1) {
      glcf.tiles = window.glcfTiles({ $, fmt, ms, trim, drawTimeline, renderVerdict, frameLoop });
      lastSeq = await glcf.tiles.start(initial);
      connect();
      window.addEventListener("resize", () => glcf.tiles.draw());
      return;
    }
    const response = await fetch("api/results?since=-1&limit=3000", { cache: "no-store" });
    if (!response.ok) return refused(response);
    addRecords(await response.json());
    connect();
    const wanted = () => (status ? { seq: status.latest_seq, running: status.running } : null);
    frameLoop("frame.jpg", $("frame"), wanted, (shown, seq) => {
      shownSeq = seq;
      latest = shown; // the verdict line describes the frame on screen
      renderVerdict();
    });
    window.addEventListener("resize", () => drawTimeline());
  }

  start();
})();
