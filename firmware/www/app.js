// LoadPilot pages (docs/webui.md). Plain JavaScript, no framework: every figure comes from the /cnf?cmd=...
// commands of the one command layer (docs/http.md), polled as JSON. Currents are mA in the API, A on the pages.
"use strict";
var S = {auth: sessionStorage.getItem("lp_auth"), uid: sessionStorage.getItem("lp_uid"), params: null, timers: [], hist: [], page: null};
var HIST_MS = 4 * 3600 * 1000;  // the plot: the box's minutes (get_power_history) for 4 hours, then the live polls
var STATES = {1: "waiting", 2: "plugged in", 3: "charging", 4: "charging (vent.)", 5: "error", 6: "offline"};
var ROLES = [[0, "display only"], [1, "consumption"], [2, "generation (PV)"], [3, "grid (house connection)"],
  [4, "EV"], [5, "storage (home)"], [6, "storage (all)"]];
var WB_DRIVERS = ["evse_powerbrain", "evse_loadpilot", "evse_omcci", "http_input", "mqtt_input"];
var METER_DRIVERS = ["meter_sdm630", "meter_sdm72", "meter_dts353", "meter_dem4a", "meter_abb_b23", "meter_sunspec",
  "meter_modbus", "meter_mqtt", "http_input", "mqtt_input"];
// manager/model.py REASON_NAMES, in words
var REASONS = {ok: "granted what it asks", own_max: "its own max. current", fuse: "house connection limit",
  evse_total: "max. total wallbox current", imbalance: "phase imbalance limit", group: "charging group limit",
  pv: "PV surplus", schedule: "current schedule", shedding: "load shedding", overdraw: "reduced after an overdraw",
  failsafe: "fail-safe (no communication)", priority_pause: "paused: higher priorities first",
  pause_hold: "paused (minimum pause time)", disabled: "disabled", no_car: "no car", observe: "observation mode",
  car_draw: "what the car draws", ramp: "ramping up", operator: "operator limit", auth: "waiting for authorization"};
var WIRING = ["123", "231", "312", "132", "213", "321"];
var RFID_HELP = "Please enter a valid rfid (4, 7 or 10 byte hex number + optional postfix _1 or _2), a special tag " +
  "(INPUT_AUTH) or a valid mac address.";

