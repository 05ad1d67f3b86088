// herd report: draws the page's charts as SVG from the inline JSON (no network, no library).
// Each chart records how many marks it drew in data-points; <body> gets data-rendered="ok"
// once every chart is drawn.
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var data = JSON.parse(document.getElementById("herd-data").textContent);
  var root = document.getElementById("herd");
  var kind = document.body.getAttribute("data-kind");
  var W = 900, DEFAULT_H = 300, M = { l: 64, r: 16, t: 24, b: 40 };
  var COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];

  function el(name, attrs, parent) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }

  function text(parent, x, y, s, attrs) {
    var t = el("text", Object.assign({ x: x, y: y }, attrs || {}), parent);
    t.textContent = s;
    return t;
  }

  function scale(lo, hi, from, to, log) {
    if (log) {
      lo = Math.log(Math.max(lo, 1e-6));
      hi = Math.log(Math.max(hi, 1e-6));
    }
    if (hi <= lo) hi = lo + 1;
    var f = function (v) {
      var x = log ? Math.log(Math.max(v, 1e-6)) : v;
      return from + (x - lo) / (hi - lo) * (to - from);
    };
    return f;
  }

  function ticks(lo, hi, log) {
    var out = [];
    if (log) {
      for (var p = Math.floor(Math.log10(Math.max(lo, 1e-6))); p <= Math.ceil(Math.log10(hi)); p++) {
        [1, 2, 5].forEach(function (m) {
          var v = m * Math.pow(10, p);
          if (v >= lo && v <= hi) out.push(v);
        });
      }
      return out;
    }
    var step = Math.pow(10, Math.floor(Math.log10((hi - lo) || 1)));
    if ((hi - lo) / step < 4) step /= 2;
    for (var v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(v);
    return out;
  }

  function fmt(v) {
    if (v >= 100 || Math.abs(v - Math.round(v)) < 1e-9) return v.toFixed(0);
    if (v >= 10) return v.toFixed(1);
    return v.toPrecision(2);
  }

  // A figure with its title, an SVG with axes, and the scales.
  function figure(id, title, x, y, xlabel, ylabel, height) {
    var H = height || DEFAULT_H;
    var fig = document.createElement("figure");
    fig.className = "chart";
    fig.id = id;
    var cap = document.createElement("figcaption");
    cap.textContent = title;
    fig.appendChild(cap);
    root.appendChild(fig);
    var svg = el("svg", { viewBox: "0 0 " + W + " " + H, role: "img" }, fig);
    var sx = scale(x.lo, x.hi, M.l, W - M.r, x.log);
    var sy = scale(y.lo, y.hi, H - M.b, M.t, y.log);
    var axes = el("g", { "class": "axes" }, svg);
    el("line", { x1: M.l, y1: H - M.b, x2: W - M.r, y2: H - M.b }, axes);
    el("line", { x1: M.l, y1: M.t, x2: M.l, y2: H - M.b }, axes);
    (x.ticks || ticks(x.lo, x.hi, x.log)).forEach(function (v) {
      el("line", { x1: sx(v), y1: H - M.b, x2: sx(v), y2: H - M.b + 4 }, axes);
      text(axes, sx(v), H - M.b + 16, x.label ? x.label(v) : fmt(v), { "text-anchor": "middle" });
    });
    if (!y.noTicks) {
      ticks(y.lo, y.hi, y.log).forEach(function (v) {
        el("line", { x1: M.l - 4, y1: sy(v), x2: W - M.r, y2: sy(v), "class": "grid" }, axes);
        text(axes, M.l - 6, sy(v) + 4, fmt(v), { "text-anchor": "end" });
      });
    }
    text(axes, (M.l + W - M.r) / 2, H - 4, xlabel, { "text-anchor": "middle", "class": "label" });
    text(axes, 4, 14, ylabel, { "class": "label" });
    var plot = el("g", { "class": "plot" }, svg);
    return { fig: fig, svg: svg, plot: plot, sx: sx, sy: sy, h: H };
  }

  function legend(fig, items) {
    var ul = document.createElement("ul");
    ul.className = "legend";
    items.forEach(function (it) {
      var li = document.createElement("li");
      var sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = it[1];
      li.appendChild(sw);
      li.appendChild(document.createTextNode(it[0]));
      ul.appendChild(li);
    });
    fig.appendChild(ul);
  }

  function done(c, points) {
    c.fig.setAttribute("data-points", String(points));
  }

  function shadeFaults(c, yTop, yBottom) {
    (data.faults || []).forEach(function (f) {
      var x1 = c.sx(f[0]), x2 = Math.max(c.sx(f[1]), x1 + 2);
      var r = el("rect", { x: x1, y: yTop, width: x2 - x1, height: (yBottom || c.h - M.b) - yTop, "class": "fault" }, c.plot);
      el("title", {}, r).textContent = f[2] + " (" + f[0].toFixed(1) + "–" + f[1].toFixed(1) + " s)";
    });
  }

  function summary(rows) {
    var t = document.createElement("table");
    t.className = "summary";
    rows.forEach(function (r) {
      var tr = document.createElement("tr");
      var th = document.createElement("th");
      th.textContent = r[0];
      var td = document.createElement("td");
      td.textContent = r[1];
      tr.appendChild(th);
      tr.appendChild(td);
      t.appendChild(tr);
    });
    root.appendChild(t);
  }

  function empty(what) {
    var p = document.createElement("p");
    p.className = "empty";
    p.textContent = "No " + what + " in this run: nothing to draw.";
    root.appendChild(p);
  }

  function trial() {
    summary(data.summary);
    if (!data.histogram.length || !data.over_time.length) {
      empty("landed commits");
      return;
    }
    var h = data.histogram;
    var maxCount = Math.max.apply(null, h.map(function (b) { return b[2]; }).concat([1]));
    var c = figure("histogram", "Commit latency: landed commits per latency bucket (log scale), with the run's percentiles",
      { lo: h[0][0], hi: h[h.length - 1][1], log: true }, { lo: 0, hi: maxCount },
      "commit latency, ms", "commits");
    var bars = 0;
    h.forEach(function (b) {
      if (!b[2]) return;
      var r = el("rect", { x: c.sx(b[0]), y: c.sy(b[2]), width: Math.max(c.sx(b[1]) - c.sx(b[0]) - 1, 1),
        height: c.sy(0) - c.sy(b[2]), "class": "bar" }, c.plot);
      el("title", {}, r).textContent = fmt(b[0]) + "–" + fmt(b[1]) + " ms: " + b[2];
      bars++;
    });
    data.percentiles.forEach(function (p, i) {
      var x = c.sx(Math.max(p[1], h[0][0]));
      var color = COLORS[(i + 1) % COLORS.length];
      el("line", { x1: x, y1: M.t, x2: x, y2: c.h - M.b, "class": "pct", stroke: color }, c.plot);
      var right = x > W * 0.75;
      text(c.plot, right ? x - 3 : x + 3, M.t + 12 + 12 * i, p[0] + " " + fmt(p[1]) + " ms",
        { fill: color, "text-anchor": right ? "end" : "start" });
    });
    done(c, bars);

    var ot = data.over_time;
    var tEnd = Math.max.apply(null, ot.map(function (b) { return b[0]; }).concat(
      (data.faults || []).map(function (f) { return f[1]; }), [1]));
    var yHi = Math.max.apply(null, ot.map(function (b) { return b[2]; }).concat([1]));
    var yLo = Math.min.apply(null, ot.map(function (b) { return b[1]; }).concat([yHi])) / 2;
    c = figure("over-time", "Commit latency over the run: p50 and p99 per time bin" +
      ((data.faults || []).length ? " (faults shaded)" : ""),
      { lo: 0, hi: tEnd }, { lo: Math.max(yLo, 0.01), hi: yHi * 1.2, log: true }, "seconds since the start", "ms");
    shadeFaults(c, M.t);
    [[1, "p50", COLORS[0]], [2, "p99", COLORS[1]]].forEach(function (s) {
      var d = ot.map(function (b, i) { return (i ? "L" : "M") + c.sx(b[0]) + "," + c.sy(b[s[0]]); }).join(" ");
      el("path", { d: d, "class": "line", stroke: s[2] }, c.plot);
      ot.forEach(function (b) { el("circle", { cx: c.sx(b[0]), cy: c.sy(b[s[0]]), r: 2, fill: s[2] }, c.plot); });
    });
    legend(c.fig, [["p50", COLORS[0]], ["p99", COLORS[1]]].concat((data.faults || []).length ? [["fault window", "#f4c7c3"]] : []));
    done(c, ot.length * 2);

    var n = data.agents.length;
    var rowH = n <= 32 ? 14 : Math.max(2, 480 / n);
    var tl = { lo: 0, hi: tEnd };
    data.commits.concat(data.claims, data.pulls).forEach(function (m) { if (m[1] > tl.hi) tl.hi = m[1]; });
    c = figure("timeline", "Per-agent timeline: claims, commits (orange after fork retries), failed commits, broadcasts handled" +
      (data.pulls.length < data.pulls_total ? " (every " + Math.ceil(data.pulls_total / data.pulls.length) + "th broadcast drawn)" : ""),
      tl, { lo: 0, hi: n, noTicks: true }, "seconds since the start", "agent", M.t + M.b + rowH * n + 8);
    var rowY = function (i) { return M.t + 4 + rowH * i + rowH / 2; };
    shadeFaults(c, M.t);
    var marks = 0;
    data.pulls.forEach(function (p) {
      el("line", { x1: c.sx(p[1]), y1: rowY(p[0]) - rowH / 4, x2: c.sx(p[1]), y2: rowY(p[0]) + rowH / 4, "class": "pull" }, c.plot);
      marks++;
    });
    data.claims.forEach(function (p) {
      el("line", { x1: c.sx(p[1]), y1: rowY(p[0]) - rowH / 2, x2: c.sx(p[1]), y2: rowY(p[0]) + rowH / 2, "class": "claim" }, c.plot);
      marks++;
    });
    data.commits.forEach(function (p) {
      var dot = el("circle", { cx: c.sx(p[1]), cy: rowY(p[0]), r: Math.max(1.5, rowH / 4),
        fill: p[3] > 0 ? COLORS[4] : COLORS[0] }, c.plot);
      el("title", {}, dot).textContent = data.agents[p[0]] + ": " + fmt(p[2]) + " ms, " + p[3] + " fork retries";
      marks++;
    });
    data.failed.forEach(function (p) {
      text(c.plot, c.sx(p[1]), rowY(p[0]) + 4, "×", { "class": "failed", "text-anchor": "middle" });
      marks++;
    });
    if (n <= 32) {
      data.agents.forEach(function (a, i) { text(c.plot, M.l - 4, rowY(i) + 3, a, { "text-anchor": "end", "class": "agent" }); });
    }
    legend(c.fig, [["claim", "#999"], ["commit", COLORS[0]], ["commit after fork retries", COLORS[4]],
      ["failed commit", COLORS[1]], ["broadcast handled", "#c7d7e8"]]);
    done(c, marks);

    if (data.backlog && data.backlog.length) {
      var b = data.backlog;
      var bHi = Math.max.apply(null, b.map(function (p) { return p[1]; }).concat([1]));
      c = figure("backlog", "Open model: tasks due but not started, over the herd",
        { lo: 0, hi: Math.max(b[b.length - 1][0], 1) }, { lo: 0, hi: bHi * 1.1 }, "seconds since the start of the work", "tasks");
      var d = b.map(function (p, i) {
        var prev = i ? b[i - 1][1] : 0;
        return (i ? "L" + c.sx(p[0]) + "," + c.sy(prev) + " L" : "M") + c.sx(p[0]) + "," + c.sy(p[1]);
      }).join(" ");
      el("path", { d: d, "class": "line", stroke: COLORS[1] }, c.plot);
      done(c, b.length);
    }
  }

  function soak() {
    var rss = data.soak_rss || [];
    if (rss.length) {
      var pts = [];
      rss.forEach(function (s) { pts = pts.concat(s[1]); });
      var c = figure("rss", "Soak: resident memory per process (MiB)",
        { lo: 0, hi: Math.max.apply(null, pts.map(function (p) { return p[0]; }).concat([1])) },
        { lo: 0, hi: Math.max.apply(null, pts.map(function (p) { return p[1]; }).concat([1])) * 1.15 },
        "seconds since the start of the work", "MiB");
      rss.forEach(function (s, k) {
        var d = s[1].map(function (p, i) { return (i ? "L" : "M") + c.sx(p[0]) + "," + c.sy(p[1]); }).join(" ");
        el("path", { d: d, "class": "line", stroke: COLORS[k % COLORS.length] }, c.plot);
      });
      legend(c.fig, rss.map(function (s, k) { return [s[0], COLORS[k % COLORS.length]]; }));
      done(c, pts.length);
    }
    var w = data.soak_windows || [];
    if (w.length) {
      var c2 = figure("coordination", "Soak: mean commit latency per window (coordination time), CV " + data.soak_cv.toFixed(2) +
        " (first window is warm-up)",
        { lo: 0, hi: Math.max(w[w.length - 1][0], 1) },
        { lo: 0, hi: Math.max.apply(null, w.map(function (p) { return p[1]; }).concat([1])) * 1.15 },
        "seconds since the start of the work", "ms");
      var d2 = w.map(function (p, i) { return (i ? "L" : "M") + c2.sx(p[0]) + "," + c2.sy(p[1]); }).join(" ");
      el("path", { d: d2, "class": "line", stroke: COLORS[0] }, c2.plot);
      w.forEach(function (p) { el("circle", { cx: c2.sx(p[0]), cy: c2.sy(p[1]), r: 2.5, fill: COLORS[0] }, c2.plot); });
      done(c2, w.length);
    }
  }

  function sweep() {
    summary(data.summary);
    var all = [];
    data.series.forEach(function (s) { all = all.concat(s.points); });
    if (!all.length) {
      empty("cells");
      return;
    }
    var ns = all.map(function (p) { return p[0]; });
    var xs = { lo: Math.min.apply(null, ns) / 1.2, hi: Math.max.apply(null, ns) * 1.2, log: true,
      ticks: ns.filter(function (v, i) { return ns.indexOf(v) === i; }), label: function (v) { return String(v); } };
    [["throughput", "Throughput against agent count, each series' knee ringed", 1, "commits/s", false],
     ["p99", "p99 commit latency against agent count", 2, "ms", true]].forEach(function (spec) {
      var vals = all.map(function (p) { return p[spec[2]]; });
      var hi = Math.max.apply(null, vals.concat([1])) * 1.2;
      var lo = spec[4] ? Math.max(Math.min.apply(null, vals) / 2, 0.01) : 0;
      var c = figure(spec[0], spec[1], xs, { lo: lo, hi: hi, log: spec[4] }, "agents (N)", spec[3]);
      var marks = 0;
      data.series.forEach(function (s, k) {
        var color = COLORS[k % COLORS.length];
        var d = s.points.map(function (p, i) { return (i ? "L" : "M") + c.sx(p[0]) + "," + c.sy(p[spec[2]]); }).join(" ");
        el("path", { d: d, "class": "line", stroke: color }, c.plot);
        s.points.forEach(function (p) {
          var dot = el("circle", { cx: c.sx(p[0]), cy: c.sy(p[spec[2]]), r: 3.5, fill: p[3] ? color : "#fff", stroke: color }, c.plot);
          el("title", {}, dot).textContent = s.name + ", N = " + p[0] + ": " + fmt(p[spec[2]]) + " " + spec[3] + (p[3] ? "" : " (cell FAILED)");
          marks++;
          if (s.knee === p[0]) {
            el("circle", { cx: c.sx(p[0]), cy: c.sy(p[spec[2]]), r: 9, "class": "knee", stroke: color }, c.plot);
            text(c.plot, c.sx(p[0]) + 11, c.sy(p[spec[2]]) - 8, "knee", { fill: color });
          }
        });
      });
      legend(c.fig, data.series.map(function (s, k) {
        return [s.name + (s.knee ? " — knee at N = " + s.knee : " — no knee"), COLORS[k % COLORS.length]];
      }));
      done(c, marks);
    });
  }

  if (kind === "sweep") sweep(); else { trial(); soak(); }
  document.body.setAttribute("data-rendered", "ok");
})();
