/* Segment condition builder: a form over the condition's JSON (plunk_events admin, issue 13).
 *
 * The textarea #id_condition stays the form field: the builder reads it, edits a copy of the
 * parsed condition in place (unknown keys are kept) and writes it back as JSON on every change,
 * so every condition of the grammar round-trips. "Edit as JSON" shows the textarea itself.
 * The preview asks the server (the segment engine) how many contacts would match and shows the
 * validation service's field errors. No framework, no build, no network beyond the admin.
 */
(function () {
  "use strict";

  var COMPARISON = ["equals", "notEquals", "contains", "notContains", "greaterThan", "lessThan",
    "greaterThanOrEqual", "lessThanOrEqual"];
  var PRESENCE = ["exists", "notExists"];
  var DATE_WINDOW = ["within", "olderThan"];
  var EVENT = ["triggered", "triggeredWithin", "triggeredOlderThan", "notTriggered",
    "notTriggeredWithin"];
  var COUNT = ["triggeredAtLeast", "triggeredAtMost"];
  var MEMBERSHIP = ["memberOfSegment", "notMemberOfSegment"];
  var WINDOW = ["within", "olderThan", "triggeredWithin", "triggeredOlderThan",
    "notTriggeredWithin"];
  var UNITS = ["days", "hours", "minutes"];
  var DATE_OPS = ["equals", "notEquals", "greaterThan", "lessThan", "greaterThanOrEqual",
    "lessThanOrEqual"].concat(DATE_WINDOW);
  var CONTACT_FIELDS = {
    email: COMPARISON.slice(0, 4),
    subscribed: ["equals", "notEquals"],
    createdAt: DATE_OPS,
    updatedAt: DATE_OPS
  };
  var NAMESPACES = [
    ["email", "Contact email"], ["subscribed", "Subscribed"], ["createdAt", "Contact created"],
    ["updatedAt", "Contact updated"], ["data.", "Contact data"], ["event.", "Event"],
    ["email.", "Email activity"], ["segment.", "Segment"]
  ];
  var LABELS = {
    equals: "equals", notEquals: "does not equal", contains: "contains",
    notContains: "does not contain", greaterThan: "is greater than", lessThan: "is less than",
    greaterThanOrEqual: "is at least", lessThanOrEqual: "is at most", exists: "is set",
    notExists: "is not set", within: "is within the last", olderThan: "is older than",
    triggered: "happened", triggeredWithin: "happened within the last",
    triggeredOlderThan: "last happened more than", notTriggered: "never happened",
    notTriggeredWithin: "did not happen within the last", triggeredAtLeast: "happened at least",
    triggeredAtMost: "happened at most", memberOfSegment: "is a member",
    notMemberOfSegment: "is not a member"
  };

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") { node.textContent = attrs[k]; } else { node.setAttribute(k, attrs[k]); }
    });
    (children || []).forEach(function (c) { if (c) { node.appendChild(c); } });
    return node;
  }

  function select(options, value, label, onChange) {
    var s = el("select", {"aria-label": label});
    options.forEach(function (o) {
      var pair = Array.isArray(o) ? o : [o, LABELS[o] || o];
      var opt = el("option", {value: pair[0], text: pair[1]});
      if (pair[0] === value) { opt.selected = true; }
      s.appendChild(opt);
    });
    if (value !== undefined && options.map(function (o) { return Array.isArray(o) ? o[0] : o; })
        .indexOf(value) < 0) {
      s.appendChild(el("option", {value: value, text: value, selected: "selected"}));
    }
    s.addEventListener("change", function () { onChange(s.value); });
    return s;
  }

  function namespaceOf(field) {
    if (typeof field !== "string") { return "event."; }
    if (CONTACT_FIELDS[field]) { return field; }
    var dot = field.indexOf(".");
    return dot > 0 ? field.slice(0, dot + 1) : field;
  }

  function operatorsFor(field) {
    var ns = namespaceOf(field);
    if (CONTACT_FIELDS[ns]) { return CONTACT_FIELDS[ns]; }
    if (ns === "data.") { return COMPARISON.concat(PRESENCE, DATE_WINDOW); }
    if (ns === "event.") { return EVENT.concat(COUNT); }
    if (ns === "email.") { return EVENT; }
    if (ns === "segment.") { return MEMBERSHIP; }
    return COMPARISON.concat(PRESENCE, DATE_WINDOW, EVENT, COUNT, MEMBERSHIP);
  }

  function typeOf(value) {
    if (typeof value === "number") { return "number"; }
    if (typeof value === "boolean") { return "boolean"; }
    if (value === null || typeof value === "object") { return "json"; }
    return "text";
  }

  function parseTyped(text, kind) {
    if (kind === "number") { var n = Number(text); return text.trim() === "" || isNaN(n) ? text : n; }
    if (kind === "boolean") { return text === "true"; }
    if (kind === "json") { try { return JSON.parse(text); } catch (e) { return text; } }
    return text;
  }

  function Builder(textarea, previewUrl) {
    this.textarea = textarea;
    this.previewUrl = previewUrl;
    this.root = el("div", {"class": "plunk-builder", id: "plunk-builder"});
    this.status = el("p", {"class": "plunk-builder-preview", id: "plunk-builder-preview",
      "aria-live": "polite"});
    this.toggle = el("button", {type: "button", "class": "button", id: "plunk-builder-toggle",
      text: "Edit as JSON (advanced)"});
    // One block holding the toggle, the builder, the textarea and the preview, so the admin's
    // flex form row keeps them stacked.
    var wrap = el("div", {"class": "plunk-builder-wrap"});
    textarea.parentNode.insertBefore(wrap, textarea);
    wrap.appendChild(this.toggle);
    wrap.appendChild(this.root);
    wrap.appendChild(textarea);
    wrap.appendChild(this.status);
    var self = this;
    this.toggle.addEventListener("click", function () { self.setRaw(!self.raw); });
    textarea.addEventListener("input", function () { if (self.raw) { self.schedulePreview(); } });
    this.setRaw(false);
  }

  Builder.prototype.setRaw = function (raw) {
    if (!raw) {
      try {
        var text = this.textarea.value.trim();
        this.model = text ? JSON.parse(text) : null;
      } catch (e) {
        this.status.textContent = "The JSON is not valid: fix it before using the builder.";
        raw = true;
      }
      if (!raw && (this.model === null || typeof this.model !== "object" || Array.isArray(this.model))) {
        this.model = {logic: "AND", groups: [{filters: [{field: "event.", operator: "triggered"}]}]};
      }
    }
    this.raw = raw;
    this.textarea.hidden = !raw;
    this.root.hidden = raw;
    this.toggle.textContent = raw ? "Use the builder" : "Edit as JSON (advanced)";
    this.toggle.setAttribute("aria-pressed", raw ? "true" : "false");
    if (!raw) { this.render(); }
  };

  Builder.prototype.changed = function () {
    this.textarea.value = JSON.stringify(this.model, null, 2);
    this.schedulePreview();
  };

  Builder.prototype.render = function () {
    this.root.textContent = "";
    this.root.appendChild(this.condition(this.model, 0));
    this.schedulePreview();
  };

  Builder.prototype.condition = function (cond, depth) {
    var self = this;
    if (!Array.isArray(cond.groups)) { cond.groups = []; }
    var box = el("div", {"class": "plunk-condition", "data-depth": String(depth)});
    box.appendChild(el("div", {"class": "plunk-builder-logic"}, [
      el("span", {text: depth ? "Nested: contacts matching " : "Contacts matching "}),
      select([["AND", "every group"], ["OR", "any group"]], cond.logic, "Logic", function (v) {
        cond.logic = v; self.changed();
      })
    ]));
    cond.groups.forEach(function (group, index) {
      box.appendChild(self.group(cond, group, index, depth));
    });
    var add = el("button", {type: "button", "class": "plunk-add-group", text: "+ Group"});
    add.addEventListener("click", function () {
      cond.groups.push({filters: [{field: "event.", operator: "triggered"}]});
      self.changed(); self.render();
    });
    box.appendChild(add);
    return box;
  };

  Builder.prototype.group = function (cond, group, index, depth) {
    var self = this;
    if (!Array.isArray(group.filters)) { group.filters = []; }
    var box = el("fieldset", {"class": "plunk-group"});
    box.appendChild(el("legend", {text: "Group " + (index + 1) + " (all of)"}));
    group.filters.forEach(function (flt, position) {
      box.appendChild(self.filter(group, flt, position));
    });
    var tools = el("div", {"class": "plunk-group-tools"});
    var addFilter = el("button", {type: "button", "class": "plunk-add-filter", text: "+ Filter"});
    addFilter.addEventListener("click", function () {
      group.filters.push({field: "event.", operator: "triggered"}); self.changed(); self.render();
    });
    tools.appendChild(addFilter);
    if (group.conditions === undefined || group.conditions === null) {
      var nest = el("button", {type: "button", "class": "plunk-add-nested",
        text: "+ Nested condition"});
      nest.addEventListener("click", function () {
        group.conditions = {logic: "OR", groups: [{filters: [{field: "event.", operator: "triggered"}]}]};
        self.changed(); self.render();
      });
      tools.appendChild(nest);
    }
    var remove = el("button", {type: "button", "class": "plunk-remove", text: "Remove group"});
    remove.addEventListener("click", function () {
      cond.groups.splice(index, 1); self.changed(); self.render();
    });
    tools.appendChild(remove);
    box.appendChild(tools);
    if (group.conditions !== undefined && group.conditions !== null) {
      if (typeof group.conditions === "object" && !Array.isArray(group.conditions)) {
        box.appendChild(this.condition(group.conditions, depth + 1));
        var unnest = el("button", {type: "button", "class": "plunk-remove", text: "Remove nested condition"});
        unnest.addEventListener("click", function () {
          delete group.conditions; self.changed(); self.render();
        });
        box.appendChild(unnest);
      }
    }
    return box;
  };

  Builder.prototype.filter = function (group, flt, position) {
    var self = this;
    var row = el("div", {"class": "plunk-filter"});
    var ns = namespaceOf(flt.field);
    var known = NAMESPACES.map(function (n) { return n[0]; }).indexOf(ns) >= 0;
    row.appendChild(select(known ? NAMESPACES : NAMESPACES.concat([[ns, ns]]), ns, "Field",
      function (v) {
        flt.field = CONTACT_FIELDS[v] ? v : v + (ns.slice(-1) === "." ? String(flt.field).slice(ns.length) : "");
        var ops = operatorsFor(flt.field);
        if (ops.indexOf(flt.operator) < 0) { flt.operator = ops[0]; }
        self.changed(); self.render();
      }));
    if (!CONTACT_FIELDS[ns]) {
      var name = el("input", {type: "text", "class": "plunk-field-name", "aria-label": "Name",
        placeholder: {"data.": "plan", "event.": "signup", "email.": "opened", "segment.": "segment id"}[ns] || ""});
      name.value = typeof flt.field === "string" ? flt.field.slice(ns.length) : "";
      name.addEventListener("input", function () { flt.field = ns + name.value; self.changed(); });
      row.appendChild(name);
    }
    row.appendChild(select(operatorsFor(flt.field), flt.operator, "Operator", function (v) {
      flt.operator = v;
      if (PRESENCE.concat(EVENT.filter(function (o) { return WINDOW.indexOf(o) < 0; }), MEMBERSHIP)
          .indexOf(v) >= 0) { delete flt.value; delete flt.unit; }
      if (WINDOW.indexOf(v) < 0) { delete flt.unit; } else if (!flt.unit) { flt.unit = "days"; }
      if (COUNT.indexOf(v) < 0) { delete flt.window; }
      self.changed(); self.render();
    }));
    var op = flt.operator;
    var needsValue = COMPARISON.indexOf(op) >= 0 || WINDOW.indexOf(op) >= 0 || COUNT.indexOf(op) >= 0
      || flt.value !== undefined;
    if (needsValue) {
      var numeric = WINDOW.indexOf(op) >= 0 || COUNT.indexOf(op) >= 0;
      var kind = flt.value === undefined ? (numeric ? "number" : "text") : typeOf(flt.value);
      var value = el("input", {type: "text", "class": "plunk-value", "aria-label": "Value",
        placeholder: numeric ? "a number" : "a value"});
      value.value = flt.value === undefined ? "" : (kind === "json" ? JSON.stringify(flt.value) : String(flt.value));
      value.addEventListener("input", function () { flt.value = parseTyped(value.value, kind); self.changed(); });
      row.appendChild(value);
      if (!numeric) {
        row.appendChild(select([["text", "as text"], ["number", "as a number"], ["boolean", "as true/false"],
          ["json", "as JSON"]], kind, "Value type", function (v) {
          kind = v; flt.value = parseTyped(value.value, kind); self.changed();
        }));
      }
    }
    if (WINDOW.indexOf(op) >= 0 || flt.unit !== undefined) {
      row.appendChild(select(UNITS, flt.unit, "Unit", function (v) { flt.unit = v; self.changed(); }));
    }
    if (COUNT.indexOf(op) >= 0) {
      var win = flt.window && typeof flt.window === "object" ? flt.window : null;
      var check = el("input", {type: "checkbox", "class": "plunk-window-on", "aria-label": "Within a window"});
      check.checked = !!win;
      check.addEventListener("change", function () {
        if (check.checked) { flt.window = {amount: 30, unit: "days"}; } else { delete flt.window; }
        self.changed(); self.render();
      });
      row.appendChild(el("label", {"class": "plunk-window"}, [check, el("span", {text: " times, within the last"})]));
      if (win) {
        var amount = el("input", {type: "text", "class": "plunk-window-amount", "aria-label": "Window amount"});
        amount.value = win.amount === undefined ? "" : String(win.amount);
        amount.addEventListener("input", function () { win.amount = parseTyped(amount.value, "number"); self.changed(); });
        row.appendChild(amount);
        row.appendChild(select(UNITS, win.unit, "Window unit", function (v) { win.unit = v; self.changed(); }));
      }
    }
    var remove = el("button", {type: "button", "class": "plunk-remove", "aria-label": "Remove filter", text: "×"});
    remove.addEventListener("click", function () {
      group.filters.splice(position, 1); self.changed(); self.render();
    });
    row.appendChild(remove);
    return row;
  };

  Builder.prototype.schedulePreview = function () {
    var self = this;
    clearTimeout(this.timer);
    this.timer = setTimeout(function () { self.preview(); }, 400);
  };

  Builder.prototype.preview = function () {
    var self = this;
    var form = this.textarea.form;
    var token = form && form.querySelector("input[name=csrfmiddlewaretoken]");
    var project = form && form.querySelector("#id_project");
    var body = new URLSearchParams();
    body.set("condition", this.textarea.value);
    body.set("project", project ? project.value : (this.textarea.getAttribute("data-project") || ""));
    body.set("segment", this.textarea.getAttribute("data-segment") || "");
    fetch(this.previewUrl, {
      method: "POST", body: body, credentials: "same-origin",
      headers: {"X-CSRFToken": token ? token.value : ""}
    }).then(function (r) { return r.json(); }).then(function (data) {
      if (data.errors && data.errors.length) {
        self.status.className = "plunk-builder-preview errornote";
        self.status.textContent = data.errors.map(function (e) {
          return e.field + ": " + e.message;
        }).join(" · ");
      } else if (data.count !== undefined) {
        self.status.className = "plunk-builder-preview";
        self.status.textContent = "Would match " + data.count.toLocaleString("en-US") + " contact" +
          (data.count === 1 ? "" : "s") + " now.";
      } else {
        self.status.textContent = data.message || "";
      }
    }).catch(function () { self.status.textContent = ""; });
  };

  function start() {
    var textarea = document.getElementById("id_condition");
    if (!textarea || !textarea.getAttribute("data-preview-url")) { return; }
    var builder = new Builder(textarea, textarea.getAttribute("data-preview-url"));
    window.plunkConditionBuilder = builder;
    // A STATIC segment has no condition (its members are added by email): no builder then.
    var type = document.getElementById("id_type");
    var wrap = builder.root.parentNode;
    var note = el("p", {"class": "plunk-note", id: "plunk-static-note",
      text: "A static segment has no condition: its members are added and removed by email."});
    wrap.parentNode.insertBefore(note, wrap);
    function follow() {
      var fixed = !!type && type.value === "STATIC";
      wrap.hidden = fixed;
      note.hidden = !fixed;
    }
    if (type) { type.addEventListener("change", follow); }
    follow();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
