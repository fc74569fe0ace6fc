/* Community-scale renderer for inventory maps (inventory.maps, mode "full").
 *
 * Every space, community boundary and bundle is a vector feature. The data arrive as one
 * JSON value (written by Python with "<" escaped, never through a template), and every
 * text a surveyor typed reaches the page as DOM text (textContent), never as HTML. Kind
 * layers, bundles and boundaries are overlays of one layer control, whose overlayadd /
 * overlayremove events the legend follows.
 */
(function () {
  "use strict";

  function textTable(rows) {
    var table = document.createElement("table");
    rows.forEach(function (row) {
      var tr = document.createElement("tr");
      var th = document.createElement("th");
      var td = document.createElement("td");
      th.textContent = row[0];
      td.textContent = row[1] === null || row[1] === undefined ? "" : String(row[1]);
      th.style.textAlign = "left";
      th.style.paddingRight = "8px";
      // the spaces keep the cells apart when the popup is read or copied as text
      tr.appendChild(th);
      tr.appendChild(document.createTextNode(" "));
      tr.appendChild(td);
      table.appendChild(tr);
      table.appendChild(document.createTextNode(" "));
    });
    return table;
  }

  function textLine(values) {
    var span = document.createElement("span");
    span.textContent = values.filter(function (v) { return v !== "" && v !== null && v !== undefined; }).join(" ");
    return span;
  }

  function spaceStyle(cfg) {
    return function (feature) {
      var p = feature.properties;
      var status = p.status;
      if (cfg.colorBy === "status") {
        return {
          fillColor: cfg.colours[status],
          color: status === "blocking" ? "#b71c1c" : "#37474f",
          weight: status === "blocking" ? 3 : 1,
          fillOpacity: 0.6,
          fill: true
        };
      }
      // the fill says the chosen measure, the outline the title status
      var outline = cfg.outlines[status];
      return {
        fillColor: cfg.palette[p.color_key] || cfg.noCategory,
        color: outline.color,
        weight: outline.weight,
        dashArray: outline.dashArray,
        fillOpacity: 0.75,
        fill: true
      };
    };
  }

  var HATCH = "inventory-hatch-blocking";

  function addHatch(map) {
    // a pattern of red diagonals in the overlay's SVG, for spaces with a blocking gap
    var svg = map.getPanes().overlayPane.querySelector("svg");
    if (!svg || svg.querySelector("#" + HATCH)) { return; }
    var ns = "http://www.w3.org/2000/svg";
    var defs = document.createElementNS(ns, "defs");
    var pattern = document.createElementNS(ns, "pattern");
    pattern.setAttribute("id", HATCH);
    pattern.setAttribute("patternUnits", "userSpaceOnUse");
    pattern.setAttribute("width", "8");
    pattern.setAttribute("height", "8");
    pattern.setAttribute("patternTransform", "rotate(45)");
    var line = document.createElementNS(ns, "line");
    line.setAttribute("x1", "0");
    line.setAttribute("y1", "0");
    line.setAttribute("x2", "0");
    line.setAttribute("y2", "8");
    line.setAttribute("stroke", "#c62828");
    line.setAttribute("stroke-width", "2");
    pattern.appendChild(line);
    defs.appendChild(pattern);
    svg.insertBefore(defs, svg.firstChild);
  }

  function outlined(data, style, tooltipFields) {
    return L.geoJSON(data, {
      style: function () { return style; },
      onEachFeature: function (feature, layer) {
        var p = feature.properties;
        layer.bindTooltip(textLine(tooltipFields.map(function (f) { return p[f]; })));
      }
    });
  }

  window.inventoryFullMap = function (map, cfg) {
    var overlays = {};
    if (cfg.communities) {
      var boundaries = outlined(
        cfg.communities.data,
        { color: "#1565c0", weight: 2, dashArray: "6 4", fill: false },
        ["name"]
      );
      boundaries.addTo(map);
      overlays[cfg.communities.name] = boundaries;
    }
    var style = spaceStyle(cfg);
    var index = [];  // [reference, name, layer] for the search
    var labels = [];  // [latlng, text] for the labels and the PNG
    var hatched = [];
    var labelled = {};
    cfg.layers.forEach(function (group) {
      var layer = L.geoJSON(group.data, {
        style: style,
        pointToLayer: function (feature, at) {
          return L.circleMarker(at, Object.assign({ radius: 7 }, style(feature)));
        },
        onEachFeature: function (feature, sub) {
          var p = feature.properties;
          sub.bindPopup(function () {
            return textTable(cfg.fields.map(function (f, i) { return [cfg.fieldLabels[i], p[f]]; }));
          }, { maxWidth: 400 });
          sub.bindTooltip(textLine([p.survey_ref, p.kind]));
          index.push([String(p.survey_ref || ""), String(p.name || ""), sub]);
          var at = sub.getBounds ? sub.getBounds().getCenter() : sub.getLatLng();
          if (!labelled[p.survey_ref]) {  // a row of parking points: one label
            labelled[p.survey_ref] = true;
            labels.push({ at: at, text: p.label, group: group.name });
          }
          if (cfg.colorBy !== "status" && p.status === "blocking" && feature.geometry.type !== "Point") {
            hatched.push(feature);
          }
        }
      });
      layer.addTo(map);
      overlays[group.name] = layer;
    });
    if (hatched.length) {
      addHatch(map);
      var hatch = L.geoJSON({ type: "FeatureCollection", features: hatched }, {
        style: function () {
          return { fillColor: "url(#" + HATCH + ")", fillOpacity: 1, stroke: false, interactive: false };
        },
        interactive: false
      });
      hatch.addTo(map);
      addHatch(map);
    }
    // labels (编号 / 名称) as DOM text in their own pane, shown from cfg.labelZoom on
    var pane = map.createPane("inventoryLabels");
    pane.style.pointerEvents = "none";
    pane.style.zIndex = 450;
    var labelLayer = L.layerGroup(labels.map(function (label) {
      var icon = L.divIcon({ className: "inventory-label", html: "", iconSize: null });
      var marker = L.marker(label.at, { icon: icon, pane: "inventoryLabels", interactive: false, keyboard: false });
      marker.on("add", function () {
        var node = marker.getElement();
        node.textContent = label.text;  // text, never HTML
        node.style.cssText += ";font:11px sans-serif;color:#111;white-space:nowrap;text-shadow:0 0 3px #fff,0 0 3px #fff;transform-origin:center;margin-left:-2em;margin-top:-0.6em";
      });
      return marker;
    }));
    function showLabels() {
      if (map.getZoom() >= cfg.labelZoom) { labelLayer.addTo(map); } else { labelLayer.remove(); }
    }
    map.on("zoomend", showLabels);
    showLabels();
    map.inventoryLabels = function () {
      if (map.getZoom() < cfg.labelZoom) { return []; }
      return labels.filter(function (label) { return map.hasLayer(overlays[label.group]); });
    };
    map.inventoryFind = function (query) {
      var q = query.toLowerCase();
      var hit = index.filter(function (e) { return e[0].toLowerCase() === q; })[0] ||
        index.filter(function (e) { return e[1] && e[1].toLowerCase() === q; })[0] ||
        index.filter(function (e) { return (e[0] + " " + e[1]).toLowerCase().indexOf(q) >= 0; })[0];
      if (!hit) { return false; }
      var layer = hit[2];
      if (layer.getBounds) { map.fitBounds(layer.getBounds(), { maxZoom: 19 }); } else { map.setView(layer.getLatLng(), 19); }
      layer.openPopup();
      return true;
    };
    if (cfg.bundles) {
      var bundles = outlined(
        cfg.bundles.data,
        { color: "#6a1b9a", weight: 2, dashArray: "3 3", fillOpacity: 0.05 },
        ["bundle_id", "members", "usable_area_m2"]
      );
      bundles.addTo(map);
      overlays[cfg.bundles.name] = bundles;
    }
    map.inventoryLayerControl = L.control.layers(null, overlays, { collapsed: false }).addTo(map);
  };
})();