function $(id) { return document.getElementById(id); }
function h(tag, attrs, kids) {
  var e = document.createElement(tag), k;
  for (k in attrs || {}) {
    if (k === "text") e.textContent = attrs[k];
    else if (k.slice(0, 2) === "on") e.addEventListener(k.slice(2), attrs[k]);
    else if (attrs[k] !== null && attrs[k] !== false) e.setAttribute(k, attrs[k] === true ? "" : attrs[k]);
  }
  (kids || []).forEach(function (c) { if (c != null) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
  return e;
}
function amps(ma) { return ma == null ? "-" : (ma / 1000).toFixed(1); }
function kw(w) { return w == null ? "-" : (w / 1000).toFixed(2) + " kW"; }
function every(ms, fn) { fn(); S.timers.push(setInterval(fn, ms)); }
function q(obj) {
  return Object.keys(obj).map(function (k) { return k + "=" + encodeURIComponent(obj[k]); }).join("&");
}

// ---- the one way to the box: /cnf?cmd=..., the login in a header of our own, JSON back
function api(query, body, ctype) {
  var o = {method: body == null ? "GET" : "POST", headers: {"X-Requested-With": "XMLHttpRequest"}};
  if (S.auth) o.headers.Authorization = "Basic " + S.auth;
  if (body != null) {
    o.body = typeof body === "string" ? body : JSON.stringify(body);
    o.headers["Content-Type"] = ctype || "application/json";
  }
  return fetch("/cnf?" + query, o).then(function (r) {
    $("pwwarn").hidden = !(r.headers.get("Warning") || "").match(/factory default/);
    if (r.status === 401) { showLogin("The box asks for the login."); throw new Error("login required"); }
    var ct = r.headers.get("Content-Type") || "";
    return (ct.indexOf("json") >= 0 ? r.json() : r.text()).then(function (d) {
      if (!r.ok) throw new Error(typeof d === "string" ? d : d.error || ("HTTP " + r.status));
      $("conn").textContent = "";
      return d;
    });
  }, function (e) { $("conn").textContent = "no connection"; throw e; });
}
function download(name, text, type) {
  var a = h("a", {href: URL.createObjectURL(new Blob([text], {type: type})), download: name});
  document.body.appendChild(a); a.click(); a.remove();
}

// ---- login
function showLogin(msg) {
  S.timers.forEach(clearInterval); S.timers = [];
  $("main").hidden = true; $("login").hidden = false; $("login-err").textContent = msg || "";
}
$("login").addEventListener("submit", function (ev) {
  ev.preventDefault();
  var f = ev.target;
  S.auth = btoa(f.user.value + ":" + f.pwd.value);
  api("cmd=get_params").then(function (p) {
    sessionStorage.setItem("lp_auth", S.auth);
    S.params = p; $("login").hidden = true; $("main").hidden = false; f.pwd.value = "";
    route();
  }, function (e) { $("login-err").textContent = e.message === "login required" ? "Wrong user or password." : e.message; });
});

// ---- settings forms: one field list per section; Save sends the changed keys in one set_params (all or nothing)
// f: {k: key, l: label, t: "A" (mA shown in A) | "int" | "bool" | "str" | "sel" | "A3" (3 phases), o: options, help}
function field(f, val, form) {
  var inp, row = h("div", {"class": "f", "data-key": f.k});
  if (f.t === "bool") {
    inp = h("select", {id: "f-" + f.k}, [h("option", {value: "1", text: "On"}), h("option", {value: "0", text: "Off"})]);
    inp.value = val ? "1" : "0";
  } else if (f.t === "sel") {
    inp = h("select", {id: "f-" + f.k}, f.o.map(function (o) { return h("option", {value: String(o[0]), text: o[1]}); }));
    inp.value = String(val);
  } else if (f.t === "A3") {
    inp = h("span", {id: "f-" + f.k}, [0, 1, 2].map(function (i) {
      return h("input", {type: "number", step: "0.1", min: "0", style: "width:5em", value: amps(val[i]), title: "L" + (i + 1)});
    }));
  } else if (f.t === "json") {  // an object, edited as JSON text; empty: {}
    inp = h("textarea", {id: "f-" + f.k, rows: "4", spellcheck: "false"});
    inp.value = val && Object.keys(val).length ? JSON.stringify(val) : "";
  } else if (f.t === "pwd" || f.t === "pem") {  // write-only: the box never sends it back; empty keeps it
    inp = h(f.t === "pem" ? "textarea" : "input", {id: "f-" + f.k, type: f.t === "pwd" ? "password" : null,
      rows: f.t === "pem" ? "3" : null, autocomplete: "new-password",
      placeholder: val ? "stored (hidden): empty keeps it" : "not set"});
  } else {
    inp = h("input", {id: "f-" + f.k, type: f.t === "str" || f.t === "url" ? "text" : "number",
      step: f.t === "A" ? "0.1" : "1", value: f.t === "A" ? amps(val) : (val == null ? "" : val)});
  }
  row.appendChild(h("label", {"for": "f-" + f.k, text: f.l}));
  row.appendChild(inp);
  row.appendChild(h("div", {"class": "help", text: f.help}));
  row.appendChild(h("div", {"class": "err"}));
  form.fields.push({f: f, inp: inp, orig: val});
  return row;
}
function readField(x) {
  var f = x.f, v = x.inp.value;
  if (f.t === "bool") return v === "1";
  if (f.t === "sel") return typeof f.o[0][0] === "number" ? Number(v) : v;
  if (f.t === "A") return Math.round(parseFloat(v) * 1000);
  if (f.t === "A3") return [].map.call(x.inp.children, function (i) { return Math.round(parseFloat(i.value) * 1000); });
  if (f.t === "int") return v === "" ? NaN : Number(v);
  if (f.t === "json") { try { return v.trim() ? JSON.parse(v) : {}; } catch (e) { return NaN; } }
  if ((f.t === "pwd" || f.t === "pem") && v === "") return x.orig;  // untouched: unchanged
  return v;
}
function newForm() { return {fields: [], extra: []}; }
function section(form, title, fields, values, note) {
  var box = h("div", {"class": "card"}, [h("h3", {text: title})]);
  if (note) box.appendChild(h("p", {"class": "help", text: note}));
  fields.forEach(function (f) { box.appendChild(field(f, values[f.k], form)); });
  return box;
}
function changed(form) {
  var out = {};
  form.fields.forEach(function (x) {
    var v = readField(x);
    if (JSON.stringify(v) !== JSON.stringify(x.orig)) out[x.f.k] = v;
  });
  form.extra.forEach(function (x) { var v = x.get(); if (JSON.stringify(v) !== JSON.stringify(x.orig)) out[x.k] = v; });
  return out;
}
// a refusal names the setting first ("max_total_current: out of range ...", "devices[1].address: ...")
function showError(msg) {
  var dm = /^devices\[(\d+)\]\./.exec(msg), list = document.querySelector('[data-key="devices"]');
  if (dm && list && list.openEditor) list.openEditor(Number(dm[1]));  // the refused device's fields, to show it there
  var rows = document.querySelectorAll("[data-key]"), best = null, i, k;
  [].forEach.call(document.querySelectorAll(".f .err, #form-err"), function (e) { e.textContent = ""; });
  for (i = 0; i < rows.length; i++) {
    k = rows[i].getAttribute("data-key");
    if (msg.indexOf(k + ":") === 0 || msg.indexOf(k + ".") === 0 || msg.indexOf(k + "[") === 0) best = rows[i];
  }
  var el = best ? best.querySelector(".err") : $("form-err");
  el.textContent = msg;
  (best || el).scrollIntoView({block: "center"});
}
function saveBar(form, after) {
  var res = h("span", {id: "save-res"});
  function save() {
    var c = changed(form);
    res.textContent = ""; $("form-err").textContent = "";
    [].forEach.call(document.querySelectorAll(".f .err"), function (e) { e.textContent = ""; });
    for (var k in c) {
      if (typeof c[k] === "number" && isNaN(c[k])) { showError(k + ": enter a number"); return; }
      if (JSON.stringify(c[k]).indexOf("***") >= 0) { showError(k + ": a hidden password (***) cannot be saved: type it in full"); return; }
    }
    if (!Object.keys(c).length) { res.textContent = "Nothing changed."; return; }
    api("cmd=set_params", c).then(function () {
      return api("cmd=get_params");
    }).then(function (p) { S.params = p; route(); setTimeout(function () { $("save-res").textContent = "Saved."; }, 0); },
      function (e) { showError(e.message); });
  }
  return [h("p", {"class": "err", id: "form-err"}),
    h("div", {"class": "bar"}, [res, h("button", {"class": "sec", onclick: route, text: "Reset all changes"}),
      h("button", {id: "save", onclick: save, text: "Save"}),
      h("button", {"class": "sec", onclick: restart, text: "Restart"})])];
}
function restart() {
  if (!confirm("Restart the controller now? Charging pauses for a few seconds.")) return;
  api("cmd=restart").then(function () {
    var m = $("main"); m.innerHTML = "";
    m.appendChild(h("div", {"class": "card", id: "restarting", text: "Restarting: this page reconnects when the box is back."}));
    setTimeout(function () { every(2000, function () { api("cmd=get_status").then(function () { route(); }, function () {}); }); }, 2000);
  }, function (e) { alert(e.message); });
}

// ---- pages
var PAGES = {dashboard: dashboard, whitelists: whitelists, authorization: authorization, load: load, backend: backend,
  system: system};
function route() {
  S.timers.forEach(clearInterval); S.timers = [];
  var name = (location.hash || "#dashboard").slice(1);
  if (!PAGES[name]) name = "dashboard";
  [].forEach.call(document.querySelectorAll("nav a"), function (a) { a.className = a.hash === "#" + name ? "on" : ""; });
  $("nav").className = "";
  if (S.uid && !S.auth) { userHome($("main")); return; }  // a user's own page (the Users block)
  if (!S.auth) { showLogin(); return; }
  var m = $("main"); m.innerHTML = "";
  if (!S.params) {
    api("cmd=get_params").then(function (p) { S.params = p; route(); }, function () {});
    return;
  }
  $("title").textContent = S.params.title || "LoadPilot";
  S.page = name; S.plot = null;
  PAGES[name](m, S.params);
}
function devName(id) {
  var d = (S.params.devices || []).filter(function (x) { return x.dev_id === id; })[0];
  return d ? d.name : (id === "E1" ? "this box" : "");
}

function dashboard(m, p) {
  m.appendChild(h("h2", {text: "Dashboard"}));
  var budget = h("div", {"class": "card", id: "budget"}), devs = h("div", {"class": "grid", id: "devices"});
  var plot = h("canvas", {id: "plot", width: 800, height: 260}), figs = h("div", {"class": "card", id: "sessions"});
  m.appendChild(budget);
  m.appendChild(h("div", {"class": "card"}, [h("h3", {text: "Grid, PV and wallboxes"}), plot,
    h("div", {"class": "legend"}, [legend("#c0392b", "grid (import +)"), legend("#e6a100", "PV"), legend("#1d4e89", "wallboxes")]),
    h("p", {"class": "help", id: "plot-note", text: "The box keeps one point a minute (the minute's average) for the " +
      "last 4 hours; this page adds the live figures every 2 s."})]));
  m.appendChild(h("h3", {text: "Devices"}));
  m.appendChild(devs);
  m.appendChild(figs);
  S.hist = []; S.plot = plot;
  history().then(function () {  // the last hours first, then the live points after them
    if (S.plot !== plot) return;  // the user left the Dashboard meanwhile
    every(2000, function () {
      api("cmd=get_status").then(function (st) { drawStatus(st, budget, devs); record(st); drawPlot(plot); }, function () {});
    });
  });
  every(15000, function () { api("cmd=get_sessions&n=5").then(function (s) { drawSessions(s, figs); }, function () {}); });
}
function legend(c, t) { return h("span", {}, [h("i", {style: "background:" + c}), t]); }
function kv(pairs) {
  var d = h("div", {"class": "kv"});
  pairs.forEach(function (p) { d.appendChild(h("span", {text: p[0]})); d.appendChild(h("span", {text: p[1]})); });
  return d;
}
function drawStatus(st, budget, devs) {
  var b = st.budget, t = st.totals, lim = Math.round(b.max_total_current * b.max_total_cur_prc / 100) - b.reserve_current;
  budget.innerHTML = "";
  budget.appendChild(h("h3", {text: "House connection"}));
  budget.appendChild(kv([
    ["Budget per phase", amps(lim) + " A (" + amps(b.max_total_current) + " A x " + b.max_total_cur_prc + " % - reserve " +
      amps(b.reserve_current) + " A)"],
    ["Grid now", t.grid ? t.grid.current_ma.map(amps).join(" / ") + " A, " + kw(t.grid.power_w) : "no grid meter"],
    ["PV now", t.generators ? kw(t.generators.power_w) : "no PV meter"],
    ["Wallboxes use", t.evse_used ? kw(t.evse_used.power_w) : "-"],
    ["Available for wallboxes", b.avail_evse_w == null ? "-" : kw(b.avail_evse_w)],
    ["Load management", b.lb_enabled ? "on" : "off (observation mode)"]]));
  devs.innerHTML = "";
  st.devices.forEach(function (d) {
    var ev = d.dev_id[0] === "E", rows = [["Current L1/L2/L3", d.current_ma.map(amps).join(" / ") + " A"],
      ["Power", kw(d.power_w)], ["Energy", (d.import_wh / 1000).toFixed(2) + " kWh"]];
    if (ev) rows.push(["Allocation", amps(d.alloc_ma) + " A"], ["Reason", d.reason ? REASONS[d.reason] || d.reason : "-"]);
    if (d.user) rows.push(["User", d.user]);  // only a user who allows the name display
    devs.appendChild(h("div", {"class": "card dev", id: "dev-" + d.dev_id}, [
      h("span", {"class": "st s" + (d.state || (d.com_err ? 6 : 0)), text: ev ? STATES[d.state] || "-" :
        d.com_err ? "meter offline" : "meter"}),
      h("h4", {text: d.dev_id + " " + devName(d.dev_id)}), kv(rows)]));
  });
}
function record(st) {
  var t = st.totals, now = Date.now();
  S.hist.push([now, t.grid ? t.grid.power_w : null, t.generators ? t.generators.power_w : null,
    t.evse_used ? t.evse_used.power_w : 0]);
  while (S.hist.length && S.hist[0][0] < now - HIST_MS) S.hist.shift();
}
// the box's minutes (get_power_history), placed on this browser's clock: the newest closed age_ms ago. Live points
// older than the newest minute give way to the minutes (the page was hidden or just opened).
function history() {
  return api("cmd=get_power_history").then(function (r) {
    var step = r.step_ms || r.step_s * 1000, n = r.grid_w.length, end = Date.now() - r.age_ms, pts = [], i;
    for (i = 0; i < n; i++) pts.push([end - (n - 1 - i + 0.5) * step, r.grid_w[i], r.pv_w[i], r.evse_w[i]]);
    S.hist = pts.concat(S.hist.filter(function (p) { return p[0] > end; }));
    S.histAt = Date.now();
    var note = $("plot-note");
    if (note) note.textContent = n + " points from the box (one every " + (step >= 60000 ? step / 60000 + " min" : step / 1000 + " s") +
      ", each the average of its interval), then the live figures every 2 s.";
    if (S.plot) drawPlot(S.plot);
  }, function () {});
}
document.addEventListener("visibilitychange", function () {  // hidden tabs poll seldom: fill the gap from the box
  var last = S.hist.length ? S.hist[S.hist.length - 1][0] : 0;
  if (!document.hidden && S.page === "dashboard" && Date.now() - last > 60000) history();
});
function drawPlot(c) {
  var w = c.width = c.clientWidth || 800, hh = c.height = c.clientHeight || 260, g = c.getContext("2d"), H = S.hist;
  g.clearRect(0, 0, w, hh);
  if (H.length < 2) { g.fillText("collecting figures...", 40, 20); return; }
  var lo = 0, hi = 1000, t0 = H[0][0], t1 = H[H.length - 1][0], i, s;
  H.forEach(function (r) { for (i = 1; i < 4; i++) if (r[i] != null) { lo = Math.min(lo, r[i]); hi = Math.max(hi, r[i]); } });
  var step = Math.max(500, Math.ceil((hi - lo) / 4 / 500) * 500);  // gridlines on round kW
  lo = Math.floor(lo / step) * step; hi = Math.max(lo + step, Math.ceil(hi / step) * step);
  var L = 44, B = hh - 18, X = function (t) { return L + (w - L - 6) * (t - t0) / Math.max(1, t1 - t0); },
    Y = function (v) { return 6 + (B - 6) * (hi - v) / (hi - lo); };
  g.strokeStyle = "#ddd"; g.fillStyle = "#666"; g.font = "11px sans-serif";
  for (var v = lo; v <= hi; v += step) {
    g.beginPath(); g.moveTo(L, Y(v)); g.lineTo(w, Y(v)); g.stroke();
    g.fillText((v / 1000).toFixed(1) + " kW", 2, Y(v) + 4);
  }
  [t0, (t0 + t1) / 2, t1].forEach(function (t, j) {
    g.fillText(new Date(t).toTimeString().slice(0, t1 - t0 < 600000 ? 8 : 5), Math.min(X(t) - (j ? 20 : 0), w - 48), hh - 4);
  });
  ["", "#c0392b", "#e6a100", "#1d4e89"].forEach(function (col, k) {
    if (!k) return;
    g.strokeStyle = col; g.lineWidth = 2; g.beginPath(); s = false;
    H.forEach(function (r) { if (r[k] == null) { s = false; return; } if (s) g.lineTo(X(r[0]), Y(r[k])); else g.moveTo(X(r[0]), Y(r[k])); s = true; });
    g.stroke();
  });
  g.lineWidth = 1;
}
function drawSessions(s, box) {
  box.innerHTML = "";
  box.appendChild(h("h3", {text: "Charging sessions"}));
  box.appendChild(kv([["Total charging sessions", s.sessions + " sessions"],
    ["Average duration per session", (s.avg_duration_s / 60).toFixed(1) + " minutes"],
    ["Average kWh per session", (s.avg_energy_wh / 1000).toFixed(2) + " kWh"],
    ["Last " + s.last_days.days + " days", s.last_days.sessions + " sessions, " + (s.last_days.energy_wh / 1000).toFixed(2) + " kWh"],
    ["Charging now", s.open.length ? s.open.map(function (o) { return o.dev_id + " " + (o.energy_wh / 1000).toFixed(2) + " kWh"; }).join(", ") : "-"]]));
  box.appendChild(h("div", {"class": "row"}, [h("button", {"class": "sec", id: "export-sessions", text: "Export the last 30 days (CSV)",
    onclick: function () {
      api("cmd=export_sessions&days=30").then(function (t) { download("sessions.csv", t, "text/csv"); }, function (e) { alert(e.message); });
    }})]));
}

function whitelists(m) {
  var list = h("tbody", {id: "wl-list"}), info = h("p", {id: "wl-info"}), err = h("p", {"class": "err", id: "wl-err"});
  var qf = h("input", {id: "wl-q", placeholder: "Search for Id ...", oninput: refresh});
  var idf = h("input", {id: "wl-id", placeholder: "Id"}), file = h("input", {type: "file", id: "wl-file", accept: ".csv,text/csv", hidden: true});
  function fail(e) { err.textContent = e.message; }
  var seq = 0;
  function refresh() {
    var mine = ++seq;
    api("cmd=whitelist_search&" + q({q: qf.value})).then(function (r) {
      if (mine !== seq) return;  // an older search answered late (one request per keystroke)
      list.innerHTML = "";
      r.ids.forEach(function (x) {
        list.appendChild(h("tr", {}, [h("td", {text: x.id}), h("td", {text: x.type}), h("td", {}, [h("button", {"class": "del",
          text: "Delete", "data-id": x.id, onclick: function () {
            api("cmd=whitelist_delete&" + q({id: x.id})).then(refresh, fail);
          }})])]));
      });
      info.textContent = r.entries + " entries" + (r.more ? " (showing the first " + r.ids.length + ": search to narrow)" : "");
    }, fail);
  }
  function add() {
    err.textContent = "";
    api("cmd=whitelist_add&" + q({id: idf.value})).then(function (r) {
      err.textContent = ""; idf.value = "";
      info.textContent = (r.added ? "Added " : "Already there: ") + r.id; refresh();
    }, fail);
  }
  function exportList() {
    var out = "";
    (function page(off) {
      api("cmd=whitelist_export&offset=" + off).then(function (r) {
        out += r.csv;
        if (r.next != null) page(r.next); else download("whitelist.csv", out, "text/csv");
      }, fail);
    })(0);
  }
  file.addEventListener("change", function () {
    var fr = new FileReader();
    fr.onload = function () {  // parts of <= 6 KB at line ends: the box takes at most 8 KB per request
      var text = fr.result, parts = [], i = 0;
      while (i < text.length) {
        var j = Math.min(text.length, i + 6000);
        if (j < text.length) j = text.lastIndexOf("\n", j) + 1 || j;
        parts.push(text.slice(i, j)); i = j;
      }
      if (!parts.length) parts.push("");
      (function send(n) {
        var last = n === parts.length - 1 ? 1 : 0;
        api("cmd=whitelist_import&part=" + (n + 1) + "&last=" + last, parts[n], "text/csv").then(function (r) {
          if (!last) send(n + 1);
          else { info.textContent = "Imported: " + r.added + " new, " + r.entries + " entries"; refresh(); }
        }, fail);
      })(0);
      file.value = "";
    };
    fr.readAsText(file.files[0]);
  });
  m.appendChild(h("h2", {text: "Whitelists"}));
  m.appendChild(h("div", {"class": "card"}, [h("h3", {text: "Local whitelist"}),
    h("div", {"class": "row"}, [qf, h("button", {"class": "sec", onclick: function () { file.click(); }, text: "Import list", id: "wl-import"}), file,
      h("button", {"class": "sec", onclick: exportList, text: "Export list", id: "wl-export"}),
      h("button", {"class": "del", id: "wl-clear", text: "Delete whole list", onclick: function () {
        if (confirm("Delete every entry of the local whitelist?")) api("cmd=whitelist_clear").then(refresh, fail);
      }})]),
    h("div", {"class": "row"}, [idf, h("button", {id: "wl-add", onclick: add, text: "Add entry"})]),
    h("p", {"class": "help", text: RFID_HELP + " You can add a rfid by holding the card to the scanner of your wallbox: " +
      "the last card read at each wallbox shows on the dashboard's device data (get_dev_info rfid). Import: a .csv file " +
      "with one Id per line (a header line and more columns are fine); export: id,type lines, which import reads back."}), err, info,
    h("table", {}, [h("thead", {}, [h("tr", {}, [h("th", {text: "Id"}), h("th", {text: "Type"}), h("th")])]), list])]));
  m.appendChild(ocppList());
  refresh();
}

// ---- the OCPP local list (ocpp_list_*): the backend's (SendLocalList); read, search, delete one or all
function ocppList() {
  var list = h("tbody", {id: "ol-list"}), info = h("p", {id: "ol-info"}), err = h("p", {"class": "err", id: "ol-err"});
  var qf = h("input", {id: "ol-q", placeholder: "Search for idTag ...", oninput: function () { refresh(0); }});
  var more = h("button", {"class": "sec", id: "ol-more", text: "Show more", hidden: true}), seq = 0;
  var clear = h("button", {"class": "del", id: "ol-clear", text: "Delete whole list", onclick: function () {
    if (confirm("Delete every entry of the OCPP local list? The backend is asked to send it again.")) api("cmd=ocpp_list_clear").then(function () { refresh(0); }, fail);
  }});
  var box = h("div", {"class": "card", id: "ocpp-list"}, [h("h3", {text: "OCPP whitelist"}),
    h("p", {"class": "help", text: "The list the OCPP backend sends (SendLocalList), kept apart from the local whitelist above: " +
      "idTags with their status, expiry and parent idTag. Deleting entries here makes the list the box's own: its version " +
      "becomes 0, so a backend that checks the version (GetLocalListVersion) sends the whole list again."}),
    h("div", {"class": "row"}, [qf, clear]), err, info,
    h("table", {}, [h("thead", {}, [h("tr", {}, ["idTag", "Status", "Expiry", "Parent idTag", ""].map(function (t) {
      return h("th", {text: t}); }))]), list]), more]);
  function fail(e) {
    if (/OCPP is not configured/.test(e.message)) {  // no backend: nothing to show, nothing to delete
      box.replaceChildren(box.firstChild, h("p", {"class": "help", id: "ol-off", text: "OCPP is off (no backend URL on " +
        "the Backend page): there is no OCPP list."}));
    } else err.textContent = e.message;
  }
  function refresh(off) {
    var mine = ++seq;
    api("cmd=ocpp_list_get&" + q({q: qf.value, offset: off})).then(function (r) {
      if (mine !== seq) return;
      err.textContent = "";
      if (!off) list.innerHTML = "";
      r.ids.forEach(function (x) {
        list.appendChild(h("tr", {}, [h("td", {text: x.id}), h("td", {text: x.status}), h("td", {text: x.expiry || "-"}),
          h("td", {text: x.parent || "-"}), h("td", {}, [h("button", {"class": "del", text: "Delete", "data-id": x.id,
            onclick: function () { api("cmd=ocpp_list_delete&" + q({id: x.id})).then(function () { refresh(0); }, fail); }})])]));
      });
      info.textContent = r.entries + " entries, list version " + r.version + (r.enabled ? "" :
        " (the local list is switched off: LocalAuthListEnabled)") + (qf.value ? ", " + r.found + " found" : "");
      more.hidden = r.next == null;
      more.onclick = function () { refresh(r.next); };
    }, fail);
  }
  refresh(0);
  return box;
}

function authorization(m, p) {
  var form = newForm();
  m.appendChild(h("h2", {text: "Authorization"}));
  m.appendChild(section(form, "Free charging", [
    {k: "free_charging", l: "Free Charging", t: "bool", help: "On: every car charges without an RFID or PIN, also at " +
      "wallboxes that require authorization."},
    {k: "free_charging_tag", l: "RFID tag for free charging", t: "str", help: "The idTag sessions started by free " +
      "charging carry (seed: freecharging). Tags compare in upper case."},
    {k: "auth_if_in_doubt", l: "If in doubt allow charging", t: "bool", help: "On: an ID that cannot be checked " +
      "(whitelist unreadable) is allowed to charge instead of refused."}], p));
  m.appendChild(section(form, "General", [
    {k: "vehicle_connection_timeout_s", l: "Vehicle connection timeout [s]", t: "int", help: "How long an " +
      "authorization waits for the car to be plugged in (and a plugged car for its authorization) before it lapses."}], p,
    "A wallbox requires authorization when its device entry has 'Authorization required' on (Load management, devices)."));
  saveBar(form).forEach(function (e) { m.appendChild(e); });
}

var HOUSE = [
  {k: "lb_enabled", l: "Load management", t: "bool", help: "On: the Charging Manager sets every wallbox's current. " +
    "Off: observation mode, the wallboxes are only watched (MQTT ctl may set them)."},
  {k: "max_total_current", l: "Max. total current [A]", t: "A", help: "The house connection's fuse per phase: grid " +
    "current (house load plus wallboxes) stays below this."},
  {k: "reserve_current", l: "Reserve current [A]", t: "A", help: "Kept free per phase below the max. total current, " +
    "for loads the meters see late."},
  {k: "max_total_cur_prc", l: "Percent of max. total current [%]", t: "int", help: "Operator's share of the max. total " +
    "current (SunSpec 60000+16). Not saved: back to 100 % at every restart."},
  {k: "max_imbalance_current", l: "Current imbalance limit [A]", t: "A", help: "Largest difference between the phases " +
    "(unbalanced load; mostly single-phase cars). Check the rules of your grid operator."},
  {k: "imbalance_add_home", l: "Imbalance includes house load", t: "bool", help: "On: the imbalance limit applies to " +
    "the grid currents, not only to the wallboxes' own."},
  {k: "max_total_evse_current", l: "Max. total wallbox current [A]", t: "A", help: "All wallboxes together per phase; 0: " +
    "no limit beyond the max. total current."},
  {k: "grid_fail_safe_current", l: "Disconnected limit [A]", t: "A", help: "The wallboxes' budget per phase while the " +
    "grid meter is silent. For safety keep this as low as possible."},
  {k: "meter_timeout_s", l: "Meter timeout [s]", t: "int", help: "A meter or wallbox silent this long counts as failed."}];
var SHED = [
  {k: "shedding_enabled", l: "Load shedding", t: "bool", help: "On: the load-shedding input takes the offsets below off " +
    "the budget while it is active (a ripple-control receiver, for example)."},
  {k: "shedding_active_level", l: "Input active when", t: "sel", o: [[1, "closed / high"], [0, "open / low"]],
    help: "Polarity of the load-shedding input."},
  {k: "shedding_offsets", l: "Reduce by L1/L2/L3 [A]", t: "A3", help: "Current taken off each phase's budget while " +
    "shedding is active."}];

function load(m, p) {
  var form = newForm();
  m.appendChild(h("h2", {text: "Load management"}));
  m.appendChild(section(form, "House connection", HOUSE, p));
  m.appendChild(section(form, "Operator limit", OPERATOR, p));
  m.appendChild(phaseTable(form, {key: "cm_schedule", id: "sched", first: "hour", head: "Hour", entries: p.cm_schedule,
    choices: range(0, 23, function (i) { return i + ":00"; }), title: "Maximum current schedule",
    help: "From each hour on, the max. total current per phase is the entry's L1/L2/L3 [A] until the next entry. It " +
      "needs at least two entries (for example 8:00 10/10/10 and 22:00 63/63/63); no entries: off."}));
  m.appendChild(section(form, "Load shedding", SHED, p));
  m.appendChild(h("div", {"class": "card"}, [h("h3", {text: "PV surplus"}), h("p", {"class": "help",
    text: "PV surplus charging needs a grid meter (role: grid) and, for the PV figure, a generation meter. Each wallbox " +
      "charges by its PV mode (device list): off = as much as the budget allows, pv_only = only from surplus, min_pv = " +
      "minimum current plus surplus, now = full current at once."})]));
  m.appendChild(phaseTable(form, {key: "group_limits", id: "groups", first: "group", head: "Group", entries: p.group_limits,
    choices: range(1, 16, String), title: "Charging groups",
    help: "The wallboxes and meters of a group (device field 'Charging group') together stay below its L1/L2/L3 [A], " +
      "for example a sub-distribution with its own fuse."}));
  loadExtras(m, form, p);
  m.appendChild(devices(form, p.devices));
  saveBar(form).forEach(function (e) { m.appendChild(e); });
}
// a list of {<first>: n, l1, l2, l3} in mA (cm_schedule by hour, group_limits by group), edited as rows in A
function phaseTable(form, o) {
  var rows = o.entries.map(function (e) { return [e[o.first], e.l1, e.l2, e.l3]; }), body = h("tbody", {id: o.id});
  form.extra.push({k: o.key, orig: o.entries, get: function () {
    return rows.map(function (r) { var e = {l1: r[1], l2: r[2], l3: r[3]}; e[o.first] = Number(r[0]); return e; });
  }});
  function draw() {
    body.innerHTML = "";
    rows.forEach(function (r, i) {
      var hs = h("select", {onchange: function () { r[0] = Number(hs.value); }}, o.choices.map(function (c) {
        return h("option", {value: c[0], text: c[1]});
      }));
      hs.value = r[0];
      var cells = [h("td", {}, [hs])];
      [1, 2, 3].forEach(function (j) {
        var inp = h("input", {type: "number", step: "0.1", min: "0", style: "width:5em", value: amps(r[j]),
          oninput: function () { r[j] = Math.round(parseFloat(inp.value) * 1000); }});
        cells.push(h("td", {}, [inp]));
      });
      cells.push(h("td", {}, [h("button", {"class": "del", text: "Delete", onclick: function () { rows.splice(i, 1); draw(); }})]));
      body.appendChild(h("tr", {}, cells));
    });
  }
  draw();
  return h("div", {"class": "card", "data-key": o.key}, [h("h3", {text: o.title}), h("p", {"class": "help", text: o.help}),
    h("table", {}, [h("thead", {}, [h("tr", {}, [o.head, "L1 [A]", "L2 [A]", "L3 [A]", ""].map(function (t) { return h("th", {text: t}); }))]), body]),
    h("button", {"class": "sec", id: o.id + "-add", text: "Add entry", onclick: function () {
      var last = rows.length ? rows[rows.length - 1][0] : o.choices[0][0] - 1;
      rows.push([Math.min(o.choices[o.choices.length - 1][0], last + 1), 16000, 16000, 16000]); draw();
    }}), h("div", {"class": "err"})]);
}
function range(a, b, fmt) { var out = []; for (var i = a; i <= b; i++) out.push([i, fmt(i)]); return out; }

// ---- Load management: the operator limit, the Modbus servers and slave maps, Charging Manager variables and flags
var OPERATOR = [
  {k: "dlm_operator_limit", l: "Operator EVSE Sub-Distribution Limit (L1/L2/L3) [A]", t: "A3", help: "Operator current " +
    "limit available for distribution to the wallboxes, per grid phase (OMCCI 613-615, which a Modbus master may " +
    "also write). 0: no operator limit on that phase. It can only lower what the house connection allows."}];
var P4 = " Takes effect after a restart; 0: off.";
var MODBUS = [
  {k: "modbus_enabled", l: "SunSpec Modbus server", t: "bool", help: "The site's figures as SunSpec models (ID) and " +
    "each published device (ID+1), and the load-management settings (models 60000-60002) for a Modbus master."},
  {k: "modbus_id", l: "SunSpec Modbus ID", t: "int", help: "1..246: the site answers on this unit id, the device " +
    "map on the next."},
  {k: "modbus_tcp_port", l: "SunSpec Modbus TCP port", t: "int", help: "Usually 502 or 1502." + P4},
  {k: "modbus_rtu_port", l: "SunSpec Modbus RTU port", t: "str", help: "COM1,9600,8,n,1 to serve SunSpec on an " +
    "RS485 bus (the bus is then a slave); empty: off. Takes effect after a restart."},
  {k: "modbus_proxy", l: "Modbus TCP-to-RTU proxy", t: "str", help: "UNITS@PORT;...: unit ids the SunSpec TCP server " +
    "forwards to an RS485 bus, e.g. 2-9,12@COM1. Empty: off."},
  {k: "pb_tcp_port", l: "Power Brain map: Modbus TCP port", t: "int", help: "This box's charge point as a Power " +
    "Brain (registers 8000+) on this port, its S0 meters on the next two." + P4},
  {k: "pb_evse_id", l: "Power Brain map: charge point unit id", t: "int", help: "1..247."},
  {k: "pb_s0_1_id", l: "Power Brain map: S0 meter 1 unit id", t: "int", help: "1..247."},
  {k: "pb_s0_2_id", l: "Power Brain map: S0 meter 2 unit id", t: "int", help: "1..247."},
  {k: "omcci_tcp_port", l: "Modbus TCP Server Base Port (OMCCI)", t: "int", help: "Open Modbus Charge Control " +
    "Interface (registers 100+) on this port, usually 502." + P4},
  {k: "omcci_unit_id", l: "OMCCI unit id", t: "int", help: "1..247."},
  {k: "slave_rtu_port", l: "Slave map on RS485", t: "str", help: "COM2,9600,8,n,1 to serve this box's charge point " +
    "to a master on an RS485 bus; empty: off. Takes effect after a restart."},
  {k: "slave_rtu_map", l: "Register set on RS485", t: "sel", o: [["powerbrain", "Power Brain (8000+)"], ["omcci", "OMCCI (100+)"]],
    help: "The map the RS485 slave serves."},
  {k: "fail_safe_duration", l: "Fail-safe time [s]", t: "int", help: "When no master has written for this long, the " +
    "charge point falls back to the fail-safe current (Power Brain 8083). 0: never."},
  {k: "fail_safe_current", l: "Fail-safe current [A]", t: "A", help: "Power Brain 8085; 0 stops charging."},
  {k: "omcci_safe_current", l: "OMCCI safe current [A]", t: "A", help: "OMCCI 131: the current after the " +
    "communication timeout."},
  {k: "omcci_comm_timeout", l: "OMCCI communication timeout [s]", t: "int", help: "OMCCI 132; 0: no timeout."}];
function loadExtras(m, form, p) {
  m.appendChild(section(form, "Modbus", MODBUS, p));
  m.appendChild(cmVars(form, p));
}
// variables (name and formula saved with the page; a value set at once with set_cm_vars, never saved) and 32 flags
function cmVars(form, p) {
  var defs = JSON.parse(JSON.stringify(p.cm_vars || [])), body = h("tbody", {id: "vars"}), msg = h("p", {"class": "err", id: "vars-err"});
  var box = h("div", {"class": "card", "data-key": "cm_vars"}), flags = h("div", {"class": "row", id: "flags"}), vals = {};
  form.extra.push({k: "cm_vars", orig: p.cm_vars || [], get: function () { return defs; }});
  for (var i = 1; i <= 32; i++) (function (i) {
    var k = "cm_flag" + i, cb = h("input", {type: "checkbox", id: "f-" + k});
    cb.checked = !!p[k];
    form.extra.push({k: k, orig: p[k], get: function () { return cb.checked ? 1 : 0; }});
    flags.appendChild(h("label", {title: "CM._flag" + i}, [cb, " " + i]));
  })(i);
  function draw() {
    body.innerHTML = "";
    defs.forEach(function (d, i) {
      var n = h("input", {value: d.name, oninput: function () { d.name = n.value; }});
      var e = h("input", {value: d.expr || "", oninput: function () { d.expr = e.value; }});
      var v = h("input", {type: "number", style: "width:7em", value: vals[d.name] == null ? "" : vals[d.name]});
      body.appendChild(h("tr", {}, [h("td", {}, [n]), h("td", {}, [e]), h("td", {}, [v, " ", h("button", {"class": "sec",
        text: "Set", "data-var": d.name, onclick: function () {
          api("cmd=set_cm_vars&" + q({name: d.name, val: v.value})).then(function () {
            msg.className = "ok"; msg.textContent = d.name + " = " + v.value + " (until the next restart)";
          }, function (er) { msg.className = "err"; msg.textContent = er.message; });
        }})]), h("td", {}, [h("button", {"class": "del", text: "Delete", onclick: function () { defs.splice(i, 1); draw(); }})])]));
    });
  }
  api("cmd=get_cm_vars").then(function (r) { vals = r; draw(); }, function () {});
  draw();
  box.appendChild(h("h3", {text: "Charging Manager variables and flags"}));
  box.appendChild(h("p", {"class": "help", text: "Variables a Modbus master (SunSpec model 60002), MQTT or HTTP " +
    "(set_cm_vars) may set. Name and formula are saved with the page; formulas are kept but not evaluated by this " +
    "version. A value set here holds until the next restart. Save first to set a new variable."}));
  box.appendChild(h("table", {}, [h("thead", {}, [h("tr", {}, ["Name", "Formula", "Value", ""].map(function (t) {
    return h("th", {text: t}); }))]), body]));
  box.appendChild(h("div", {"class": "row"}, [h("button", {"class": "sec", id: "vars-add", text: "Add variable",
    onclick: function () { defs.push({name: "var" + (defs.length + 1), expr: ""}); draw(); }})]));
  box.appendChild(msg);
  box.appendChild(h("div", {"class": "err"}));
  box.appendChild(h("h4", {text: "Flags CM._flag1..32"}));
  box.appendChild(h("p", {"class": "help", text: "On/off switches for a Modbus master (SunSpec model 60001) or " +
    "home automation; saved with the page but never to flash: all off after a restart."}));
  box.appendChild(flags);
  return box;
}

// the device list: edited here as a copy, saved with the page's Save as one devices list (checked whole by the box)
var DEV_FIELDS = [
  {k: "name", l: "Name", t: "str", kind: "EM", help: "Shown on the dashboard and in get_dev_info."},
  {k: "driver", l: "Driver", t: "driver", kind: "EM", help: "How the box talks to the device (docs/devices.md). " +
    "http_input / mqtt_input: the device pushes its figures."},
  {k: "address", l: "Address", t: "str", kind: "EM", help: "IP:port (Modbus TCP), COMn,baud,bits,parity,stop " +
    "(RS485), evse / meter1 / meter2 for this box's own hardware, empty for pushed devices."},
  {k: "id", l: "Modbus ID", t: "int", kind: "EM", help: "1..247."},
  {k: "device_enabled", l: "Enabled", t: "bool", kind: "EM", help: "Off: the device is not polled or controlled."},
  {k: "role", l: "Role", t: "sel", o: ROLES, kind: "M", help: "What the meter measures: the grid meter is the house " +
    "connection the load management keeps below its limit."},
  {k: "attach", l: "Measures wallbox", t: "str", kind: "M", help: "A meter inside a wallbox: that wallbox's Id (e.g. E2)."},
  {k: "min_charging_cur", l: "Min. charging current [A]", t: "A", kind: "E", help: "Below this the wallbox pauses."},
  {k: "max_charging_cur", l: "Max. charging current [A]", t: "A", kind: "E", help: "The wallbox's own limit (cable, fuse)."},
  {k: "prio", l: "Priority", t: "int", kind: "E", help: "1..10: higher priorities get their current first."},
  {k: "pv_mode", l: "PV mode", t: "sel", o: [["off", "off"], ["pv_only", "PV only"], ["min_pv", "min + PV"], ["now", "now"]],
    kind: "E", help: "See PV surplus above."},
  {k: "phases", l: "Phases", t: "sel", o: [[1, "1"], [2, "2"], [3, "3"]], kind: "E", help: "Phases the wallbox is wired for."},
  {k: "wiring", l: "Wiring", t: "sel", o: WIRING.map(function (w) { return [w, w]; }), kind: "EM", help: "Grid phase of " +
    "the device's L1, L2, L3: 231 = device L1 on grid L2, ..."},
  {k: "group", l: "Charging group", t: "int", kind: "EM", help: "0: the site; 1..16: a group with its own limits."},
  {k: "fail_safe_current", l: "Fail-safe current [A]", t: "A", kind: "E", help: "What the wallbox falls back to when " +
    "the manager is silent."},
  {k: "auth_required", l: "Authorization required", t: "bool", kind: "E", help: "Charging only after an RFID/PIN on the " +
    "whitelist (or free charging)."},
  {k: "publish_modbus", l: "Publish via Modbus", t: "bool", kind: "EM", help: "Listed in the SunSpec device map (ID+1)."},
  {k: "publish_mqtt", l: "Publish via MQTT", t: "bool", kind: "EM", help: "Its figures on get/<dev_id>."},
  {k: "definition", l: "Meter definition (JSON)", t: "json", kind: "M", help: "A user-defined meter: the definition " +
    "file's JSON (docs/devices.md), rtype 0 for driver meter_modbus (registers), rtype 2 for meter_mqtt (topics). " +
    "Empty for the built-in meter models."}];
function devices(form, list) {
  var devs = JSON.parse(JSON.stringify(list)), box = h("div", {"class": "card", "data-key": "devices"});
  form.extra.push({k: "devices", orig: list, get: function () { return devs; }});
  function draw(edit) {
    box.innerHTML = "";
    box.appendChild(h("h3", {text: "Devices"}));
    box.appendChild(h("p", {"class": "help", text: "Wallboxes (E1..E25) and meters (M1..) this box manages. E1 is this " +
      "box's own charge point unless E1 is listed with another address. Changes apply when saved, without a restart."}));
    var tb = h("tbody", {id: "dev-list"});
    devs.forEach(function (d, i) {
      tb.appendChild(h("tr", {}, [h("td", {text: d.dev_id}), h("td", {text: d.name}), h("td", {text: d.driver}),
        h("td", {text: d.address}), h("td", {text: d.dev_id[0] === "E" ? "prio " + d.prio : (ROLES[d.role] || [0, ""])[1]}),
        h("td", {}, [h("button", {"class": "sec", text: "Edit", onclick: function () { draw(i); }}), " ",
          h("button", {"class": "del", text: "Remove", onclick: function () { devs.splice(i, 1); draw(); }}), " ",
          resetBtn(list, d.dev_id)])]));
    });
    box.appendChild(h("table", {}, [h("thead", {}, [h("tr", {}, ["Id", "Name", "Driver", "Address", "Priority / role", ""].map(function (t) {
      return h("th", {text: t}); }))]), tb]));
    box.appendChild(h("div", {"class": "row"}, [h("button", {"class": "sec", id: "add-wallbox", text: "Add wallbox",
      onclick: function () { devs.push(newDev("E")); draw(devs.length - 1); }}),
      h("button", {"class": "sec", id: "add-meter", text: "Add meter", onclick: function () { devs.push(newDev("M")); draw(devs.length - 1); }})]));
    if (edit != null) box.appendChild(devEditor(devs, edit, draw));
    box.appendChild(h("div", {"class": "err"}));
  }
  function newDev(kind) {
    var n = 1;
    while (devs.some(function (d) { return d.dev_id === kind + n; }) || (kind === "E" && n === 1)) n++;
    return kind === "E" ? {dev_id: "E" + n, driver: "evse_powerbrain", name: "", address: "", id: 1, prio: 1,
      min_charging_cur: 6000, max_charging_cur: 16000, phases: 3, pv_mode: "off", wiring: "123"} :
      {dev_id: "M" + n, driver: "meter_sdm630", name: "", address: "", id: 1, role: 3, wiring: "123"};
  }
  draw();
  box.openEditor = function (i) { if (i < devs.length) draw(i); };
  return box;
}
// reset_device: a saved device's state, counters and connection start anew (its settings stay)
function resetBtn(saved, id) {
  if (!saved.some(function (x) { return x.dev_id === id; })) return null;
  return h("button", {"class": "sec", text: "Reset", "data-reset": id, title: "Restart its driver: state, counters " +
    "and connection anew, settings kept", onclick: function (ev) {
      var b = ev.target;
      api("cmd=reset_device&" + q({dev_id: id})).then(function () { b.textContent = "Reset done"; }, function (e) { alert(e.message); });
    }});
}
function devEditor(devs, i, draw) {
  var d = devs[i], kind = d.dev_id[0], ed = h("div", {"class": "card", id: "dev-editor"}, [h("h3", {text: "Device " + d.dev_id})]);
  var inputs = [];
  DEV_FIELDS.forEach(function (f) {
    if (f.kind.indexOf(kind) < 0) return;
    var key = "devices[" + i + "]." + f.k, val = d[f.k], row = h("div", {"class": "f", "data-key": key}), inp;
    if (f.t === "driver") {
      var names = kind === "E" ? WB_DRIVERS : METER_DRIVERS;
      if (val && names.indexOf(val) < 0) names = names.concat([val]);
      inp = h("select", {id: "d-driver"}, names.map(function (n) { return h("option", {value: n, text: n}); }));
      inp.value = val;
    } else {
      var tmp = {fields: []};
      field({k: f.k, t: f.t, o: f.o}, val == null ? (f.t === "bool" ? f.k !== "auth_required" && f.k.slice(0, 7) !== "publish" : f.t === "str" ? "" : val) : val, tmp);
      inp = tmp.fields[0].inp; inp.id = "d-" + f.k;
      inputs.push({f: f, x: tmp.fields[0]});
    }
    if (f.t === "driver") inputs.push({f: f, x: {f: {t: "str"}, inp: inp}});
    row.appendChild(h("label", {"for": inp.id, text: f.l})); row.appendChild(inp);
    row.appendChild(h("div", {"class": "help", text: f.help})); row.appendChild(h("div", {"class": "err"}));
    ed.appendChild(row);
  });
  ed.appendChild(h("div", {"class": "row"}, [h("button", {id: "dev-done", text: "Done", onclick: function () {
    var bad = null;
    inputs.forEach(function (x) {
      var v = readField(x.x);
      if (typeof v !== "number" || !isNaN(v)) d[x.f.k] = v; else if (x.f.t === "json") bad = x.f.k;
    });
    if (bad) { ed.querySelector('[data-key="devices[' + i + '].' + bad + '"] .err').textContent = "devices[" + i + "]." + bad + ": not valid JSON"; return; }
    draw();
  }}), h("span", {"class": "help", text: "then Save below"})]));
  return ed;
}

function backend(m, p) {
  var form = newForm(), U = " A broker URL mqtt://user:password@host:port, \"mqtt\" for the default broker, empty: off.";
  m.appendChild(h("h2", {text: "Backend"}));
  var oc = h("p", {"class": "help", id: "ocpp-state", text: "OCPP client: off (no backend URL)."});
  api("cmd=get_status").then(function (st) {
    var o = st.ocpp;
    if (o) oc.textContent = "OCPP client: " + o.state + (o.tls ? ", TLS " + o.tls : "") + ", boot " + o.boot +
      (o.last_error ? ", last error: " + o.last_error : "") + ".";
  }, function () {});
  m.appendChild(section(form, "OCPP 1.6J backend", [
    {k: "ocpp_url", l: "Backend URL", t: "url", help: "ws://host:port/path or wss://... (TLS); the Client ID is " +
      "appended as the last path segment unless the URL ends with it. Empty: OCPP off."},
    {k: "ocpp_client_id", l: "Client ID", t: "str", help: "The charge point's identity at the backend; empty: the " +
      "board's serial number."},
    {k: "ocpp_password", l: "Password", t: "pwd", help: "HTTP Basic auth with the Client ID as user (security " +
      "profile 1/2). Never shown again."},
    {k: "ocpp_connector_id", l: "Connector ID", t: "int", help: "The box's own charge point at the backend (usually 1)."},
    {k: "ocpp_heartbeat_s", l: "Heartbeat [s]", t: "int", help: "0: the interval the backend gives at boot."},
    {k: "ocpp_meter_interval_s", l: "Meter value interval [s]", t: "int", help: "MeterValueSampleInterval."},
    {k: "ocpp_aligned_interval_s", l: "Clock-aligned meter values [s]", t: "int", help: "ClockAlignedDataInterval: " +
      "a sample at every multiple of this from midnight UTC, with or without a transaction; 0: off."},
    {k: "ocpp_ws_ping_s", l: "WebSocket ping [s]", t: "int", help: "Finds a dead link between heartbeats; 0: no pings."},
    {k: "ocpp_tls_ca", l: "CA certificates (PEM)", t: "pem", help: "With CAs the backend's certificate is verified " +
      "(profile 2); without, wss:// is encrypted but not verified. Write-only."},
    {k: "ocpp_tls_cert", l: "Client certificate (PEM)", t: "pem", help: "Presented to the backend with the key " +
      "(profile 3). Write-only."},
    {k: "ocpp_tls_key", l: "Client key (PEM)", t: "pem", help: "Write-only: never readable through any API."}], p,
    "Changes reconnect the client; switching OCPP on or off takes effect after a restart."));
  m.appendChild(oc);
  m.appendChild(section(form, "MQTT", [
    {k: "mqtt_enabled", l: "MQTT enabled", t: "bool", help: "Publish SunSpec-style figures and take set-points on the default broker."},
    {k: "mqtt_url", l: "Default broker", t: "url", help: "mqtt[s]://user:password@host:port. The password shows as ***: " +
      "leave the field as it is to keep it, or type the whole URL to change it."},
    {k: "mqtt_topic_root", l: "Topic root", t: "str", help: "Every topic starts with this (default cfos_mqtt)."},
    {k: "mqtt_topic_serial", l: "Serial in the root", t: "bool", help: "On: the root becomes <root>_<serial number>, for several boxes on one broker."},
    {k: "mqtt_api_url", l: "API topics (api/, ctl)", t: "url", help: "Commands on api/<query>, answers on api_res." + U},
    {k: "mqtt_dev_info_url", l: "Device topics (get/...)", t: "url", help: "get/dev_info, get/params, get/<dev_id>." + U},
    {k: "mqtt_log_url", l: "Log topic", t: "url", help: "The log lines." + U},
    {k: "mqtt_ta_log_url", l: "Transaction log topic", t: "url", help: "ta_log: a message per charging session." + U},
    {k: "mqtt_ctl_enabled", l: "ctl topic", t: "bool", help: "Set-points by MQTT, only in observation mode."},
    {k: "mqtt_ha_discovery", l: "Home Assistant discovery", t: "bool", help: "Announce the devices to Home Assistant."},
    {k: "mqtt_publish_s", l: "Publish interval [s]", t: "int", help: "How often get/... is published."}], p,
    "Changes to the brokers take effect after a restart."));
  saveBar(form).forEach(function (e) { m.appendChild(e); });
}

// set_diag_logging: DEBUG lines in the log for 5 minutes (or until stopped)
function diagCard(showDebug) {
  var st = h("span", {id: "diag-state"}), btn = h("button", {"class": "sec", id: "diag-btn"}), on = false;
  function show(left) {
    on = left > 0;
    st.textContent = on ? "on, " + Math.floor(left / 60) + " min " + left % 60 + " s left" : "off";
    btn.textContent = on ? "Stop diagnostic logging" : "Start diagnostic logging (5 min)";
  }
  btn.onclick = function () {
    api("cmd=set_diag_logging&enable=" + (on ? 0 : 1)).then(function (r) {
      show(r.diag_logging_s); if (r.diag_logging_s) showDebug();
    }, function (e) { st.textContent = e.message; });
  };
  every(5000, function () { api("cmd=get_status").then(function (s) { show(s.diag_logging_s || 0); }, function () {}); });
  return h("div", {"class": "card"}, [h("h3", {text: "Diagnostic logging"}), h("p", {"class": "help", text: "Adds the " +
    "DEBUG lines (every HTTP command and more) to the log, the console and the MQTT log topic for 5 minutes, then the " +
    "log goes back to INFO."}), h("div", {"class": "row"}, ["Diagnostic logging: ", st, btn])]);
}
function system(m) {
  var st = h("div", {"class": "card", id: "sys-status"}), log = h("pre", {"class": "log", id: "log"}), since = 0;
  var lv = h("select", {id: "log-level", onchange: function () { since = 0; log.textContent = ""; pollLog(); }},
    ["DEBUG", "INFO", "WARN", "ERROR"].map(function (n) { return h("option", {value: n, text: n}); }));
  lv.value = "INFO";
  var msg = h("p", {"class": "err", id: "sys-err"});
  function pollLog() {
    api("cmd=get_log&level=" + lv.value + "&since=" + since).then(function (r) {
      r.lines.forEach(function (l) {
        log.appendChild(h("div", {"class": "lv-" + l[2], text: "#" + l[0] + " " + (l[1] / 1000).toFixed(1) + " s " + l[2] + " " + l[3] + ": " + l[4]}));
      });
      since = r.count;
      log.scrollTop = log.scrollHeight;
    }, function () {});
  }
  m.appendChild(h("h2", {text: "System"}));
  m.appendChild(st);
  m.appendChild(h("div", {"class": "card"}, [h("h3", {text: "Log"}), h("div", {"class": "row"}, ["Level at least ", lv]), log]));
  m.appendChild(diagCard(function () { lv.value = "DEBUG"; since = 0; log.textContent = ""; pollLog(); }));
  var file = h("input", {type: "file", id: "cfg-file", accept: ".json", hidden: true});
  file.addEventListener("change", function () {
    var fr = new FileReader();
    fr.onload = function () {
      api("cmd=import_config", fr.result).then(function (r) {
        msg.className = "ok"; msg.textContent = "Imported: " + (r.changed.join(", ") || "nothing changed");
        api("cmd=get_params").then(function (p) { S.params = p; });
      }, function (e) { msg.className = "err"; msg.textContent = e.message; });
      file.value = "";
    };
    fr.readAsText(file.files[0]);
  });
  m.appendChild(h("div", {"class": "card"}, [h("h3", {text: "Configuration"}),
    h("p", {"class": "help", text: "Export: every setting as JSON, without passwords (they are listed as omitted). Import: " +
      "such a file; it is checked whole and applied all or nothing."}),
    h("div", {"class": "row"}, [h("button", {"class": "sec", id: "cfg-export", text: "Export configuration", onclick: function () {
      api("cmd=export_config").then(function (r) { download("loadpilot-config.json", JSON.stringify(r, null, 1), "application/json"); });
    }}), h("button", {"class": "sec", id: "cfg-import", text: "Import configuration", onclick: function () { file.click(); }}), file,
      h("button", {id: "restart", text: "Restart", onclick: restart})]), msg]));
  var pw = {old: h("input", {type: "password", id: "pw-old"}), nw: h("input", {type: "password", id: "pw-new"}),
    rep: h("input", {type: "password", id: "pw-rep"})}, pmsg = h("p", {"class": "err", id: "pw-err"});
  m.appendChild(h("div", {"class": "card"}, [h("h3", {text: "Admin password"}),
    h("p", {"class": "help", text: "The login of these pages, the HTTP API and override_device. 8 to 64 characters, not the " +
      "factory password. Stored in flash at once."}),
    h("div", {"class": "f"}, [h("label", {text: "Current password"}), pw.old]),
    h("div", {"class": "f"}, [h("label", {text: "New password"}), pw.nw]),
    h("div", {"class": "f"}, [h("label", {text: "Repeat new password"}), pw.rep]),
    h("button", {id: "pw-save", text: "Change password", onclick: function () {
      if (pw.nw.value !== pw.rep.value) { pmsg.className = "err"; pmsg.textContent = "The new passwords differ."; return; }
      api("cmd=change_admin_pwd&" + q({old_pwd: pw.old.value, new_pwd: pw.nw.value})).then(function () {
        S.auth = btoa(atob(S.auth).split(":")[0] + ":" + pw.nw.value); sessionStorage.setItem("lp_auth", S.auth);
        pmsg.className = "ok"; pmsg.textContent = "Password changed."; pw.old.value = pw.nw.value = pw.rep.value = "";
        api("cmd=get_status");  // the warning goes with the next answer
      }, function (e) { pmsg.className = "err"; pmsg.textContent = e.message; });
    }}), pmsg]));
  every(3000, function () {
    api("cmd=get_status").then(function (s) {
      st.innerHTML = "";
      st.appendChild(h("h3", {text: "Status"}));
      var u = Math.floor(s.uptime_ms / 1000);
      st.appendChild(kv([["Firmware", s.version + " on board " + s.board],
        ["Uptime", Math.floor(u / 86400) + " d " + Math.floor(u % 86400 / 3600) + " h " + Math.floor(u % 3600 / 60) + " min " + u % 60 + " s"],
        ["Heap", s.heap.alloc + " B used, " + s.heap.free + " B free (lowest free " + s.heap.min_free + " B)"],
        ["Loop lag", "worst " + s.loop.worst_ms + " ms, p99 " + s.loop.p99_ms + " ms (" + s.loop.samples + " samples)"]]));
      st.appendChild(h("table", {id: "tasks"}, [h("thead", {}, [h("tr", {}, ["Task", "State", "Restarts", "Last error"].map(function (t) {
        return h("th", {text: t}); }))]), h("tbody", {}, s.tasks.map(function (t) {
        return h("tr", {}, [h("td", {text: t.name}), h("td", {text: t.state}), h("td", {text: String(t.restarts)}), h("td", {text: t.last_error || ""})]);
      }))]));
    }, function () {});
    pollLog();
  });
}

window.addEventListener("hashchange", route);
$("menu-btn").addEventListener("click", function () { $("nav").classList.toggle("open"); });
route();

// ---- Users (docs/users.md): the admin's list of users with PINs (get_users), add with a new ID (get_new_user_id),
// edit name, name display, wallboxes, priority and RFIDs (set_user), delete (del_user), "Learn" (learn_rfid); and
// a user's own page after the user login (get_user_status, get_user, set_user with their ID, learn_rfid). A
// separate block: the menu entry is one line in index.html, and the page registers itself here.
var PHASES = [[0, "keep"], [1, "1 phase (L1)"], [2, "1 phase (L2)"], [4, "1 phase (L3)"], [7, "3 phases"]];
function rfidTable(list) {  // the RFIDs of one user: {el, add, get}
  var rows = h("tbody", {id: "us-rfids"});
  function add(r) {
    var id = h("input", {value: r.id || "", placeholder: "RFID or PIN"}), nm = h("input", {value: r.name || "", maxlength: 32});
    var au = h("input", {type: "checkbox"}), ov = h("input", {type: "checkbox"});
    au.checked = r.ac_auth !== false; ov.checked = !!r.ac_ovch;
    var ph = h("select", {}, PHASES.map(function (o) { return h("option", {value: String(o[0]), text: o[1]}); }));
    ph.value = String(r.used_phases || 0);
    var tr = h("tr", {}, [h("td", {}, [id]), h("td", {}, [nm]), h("td", {}, [au]), h("td", {}, [ov]), h("td", {}, [ph]),
      h("td", {}, [h("button", {"class": "del", text: "Remove", onclick: function () { tr.remove(); }})])]);
    tr.get = function () { return {id: id.value.trim(), name: nm.value, ac_auth: au.checked, ac_ovch: ov.checked, used_phases: parseInt(ph.value, 10)}; };
    rows.appendChild(tr);
  }
  (list || []).forEach(add);
  return {add: add, get: function () { return [].map.call(rows.children, function (tr) { return tr.get(); }); },
    el: h("table", {}, [h("thead", {}, [h("tr", {}, ["ID", "Name", "Authorize charging", "(De)activate charging", "Phases", ""].map(function (t) {
      return h("th", {text: t}); }))]), rows])};
}
function learnButton(uid, after) {  // arms learn_rfid for 60 s and shows how it goes; after(r): learned
  var out = h("span", {id: "us-learn-state", "class": "help"}), timer = null;
  function show(r) {
    out.textContent = r.learn === "armed" ? "Learning: plug in the car and place the new RFID within " + r.left_s + " s." :
      r.learn === "learned" ? "Learned: RFID " + r.rfid + "." : r.learn === "expired" ? "No new RFID within the minute." :
      r.learn === "failed" ? "Not learned: " + r.why : "";
    if (r.learn !== "armed") { clearInterval(timer); timer = null; if (r.learn === "learned") after(r); }
  }
  var b = h("button", {"class": "sec", id: "us-learn", text: "Learn", onclick: function () {
    api("cmd=learn_rfid&" + q({id: uid})).then(function (r) {
      show(r);
      if (!timer) { timer = setInterval(function () { api("cmd=learn_rfid&state=1&" + q({id: uid})).then(show, function () {}); }, 2000); S.timers.push(timer); }
    }, function (e) { out.textContent = e.message; });
  }});
  return h("span", {}, [b, " ", out]);
}
function usersPage(m) {
  var list = h("tbody", {id: "us-list"}), ed = h("div", {id: "us-edit"}), err = h("p", {"class": "err", id: "us-err"});
  var boxes = (S.params.devices || []).filter(function (d) { return d.dev_id[0] === "E"; }).map(function (d) { return d.dev_id; });
  function fail(e) { err.textContent = e.message; }
  function refresh() {
    api("cmd=get_users").then(function (us) {
      list.innerHTML = "";
      us.forEach(function (u) {
        list.appendChild(h("tr", {}, [h("td", {text: u.name || "-"}), h("td", {text: u.id}),
          h("td", {text: u.dev_ids.join(", ") || "none"}), h("td", {text: String(u.priority)}),
          h("td", {text: String(u.rfids.length)}), h("td", {}, [
            h("button", {"class": "sec", text: "Edit", onclick: function () { edit(u, false); }}), " ",
            h("button", {"class": "del", text: "Delete", onclick: function () {
              if (confirm("Delete user " + (u.name || u.id) + "?")) api("cmd=del_user&" + q({id: u.id})).then(refresh, fail);
            }})])]));
      });
      if (!us.length) list.appendChild(h("tr", {}, [h("td", {colspan: 6, text: "No users: every wallbox charges as set on the Authorization page."})]));
    }, fail);
  }
  function edit(u, isNew) {
    err.textContent = ""; ed.innerHTML = "";
    var name = h("input", {id: "us-name", value: u.name || "", maxlength: 32});
    var disp = h("input", {id: "us-display", type: "checkbox"}); disp.checked = u.display !== false;
    var show = h("input", {id: "us-show", type: "checkbox"}); show.checked = u.show !== false;
    var prio = h("select", {id: "us-prio"}, ["maintain", 1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map(function (p) {
      return h("option", {value: String(p), text: p === "maintain" ? "maintain (the wallbox's)" : String(p)}); }));
    prio.value = String(u.priority == null ? "maintain" : u.priority);
    var all = boxes.slice(); (u.dev_ids || []).forEach(function (d) { if (all.indexOf(d) < 0) all.push(d); });
    if (all.indexOf("E1") < 0) all.unshift("E1");
    var checks = all.map(function (d) {
      var c = h("input", {type: "checkbox", id: "us-box-" + d}); c.checked = (u.dev_ids || []).indexOf(d) >= 0;
      return [d, c];
    });
    var rf = rfidTable(u.rfids);
    function save() {
      var body = {id: u.id, name: name.value, display: disp.checked, show: show.checked,
        dev_ids: checks.filter(function (c) { return c[1].checked; }).map(function (c) { return c[0]; }),
        priority: prio.value === "maintain" ? "maintain" : parseInt(prio.value, 10), rfids: rf.get()};
      api("cmd=set_user", body).then(function () { ed.innerHTML = ""; refresh(); }, fail);
    }
    ed.appendChild(h("div", {"class": "card"}, [h("h3", {text: isNew ? "New user" : "Edit user"}),
      h("div", {"class": "f"}, [h("label", {text: "User ID"}), h("input", {id: "us-id", value: u.id, readonly: true}),
        h("span", {"class": "help", text: "The user's PIN: with it the user charges (enter_rfid), logs in on the start page and changes name and RFIDs without the admin password. Keep it secret."})]),
      h("div", {"class": "f"}, [h("label", {text: "Name"}), name, h("span", {"class": "help", text: "Shown in the list of charging processes instead of the ID."})]),
      h("div", {"class": "f"}, [h("label", {text: "Allow name display"}), disp, h("span", {"class": "help", text: "The name on the wallbox's tile while the user charges."})]),
      h("div", {"class": "f"}, [h("label", {text: "Show wallbox"}), show, h("span", {"class": "help", text: "Other users see the tile of the wallbox this user charges at (the admin always does)."})]),
      h("div", {"class": "f"}, [h("label", {text: "Wallbox assignment"}), h("span", {}, checks.map(function (c) {
        return h("label", {}, [c[1], " " + c[0] + " "]); })), h("span", {"class": "help", text: "As soon as a wallbox has a user, it charges only after that user's PIN or RFID."})]),
      h("div", {"class": "f"}, [h("label", {text: "Priority"}), prio, h("span", {"class": "help", text: "Replaces the wallbox's priority while this user charges."})]),
      h("h3", {text: "RFIDs and PINs"}), rf.el,
      h("div", {"class": "row"}, [h("button", {"class": "sec", id: "us-add-rfid", text: "Add RFID/PIN", onclick: function () { rf.add({}); }}),
        isNew ? null : learnButton(u.id, function (r) { rf.add({id: r.rfid}); refresh(); })]),
      h("div", {"class": "row"}, [h("button", {id: "us-save", text: "Save", onclick: save}),
        h("button", {"class": "sec", text: "Cancel", onclick: function () { ed.innerHTML = ""; err.textContent = ""; }})])]));
  }
  m.appendChild(h("h2", {text: "Users"}));
  m.appendChild(h("div", {"class": "card"}, [h("div", {"class": "row"}, [h("button", {id: "us-add", text: "Add user", onclick: function () {
      api("cmd=get_new_user_id").then(function (id) { edit({id: id, name: "", dev_ids: [], priority: "maintain", rfids: []}, true); }, fail);
    }})]), err,
    h("table", {}, [h("thead", {}, [h("tr", {}, ["Name", "User ID", "Wallboxes", "Priority", "RFIDs", ""].map(function (t) { return h("th", {text: t}); }))]), list]),
    h("p", {"class": "help", text: "Users authorize charging with their user ID (PIN) or one of their RFIDs at the wallboxes assigned to them. " +
      "Learn: the next unknown RFID placed at one of the user's wallboxes within a minute becomes theirs. " +
      "Per-user charging rules and budgets are not supported."})]));
  m.appendChild(ed);
  refresh();
}
PAGES.users = usersPage;

// the user login: the user ID alone, kept in sessionStorage (never in the address), no admin menu
$("login-user-btn").addEventListener("click", function () {
  var uid = $("login-uid").value.trim();
  S.auth = null;
  api("cmd=get_user_status&" + q({id: uid})).then(function () {
    S.uid = uid; sessionStorage.setItem("lp_uid", uid); sessionStorage.removeItem("lp_auth");
    $("login-uid").value = ""; $("login").hidden = true; $("main").hidden = false;
    route();
  }, function (e) { $("login-err").textContent = e.message; });
});
function userHome(m) {
  document.body.className = "user";  // app.css hides the admin menu; the box refuses admin commands anyway
  $("login").hidden = true; $("main").hidden = false; m.innerHTML = "";
  var uid = S.uid, tiles = h("div", {"class": "grid", id: "u-tiles"}), ses = h("tbody", {id: "u-sessions"});
  var ed = h("div", {id: "u-edit"}), err = h("p", {"class": "err", id: "u-err"}), hello = h("h2", {id: "u-hello", text: "My wallboxes"});
  function out() {
    S.uid = null; sessionStorage.removeItem("lp_uid"); document.body.className = ""; showLogin();
  }
  function fail(e) { if (/no user with this ID|wait|too many/.test(e.message)) { out(); $("login-err").textContent = e.message; } else err.textContent = e.message; }
  function draw(st) {
    hello.textContent = "Hello " + (st.name || "user");
    tiles.innerHTML = "";
    st.tiles.forEach(function (t) {
      var rows = [["Current L1/L2/L3", t.current_ma.map(amps).join(" / ") + " A"], ["Power", kw(t.power_w)],
        ["Allocation", amps(t.alloc_ma) + " A"], ["Reason", REASONS[t.reason] || t.reason]];
      if (t.user) rows.push(["User", t.user]);
      if (t.paused_by_user) rows.push(["Charging", "deactivated (RFID or override)"]);
      tiles.appendChild(h("div", {"class": "card dev", id: "u-dev-" + t.dev_id}, [
        h("span", {"class": "st s" + (t.state || 0), text: STATES[t.state] || "-"}),
        h("h4", {text: t.dev_id + (t.mine ? " (mine)" : "")}), kv(rows)]));
    });
    if (!st.sessions) return;
    ses.innerHTML = "";
    st.sessions.forEach(function (x) {
      ses.appendChild(h("tr", {}, [h("td", {text: x.clock ? new Date(x.start * 1000).toLocaleString() : "-"}),
        h("td", {text: x.dev_id}), h("td", {text: x.rfid}), h("td", {text: (x.energy_wh / 1000).toFixed(2) + " kWh"})]));
    });
    if (!st.sessions.length) ses.appendChild(h("tr", {}, [h("td", {colspan: 4, text: "No sessions yet."})]));
  }
  function editor() {
    api("cmd=get_user&" + q({id: uid})).then(function (u) {
      ed.innerHTML = "";
      var name = h("input", {id: "u-name", value: u.name, maxlength: 32});
      var disp = h("input", {id: "u-display", type: "checkbox"}); disp.checked = u.display;
      var show = h("input", {id: "u-show", type: "checkbox"}); show.checked = u.show !== false;
      var rf = rfidTable(u.rfids);
      ed.appendChild(h("div", {"class": "card"}, [h("h3", {text: "My settings"}),
        h("div", {"class": "f"}, [h("label", {text: "Name"}), name]),
        h("div", {"class": "f"}, [h("label", {text: "Show my name on the tile"}), disp]),
        h("div", {"class": "f"}, [h("label", {text: "Show my wallbox to other users"}), show]),
        h("h3", {text: "My RFIDs and PINs"}), rf.el,
        h("div", {"class": "row"}, [h("button", {"class": "sec", id: "us-add-rfid", text: "Add RFID/PIN", onclick: function () { rf.add({}); }}),
          learnButton(uid, function (r) { rf.add({id: r.rfid}); })]),
        h("div", {"class": "row"}, [h("button", {id: "u-save", text: "Save", onclick: function () {
          err.textContent = "";
          api("cmd=set_user", {id: uid, name: name.value, display: disp.checked, show: show.checked, rfids: rf.get()}).then(function () {
            err.textContent = "Saved."; editor(); }, fail);
        }})])]));
    }, fail);
  }
  m.appendChild(h("div", {"class": "row"}, [hello, h("button", {"class": "sec", id: "u-logout", text: "Log out", onclick: out})]));
  m.appendChild(tiles);
  m.appendChild(h("div", {"class": "card"}, [h("h3", {text: "My latest sessions"}),
    h("table", {}, [h("thead", {}, [h("tr", {}, ["Start", "Wallbox", "ID", "Energy"].map(function (t) { return h("th", {text: t}); }))]), ses])]));
  m.appendChild(err);
  m.appendChild(ed);
  var n = 0;  // the sessions (read from the journal on flash) every 8th poll
  every(2000, function () { api("cmd=get_user_status&" + q({id: uid, sessions: n++ % 8 ? "" : 1})).then(draw, fail); });
  editor();
}
if (location.hash === "#users") route();
