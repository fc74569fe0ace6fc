/* City-scale renderer for inventory maps (inventory.maps, mode "city").
 *
 * Zoomed out, each community is one circle with its totals; from cfg.detailZoom on, the
 * spaces and bundles in view are drawn on a canvas, with popups built as DOM text (never
 * HTML). The features travel as gzip-compressed, base64-encoded JSON holding columns and
 * delta-encoded integer coordinates (1e-6 degree, about 0.1 m); the browser unpacks them
 * with DecompressionStream. Kind layers, bundles and boundaries are overlays of one layer
 * control, so the legend code of the full map works unchanged.
 */
(function () {
  "use strict";

  function gunzipBase64(b64) {
    var bin = atob(b64);
    var bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { bytes[i] = bin.charCodeAt(i); }
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Response(stream).text();
  }

  function decodeXY(deltas) {
    var out = new Float64Array(deltas.length);
    var x = 0, y = 0;
    for (var i = 0; i < deltas.length; i += 2) {
      x += deltas[i]; y += deltas[i + 1];
      out[i] = x / 1e6; out[i + 1] = y / 1e6;
    }
    return out;
  }

  // A geometry block: shapely.to_ragged_array offsets for (multi)polygons or (multi)points.
  function Block(block) {
    this.type = block.type;
    this.xy = decodeXY(block.xy);
    this.offsets = block.offsets;
  }
  Block.prototype.size = function () {
    var last = this.offsets[this.offsets.length - 1];
    return last.length - 1;
  };
  Block.prototype.coordRange = function (g) {
    var o = this.offsets, lo = g, hi = g + 1;
    for (var level = o.length - 1; level >= 0; level--) { lo = o[level][lo]; hi = o[level][hi]; }
    return [lo, hi];
  };
  Block.prototype.bbox = function (g) {
    var r = this.coordRange(g), xy = this.xy;
    var b = [Infinity, Infinity, -Infinity, -Infinity];
    for (var c = r[0]; c < r[1]; c++) {
      var x = xy[2 * c], y = xy[2 * c + 1];
      if (x < b[0]) { b[0] = x; } if (y < b[1]) { b[1] = y; }
      if (x > b[2]) { b[2] = x; } if (y > b[3]) { b[3] = y; }
    }
    return b;
  };
  Block.prototype.ring = function (start, end) {
    var out = [];
    for (var c = start; c < end; c++) { out.push([this.xy[2 * c + 1], this.xy[2 * c]]); }
    return out;
  };
  // Leaflet latlngs: polygons → [[ring, ...], ...]; points → [[lat, lng], ...]
  Block.prototype.latlngs = function (g) {
    var o = this.offsets;
    if (this.type === "point") {
      return this.ring(o[0][g], o[0][g + 1]);
    }
    var rings = o[0], parts = o[1], geoms = o[2], out = [];
    for (var p = geoms[g]; p < geoms[g + 1]; p++) {
      var polygon = [];
      for (var r = parts[p]; r < parts[p + 1]; r++) { polygon.push(this.ring(rings[r], rings[r + 1] - 1)); }
      out.push(polygon);
    }
    return out;
  };

  function column(col, i) {
    var v = col.v ? col.v[i] : col.d[col.c[i]];
    return v === null || v === undefined ? "" : String(v);
  }

  // A grid of cells holding feature numbers by the centre of their box; features larger
  // than a cell are kept aside and always tested.
  function GridIndex(cell) { this.cell = cell; this.cells = new Map(); this.large = []; this.boxes = []; }
  GridIndex.prototype.add = function (id, b) {
    this.boxes[id] = b;
    if (b[2] - b[0] > this.cell || b[3] - b[1] > this.cell) { this.large.push(id); return; }
    var key = Math.floor((b[0] + b[2]) / 2 / this.cell) + ":" + Math.floor((b[1] + b[3]) / 2 / this.cell);
    var list = this.cells.get(key);
    if (!list) { list = []; this.cells.set(key, list); }
    list.push(id);
  };
  GridIndex.prototype.query = function (w, s, e, n) {
    var out = [], boxes = this.boxes;
    function test(id) { var b = boxes[id]; if (b[0] <= e && b[2] >= w && b[1] <= n && b[3] >= s) { out.push(id); } }
    var x0 = Math.floor(w / this.cell) - 1, x1 = Math.floor(e / this.cell) + 1;
    var y0 = Math.floor(s / this.cell) - 1, y1 = Math.floor(n / this.cell) + 1;
    for (var x = x0; x <= x1; x++) {
      for (var y = y0; y <= y1; y++) {
        var list = this.cells.get(x + ":" + y);
        if (list) { list.forEach(test); }
      }
    }
    this.large.forEach(test);
    return out;
  };

  function table(rows) {
    var t = document.createElement("table");
    rows.forEach(function (row) {
      if (row[1] === "") { return; }
      var tr = document.createElement("tr");
      var th = document.createElement("th"); th.textContent = row[0]; th.style.textAlign = "left"; th.style.paddingRight = "8px";
      var td = document.createElement("td"); td.textContent = row[1];
      tr.appendChild(th); tr.appendChild(td); t.appendChild(tr);
    });
    return t;
  }
  function text(value) { var span = document.createElement("span"); span.textContent = value; return span; }

  window.inventoryCityMap = function (map, cfg) {
    var renderer = L.canvas({padding: 0.3});
    var overlays = {};
    var kindGroups = cfg.kinds.map(function (k) { var g = L.layerGroup().addTo(map); overlays[k.layer] = g; return g; });
    var totals = L.layerGroup().addTo(map);
    overlays[cfg.names.totals] = totals;
    var boundaries = null, bundleGroup = null;
    if (cfg.names.community) { boundaries = L.layerGroup().addTo(map); overlays[cfg.names.community] = boundaries; }
    if (cfg.names.bundles) { bundleGroup = L.layerGroup().addTo(map); overlays[cfg.names.bundles] = bundleGroup; }
    map.inventoryLayerControl = L.control.layers(null, overlays, {collapsed: false}).addTo(map);
    var hint = document.getElementById("inventory-hint");
    var state = {ready: false, drawn: 0, totals: 0, error: ""};
    map._inventory = state;

    // a circle never outgrows its community on screen, so circles do not pile up zoomed out
    function radius(t) {
      var metresPerPixel = 156543.03 * Math.cos(t.lat * Math.PI / 180) / Math.pow(2, map.getZoom());
      return Math.max(3, Math.min(24, 3 * Math.sqrt(t.count), t.extent / metresPerPixel));
    }
    function drawTotals() {
      totals.clearLayers();
      cfg.totals.forEach(function (t) {
        var marker = L.circleMarker([t.lat, t.lng], {
          renderer: renderer, radius: radius(t),
          color: "#37474f", weight: 1, fillColor: cfg.classColours[t.cls], fillOpacity: 0.8
        });
        marker.bindTooltip(function () {
          return table([[cfg.labels.community_name, t.name], [cfg.labels.measure, t.value === null ? "" : t.value.toLocaleString()],
                        [cfg.labels.spaces, t.count.toLocaleString()],
                        [cfg.labels.usable, t.usable.toLocaleString()], [cfg.labels.blocking_spaces, t.blocking.toLocaleString()]]);
        });
        marker.on("click", function () { map.setView([t.lat, t.lng], cfg.detailZoom); });
        totals.addLayer(marker);
        if (map.getZoom() >= cfg.totalLabelZoom) {
          var icon = L.divIcon({ className: "inventory-label", html: "", iconSize: null });
          var label = L.marker([t.lat, t.lng], { icon: icon, interactive: false, keyboard: false });
          label.on("add", function () {
            var node = label.getElement();
            node.textContent = t.name;  // text, never HTML
            node.style.cssText += ";font:11px sans-serif;color:#111;white-space:nowrap;text-shadow:0 0 3px #fff,0 0 3px #fff;margin-top:" + (radius(t) + 2) + "px";
          });
          totals.addLayer(label);
        }
      });
      state.totals = cfg.totals.length;
      state.totalsZoom = map.getZoom();
    }

    var data = null, spaces = null, points = null, bundles = null, spaceIndex = null, bundleIndex = null;

    function spaceLayer(i) {
      var status = cfg.statuses[data.status[i]], layer;
      var style = cfg.colorBy === "status" ? {
        renderer: renderer, fillColor: cfg.colours[status], fillOpacity: 0.6,
        color: status === "blocking" ? "#b71c1c" : "#37474f", weight: status === "blocking" ? 3 : 1
      } : {
        // the fill says the chosen measure, the outline the title status
        renderer: renderer, fillColor: data.fill[i] === null ? "#d9d9d9" : cfg.palette[data.fill[i]], fillOpacity: 0.75,
        color: cfg.outlines[data.status[i]], weight: status === "clean" ? 1 : 2.5
      };
      if (i < data.polygons) {
        layer = L.polygon(spaces.latlngs(i), style);
      } else {
        var pts = points.latlngs(i - data.polygons);
        layer = L.featureGroup(pts.map(function (p) { style.radius = 7; return L.circleMarker(p, style); }));
      }
      layer.bindPopup(function () {
        return table(cfg.fields.map(function (f, j) { return [cfg.fieldLabels[j], column(data.columns[f], i)]; }));
      });
      layer.bindTooltip(function () { return text(column(data.columns.survey_ref, i) + " " + column(data.columns.kind, i)); });
      return layer;
    }

    function bundleLayer(i) {
      var layer = L.polygon(bundles.latlngs(i), {
        renderer: renderer, color: "#6a1b9a", weight: 2, dashArray: "3 3", fillOpacity: 0.05
      });
      layer.bindTooltip(function () {
        return table([[cfg.labels.bundle, column(data.bundles.columns.bundle_id, i)],
                      [cfg.labels.members, column(data.bundles.columns.members, i)],
                      [cfg.labels.usable, column(data.bundles.columns.usable_area_m2, i)]]);
      });
      return layer;
    }

    // Bring the drawn features of a kind of layer in line with ``wanted``: what stays in
    // view is left alone, and so is a feature whose popup is open (its auto-pan moves the
    // map) until the map is zoomed out of detail.
    function sync(drawn, wanted, make, groupOf, keepOpen) {
      var keep = new Set(wanted);
      drawn.forEach(function (layer, id) {
        if (!keep.has(id) && !(keepOpen && layer.isPopupOpen())) { groupOf(id).removeLayer(layer); drawn.delete(id); }
      });
      wanted.forEach(function (id) {
        if (!drawn.has(id)) { var layer = make(id); drawn.set(id, layer); groupOf(id).addLayer(layer); }
      });
    }
    var drawnSpaces = new Map(), drawnBundles = new Map();
    function kindGroup(i) { return kindGroups[data.kind[i]]; }
    function bundlesGroup() { return bundleGroup; }

    function redraw() {
      var detail = map.getZoom() >= cfg.detailZoom;
      if (detail) { totals.clearLayers(); state.totals = 0; } else if (!state.totals || state.totalsZoom !== map.getZoom()) { drawTotals(); }
      if (!state.ready) { if (hint) { hint.textContent = detail ? "" : cfg.labels.zoom_in; } return; }
      var spacesWanted = [], bundlesWanted = [];
      if (detail) {
        var b = map.getBounds().pad(0.2);
        var w = b.getWest(), s = b.getSouth(), e = b.getEast(), n = b.getNorth();
        var found = spaceIndex.query(w, s, e, n);
        found.sort(function (a, c) { return a - c; });
        for (var k = 0; k < found.length && spacesWanted.length < cfg.maxDrawn; k++) {
          if (map.hasLayer(kindGroup(found[k]))) { spacesWanted.push(found[k]); }
        }
        if (bundleGroup && map.hasLayer(bundleGroup)) { bundlesWanted = bundleIndex.query(w, s, e, n); }
      }
      sync(drawnSpaces, spacesWanted, spaceLayer, kindGroup, detail);
      if (bundleGroup) { sync(drawnBundles, bundlesWanted, bundleLayer, bundlesGroup, detail); }
      state.drawn = drawnSpaces.size;
      if (hint) {
        hint.textContent = !detail ? cfg.labels.zoom_in : spacesWanted.length >= cfg.maxDrawn ? cfg.labels.too_many : "";
      }
    }

    function build(d) {
      data = d;
      spaces = new Block(d.geometry.polygons);
      points = new Block(d.geometry.points);
      spaceIndex = new GridIndex(0.01);
      for (var i = 0; i < d.polygons; i++) { spaceIndex.add(i, spaces.bbox(i)); }
      for (var j = 0; j < points.size(); j++) { spaceIndex.add(d.polygons + j, points.bbox(j)); }
      if (d.bundles) {
        bundles = new Block(d.bundles.geometry);
        bundleIndex = new GridIndex(0.01);
        for (var k = 0; k < bundles.size(); k++) { bundleIndex.add(k, bundles.bbox(k)); }
      }
      if (boundaries && d.communities) {
        var outlines = new Block(d.communities.geometry);
        for (var c = 0; c < outlines.size(); c++) {
          var line = L.polygon(outlines.latlngs(c), {renderer: renderer, color: "#1565c0", weight: 2, dashArray: "6 4", fill: false});
          (function (name) { line.bindTooltip(function () { return text(name); }); })(column(d.communities.columns.name, c));
          boundaries.addLayer(line);
        }
      }
    }

    map.inventoryFind = function (query) {
      var q = query.toLowerCase();
      var community = cfg.totals.filter(function (t) { return t.name.toLowerCase() === q; })[0] ||
        cfg.totals.filter(function (t) { return t.name.toLowerCase().indexOf(q) >= 0; })[0];
      if (community) { map.setView([community.lat, community.lng], cfg.detailZoom); return true; }
      if (!state.ready) { return false; }
      var refs = data.columns.survey_ref;
      var n = data.status.length;
      for (var i = 0; i < n; i++) {
        if (String(column(refs, i)).toLowerCase() === q) {
          var box = i < data.polygons ? spaces.bbox(i) : points.bbox(i - data.polygons);
          map.fitBounds([[box[1], box[0]], [box[3], box[2]]], { maxZoom: 19 });
          return true;
        }
      }
      return false;
    };
    map.inventoryLabels = function () {
      if (map.getZoom() >= cfg.detailZoom) {
        var out = [];
        drawnSpaces.forEach(function (layer, i) {
          if (out.length < 500 && layer.getBounds) {
            out.push({ at: layer.getBounds().getCenter(), text: String(column(data.columns.survey_ref, i)) });
          }
        });
        return out;
      }
      if (map.getZoom() < cfg.totalLabelZoom) { return []; }
      return cfg.totals.map(function (t) { return { at: L.latLng(t.lat, t.lng), text: t.name }; });
    };

    map.on("moveend zoomend overlayadd overlayremove", function () { if (state.ready) { redraw(); } });
    redraw();
    gunzipBase64(cfg.data).then(function (raw) {
      build(JSON.parse(raw));
      state.ready = true;
      redraw();
    }).catch(function (err) {
      state.error = String(err);
      if (hint) { hint.textContent = cfg.labels.old_browser + " (" + err + ")"; }
    });
  };
})();
