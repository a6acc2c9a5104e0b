// distill-guard dashboard: polls the admin JSON API and renders it. No external
// assets. Script errors are listed in #errors and counted in body[data-errors],
// so a headless browser test can check for them in the DOM.
"use strict";
(function () {
  var errorCount = 0;
  function reportError(msg) {
    errorCount += 1;
    document.body.dataset.errors = String(errorCount);
    var li = document.createElement("li");
    li.textContent = String(msg);
    var list = document.getElementById("errors");
    if (list) list.appendChild(li);
  }
  window.addEventListener("error", function (e) { reportError(e.message || "error"); });
  window.addEventListener("unhandledrejection", function (e) {
    reportError((e.reason && e.reason.message) || String(e.reason));
  });

  var COLORS = { allow: "#66bb6a", tag: "#42a5f5", throttle: "#ffa726", degrade: "#ab47bc",
    block: "#e53935", rate_limited: "#8d6e63", error: "#78909c" };

  function readToken() {
    var m = /(?:^#|&)token=([^&]+)/.exec(window.location.hash || "");
    if (m) {
      var t = decodeURIComponent(m[1]);
      try { sessionStorage.setItem("dg-token", t); } catch (e) { /* storage may be off */ }
      return t;
    }
    try { return sessionStorage.getItem("dg-token") || ""; } catch (e) { return ""; }
  }
  var token = readToken();

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function short(id) { id = String(id || ""); return id.length > 14 ? id.slice(0, 14) + "…" : id; }
  function fmt(n) { return typeof n === "number" ? (Math.round(n * 100) / 100).toLocaleString("en") : String(n); }
  function ago(ms, now) {
    var s = Math.max(0, Math.round((now - ms) / 1000));
    return s < 60 ? s + " s ago" : s < 3600 ? Math.round(s / 60) + " min ago" : Math.round(s / 3600) + " h ago";
  }

  function outcome(action, status) {
    if (status === 429) return "rate limited";
    if (status === 403) return "blocked";
    if (status >= 400) return "refused";
    return action;
  }

  function setNotice(text) {
    var n = document.getElementById("notice");
    n.hidden = !text;
    n.textContent = text || "";
  }
  function setState(text, ok) {
    var s = document.getElementById("state");
    s.textContent = text;
    s.className = "pill " + (ok ? "ok" : "bad");
  }

  function api(path) {
    return fetch(path, { headers: { Authorization: "Bearer " + token }, cache: "no-store" })
      .then(function (r) {
        if (r.status === 401) { var e = new Error("unauthorized"); e.auth = true; throw e; }
        if (!r.ok) throw new Error(path + ": HTTP " + r.status);
        return r.json();
      });
  }

  function table(id, head, rows) {
    var t = document.getElementById(id);
    t.textContent = "";
    var tr = el("tr");
    head.forEach(function (h) { tr.appendChild(el("th", null, h)); });
    t.appendChild(tr);
    if (!rows.length) {
      var empty = el("tr"); var td = el("td", { colspan: String(head.length) }, "nothing yet");
      empty.appendChild(td); t.appendChild(empty); return;
    }
    rows.forEach(function (cells) {
      var r = el("tr");
      cells.forEach(function (c) {
        var td;
        if (c && typeof c === "object" && c.text !== undefined) {
          td = el("td", c.cls ? { "class": c.cls, title: c.title || "" } : null, c.text);
        } else { td = el("td", null, c); }
        r.appendChild(td);
      });
      t.appendChild(r);
    });
  }

  function renderCards(s) {
    var cards = document.getElementById("cards");
    cards.textContent = "";
    var last = s.config.last_reload;
    var items = [
      ["Mode", !s.config.enabled ? "off (passthrough)" : s.config.shadow ? "shadow" : "enforcing"],
      ["Uptime", Math.floor(s.uptime_seconds / 60) + " min"],
      ["Config generation", s.config.generation],
      ["Last reload", last ? (last.ok ? "ok" : "REJECTED") + " (" + last.trigger + ")" : "none"],
      ["Decisions (5 min)", Object.keys(s.decisions.totals).reduce(function (a, k) { return a + s.decisions.totals[k]; }, 0)],
      ["Refused (5 min)", s.decisions.totals.block + s.decisions.totals.rate_limited + s.decisions.totals.error],
      ["Tracked buckets", s.store.tracked],
      ["Overrides", s.overrides.allow + s.overrides.block + s.overrides.tier + s.overrides.unlink],
      ["Audit log", s.audit ? s.audit.target + (s.audit.all ? " (all)" : "") : "off"],
      ["Cluster engine", s.engines.cluster ? "on" : "not running"],
      ["Shared clusters", s.cluster_log ? (s.cluster_log.up ? "up" : "REDIS FAILING") + " (" + s.cluster_log.applied + " applied)" : "this replica only"]
    ];
    items.forEach(function (it) {
      var c = el("div", { "class": "card" });
      c.appendChild(el("div", { "class": "k" }, it[0]));
      c.appendChild(el("div", { "class": "v" }, it[1]));
      cards.appendChild(c);
    });
    if (last && !last.ok) {
      setNotice("The last config reload was rejected; the previous config is still in force: " + last.errors.join("; "));
    } else { setNotice(""); }
  }

  function renderChart(s) {
    var canvas = document.getElementById("chart");
    var ctx = canvas.getContext("2d");
    var W = canvas.width, H = canvas.height, pad = 28;
    ctx.clearRect(0, 0, W, H);
    var series = s.decisions.series;
    var ticks = s.decisions.timeline;
    var end = ticks.length ? ticks[ticks.length - 1].second : Math.floor(s.now_ms / 1000);
    var span = 300, bw = (W - pad) / span;
    var byS = {};
    ticks.forEach(function (t) { byS[t.second] = t.counts; });
    var max = 1;
    ticks.forEach(function (t) { var sum = t.counts.reduce(function (a, b) { return a + b; }, 0); if (sum > max) max = sum; });
    ctx.fillStyle = "#6b7078"; ctx.font = "11px sans-serif";
    ctx.fillText(String(max) + "/s", 2, 12);
    ctx.fillText("0", 2, H - 4);
    ctx.strokeStyle = "#e3e4e8"; ctx.beginPath(); ctx.moveTo(pad, H - 1); ctx.lineTo(W, H - 1); ctx.stroke();
    for (var i = 0; i < span; i++) {
      var sec = end - span + 1 + i, counts = byS[sec];
      if (!counts) continue;
      var y = H - 1;
      for (var k = 0; k < series.length; k++) {
        var h = (counts[k] / max) * (H - 16);
        if (h <= 0) continue;
        ctx.fillStyle = COLORS[series[k]] || "#999";
        ctx.fillRect(pad + i * bw, y - h, Math.max(1, bw - 0.5), h);
        y -= h;
      }
    }
    var legend = document.getElementById("legend");
    legend.textContent = "";
    series.forEach(function (name) {
      var sp = el("span");
      var sw = el("i"); sw.style.background = COLORS[name] || "#999";
      sp.appendChild(sw);
      sp.appendChild(document.createTextNode(name.replace("_", " ") + ": " + s.decisions.totals[name]));
      legend.appendChild(sp);
    });
  }

  function pct(x) { return typeof x === "number" ? Math.round(x * 100) + "%" : "-"; }

  // One cluster: its id, size, suspicion and top signals, then what linked its
  // members: per feature kind (links, summed and strongest weight) and the
  // strongest shared values (hash prefixes) with how many members share them.
  function clusterCard(c) {
    var art = el("article", { "class": "cluster", "data-cluster": c.id });
    var h = el("h4");
    h.appendChild(el("span", { "class": "mono" }, c.id));
    art.appendChild(h);
    var facts = el("p", { "class": "facts" });
    facts.appendChild(el("span", { "class": "members" }, c.size + " accounts"));
    facts.appendChild(el("span", { "class": "suspicion" }, "suspicion " + pct(c.suspicion)));
    facts.appendChild(el("span", null, (c.links || 0) + " links"));
    art.appendChild(facts);
    var signals = (c.top_signals || []).map(function (r) { return r.signal + " " + fmt(r.weight); }).join(", ");
    art.appendChild(el("p", { "class": "signals" }, "Top signals: " + (signals || "none")));
    var kinds = c.evidence_by_kind || [];
    var values = c.evidence || [];
    if (!kinds.length && !values.length) {
      art.appendChild(el("p", { "class": "evidence-none" }, "No linking evidence recorded."));
      return art;
    }
    var t = el("table", { "class": "evidence" });
    var cap = el("caption", null, "Linked by");
    t.appendChild(cap);
    var head = el("tr");
    ["family", "feature", "accounts", "links", "weight"].forEach(function (x) { head.appendChild(el("th", null, x)); });
    t.appendChild(head);
    kinds.forEach(function (k) {
      var r = el("tr", { "class": "kind" });
      r.appendChild(el("td", null, k.family));
      r.appendChild(el("td", null, k.kind + " (all values)"));
      r.appendChild(el("td", null, "-"));
      r.appendChild(el("td", null, k.links));
      r.appendChild(el("td", null, "total " + fmt(k.weight_sum) + ", max " + fmt(k.weight_max)));
      t.appendChild(r);
    });
    values.forEach(function (v) {
      var r = el("tr", { "class": "value" });
      r.appendChild(el("td", null, v.family));
      r.appendChild(el("td", { "class": "mono" }, v.feature));
      r.appendChild(el("td", null, v.accounts + " accounts"));
      r.appendChild(el("td", null, v.links));
      r.appendChild(el("td", null, fmt(v.weight)));
      t.appendChild(r);
    });
    art.appendChild(t);
    var m = (c.members || []).slice(0, 8).map(short).join(", ");
    if (m) {
      art.appendChild(el("p", { "class": "member-list mono" },
        "Members: " + m + ((c.members || []).length < c.size || (c.members || []).length > 8 ? ", …" : "")));
    }
    return art;
  }

  function clusterList(id, list) {
    var box = document.getElementById(id);
    box.textContent = "";
    if (!list.length) { box.appendChild(el("p", { "class": "empty" }, "No clusters of two or more accounts yet.")); return; }
    list.forEach(function (c) { box.appendChild(clusterCard(c)); });
  }

  function renderClusters(c) {
    clusterList("largest", c.largest || []);
    clusterList("suspicious", c.most_suspicious || []);
  }

  function renderAccounts(a, now) {
    table("accounts", ["account", "tier", "requests", "refused", "last action", "suspicion", "cluster", "last seen"],
      (a.accounts || []).map(function (x) {
        return [{ text: x.account, cls: "mono", title: x.account }, x.tier, x.requests, x.refused,
          { text: outcome(x.last_action, x.last_status) + " (" + x.last_status + ")", cls: "a-" + (x.last_status >= 400 ? "block" : x.last_action) },
          fmt(x.max_suspicion), { text: short(x.cluster) + (x.cluster_size > 1 ? " ×" + x.cluster_size : ""), cls: "mono", title: x.cluster },
          ago(x.last_at_ms, now)];
      }));
  }

  function renderConfig(s) {
    var box = document.getElementById("config");
    box.textContent = "";
    var p = el("p", null, "Source: " + (s.config.source || "embedded defaults") + " · default tier `" + s.config.default_tier +
      "` · cluster budget = tier × members^" + s.config.cluster_exponent + " · reloads ok " + s.config.reloads_ok +
      ", rejected " + s.config.reloads_failed);
    box.appendChild(p);
    var t = el("table"); t.id = "tiers"; box.appendChild(t);
    var rows = [];
    s.config.tiers.forEach(function (x) {
      var l = x.limits;
      rows.push([x.name + (x["default"] ? " (default)" : ""), l.requests_per_minute, l.requests_per_day,
        l.tokens_per_minute, l.tokens_per_day, l.shadow ? "yes" : "no"]);
      // Model groups: their own limits, checked together with the tier's ("—": none of their own).
      Object.keys(l.models || {}).sort().forEach(function (pattern) {
        var g = l.models[pattern];
        var v = function (k) { return g[k] === undefined ? "—" : g[k]; };
        rows.push([{ text: "  ↳ model " + pattern, cls: "mono", title: "model group of tier " + x.name },
          v("requests_per_minute"), v("requests_per_day"), v("tokens_per_minute"), v("tokens_per_day"), ""]);
      });
    });
    table("tiers", ["tier", "req/min", "req/day", "tokens/min", "tokens/day", "shadow"], rows);
  }

  var timer = null;
  function poll() {
    Promise.all([api("api/status"), api("api/clusters?limit=5"), api("api/accounts?limit=15")])
      .then(function (r) {
        var s = r[0];
        renderCards(s); renderChart(s); renderClusters(r[1]); renderAccounts(r[2], s.now_ms); renderConfig(s);
        setState("live · v" + s.version, true);
        document.getElementById("auth").hidden = true;
        document.body.dataset.loaded = "1";
      })
      .catch(function (e) {
        if (e && e.auth) {
          setState("token needed", false);
          document.getElementById("auth").hidden = false;
          if (timer) { clearInterval(timer); timer = null; }
        } else {
          setState("disconnected", false);
          setNotice("Cannot reach the admin API: " + (e && e.message));
        }
      });
  }

  function start() {
    document.getElementById("auth").addEventListener("submit", function (ev) {
      ev.preventDefault();
      token = document.getElementById("token").value.trim();
      try { sessionStorage.setItem("dg-token", token); } catch (e) { /* ignore */ }
      if (!timer) timer = setInterval(poll, 2000);
      poll();
    });
    if (!token) { setState("token needed", false); document.getElementById("auth").hidden = false; return; }
    poll();
    timer = setInterval(poll, 2000);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
