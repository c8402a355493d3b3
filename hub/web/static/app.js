/* CydYnni in-home display: refreshes the server-rendered numbers, draws charts, shows the
   pairing pop-up. No numbers are computed here beyond formatting; the server decides. */
(function () {
  "use strict";
  var cat = JSON.parse(document.getElementById("i18n").textContent);
  var lang = cat.lang;
  var csrf = (document.querySelector('meta[name="csrf"]') || {}).content || "";
  var pluralIndex = {
    en: { one: 0, other: 1 },
    cy: { zero: 0, one: 1, two: 2, few: 3, many: 4, other: 5 }
  };
  var rules = new Intl.PluralRules(lang === "cy" ? "cy" : "en");

  function fill(text, values) {
    return text.replace(/\{(\w+)\}/g, function (_, k) { return values && k in values ? values[k] : "{" + k + "}"; });
  }
  function t(key, values) {
    var forms = cat.messages[key];
    return fill(forms ? forms[0] : key, values);
  }
  function tn(key, n, values) {
    var forms = cat.messages[key];
    if (!forms) { return key; }
    var i = (pluralIndex[lang] || pluralIndex.en)[rules.select(n)];
    var v = Object.assign({ n: n }, values || {});
    return fill(forms[Math.min(i || 0, forms.length - 1)], v);
  }
  function power(w) {
    if (w === null || w === undefined) { return "–"; }
    if (Math.abs(w) >= 10000) { return (w / 1000).toFixed(1) + " kW"; }
    return Math.round(w).toLocaleString("en-GB") + " W";
  }
  function kw(v) { return v === null || v === undefined ? "–" : v.toFixed(1) + " kW"; }
  function byId(id) { return document.getElementById(id); }
  function setText(id, text) { var el = byId(id); if (el) { el.textContent = text; } }
  function post(url, data) {
    var body = new URLSearchParams(data || {});
    return fetch(url, { method: "POST", body: body, credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf } }).then(function (r) {
      return r.json().then(function (j) {
        if (!r.ok || j.success === false) { throw new Error(j.message || r.statusText); }
        return j;
      });
    });
  }
  function cssVar(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

  /* ---- charts (uPlot, loaded only on pages with a live chart) -------------------------- */
  var powerPlot = null, powerData = null;
  function chartOpts(el, series) {
    var fg = cssVar("--fg"), line = cssVar("--line");
    return {
      width: Math.max(200, el.clientWidth), height: 200, legend: { show: false },
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Europe/London"); },
      axes: [{ stroke: fg, grid: { stroke: line } }, { stroke: fg, grid: { stroke: line }, size: 60 }],
      series: [{}].concat(series)
    };
  }
  function drawPower() {
    var el = byId("power-plot"), src = byId("power-data");
    if (!el || !src || typeof uPlot === "undefined") { return; }
    var d = JSON.parse(src.textContent);
    powerData = [d.t, d.w];
    powerPlot = new uPlot(chartOpts(el, [{ stroke: cssVar("--use"), width: 2, spanGaps: false }]), powerData, el);
    window.addEventListener("resize", function () { powerPlot.setSize({ width: Math.max(200, el.clientWidth), height: 200 }); });
    var mq = window.matchMedia("(prefers-color-scheme: dark)");
    if (mq.addEventListener) {
      mq.addEventListener("change", function () { powerPlot.destroy(); drawPower(); });
    }
  }
  function appendPower(time, value) {
    if (!powerPlot || time === null || value === null) { return; }
    var ts = powerData[0], vs = powerData[1];
    if (ts.length && time <= ts[ts.length - 1]) { return; }
    ts.push(time); vs.push(value);
    while (ts.length && ts[0] < time - 3 * 3600) { ts.shift(); vs.shift(); }
    powerPlot.setData([ts, vs]);
  }

  /* ---- live values: poll every 5 s while visible, ETag/304 when unchanged --------------- */
  var live = null, etag = null, skew = 0, timer = null, ticking = null;
  var hasLive = !!byId("pair-dialog");
  function renderAge() {
    var box = byId("live");
    if (!box || !live) { return; }
    var tm = live.power.time;
    if (tm === null) { return; }
    var age = Math.max(0, Math.round(Date.now() / 1000 - skew - tm));
    setText("live-age", tn("js.updated_ago", age));
    var stale = age > live.stale_after;
    box.classList.toggle("stale", stale);
    var note = byId("live-stale");
    if (note) { note.hidden = !stale; }
  }
  var ICONS = { green: "✓", amber: "-", red: "✕", unknown: "?" };
  function renderCard(light) {
    var card = byId("goodtime");
    if (!card || !light || card.classList.contains("light-" + light.light)) { return; }
    ["green", "amber", "red", "unknown"].forEach(function (l) { card.classList.remove("light-" + l); });
    card.classList.add("light-" + light.light);
    Array.prototype.forEach.call(card.querySelectorAll(".lamp"), function (lamp) {
      var lit = lamp.classList.contains("lamp-" + light.light);
      lamp.classList.toggle("lit", lit);
      lamp.textContent = lit ? ICONS[light.light] : "";
    });
    var head = byId("gt-head");
    head.textContent = "";
    var icon = document.createElement("span");
    icon.className = "gt-icon"; icon.setAttribute("aria-hidden", "true");
    icon.textContent = ICONS[light.light];
    head.appendChild(icon);
    head.appendChild(document.createTextNode(" " + t("js.card_" + light.light)));
    setText("gt-detail", "");  // the times are the server's: shown again on the next load
  }
  function applyLive(data) {
    live = data;
    if (byId("live-power")) {
      setText("live-power", power(data.power.value));
      appendPower(data.power.time, data.power.value);
    }
    if (byId("hydro")) { setText("hydro", kw(data.hydro_kw)); }
    if (byId("community")) { setText("community", kw(data.community_kw)); }
    if (data.band && byId("band")) {
      setText("band", data.band.name + " · " + data.band.price.toFixed(2) + "p/kWh");
    }
    renderCard(data.light);
    renderAge();
    showPairing(data.pairing || []);
  }
  function poll() {
    clearTimeout(timer);
    if (document.visibilityState === "hidden") { return; }
    var headers = etag ? { "If-None-Match": etag } : {};
    fetch("/api/live", { credentials: "same-origin", cache: "no-store", headers: headers })
      .then(function (r) {
        var banner = byId("banner");
        if (banner && banner.dataset.kind === "offline") { banner.hidden = true; }
        if (r.status === 304) { renderAge(); return null; }
        if (!r.ok) { throw new Error(r.statusText); }
        etag = r.headers.get("ETag");
        return r.json();
      })
      .then(function (data) {
        if (data) { skew = Date.now() / 1000 - data.now; applyLive(data); }
      })
      .catch(function () {
        var banner = byId("banner");
        if (banner) { banner.textContent = t("js.offline"); banner.dataset.kind = "offline"; banner.hidden = false; }
      })
      .then(function () { timer = setTimeout(poll, 5000); });
  }
  /* pending pairing requests: a tiny answer (304 when unchanged), every 1.5 s while visible */
  var pairTag = null, pairTimer = null;
  function pollPairing() {
    clearTimeout(pairTimer);
    if (document.visibilityState === "hidden") { return; }
    fetch("/api/pairing", { credentials: "same-origin", cache: "no-store",
      headers: pairTag ? { "If-None-Match": pairTag } : {} })
      .then(function (r) {
        if (r.status !== 200) { return null; }
        pairTag = r.headers.get("ETag");
        return r.json();
      })
      .then(function (data) { if (data) { showPairing(data.pairing); } })
      .catch(function () {})
      .then(function () { pairTimer = setTimeout(pollPairing, 1500); });
  }
  if (hasLive) {
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible") { poll(); pollPairing(); }
      else { clearTimeout(timer); clearTimeout(pairTimer); }
    });
    poll();
    pollPairing();
    ticking = setInterval(renderAge, 1000);
  }

  /* ---- pairing pop-up --------------------------------------------------------------------- */
  var dialog = byId("pair-dialog"), shownIp = null, ignored = {}, pairingDevice = null, countdown = null;
  function showPairing(list) {
    if (!dialog || pairingDevice !== null) { return; }
    var req = list.filter(function (p) { return !ignored[p.ip]; })[0];
    if (!req) {
      if (shownIp !== null && dialog.open) { dialog.close(); }
      shownIp = null;
      return;
    }
    if (shownIp === req.ip && dialog.open) { return; }
    shownIp = req.ip;
    var name = req.name || req.type || t("js.pair_unknown");
    setText("pair-what", t("js.pair_what", { name: name, ip: req.ip }));
    byId("pair-steps").hidden = true;
    byId("pair-allow").hidden = false; byId("pair-ignore").hidden = false; byId("pair-close").hidden = true;
    clearInterval(countdown);
    function tick() {
      var left = req.expires ? Math.max(0, Math.round(req.expires - (Date.now() / 1000 - skew))) : 0;
      setText("pair-countdown", tn("js.pair_countdown", left));
    }
    tick(); countdown = setInterval(tick, 1000);
    if (!dialog.open) { dialog.showModal(); }
  }
  function markStep(step) {
    var order = ["sending", "connected", "reading"], reached = order.indexOf(step);
    Array.prototype.forEach.call(byId("pair-steps").children, function (li) {
      li.classList.toggle("done", order.indexOf(li.dataset.step) <= reached);
    });
  }
  function followPairing(id) {
    fetch("/devices/pair/" + id, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (j) {
        markStep(j.step);
        if (j.step !== "reading" && j.step !== "gone") { setTimeout(function () { followPairing(id); }, 1000); }
        // Finished: the pop-up stays with its ticks until the household presses Close
        // (a poll that no longer lists the device must not close it under their eyes).
        else { pairingDevice = "finished"; byId("pair-close").hidden = false; }
      })
      .catch(function () { setTimeout(function () { followPairing(id); }, 2000); });
  }
  if (dialog) {
    byId("pair-allow").addEventListener("click", function () {
      var ip = shownIp;
      // From the click on: a poll that no longer lists this (now allowed) device must not
      // close the pop-up before the answer arrives.
      pairingDevice = "allowing";
      post("/devices/pair/allow", { ip: ip }).then(function (j) {
        pairingDevice = j.device;
        clearInterval(countdown); setText("pair-countdown", "");
        byId("pair-allow").hidden = true; byId("pair-ignore").hidden = true;
        byId("pair-steps").hidden = false; markStep("sending");
        followPairing(j.device);
      }).catch(function (e) {
        pairingDevice = null;
        clearInterval(countdown);
        setText("pair-countdown", t("js.pair_failed", { message: e.message }));
      });
    });
    byId("pair-ignore").addEventListener("click", function () {
      ignored[shownIp] = true;
      post("/devices/pair/ignore", { ip: shownIp }).catch(function () {});
      clearInterval(countdown); dialog.close(); shownIp = null;
    });
    byId("pair-close").addEventListener("click", function () { dialog.close(); });
    dialog.addEventListener("close", function () {  // Close, or Escape
      if (pairingDevice === "finished") { pairingDevice = null; }
      shownIp = null;
    });
  }

  /* ---- schedule editor preview ----------------------------------------------------------- */
  var previewPlot = null;
  function drawPreview(plan) {
    var el = byId("preview-plot");
    if (!el || typeof uPlot === "undefined" || !plan || !plan.profile) { return; }
    var p = plan.profile, xs = [], all = [], chosen = [];
    for (var i = 0; i < p.values.length; i++) {
      var x = p.start + i * p.interval, v = p.values[i];
      var inRun = (plan.windows || []).some(function (w) { return x + p.interval > w.start && x < w.end; });
      if (plan.now && x + p.interval < plan.now) { continue; }
      if (plan.ready_by && x > plan.ready_by + 6 * 3600) { break; }
      xs.push(x); all.push(v); chosen.push(inRun ? v : null);
    }
    var bars = uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars({ size: [0.9, 40] }) : undefined;
    if (previewPlot) { previewPlot.destroy(); }
    previewPlot = new uPlot(chartOpts(el, [
      { stroke: cssVar("--muted"), fill: cssVar("--line"), paths: bars },
      { stroke: cssVar("--accent"), fill: cssVar("--accent"), paths: bars }
    ]), [xs, all, chosen], el);
  }
  var form = byId("schedule-form");
  if (form) {
    var pre = byId("preview-data");
    if (pre) { try { drawPreview(JSON.parse(pre.textContent)); } catch (e) { /* no preview */ } }
    byId("preview-button").addEventListener("click", function () {
      var data = new FormData(form), obj = {};
      data.forEach(function (v, k) { obj[k] = v; });
      post("/devices/" + form.dataset.device + "/schedule/preview", obj).then(function (j) {
        setText("preview-sentence", j.sentence);
        var list = byId("preview-windows");
        list.textContent = "";
        j.plan.windows.forEach(function (w, i) {
          var li = document.createElement("li");
          li.dataset.start = w.start; li.dataset.end = w.end;
          li.textContent = j.plan.windows_local[i][0] + "–" + j.plan.windows_local[i][1];
          list.appendChild(li);
        });
        byId("preview").dataset.now = j.plan.now;
        drawPreview(j.plan);
      }).catch(function (e) { setText("preview-sentence", t("js.preview_failed", { message: e.message })); });
    });
  }

  /* ---- kiosk: reload once a day against memory creep; data after sleep via visibility --- */
  if (byId("kiosk")) { setTimeout(function () { location.reload(); }, 24 * 3600 * 1000); }

  drawPower();
})();
