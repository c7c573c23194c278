// The report page's script: fills the page from the JSON in #report-data, draws the
// chart as inline SVG, and in live mode polls data.json on the same origin. Every value
// goes in with textContent (never innerHTML), so no text from a journal becomes markup.
(function () {
  "use strict";
  var SVG_NS = "http://www.w3.org/2000/svg"; // an XML namespace name, never fetched
  var COLORS = { accepted: "#175cd3", delivered: "#12805c", not_delivered: "#c4320a" };
  var LABELS = {
    accepted: "accepted by the provider",
    delivered: "delivered",
    not_delivered: "undelivered, blocked or rejected",
  };

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function svg(tag, attrs) {
    var e = document.createElementNS(SVG_NS, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }
  function set(id, value) {
    var e = document.getElementById(id);
    if (e) e.textContent = String(value);
  }
  function fmtTime(t) {
    if (!t) return "-";
    return new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
  }
  function fmtSecs(s) {
    if (s < 120) return Math.round(s) + " s";
    if (s < 7200) return Math.round(s / 60) + " min";
    return (s / 3600).toFixed(1) + " h";
  }
  function pct(n, d) {
    return d ? Math.round((100 * n) / d) + "%" : "-";
  }
  function row(body, cells, numeric) {
    var tr = el("tr");
    cells.forEach(function (v, i) {
      tr.appendChild(el("td", numeric && i ? { class: "num" } : null, v));
    });
    body.appendChild(tr);
  }
  function emptyRow(body, span, text) {
    var tr = el("tr");
    tr.appendChild(el("td", { colspan: String(span), class: "empty" }, text));
    body.appendChild(tr);
  }

  function fill(data) {
    var s = data.statuses;
    var d = data.delivery;
    set("job", data.job_id);
    set("generated", fmtTime(data.generated));
    set("span", data.started ? fmtTime(data.started) + " to " + fmtTime(data.updated) : "no rows yet");
    set("masked", data.masked ? "numbers masked" : "numbers shown in full");
    set("n-rows", data.rows);
    set("n-sent", s.sent);
    set("n-failed", s.failed);
    set("n-unknown", s.unknown + s.pending);
    set("d-delivered", d.delivered);
    set("d-undelivered", d.undelivered);
    set("d-blocked", d.blocked);
    set("d-rejected", d.rejected);
    set("d-pending", d.pending);
    bars(data);
    chart(data.funnel);
    routes(data.routes, data.price_per_part);
    failures(data);
    document.body.setAttribute("data-ready", "1");
  }

  function bars(data) {
    var box = document.getElementById("bars");
    var d = data.delivery;
    var top = Math.max(1, data.rows);
    box.textContent = "";
    [
      ["rows", data.rows, "#667085"],
      ["accepted", data.statuses.sent, COLORS.accepted],
      ["delivered", d.delivered, COLORS.delivered],
      ["not delivered", d.undelivered + d.blocked + d.rejected, COLORS.not_delivered],
      ["still pending", d.pending, "#98a2b3"],
    ].forEach(function (r) {
      var bar = el("div", { class: "bar" });
      var track = el("div", { class: "track" });
      var fillEl = el("div", { class: "fill" });
      fillEl.style.width = (100 * r[1]) / top + "%";
      fillEl.style.background = r[2];
      track.appendChild(fillEl);
      bar.appendChild(el("span", null, r[0]));
      bar.appendChild(track);
      bar.appendChild(el("span", { class: "num" }, r[1] + " (" + pct(r[1], top) + ")"));
      box.appendChild(bar);
    });
  }

  function chart(funnel) {
    var box = document.getElementById("chart");
    var W = 720, H = 260, L = 48, R = 12, T = 12, B = 34;
    var names = ["accepted", "delivered", "not_delivered"];
    var maxX = 1, maxY = 1, points = 0;
    box.textContent = "";
    names.forEach(function (n) {
      (funnel[n] || []).forEach(function (p) {
        maxX = Math.max(maxX, p[0]);
        maxY = Math.max(maxY, p[1]);
      });
    });
    function x(v) { return L + ((W - L - R) * v) / maxX; }
    function y(v) { return H - B - ((H - T - B) * v) / maxY; }
    var g = svg("svg", {
      viewBox: "0 0 " + W + " " + H, width: "100%", role: "img",
      "aria-label": "delivery funnel over time",
    });
    for (var i = 0; i <= 4; i++) {
      var yv = (maxY * i) / 4;
      g.appendChild(svg("line", { x1: L, x2: W - R, y1: y(yv), y2: y(yv), stroke: "#e4e7ec" }));
      var ty = svg("text", { x: L - 6, y: y(yv) + 4, "text-anchor": "end" });
      ty.textContent = String(Math.round(yv));
      g.appendChild(ty);
      var anchor = i === 0 ? "start" : i === 4 ? "end" : "middle";
      var tx = svg("text", { x: x((maxX * i) / 4), y: H - B + 16, "text-anchor": anchor });
      tx.textContent = fmtSecs((maxX * i) / 4);
      g.appendChild(tx);
    }
    var cap = svg("text", { x: (W + L) / 2, y: H - 4, "text-anchor": "middle" });
    cap.textContent = "time since the first send";
    g.appendChild(cap);
    names.forEach(function (n) {
      var pts = funnel[n] || [];
      if (!pts.length) return;
      var path = [];
      pts.forEach(function (p, j) {
        var px = x(p[0]).toFixed(1);
        if (j > 0) path.push(px + "," + y(pts[j - 1][1]).toFixed(1)); // a step line
        path.push(px + "," + y(p[1]).toFixed(1));
      });
      points += pts.length;
      g.appendChild(svg("polyline", {
        points: path.join(" "), fill: "none", stroke: COLORS[n], "stroke-width": "2.2",
        "data-series": n, "data-points": String(pts.length),
      }));
    });
    g.setAttribute("data-points", String(points));
    box.appendChild(g);
    var legend = el("div", { class: "legend" });
    names.forEach(function (n) {
      var item = el("span");
      var swatch = el("i");
      swatch.style.background = COLORS[n];
      item.appendChild(swatch);
      item.appendChild(document.createTextNode(LABELS[n]));
      legend.appendChild(item);
    });
    box.appendChild(legend);
  }

  function routes(list, price) {
    var body = document.getElementById("routes");
    body.textContent = "";
    if (!list.length) return emptyRow(body, 9, "no rows");
    list.forEach(function (r) {
      var d = r.delivery || {};
      var parts = r.parts;
      if (r.parts_unknown) parts = r.parts ? r.parts + " + " + r.parts_unknown + " unknown" : "unknown";
      var cost = r.cost === null ? (price ? "-" : "no price given") : r.cost + " Rial";
      row(body, [
        r.route, r.rows, r.sent, parts, cost, d.delivered || 0, d.undelivered || 0,
        (d.blocked || 0) + (d.rejected || 0), d.pending || 0,
      ], true);
    });
  }

  function failures(data) {
    var body = document.getElementById("failures");
    var shown = data.failures.length;
    body.textContent = "";
    set("f-count", data.failures_total > shown ? shown + " of " + data.failures_total : shown);
    if (!shown) return emptyRow(body, 5, "no failures");
    data.failures.forEach(function (f) {
      var status = f.delivery ? f.status + " / " + f.delivery : f.status;
      row(body, [f.recipient, status, f.route || "-", f.error || "-", f.reason], false);
    });
  }

  var data = JSON.parse(document.getElementById("report-data").textContent);
  var config = JSON.parse(document.getElementById("report-config").textContent);
  fill(data);
  if (config.live) {
    var badge = document.getElementById("live");
    badge.textContent = "live";
    badge.className = "badge live";
    setInterval(function () {
      fetch("data.json", { cache: "no-store" })
        .then(function (r) { return r.json(); })
        .then(function (fresh) {
          fill(fresh);
          badge.textContent = "live";
          badge.className = "badge live";
        })
        .catch(function () {
          badge.textContent = "offline";
          badge.className = "badge";
        });
    }, config.refresh * 1000);
  }
})();
