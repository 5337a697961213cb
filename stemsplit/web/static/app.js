// stemsplit's page: upload a song, follow the job, then play its stems together on one Web Audio clock.
// Plain JavaScript, no build step. Talks only to the API documented in docs/web.md.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);

  // Same colours as the mask picture (stemsplit/web/maskview.py, STEM_COLORS).
  const COLORS = {
    vocals: "#e4572e", drums: "#2a9df4", bass: "#9b6dde", other: "#4caf50",
    accompaniment: "#2bb3a3", residual: "#9aa0a6",
  };
  const FALLBACK = ["#f2a541", "#d81e5b", "#3f88c5", "#44bba4", "#e9c46a", "#a1c181"];
  const MIX_COLOR = "#5b6472";
  const MASK_SECONDS = 8;
  const colorOf = (name, i) => COLORS[name] || FALLBACK[i % FALLBACK.length];

  let file = null;
  let jobId = null;
  let busy = false;
  let pollTimer = 0;

  const player = {
    ctx: null, master: null, rows: [], duration: 0,
    playing: false, startAt: 0, offset: 0, sources: [], raf: 0, seeking: false,
  };

  // ---- small helpers ---------------------------------------------------------------------------------------
  const pct = (x) => `${Math.round(100 * x)}%`;
  const clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, x));
  const mb = (n) => `${(n / 1048576).toFixed(n < 10485760 ? 1 : 0)} MB`;
  function clock(t) {
    const m = Math.floor(t / 60);
    const s = Math.floor(t % 60);
    return `${m}:${String(s).padStart(2, "0")}`;
  }
  function detail(body, status) {
    if (body && typeof body.detail === "string") return body.detail;
    if (body && body.detail) return JSON.stringify(body.detail);
    return `The server answered ${status}.`;
  }
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v);
    }
    node.append(...children);
    return node;
  }

  // ---- messages and progress -------------------------------------------------------------------------------
  function setProgress(value, text) {
    $("progress").hidden = false;
    $("fill").style.width = pct(clamp(value, 0, 1));
    $("progress").dataset.value = String(clamp(value, 0, 1));
    $("status").textContent = text;
  }
  function showError(message) {
    $("error").textContent = message;
    $("error").hidden = false;
  }
  function hideError() {
    $("error").hidden = true;
  }
  function fail(message) {
    busy = false;
    clearTimeout(pollTimer);
    $("progress").hidden = true;
    showError(message);
    updateGo();
  }

  // ---- choosing what to separate ---------------------------------------------------------------------------
  async function loadTargets() {
    try {
      const res = await fetch("/api/targets");
      const names = await res.json();
      if (!res.ok) throw new Error(detail(names, res.status));
      $("targets-loading").remove();
      if (!names.length) showError("This server has no trained targets.");
      for (const name of names) {
        const box = el("input", { type: "checkbox", value: name });
        box.checked = true;
        box.addEventListener("change", updateGo);
        $("targets").append(el("label", {}, box, ` ${name}`));
      }
    } catch (e) {
      showError(`Could not list the targets: ${e.message}`);
    }
    updateGo();
  }
  const chosenTargets = () => [...document.querySelectorAll("#targets input:checked")].map((i) => i.value);
  function updateGo() {
    $("go").disabled = busy || !file || chosenTargets().length === 0;
  }
  function setFile(f) {
    file = f || null;
    $("drop-text").textContent = file ? `${file.name} (${mb(file.size)})` : "Drop a song here, or choose a file";
    $("drop").classList.toggle("chosen", Boolean(file));
    updateGo();
  }

  $("file").addEventListener("change", () => setFile($("file").files[0]));
  const drop = $("drop");
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const type of ["dragleave", "drop"]) {
    drop.addEventListener(type, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    if (e.dataTransfer.files.length) setFile(e.dataTransfer.files[0]);
  });

  // ---- a job: upload, poll, fetch the stems ----------------------------------------------------------------
  $("form").addEventListener("submit", (e) => {
    e.preventDefault();
    if (!$("go").disabled) start();
  });

  function start() {
    hideError();
    forgetJob();
    busy = true;
    updateGo();
    setProgress(0, "Uploading…");
    const form = new FormData();
    form.append("targets", chosenTargets().join(","));
    form.append("mask", document.querySelector('input[name="mask"]:checked').value);
    form.append("file", file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/jobs");
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) setProgress(0.1 * e.loaded / e.total, `Uploading… ${pct(e.loaded / e.total)}`);
    });
    xhr.addEventListener("load", () => {
      if (xhr.status === 202 && xhr.response && xhr.response.id) {
        jobId = xhr.response.id;
        poll();
      } else {
        fail(detail(xhr.response, xhr.status));
      }
    });
    xhr.addEventListener("error", () => fail("The upload did not reach the server."));
    xhr.send(form);
  }

  async function poll() {
    let s;
    try {
      const res = await fetch(`/api/jobs/${jobId}`);
      s = await res.json();
      if (!res.ok) return fail(detail(s, res.status));
    } catch (e) {
      return fail("Lost contact with the server.");
    }
    if (s.state === "failed") return fail(s.error || "The separation failed.");
    if (s.state === "done") return loadStems(s.stems);
    if (s.state === "queued") setProgress(0.1, "Waiting for the song before it to finish…");
    else if (s.progress < 0.05) setProgress(0.1 + 0.8 * s.progress, "Loading the models…");
    else if (s.progress < 0.9) setProgress(0.1 + 0.8 * s.progress, `Separating… ${pct(s.progress)}`);
    else setProgress(0.1 + 0.8 * s.progress, "Writing the stems…");
    pollTimer = setTimeout(poll, 400);
  }

  const stemUrl = (name, fmt) => `/api/jobs/${jobId}/stems/${encodeURIComponent(name)}.${fmt}`;

  async function loadStems(stems) {
    setProgress(0.9, "Loading the stems into the page…");
    if (!player.ctx) {
      player.ctx = new (window.AudioContext || window.webkitAudioContext)();
      player.master = player.ctx.createGain();
      player.master.connect(player.ctx.destination);
    }
    const names = ["mixture", ...stems];
    let loaded = 0;
    let buffers;
    try {
      buffers = await Promise.all(names.map(async (name) => {
        const res = await fetch(name === "mixture" ? `/api/jobs/${jobId}/mixture.wav` : stemUrl(name, "wav"));
        if (!res.ok) throw new Error(detail(await res.json().catch(() => null), res.status));
        const buffer = await player.ctx.decodeAudioData(await res.arrayBuffer());
        loaded += 1;
        setProgress(0.9 + 0.1 * loaded / names.length, "Loading the stems into the page…");
        return buffer;
      }));
    } catch (e) {
      return fail(`Could not load the stems: ${e.message}`);
    }
    busy = false;
    updateGo();
    setProgress(1, "Done.");
    buildPlayer(names, buffers);
  }

  function forgetJob() {
    clearTimeout(pollTimer);
    resetPlayer();
    if (jobId) fetch(`/api/jobs/${jobId}`, { method: "DELETE" }).catch(() => {});
    jobId = null;
  }

  $("again").addEventListener("click", () => {
    forgetJob();
    setFile(null);
    $("file").value = "";
    $("progress").hidden = true;
    window.scrollTo({ top: 0, behavior: "smooth" });
  });

  // ---- the player: one AudioContext, every stem started at the same instant ---------------------------------
  function buildPlayer(names, buffers) {
    const ctx = player.ctx;
    player.duration = Math.max(...buffers.map((b) => b.duration));
    player.offset = 0;
    player.rows = names.map((name, i) => {
      const gain = ctx.createGain();
      gain.connect(player.master);
      const row = {
        name, buffer: buffers[i], gain, muted: name === "mixture", solo: false, volume: 1, target: 1,
        color: name === "mixture" ? MIX_COLOR : colorOf(name, i - 1),
      };
      row.el = rowElement(row);
      $("rows").append(row.el);
      return row;
    });
    $("zip").href = `/api/jobs/${jobId}/stems.zip`;
    const vocals = player.rows.find((r) => r.name === "vocals");
    $("karaoke").disabled = !vocals;
    $("karaoke").title = vocals ? "Mute the vocals, keep the rest" : "Needs the vocals stem";
    $("player").hidden = false;
    $("maskview").hidden = false;
    applyGains();
    requestAnimationFrame(() => {
      drawWaves();
      render();
    });
    showMasks(player.duration > 20 ? 0.3 * player.duration : 0);
  }

  function rowElement(row) {
    const mute = el("button", { type: "button", class: "mute", "aria-pressed": "false", title: "Mute" }, "M");
    const solo = el("button", { type: "button", class: "solo", "aria-pressed": "false", title: "Solo" }, "S");
    const volume = el("input", {
      type: "range", class: "volume", min: "0", max: "1.5", step: "0.01", value: "1",
      "aria-label": `${row.name} volume`,
    });
    mute.addEventListener("click", () => { row.muted = !row.muted; applyGains(); });
    solo.addEventListener("click", () => { row.solo = !row.solo; applyGains(); });
    volume.addEventListener("input", () => { row.volume = Number(volume.value); applyGains(); });
    const links = row.name === "mixture"
      ? [el("a", { class: "button small", href: `/api/jobs/${jobId}/mixture.wav`, download: "" }, "wav")]
      : ["wav", "flac"].map((fmt) => el("a", {
        class: "button small download", href: stemUrl(row.name, fmt), download: "", "data-format": fmt,
        title: `Download ${row.name} as ${fmt.toUpperCase()}`,
      }, fmt));
    const canvas = el("canvas", { "aria-hidden": "true" });
    const wave = el("div", { class: "wave", title: "Click to move the playhead here" },
      canvas, el("div", { class: "playhead" }));
    wave.addEventListener("click", (e) => {
      const box = wave.getBoundingClientRect();
      seek(clamp((e.clientX - box.left) / box.width, 0, 1) * player.duration);
    });
    const swatch = el("span", { class: "swatch" });
    swatch.style.background = row.color;
    return el("div", { class: "row", "data-stem": row.name },
      el("div", { class: "label" }, swatch, el("span", { class: "name", text: row.name })),
      wave,
      el("div", { class: "controls" }, mute, solo, volume, ...links));
  }

  function applyGains() {
    const ctx = player.ctx;
    const anySolo = player.rows.some((r) => r.solo);
    for (const r of player.rows) {
      const audible = !r.muted && (!anySolo || r.solo);
      r.target = audible ? r.volume : 0;
      if (player.playing) {
        r.gain.gain.setTargetAtTime(r.target, ctx.currentTime, 0.01);
      } else {
        r.gain.gain.cancelScheduledValues(0);
        r.gain.gain.value = r.target;
      }
      r.el.classList.toggle("silent", !audible);
      r.el.querySelector(".mute").setAttribute("aria-pressed", String(r.muted));
      r.el.querySelector(".solo").setAttribute("aria-pressed", String(r.solo));
    }
    $("karaoke").setAttribute("aria-pressed", String(karaokeOn()));
  }

  const rowNamed = (name) => player.rows.find((r) => r.name === name);
  function karaokeOn() {
    const vocals = rowNamed("vocals");
    return Boolean(vocals && vocals.muted && rowNamed("mixture").muted && !player.rows.some((r) => r.solo));
  }
  $("karaoke").addEventListener("click", () => {
    const on = karaokeOn();
    for (const r of player.rows) {
      r.solo = false;
      if (r.name === "vocals") r.muted = !on;
      else if (r.name === "mixture") r.muted = true;
      else if (!on) r.muted = false;
    }
    applyGains();
  });

  function position() {
    if (!player.playing) return player.offset;
    return clamp(player.ctx.currentTime - player.startAt, 0, player.duration);
  }

  async function play() {
    const ctx = player.ctx;
    await ctx.resume();
    if (player.offset >= player.duration - 0.01) player.offset = 0;
    // One start time on the context's clock for every source: the stems stay sample-locked.
    const when = ctx.currentTime + 0.05;
    player.sources = player.rows.map((r) => {
      const src = ctx.createBufferSource();
      src.buffer = r.buffer;
      src.connect(r.gain);
      src.start(when, player.offset);
      return src;
    });
    player.startAt = when - player.offset;
    player.playing = true;
    $("play").innerHTML = "&#10074;&#10074; Pause";
    $("play").setAttribute("aria-label", "Pause");
    applyGains();
    tick();
  }

  function stopSources() {
    for (const src of player.sources) {
      try { src.stop(); } catch (e) { /* already stopped */ }
      src.disconnect();
    }
    player.sources = [];
  }

  function pause() {
    player.offset = position();
    stopSources();
    player.playing = false;
    cancelAnimationFrame(player.raf);
    $("play").innerHTML = "&#9654; Play";
    $("play").setAttribute("aria-label", "Play");
    render();
  }

  function seek(t) {
    const wasPlaying = player.playing;
    if (wasPlaying) {
      stopSources();
      player.playing = false;
    }
    player.offset = clamp(t, 0, player.duration);
    if (wasPlaying) play();
    else render();
  }

  function tick() {
    if (!player.playing) return;
    if (position() >= player.duration) {
      pause();
      player.offset = player.duration;
      render();
      return;
    }
    render();
    player.raf = requestAnimationFrame(tick);
  }

  function render() {
    const p = position();
    const f = player.duration ? p / player.duration : 0;
    $("time").textContent = `${clock(p)} / ${clock(player.duration)}`;
    if (!player.seeking) $("seek").value = String(f);
    for (const r of player.rows) r.el.querySelector(".playhead").style.left = `${(100 * f).toFixed(3)}%`;
  }

  function resetPlayer() {
    if (player.playing) pause();
    for (const r of player.rows) r.gain.disconnect();
    player.rows = [];
    player.offset = 0;
    $("rows").replaceChildren();
    $("player").hidden = true;
    $("maskview").hidden = true;
    $("masks-img").removeAttribute("src");
  }

  $("play").addEventListener("click", () => (player.playing ? pause() : play()));
  $("seek").addEventListener("input", () => {
    player.seeking = true;
    $("time").textContent = `${clock(Number($("seek").value) * player.duration)} / ${clock(player.duration)}`;
  });
  $("seek").addEventListener("change", () => {
    player.seeking = false;
    seek(Number($("seek").value) * player.duration);
  });
  document.addEventListener("keydown", (e) => {
    const typing = ["INPUT", "BUTTON", "A", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName);
    if (e.code === "Space" && !typing && player.rows.length) {
      e.preventDefault();
      if (player.playing) pause();
      else play();
    }
  });

  // ---- pictures: waveforms (drawn here) and masks (drawn by the server) ------------------------------------
  function drawWaves() {
    const mix = rowNamed("mixture");
    let peak = 1e-9;
    for (let c = 0; c < mix.buffer.numberOfChannels; c++) {
      const d = mix.buffer.getChannelData(c);
      const stride = Math.max(1, Math.floor(d.length / 200000));
      for (let i = 0; i < d.length; i += stride) peak = Math.max(peak, Math.abs(d[i]));
    }
    for (const r of player.rows) drawWave(r, 1 / peak);
  }

  function drawWave(row, scale) {
    const canvas = row.el.querySelector("canvas");
    const dpr = window.devicePixelRatio || 1;
    canvas.width = Math.max(1, Math.round(canvas.clientWidth * dpr));
    canvas.height = Math.max(1, Math.round(canvas.clientHeight * dpr));
    const g = canvas.getContext("2d");
    g.clearRect(0, 0, canvas.width, canvas.height);
    g.fillStyle = row.color;
    const channels = [...Array(row.buffer.numberOfChannels).keys()].map((c) => row.buffer.getChannelData(c));
    const n = row.buffer.length;
    const mid = canvas.height / 2;
    const per = n / canvas.width;
    const stride = Math.max(1, Math.floor(per / 400)); // enough samples per column to find its peaks
    for (let x = 0; x < canvas.width; x++) {
      let lo = 0;
      let hi = 0;
      const end = Math.min(n, Math.floor((x + 1) * per));
      for (const d of channels) {
        for (let i = Math.floor(x * per); i < end; i += stride) {
          if (d[i] < lo) lo = d[i];
          if (d[i] > hi) hi = d[i];
        }
      }
      const top = mid - clamp(hi * scale, 0, 1) * mid;
      const bottom = mid - clamp(lo * scale, -1, 0) * mid;
      g.fillRect(x, top, 1, Math.max(1, bottom - top));
    }
  }

  let resizeTimer = 0;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => { if (player.rows.length) drawWaves(); }, 150);
  });

  function showMasks(start) {
    const seconds = Math.min(MASK_SECONDS, player.duration);
    const from = clamp(start, 0, Math.max(0, player.duration - seconds));
    $("mask-range").textContent = `Showing ${clock(from)} to ${clock(from + seconds)}.`;
    $("masks-img").src = `/api/jobs/${jobId}/masks.png?start=${from.toFixed(2)}&seconds=${seconds.toFixed(2)}`;
  }
  $("masks-here").addEventListener("click", () => showMasks(position()));

  // For scripts and tests: what the player is doing.
  window.stemsplitPlayer = {
    jobId: () => jobId,
    snapshot: () => ({
      playing: player.playing,
      position: position(),
      duration: player.duration,
      contextState: player.ctx ? player.ctx.state : null,
      contextTime: player.ctx ? player.ctx.currentTime : 0,
      sources: player.sources.length,
      rows: player.rows.map((r) => ({
        name: r.name, muted: r.muted, solo: r.solo, volume: r.volume, gain: r.target,
        value: r.gain.gain.value, length: r.buffer.length,
      })),
    }),
  };

  loadTargets();
})();
