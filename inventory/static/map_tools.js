/* What makes an inventory map a deliverable (inventory.maps): a metric scale, a north
 * arrow, a search box by survey reference or name, and print (A4 / A3 landscape) and
 * save-PNG controls that lay out the title, legend, scale, north arrow and source line.
 *
 * Every text comes from the configuration (one JSON value written by Python with "<"
 * escaped) or from the data, and reaches the page as DOM text or canvas text, never as
 * HTML. The renderer (full_map.js / city_map.js) gives map.inventoryFind(query) for the
 * search and map.inventoryLabels() for the labels drawn on the PNG.
 */
(function () {
  "use strict";

  function el(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) { node.textContent = text; }
    if (className) { node.className = className; }
    return node;
  }

  function control(map, position, build) {
    var C = L.Control.extend({
      onAdd: function () {
        var box = build();
        L.DomEvent.disableClickPropagation(box);
        L.DomEvent.disableScrollPropagation(box);
        return box;
      }
    });
    var c = new C({ position: position });
    c.addTo(map);
    return c;
  }

  var ARROW = "M12 2 L18 20 L12 16 L6 20 Z";

  function northArrow(map, cfg) {
    control(map, "topright", function () {
      var box = el("div", null, "leaflet-bar inventory-north");
      box.title = cfg.labels.north;
      box.style.background = "white";
      box.style.padding = "2px 6px";
      box.style.textAlign = "center";
      var ns = "http://www.w3.org/2000/svg";
      var svg = document.createElementNS(ns, "svg");
      svg.setAttribute("width", "24");
      svg.setAttribute("height", "24");
      svg.setAttribute("viewBox", "0 0 24 24");
      var path = document.createElementNS(ns, "path");
      path.setAttribute("d", ARROW);
      path.setAttribute("fill", "#222");
      svg.appendChild(path);
      box.appendChild(svg);
      box.appendChild(el("div", cfg.labels.north, "inventory-north-letter"));
      return box;
    });
  }

  function search(map, cfg) {
    control(map, "topleft", function () {
      var box = el("div", null, "leaflet-bar inventory-search");
      box.style.background = "white";
      box.style.padding = "4px";
      var input = el("input");
      input.type = "search";
      input.placeholder = cfg.labels.search;
      input.setAttribute("aria-label", cfg.labels.search);
      input.style.width = "12em";
      var note = el("div", "", "inventory-search-note");
      note.style.fontSize = "12px";
      note.style.color = "#b71c1c";
      input.addEventListener("keydown", function (e) {
        if (e.key !== "Enter") { return; }
        var query = input.value.trim();
        var found = query && map.inventoryFind ? map.inventoryFind(query) : false;
        note.textContent = found || !query ? "" : cfg.labels.not_found + ": " + query;
      });
      box.appendChild(input);
      box.appendChild(note);
      return box;
    });
  }

  // ---- print --------------------------------------------------------------------------

  var PAPER = { A4: [297, 210], A3: [420, 297] };  // landscape, mm

  function printPage(map, paper) {
    var size = PAPER[paper];
    var style = document.getElementById("inventory-page-style");
    if (!style) {
      style = el("style");
      style.id = "inventory-page-style";
      document.head.appendChild(style);
    }
    // the map fills the sheet inside 8 mm margins; the controls that only work on
    // screen are left out, the title, legend, scale and north arrow stay
    style.textContent =
      "@page { size: " + paper + " landscape; margin: 8mm; }\n" +
      "@media print {\n" +
      "  html, body { width: " + (size[0] - 16) + "mm; height: " + (size[1] - 16) + "mm; margin: 0; }\n" +
      "  .folium-map { position: absolute !important; width: " + (size[0] - 16) + "mm !important; height: " +
      (size[1] - 16) + "mm !important; }\n" +
      "  .leaflet-control-layers, .leaflet-control-zoom, .inventory-search, .inventory-print { display: none !important; }\n" +
      "  .inventory-source { display: block !important; }\n" +
      "}\n";
    document.body.setAttribute("data-paper", paper);
    var bounds = map.getBounds();
    map.invalidateSize();
    map.fitBounds(bounds);
    setTimeout(function () { window.print(); }, 300);
  }

  // ---- PNG --------------------------------------------------------------------------

  function niceMetres(m) {
    var steps = [1, 2, 5];
    var p = Math.pow(10, Math.floor(Math.log10(m)));
    var best = p;
    steps.forEach(function (s) { if (s * p <= m) { best = s * p; } });
    return best;
  }

  function scaleBar(map, maxPx) {
    var size = map.getSize();
    var y = size.y / 2;
    var a = map.containerPointToLatLng([0, y]);
    var b = map.containerPointToLatLng([maxPx, y]);
    var metres = niceMetres(map.distance(a, b));
    return { metres: metres, px: maxPx * metres / map.distance(a, b) };
  }

  function drawFrame(ctx, map, cfg, width, height) {
    var pad = 12;
    ctx.textBaseline = "top";
    // title and date line
    ctx.font = "bold 18px sans-serif";
    var titleW = ctx.measureText(cfg.title).width;
    ctx.font = "13px sans-serif";
    var whenW = ctx.measureText(cfg.when).width;
    box(ctx, pad, pad, Math.max(titleW, whenW) + 20, 50);
    ctx.fillStyle = "#111";
    ctx.font = "bold 18px sans-serif";
    ctx.fillText(cfg.title, pad + 10, pad + 7);
    ctx.font = "13px sans-serif";
    ctx.fillText(cfg.when, pad + 10, pad + 31);
    // legend
    var rows = cfg.legend.length + (cfg.outlines ? cfg.outlines.length + 1 : 0) + cfg.outlineLayers.length;
    var lh = 18;
    var legendW = 200;
    var legendH = 28 + rows * lh;
    var lx = width - legendW - pad;
    var ly = height - legendH - pad - 22;
    box(ctx, lx, ly, legendW, legendH);
    ctx.fillStyle = "#111";
    ctx.font = "bold 13px sans-serif";
    ctx.fillText(cfg.legendTitle, lx + 10, ly + 8);
    var y = ly + 28;
    ctx.font = "12px sans-serif";
    cfg.legend.forEach(function (item) {
      ctx.fillStyle = item[1];
      ctx.fillRect(lx + 10, y, 12, 12);
      ctx.strokeStyle = "#555";
      ctx.strokeRect(lx + 10, y, 12, 12);
      ctx.fillStyle = "#111";
      ctx.fillText(item[0], lx + 30, y);
      y += lh;
    });
    if (cfg.outlines) {
      ctx.font = "bold 12px sans-serif";
      ctx.fillText(cfg.outlineTitle, lx + 10, y);
      y += lh;
      ctx.font = "12px sans-serif";
      cfg.outlines.forEach(function (item) {
        ctx.strokeStyle = item[1];
        ctx.lineWidth = 2;
        ctx.setLineDash(item[2] ? item[2].split(" ").map(Number) : []);
        ctx.strokeRect(lx + 11, y + 1, 10, 10);
        ctx.setLineDash([]);
        ctx.lineWidth = 1;
        ctx.fillStyle = "#111";
        ctx.fillText(item[0], lx + 30, y);
        y += lh;
      });
    }
    cfg.outlineLayers.forEach(function (item) {
      ctx.strokeStyle = item[1];
      ctx.lineWidth = 2;
      ctx.setLineDash([4, 3]);
      ctx.beginPath();
      ctx.moveTo(lx + 10, y + 6);
      ctx.lineTo(lx + 24, y + 6);
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.lineWidth = 1;
      ctx.fillStyle = "#111";
      ctx.fillText(item[0], lx + 30, y);
      y += lh;
    });
    // scale bar, metric
    var bar = scaleBar(map, 120);
    var sx = pad + 4;
    var sy = height - pad - 40;
    box(ctx, sx - 4, sy - 4, bar.px + 70, 26);
    ctx.strokeStyle = "#111";
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.moveTo(sx, sy + 4);
    ctx.lineTo(sx, sy + 12);
    ctx.lineTo(sx + bar.px, sy + 12);
    ctx.lineTo(sx + bar.px, sy + 4);
    ctx.stroke();
    ctx.lineWidth = 1;
    ctx.fillStyle = "#111";
    ctx.font = "12px sans-serif";
    ctx.fillText(bar.metres >= 1000 ? bar.metres / 1000 + " km" : bar.metres + " m", sx + bar.px + 6, sy + 3);
    // north arrow
    var nx = width - pad - 36;
    var ny = pad;
    box(ctx, nx, ny, 36, 48);
    ctx.save();
    ctx.translate(nx + 6, ny + 4);
    ctx.fillStyle = "#222";
    ctx.fill(new Path2D(ARROW));
    ctx.restore();
    ctx.font = "bold 12px sans-serif";
    ctx.fillStyle = "#111";
    ctx.textAlign = "center";
    ctx.fillText(cfg.labels.north, nx + 18, ny + 32);
    ctx.textAlign = "start";
    // source line
    ctx.font = "11px sans-serif";
    ctx.fillStyle = "#333";
    ctx.fillText(cfg.sourceLine, pad, height - pad - 10);
  }

  function box(ctx, x, y, w, h) {
    ctx.fillStyle = "rgba(255,255,255,0.92)";
    ctx.fillRect(x, y, w, h);
    ctx.strokeStyle = "#999";
    ctx.strokeRect(x, y, w, h);
  }

  function hatch(ctx, path, colour) {
    // red diagonals inside the outline, as the screen's pattern draws a blocking gap
    ctx.save();
    ctx.clip(path);
    ctx.strokeStyle = colour;
    ctx.lineWidth = 2;
    var size = ctx.canvas.width + ctx.canvas.height;
    ctx.beginPath();
    for (var d = -size; d < size; d += 8) {
      ctx.moveTo(d, 0);
      ctx.lineTo(d + size, size);
    }
    ctx.stroke();
    ctx.restore();
  }

  function drawVectors(ctx, map) {
    // every vector layer drawn again from its projected points: one synchronous pass for
    // SVG and canvas renderers alike (no image of the SVG to wait for)
    var layers = [];
    map.eachLayer(function (layer) { if (layer instanceof L.Path) { layers.push(layer); } });
    // the basemap first, as on screen
    layers.sort(function (a, b) {
      return (b.options.pane === "inventoryBase") - (a.options.pane === "inventoryBase");
    });
    layers.forEach(function (layer) {
      var o = layer.options;
      var path = new Path2D();
      if (layer instanceof L.CircleMarker) {
        if (!layer._point) { return; }
        var c = map.layerPointToContainerPoint(layer._point);
        path.arc(c.x, c.y, layer._radius, 0, 2 * Math.PI);
      } else if (layer._parts) {
        if (!layer._parts.length) { return; }
        layer._parts.forEach(function (ring) {
          ring.forEach(function (pt, i) {
            var q = map.layerPointToContainerPoint(pt);
            if (i === 0) { path.moveTo(q.x, q.y); } else { path.lineTo(q.x, q.y); }
          });
          if (layer instanceof L.Polygon) { path.closePath(); }
        });
      } else {
        return;
      }
      var closed = layer instanceof L.Polygon || layer instanceof L.CircleMarker;
      if (closed && o.fill !== false) {
        if (String(o.fillColor || "").indexOf("url(") === 0) {
          hatch(ctx, path, "#c62828");
        } else {
          ctx.globalAlpha = o.fillOpacity === undefined ? 0.2 : o.fillOpacity;
          ctx.fillStyle = o.fillColor || o.color;
          ctx.fill(path);
          ctx.globalAlpha = 1;
        }
      }
      if (o.stroke !== false) {
        ctx.strokeStyle = o.color;
        ctx.lineWidth = o.weight || 1;
        ctx.setLineDash(o.dashArray ? String(o.dashArray).split(/[ ,]+/).map(Number) : []);
        ctx.stroke(path);
        ctx.setLineDash([]);
        ctx.lineWidth = 1;
      }
    });
  }

  function drawLayers(ctx, map) {
    var origin = map.getContainer().getBoundingClientRect();
    // tiles, where the browser lets them be read (offline maps have none)
    map.getContainer().querySelectorAll(".leaflet-tile-pane img").forEach(function (img) {
      var r = img.getBoundingClientRect();
      try { ctx.drawImage(img, r.left - origin.left, r.top - origin.top, r.width, r.height); } catch (e) { /* tainted */ }
    });
    drawVectors(ctx, map);
  }

  function drawLabels(ctx, map) {
    if (!map.inventoryLabels) { return; }
    ctx.font = "11px sans-serif";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.lineWidth = 3;
    ctx.strokeStyle = "rgba(255,255,255,0.9)";
    ctx.fillStyle = "#111";
    map.inventoryLabels().forEach(function (label) {
      var p = map.latLngToContainerPoint(label.at);
      ctx.strokeText(label.text, p.x, p.y);
      ctx.fillText(label.text, p.x, p.y);
    });
    ctx.textAlign = "start";
  }

  function png(map, cfg) {
    var size = map.getSize();
    var scale = 2;  // twice the screen's pixels: sharp when printed
    var canvas = document.createElement("canvas");
    canvas.width = size.x * scale;
    canvas.height = size.y * scale;
    var ctx = canvas.getContext("2d");
    ctx.scale(scale, scale);
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, size.x, size.y);
    return new Promise(function (resolve) {
      drawLayers(ctx, map);
      drawLabels(ctx, map);
      drawFrame(ctx, map, cfg, size.x, size.y);
      resolve(canvas.toDataURL("image/png"));
    });
  }

  function printControls(map, cfg) {
    control(map, "topright", function () {
      var box = el("div", null, "leaflet-bar inventory-print");
      box.style.background = "white";
      box.style.padding = "4px";
      ["A4", "A3"].forEach(function (paper) {
        var b = el("button", cfg.labels.print + " " + paper);
        b.type = "button";
        b.setAttribute("data-paper", paper);
        b.addEventListener("click", function () { printPage(map, paper); });
        box.appendChild(b);
      });
      var save = el("button", cfg.labels.png);
      save.type = "button";
      save.className = "inventory-png";
      save.addEventListener("click", function () {
        png(map, cfg).then(function (url) {
          var a = el("a");
          a.href = url;
          a.download = (cfg.fileName || "map") + ".png";
          document.body.appendChild(a);
          a.click();
          a.remove();
        });
      });
      box.appendChild(save);
      return box;
    });
  }

  function drawBase(map, cfg) {
    // the user's own layers (roads, buildings), under the spaces, drawn on a canvas
    if (!cfg.base || !cfg.base.length) { return; }
    var pane = map.createPane("inventoryBase");
    pane.style.zIndex = 350;
    pane.style.pointerEvents = "none";
    var renderer = L.canvas({ pane: "inventoryBase", padding: 0.3 });
    cfg.base.forEach(function (b) {
      var layer = L.geoJSON(b.data, {
        pane: "inventoryBase",
        interactive: false,
        style: function (f) {
          var polygon = f.geometry.type.indexOf("Polygon") >= 0;
          return polygon
            ? { renderer: renderer, pane: "inventoryBase", color: "#bdbdbd", weight: 0.8, fillColor: "#eeeeee", fillOpacity: 1, interactive: false }
            : { renderer: renderer, pane: "inventoryBase", color: "#9e9e9e", weight: 1.5, interactive: false };
        },
        pointToLayer: function (f, at) {
          return L.circleMarker(at, { renderer: renderer, pane: "inventoryBase", radius: 2, color: "#9e9e9e", interactive: false });
        }
      });
      layer.addTo(map);
      if (map.inventoryLayerControl) { map.inventoryLayerControl.addOverlay(layer, b.name); }
    });
  }

  window.inventoryMapTools = function (map, cfg) {
    drawBase(map, cfg);
    L.control.scale({ imperial: false, metric: true, maxWidth: 150 }).addTo(map);
    northArrow(map, cfg);
    search(map, cfg);
    printControls(map, cfg);
    var source = el("div", cfg.sourceLine, "inventory-source");
    source.style.cssText = "display:none;position:fixed;bottom:4px;left:10px;z-index:1000;font:11px sans-serif;color:#333";
    document.body.appendChild(source);
    map.inventoryPng = function () { return png(map, cfg); };
  };
})();
