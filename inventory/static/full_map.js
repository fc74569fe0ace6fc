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
      var status = feature.properties.status;
      return {
        fillColor: cfg.colours[status],
        color: status === "blocking" ? "#b71c1c" : "#37474f",
        weight: status === "blocking" ? 3 : 1,
        fillOpacity: 0.6,
        fill: true
      };
    };
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
        }
      });
      layer.addTo(map);
      overlays[group.name] = layer;
    });
    if (cfg.bundles) {
      var bundles = outlined(
        cfg.bundles.data,
        { color: "#6a1b9a", weight: 2, dashArray: "3 3", fillOpacity: 0.05 },
        ["bundle_id", "members", "usable_area_m2"]
      );
      bundles.addTo(map);
      overlays[cfg.bundles.name] = bundles;
    }
    L.control.layers(null, overlays, { collapsed: false }).addTo(map);
  };
})();
