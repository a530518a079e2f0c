// The grid of the live page when several cameras run: one tile per camera with its latest
// annotated frame (a link to it full size), verdict, counters and score timeline with the
// threshold line. Loaded before app.js, which calls glcfTiles(page) when /api/status lists more
// than one camera; `page` lends app.js's helpers (formatting, timeline, verdict, frame loop).
"use strict";

window.glcfTiles = (page) => {
  const FRAME_INTERVAL_MS = 200; // each tile asks for its newest frame at most 5 times a second
  const STATS = [ // [key, label] of each tile's counters
    ["frames", "frames"], ["anomalies", "anomalies"], ["errors", "errors"],
    ["fps", "fps"], ["p95", "latency p95"], ["reconnects", "reconnects"],
  ];
  const tiles = new Map(); // camera name -> tile
  const grid = page.$("cameras");
  let running = true;

  function element(tag, className, text) {
    const found = document.createElement(tag);
    if (className) found.className = className;
    if (text !== undefined) found.textContent = text;
    return found;
  }

  function make(name) {
    const id = `camera-${tiles.size}`;
    const tile = {
      name, points: [], camera: null, latest: null, shownSeq: null,
      el: element("article", "tile"), pill: element("span", "pill", "connecting"),
      verdict: element("div", "verdict", "waiting for the first frame"),
      img: element("img"), canvas: element("canvas"), stats: {},
    };
    const query = `camera=${encodeURIComponent(name)}`;
    const head = element("div", "tile-head");
    const title = element("h2", "", name);
    title.id = `${id}-name`;
    head.append(title, tile.pill);
    tile.el.setAttribute("aria-labelledby", title.id);
    tile.el.dataset.camera = name;
    const link = element("a", "frame-box");
    link.href = `frame.jpg?${query}`;
    link.target = "_blank";
    link.title = `open the latest frame of ${name} full size`;
    tile.img.alt = `latest annotated frame of camera ${name}`;
    link.append(tile.img);
    tile.canvas.setAttribute("role", "img");
    tile.canvas.setAttribute("aria-label", `score timeline of camera ${name}, last 5 minutes, with the threshold line`);
    const stats = element("dl", "stats");
    for (const [key, label] of STATS) {
      const pair = element("div");
      tile.stats[key] = element("dd", "", key === "fps" || key === "p95" ? "–" : "0");
      tile.stats[key].dataset.key = key;
      pair.append(element("dt", "", label), tile.stats[key]);
      stats.append(pair);
    }
    tile.el.append(head, tile.verdict, link, tile.canvas, stats);
    grid.append(tile.el);
    tiles.set(name, tile);
    const wanted = () => (tile.camera ? { seq: tile.camera.latest_seq, running } : null);
    page.frameLoop(`frame.jpg?${query}`, tile.img, wanted, (shown, seq) => {
      tile.shownSeq = seq;
      tile.latest = shown; // the verdict line and the border describe the frame on screen
      page.renderVerdict(tile.verdict, shown);
      tile.el.classList.toggle("alarm", shown.anomalous === true);
    }, FRAME_INTERVAL_MS);
    return tile;
  }

  const tileOf = (name) => tiles.get(name) ?? make(name);

  function addPoint(tile, t, score, anomalous, error) {
    tile.points.push({ t, score, anomalous, error });
  }

  function add(records) { // event-stream records, each to its camera's timeline
    for (const r of records) {
      const tile = tileOf(r.source);
      addPoint(tile, r.timestamp ?? Date.now() / 1000, r.score, r.anomalous, Boolean(r.error));
      if (r.error || tile.shownSeq === null) tile.latest = r;
    }
    for (const tile of tiles.values()) page.trim(tile.points);
  }

  function render(status) { // each camera's counters and state
    running = status.running;
    for (const c of status.cameras) {
      const tile = tileOf(c.name);
      tile.camera = c;
      const kinds = Object.entries(c.errors);
      const errors = kinds.length === 1 ? `${c.errors_total} ${kinds[0][0]}`
        : `${c.errors_total} (${kinds.map(([k, n]) => `${k} ${n}`).join(", ")})`;
      tile.stats.frames.textContent = c.frames;
      tile.stats.anomalies.textContent = c.anomalies;
      tile.stats.errors.textContent = c.errors_total ? errors : "0";
      tile.stats.fps.textContent = c.fps.toFixed(1);
      tile.stats.p95.textContent = page.ms(c.latency_p95_ms);
      tile.stats.reconnects.textContent = c.reconnects;
      const down = running && !c.up;
      tile.pill.textContent = !running ? "stopped" : c.failed ? "failed" : down ? "down" : "running";
      tile.pill.className = `pill ${!running ? "stopped" : down ? "down" : "running"}`;
      tile.pill.title = c.failed ?? "";
      if (tile.shownSeq === null || (tile.latest && tile.latest.error)) {
        page.renderVerdict(tile.verdict, tile.latest);
      }
    }
  }

  function draw() {
    for (const tile of tiles.values()) page.drawTimeline(tile.canvas, tile.points);
  }

  async function start(status) { // the grid, each camera's recent scores; the write they reach
    document.body.classList.add("several");
    grid.hidden = false;
    page.$("counters-title").textContent = "All cameras";
    render(status);
    const response = await fetch("api/timeline", { cache: "no-store" });
    if (!response.ok) return status.seq;
    const timeline = await response.json();
    for (const [name, points] of Object.entries(timeline.cameras)) {
      const tile = tileOf(name);
      for (const [t, score, anomalous] of points) addPoint(tile, t, score, anomalous, score === null);
      page.trim(tile.points);
    }
    draw();
    return timeline.seq;
  }

  return { add, draw, render, start };
};
