// The report page's own style and script, inlined into every report next to uPlot. The script
// reads the ReportData document from <script id="report-data"> and draws each section present.
// Every chart registers itself in window.dmalabCharts ({id, kind, series, points}) and the
// page sets <body data-ready="1"> when all are drawn (the browser test waits for it).
// Plain ES2020 in a string (no backticks, no template placeholders): it runs in the browser.

export const PAGE_CSS = String.raw`
body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:16px;color:#1b1f24;background:#fff}
h1{font-size:22px;margin:4px 0 8px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f6f8fa;padding:8px;overflow:auto;max-height:360px;font-size:12px}
.cmd{font:13px monospace;background:#f6f8fa;padding:6px 8px;display:block;white-space:pre-wrap;word-break:break-all}
.ok{background:#dafbe1}.fault{background:#ffebe9}.probe-failed{background:#fff8c5}
.note{color:#57606a}.chart{margin:6px 0 18px}.heat{border:1px solid #d0d7de;display:block}
.legend-ramp{display:inline-block;width:160px;height:10px;vertical-align:middle;background:linear-gradient(90deg,#f7fbff,#6baed6,#08306b)}
`;

export const PAGE_JS = String.raw`
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("report-data").textContent);
  var root = document.getElementById("report");
  var charts = [];
  window.dmalabCharts = charts;
  var PALETTE = ["#1f77b4","#ff7f0e","#2ca02c","#d62728","#9467bd","#8c564b","#e377c2","#7f7f7f","#bcbd22","#17becf"];
  function color(i) { return PALETTE[i % PALETTE.length]; }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function add(parent, tag, attrs, text) { var e = el(tag, attrs, text); parent.appendChild(e); return e; }
  function fmt(n) {
    if (typeof n !== "number") return String(n);
    if (!isFinite(n)) return String(n);
    if (Math.abs(n) >= 1e9) return (n / 1e9).toFixed(2) + "G";
    if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(2) + "M";
    if (Math.abs(n) >= 1e4) return (n / 1e3).toFixed(1) + "k";
    return Math.round(n * 100) / 100 + "";
  }
  function table(parent, head, rows, cls) {
    var t = add(parent, "table");
    if (head.some(function (h) { return h !== ""; })) {
      var tr = add(t, "tr");
      head.forEach(function (h) { add(tr, "th", null, h); });
    }
    rows.forEach(function (r, i) {
      var row = add(t, "tr", cls ? { "class": cls(i) } : null);
      r.forEach(function (c) { add(row, "td", typeof c === "number" ? { "class": "num" } : null, typeof c === "number" ? c.toLocaleString("en-US") : c); });
    });
    return t;
  }
  function width(parent) { return Math.max(480, Math.min(1160, (parent.clientWidth || 1160) - 10)); }

  // a uPlot chart; series: [{label, values, bars?, color?}], xs: numbers; xlabels: category names (bars)
  function chart(parent, id, title, xs, series, opts) {
    opts = opts || {};
    var box = add(parent, "div", { "class": "chart", "data-chart": id, "data-series": String(series.length) });
    var bars = opts.xlabels !== undefined;
    var data = [xs].concat(series.map(function (s) { return s.values; }));
    var n = series.length;
    var useries = [{ label: opts.xname || "x" }].concat(series.map(function (s, i) {
      var o = { label: s.label, stroke: s.color || color(i), width: s.width || 1.5, points: { show: false } };
      if (bars) {
        o.fill = s.color || color(i);
        // grouped bars: series i takes the i-th slice of 0.8 around each category (scale units)
        o.paths = uPlot.paths.bars({ align: 1, disp: {
          x0: { unit: 1, values: function (u, sidx) { return u.data[0].map(function (x) { return x - 0.4 + (0.8 * (sidx - 1)) / n; }); } },
          size: { unit: 1, values: function (u) { return u.data[0].map(function () { return 0.8 / n; }); } },
        } });
      }
      if (s.dash) o.dash = s.dash;
      return o;
    }));
    var axes = [
      { label: opts.xname || "", values: bars ? function (u, splits) { return splits.map(function (v) { return Number.isInteger(v) && opts.xlabels[v] !== undefined ? opts.xlabels[v] : ""; }); } : undefined },
      { label: opts.yname || "", size: 70, values: function (u, splits) { return splits.map(fmt); } },
    ];
    if (!bars) delete axes[0].values;
    var u = new uPlot({
      title: title,
      width: width(parent),
      height: opts.height || 260,
      series: useries,
      axes: axes,
      scales: bars ? { x: { time: false, range: [-0.6, xs.length - 0.4] }, y: { range: function (u, mn, mx) { return [0, mx > 0 ? mx * 1.1 : 1]; } } } : { x: { time: false } },
      cursor: { drag: { x: true, y: false } },
      hooks: opts.draw ? { draw: [opts.draw] } : {},
    }, data, box);
    charts.push({ id: id, kind: "uplot", series: u.series.length - 1, points: xs.length, canvas: box.querySelector("canvas") });
    return u;
  }

  // vertical markers (pool full, percentiles) drawn over a uPlot chart
  function markers(xs, col, labels) {
    return function (u) {
      var ctx = u.ctx;
      ctx.save();
      ctx.strokeStyle = col; ctx.fillStyle = col; ctx.lineWidth = 1;
      ctx.font = Math.round(10 * devicePixelRatio) + "px sans-serif";
      xs.forEach(function (x, i) {
        var px = u.valToPos(x, "x", true);
        if (px < u.bbox.left || px > u.bbox.left + u.bbox.width) return;
        ctx.beginPath(); ctx.moveTo(px, u.bbox.top); ctx.lineTo(px, u.bbox.top + u.bbox.height); ctx.stroke();
        if (labels) ctx.fillText(labels[i], px + 3, u.bbox.top + 12 * devicePixelRatio * (1 + (i % 4)));
      });
      ctx.restore();
    };
  }

  function ramp(v) { // 0..255 -> white .. blue .. dark navy
    var t = v / 255;
    var a = [247, 251, 255], b = [107, 174, 214], c = [8, 48, 107];
    var p = t < 0.5 ? a : b, q = t < 0.5 ? b : c, f = t < 0.5 ? t * 2 : (t - 0.5) * 2;
    return [Math.round(p[0] + (q[0] - p[0]) * f), Math.round(p[1] + (q[1] - p[1]) * f), Math.round(p[2] + (q[2] - p[2]) * f)];
  }

  function heatmap(parent, P) {
    var box = add(parent, "div", { "class": "chart", "data-chart": "pool-heatmap", "data-series": String(P.rows.length) });
    var raw = atob(P.occupancy);
    var ns = P.x.length, nr = P.rows.length;
    var W = width(parent), left = 90, top = 16, bottom = 30;
    var rowH = Math.max(4, Math.min(12, Math.floor(480 / nr)));
    var H = top + nr * rowH + bottom;
    var cv = add(box, "canvas", { "class": "heat", width: String(W), height: String(H) });
    var ctx = cv.getContext("2d");
    // colours span 0 .. the fullest cell, so a lightly used pool still shows its pattern
    var vmax = 1;
    for (var q = 0; q < raw.length; q++) vmax = Math.max(vmax, raw.charCodeAt(q));
    var img = ctx.createImageData(ns, nr);
    for (var s = 0; s < ns; s++) for (var r = 0; r < nr; r++) {
      var v0 = raw.charCodeAt(s * nr + r), c = v0 === 0 ? [255, 255, 255] : ramp(40 + (215 * v0) / vmax), o = 4 * (r * ns + s);
      img.data[o] = c[0]; img.data[o + 1] = c[1]; img.data[o + 2] = c[2]; img.data[o + 3] = 255;
    }
    var off = document.createElement("canvas"); off.width = ns; off.height = nr;
    off.getContext("2d").putImageData(img, 0, 0);
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, H);
    ctx.imageSmoothingEnabled = false;
    var pw = W - left - 10;
    ctx.drawImage(off, left, top, pw, nr * rowH);
    ctx.fillStyle = "#1b1f24"; ctx.font = "11px sans-serif";
    var lastArea = -1;
    P.rows.forEach(function (row, i) {
      if (row.area !== lastArea) {
        lastArea = row.area;
        ctx.fillText("area " + row.area, 4, top + i * rowH + 10);
        ctx.strokeStyle = "#555"; ctx.beginPath(); ctx.moveTo(left - 4, top + i * rowH + 0.5); ctx.lineTo(left + pw, top + i * rowH + 0.5); ctx.stroke();
      }
    });
    var xmax = P.x[ns - 1] || 1;
    function px(x) { var i = 0; while (i < ns - 1 && P.x[i] < x) i++; return left + ((i + 0.5) / ns) * pw; }
    for (var k = 0; k <= 5; k++) {
      var xv = Math.round((xmax * k) / 5);
      ctx.fillText(fmt(xv), left + (k / 5) * pw - (k === 5 ? 30 : 0), H - 8);
    }
    ctx.fillStyle = "#d62728";
    P.full.forEach(function (x) { var p = px(x); ctx.beginPath(); ctx.moveTo(p - 4, 2); ctx.lineTo(p + 4, 2); ctx.lineTo(p, top - 2); ctx.fill(); });
    box.setAttribute("data-max", String(vmax));
    var note = add(box, "p", { "class": "note" }, "Darkest: " + Math.round((vmax / 255) * 100) + "% of a range's slots in use; white: none.");
    note.setAttribute("data-role", "heat-scale");
    charts.push({ id: "pool-heatmap", kind: "canvas", series: nr, points: ns, canvas: cv });
  }

  function runSection(R) {
    var sec = add(root, "section", { id: "run" });
    add(sec, "h2", null, "Run");
    table(sec, ["", ""], R.summary);
    var P = R.pool;
    if (P) {
      add(sec, "h3", null, "Slot occupancy of the " + P.pool + " pool (" + P.nslabs.toLocaleString("en-US") + " slots, " + P.nareas + " area" + (P.nareas === 1 ? "" : "s") + ")");
      var lg = add(sec, "p", { "class": "note" }, "x: swiotlb map+unmap operations; y: slot ranges (" + P.rows.length + " rows) grouped by area; colour: share of the range's slots in use at the sample (or its busiest neighbour), ");
      add(lg, "span", { "class": "legend-ramp" });
      lg.appendChild(document.createTextNode(". Red marks: swiotlb buffer is full (" + P.fullCount.toLocaleString("en-US") + (P.fullCount > P.full.length ? ", first " + P.full.length + " marked" : "") + ")."));
      heatmap(sec, P);
      chart(sec, "pool-used", "io_tlb_used and io_tlb_used_hiwater (slots)", P.x, [
        { label: "io_tlb_used", values: P.used },
        { label: "peak since last sample", values: P.usedPeak, dash: [4, 3] },
        { label: "io_tlb_used_hiwater", values: P.hiwater, color: "#d62728" },
      ], { xname: "pool operations", yname: "slots", draw: markers(P.full.slice(0, 200), "rgba(214,39,40,0.35)") });
      if (P.areas.length < P.nareas) add(sec, "p", { "class": "note" }, "Per-area charts: the " + P.areas.length + " areas with the highest high-water mark, of " + P.nareas + ".");
      chart(sec, "area-used", "used slots per area", P.x, P.areas.map(function (a, i) { return { label: "area " + a, values: P.areaUsed[i], color: color(i) }; }), { xname: "pool operations", yname: "slots" });
      chart(sec, "area-hiwater", "high-water mark per area", P.x, P.areas.map(function (a, i) { return { label: "area " + a, values: P.areaHiwater[i], color: color(i) }; }), { xname: "pool operations", yname: "slots" });
    } else add(sec, "p", { "class": "note" }, "No default swiotlb pool: nothing to draw of its slots.");
    add(sec, "h3", null, "Mappings");
    var idx = function (n) { var r = []; for (var i = 0; i < n; i++) r.push(i); return r; };
    chart(sec, "map-sizes", "swiotlb mapping sizes (bytes)", idx(R.mapSizes.counts.length), [{ label: "mappings", values: R.mapSizes.counts }], { xlabels: R.mapSizes.labels, xname: "bytes", yname: "mappings" });
    chart(sec, "slots-per-mapping", "slots per bounce mapping", idx(R.slotsPerMapping.counts.length), [{ label: "mappings", values: R.slotsPerMapping.counts }], { xlabels: R.slotsPerMapping.labels, xname: "slots", yname: "mappings" });
    if (R.devices.length > 0) {
      chart(sec, "devices", "bounced vs direct per device", idx(R.devices.length), [
        { label: "bounced", values: R.devices.map(function (d) { return d.bounced; }), color: "#ff7f0e" },
        { label: "direct", values: R.devices.map(function (d) { return d.direct; }), color: "#1f77b4" },
        { label: "failed", values: R.devices.map(function (d) { return d.failed; }), color: "#d62728" },
      ], { xlabels: R.devices.map(function (d) { return d.name; }), yname: "mappings" });
    }
    add(sec, "h3", null, "Xen hypercalls");
    if (R.hypercalls.length > 0) {
      table(sec, ["hypercall", "result", "count"], R.hypercalls.map(function (h) { return [h.op, h.ret, h.count]; }));
      chart(sec, "hypercalls", "hypercalls by op and result", idx(R.hypercalls.length), [{ label: "calls", values: R.hypercalls.map(function (h) { return h.count; }) }], { xlabels: R.hypercalls.map(function (h) { return h.op.replace(/^.*\//, "") + " " + h.ret; }), yname: "calls" });
    } else add(sec, "p", { "class": "note" }, "None (a native boot, or no hypercall was made).");
    if (R.kernelLog.length > 0) { add(sec, "h3", null, "Kernel log"); add(sec, "pre", null, R.kernelLog.join("\n")); }
  }

  function benchSection(B) {
    var sec = add(root, "section", { id: "bench" });
    add(sec, "h2", null, "Benchmark");
    if (B.toolLines.length > 0) add(sec, "pre", null, B.toolLines.join("\n"));
    if (B.results.length > 0) {
      table(sec, ["workload", "pairs/s", "bounced bytes/s", "copy ceiling bytes/s", "fraction of ceiling"], B.results.map(function (r) {
        return [r.label, fmt(r.pairsPerSec), fmt(r.bouncedBytesPerSec), fmt(r.copyBytesPerSec), r.fractionOfCopyLimit.toFixed(3)];
      }));
      var xs = B.results.map(function (_, i) { return i; });
      var labels = B.results.map(function (r) { return r.label; });
      chart(sec, "throughput", "map+unmap pairs per second", xs, [{ label: "pairs/s", values: B.results.map(function (r) { return r.pairsPerSec; }) }], { xlabels: labels, yname: "pairs/s" });
      chart(sec, "copy-ceiling", "bytes bounced per second against the copy ceiling", xs, [
        { label: "bounced bytes/s", values: B.results.map(function (r) { return r.bouncedBytesPerSec; }), color: "#ff7f0e" },
        { label: "copy ceiling bytes/s", values: B.results.map(function (r) { return r.copyBytesPerSec; }), color: "#7f7f7f" },
      ], { xlabels: labels, yname: "bytes/s" });
    }
    B.latency.forEach(function (L, i) {
      add(sec, "h3", null, "Latency of one map+unmap pair: " + L.label + " (" + L.samples.toLocaleString("en-US") + " samples)");
      table(sec, ["p50", "p90", "p99", "p99.9"], [[L.p50.toFixed(0) + " ns", L.p90.toFixed(0) + " ns", L.p99.toFixed(0) + " ns", L.p999.toFixed(0) + " ns"]]);
      var labels = L.edgesNs.map(function (e) { return fmt(e); });
      var pos = function (v) { var k = 0; while (k < L.edgesNs.length - 1 && L.edgesNs[k + 1] <= v) k++; var lo = L.edgesNs[k], hi = L.edgesNs[k + 1] || lo * 2; return k + Math.min(1, (v - lo) / (hi - lo)) - 0.5; };
      chart(sec, "latency-" + i, "latency histogram (ns, log buckets)", L.counts.map(function (_, k) { return k; }), [{ label: "pairs", values: L.counts }],
        { xlabels: labels, xname: "ns (bucket start)", yname: "pairs", draw: markers([pos(L.p50), pos(L.p90), pos(L.p99), pos(L.p999)], "#d62728", ["p50", "p90", "p99", "p99.9"]) });
    });
  }

  function matrixSection(M) {
    var sec = add(root, "section", { id: "matrix" });
    add(sec, "h2", null, "Boot matrix");
    var faults = M.rows.filter(function (r) { return r.outcome !== "ok"; }).length;
    add(sec, "p", null, M.rows.length + " boots: " + (M.rows.length - faults) + " ok, " + faults + " fault");
    var t = table(sec, ["machine", "kernel", "xen", "outcome", "cause"], M.rows.map(function (r) { return [r.machine, r.kernel, r.xen, r.outcome, r.fault || ""]; }), function (i) { return M.rows[i].outcome === "ok" ? "ok" : "fault"; });
    t.setAttribute("data-chart", "matrix");
    charts.push({ id: "matrix", kind: "table", series: M.rows.length, points: M.rows.length, canvas: null });
  }

  var C = D.config;
  add(root, "h1", null, D.title);
  D.notes.forEach(function (n) { add(root, "p", { "class": "note" }, n); });
  add(root, "h2", null, "Configuration");
  var cfg = [["machine", C.machine], ["kernel profile", C.kernel], ["swiotlb=", C.swiotlb || "(the machine's default)"], ["Xen", C.xen.role + (C.xen.version ? " " + C.xen.version : "")]];
  if (C.seed !== undefined) cfg.push(["seed", String(C.seed)]);
  cfg = cfg.concat(C.extra);
  cfg.push(["generated", C.generated]);
  table(root, ["", ""], cfg);
  add(root, "p", null, "Reproduce with:");
  add(root, "code", { "class": "cmd", id: "command" }, C.command);
  if (D.run) runSection(D.run);
  if (D.bench) benchSection(D.bench);
  if (D.matrix) matrixSection(D.matrix);
  document.body.setAttribute("data-ready", "1");
})();
`;
