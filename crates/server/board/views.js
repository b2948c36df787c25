// What the board draws. Every text comes from data through textContent, never as HTML.
import { t, tierName, statusName, eventName, duration } from "./i18n.js";

const SVG = "http://www.w3.org/2000/svg";
export const PENDING_ACCEPT = 2, IN_PROGRESS = 3, PENDING_VERIFICATION = 4, REPORTED = 1;

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "on") for (const [ev, f] of Object.entries(v)) e.addEventListener(ev, f);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function svg(tag, attrs = {}) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

function fmtTime(d) {
  if (!d) return "";
  return d.toLocaleString(document.documentElement.lang, { hour12: false, month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
}

/** The clock a case runs against now, and how far along it is. */
export function light(c, now) {
  if (c.overdue) return "red";
  const due = c.status === PENDING_ACCEPT ? c.accept_due_at : c.status === IN_PROGRESS ? c.handle_due_at : null;
  if (!due) return "none";
  if (now >= due) return "red";
  // the clock started with the change that set it: the case's last change
  const start = c.updated_at ?? c.reported_at;
  const span = due - start;
  return span > 0 && (now - start) / span >= 0.8 ? "yellow" : "green";
}

/** Queues per tier (and departments) with counts and the oldest item's age. */
export function queues(cases, now) {
  const rows = new Map();
  const key = (c) => (c.holder_unit.includes("-") ? "dept" : String(c.tier));
  for (const k of ["2", "3", "4", "5", "dept"]) rows.set(k, { n: 0, oldest: null });
  let handling = 0, checking = 0, routing = 0;
  for (const c of cases) {
    if (c.status === PENDING_ACCEPT) {
      const r = rows.get(key(c)) ?? rows.set(key(c), { n: 0, oldest: null }).get(key(c));
      r.n += 1;
      const since = c.updated_at ?? c.reported_at;
      if (!r.oldest || since < r.oldest) r.oldest = since;
    } else if (c.status === IN_PROGRESS) handling += 1;
    else if (c.status === PENDING_VERIFICATION) checking += 1;
    else if (c.status === REPORTED) routing += 1;
  }
  const list = el("div", { class: "queues" });
  for (const [k, r] of rows) {
    list.append(el("div", { class: "queue", "data-tier": k },
      el("span", { class: "q-name" }, k === "dept" ? tierName(0, "-") : tierName(Number(k))),
      el("span", { class: "q-count" }, String(r.n)),
      el("span", { class: "q-oldest" }, r.oldest ? `${t("oldest")} ${duration(now - r.oldest)}` : "")));
  }
  const also = el("div", { class: "queue-also" },
    el("span", {}, `${t("routing")} ${routing}`),
    el("span", {}, `${t("handling")} ${handling}`),
    el("span", {}, `${t("checking")} ${checking}`));
  return [list, also];
}

export function lights(cases, now) {
  const n = { green: 0, yellow: 0, red: 0, none: 0 };
  for (const c of cases) n[light(c, now)] += 1;
  return el("div", { class: "lights" },
    ...["green", "yellow", "red", "none"].map((k) =>
      el("div", { class: `light-sum ${k}`, "data-light": k },
        el("span", { class: "dot" }), el("b", {}, String(n[k])), el("span", {}, k === "none" ? t("noClock") : t(k)))));
}

/** Today's indicators per township: `rows` of `{ unit, indicators }`. */
export function indicators(rows) {
  const head = el("tr", {}, ...["township", "reported", "closed", "onTime", "satisfaction", "grade"].map((k) => el("th", {}, t(k))));
  const pct = (n, ok) => (ok ? `${n.toFixed(1)}%` : "–");
  const body = rows.map(({ unit, indicators: i }) => el("tr", { "data-unit": unit.code },
    el("td", {}, unit.name),
    el("td", { class: "num" }, String(i?.reported ?? 0)),
    el("td", { class: "num" }, String(i?.closed ?? 0)),
    el("td", { class: "num" }, pct(i?.on_time_closure_rate ?? 0, i?.due_to_close)),
    el("td", { class: "num" }, pct(i?.satisfaction_rate ?? 0, i?.rated)),
    el("td", { class: "grade" }, i?.grade || "–")));
  return el("table", { class: "indicators" }, el("thead", {}, head), el("tbody", {}, body));
}

function rings(boundary) {
  try {
    const g = JSON.parse(boundary);
    if (g.type === "Polygon") return [g.coordinates[0]];
    if (g.type === "MultiPolygon") return g.coordinates.map((p) => p[0]);
  } catch { /* a unit without a readable boundary is not drawn */ }
  return [];
}

/** Grids as their polygons, coloured by open cases, on a plain background. */
export function map(grids, townships, openByGrid) {
  const shapes = [];
  let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
  for (const u of [...grids, ...townships]) {
    for (const ring of rings(u.boundary)) {
      for (const [x, y] of ring) {
        minX = Math.min(minX, x); maxX = Math.max(maxX, x); minY = Math.min(minY, y); maxY = Math.max(maxY, y);
      }
      shapes.push([u, ring]);
    }
  }
  const root = svg("svg", { class: "map", preserveAspectRatio: "xMidYMid meet" });
  if (!shapes.length) return root;
  const k = Math.cos(((minY + maxY) / 2) * Math.PI / 180);
  const w = (maxX - minX) * k, h = maxY - minY;
  root.setAttribute("viewBox", `0 0 ${w} ${h}`);
  root.append(svg("rect", { x: 0, y: 0, width: w, height: h, class: "map-bg" }));
  const d = (ring) => "M" + ring.map(([x, y]) => `${((x - minX) * k).toFixed(6)},${(maxY - y).toFixed(6)}`).join("L") + "Z";
  const gridLayer = svg("g", { class: "grids" }), townLayer = svg("g", { class: "towns" });
  for (const [u, ring] of shapes) {
    if (u.kind === 3) {
      townLayer.append(svg("path", { d: d(ring), class: "town", "vector-effect": "non-scaling-stroke" }));
      continue;
    }
    const n = openByGrid.get(u.code) ?? 0;
    const p = svg("path", { d: d(ring), class: `grid heat-${Math.min(n, 4)}`, "data-grid": u.code, "vector-effect": "non-scaling-stroke" });
    const title = svg("title");
    title.textContent = `${u.name} (${u.code}): ${n} ${t("cases")}`;
    p.append(title);
    gridLayer.append(p);
  }
  root.append(gridLayer, townLayer);
  return root;
}

export function caseTable(cases, now, units, onOpen) {
  const head = el("tr", {}, ...["caseNo", "caseTitle", "tier", "holder", "status", "due", "age"].map((k) => el("th", {}, t(k))));
  const rows = [...cases]
    .sort((a, b) => (b.updated_at ?? 0) - (a.updated_at ?? 0))
    .slice(0, 200)
    .map((c) => {
      const due = c.status === PENDING_ACCEPT ? c.accept_due_at : c.handle_due_at;
      return el("tr", { class: `case light-${light(c, now)}`, "data-case": c.case_id, tabindex: 0, on: { click: () => onOpen(c.case_id), keydown: (e) => e.key === "Enter" && onOpen(c.case_id) } },
        el("td", { class: "mono" }, el("span", { class: "dot" }), c.case_number),
        el("td", { class: "title" }, c.title),
        el("td", {}, tierName(c.tier, c.holder_unit)),
        el("td", {}, units.get(c.holder_unit)?.name ?? c.holder_unit),
        el("td", { class: "status" }, statusName(c.status)),
        el("td", {}, fmtTime(due)),
        el("td", { class: "num" }, duration(now - (c.updated_at ?? c.reported_at))));
    });
  return el("table", { class: "cases" }, el("thead", {}, head), el("tbody", {}, rows));
}

export function change(ch, units) {
  const c = ch.case, e = ch.event;
  const who = e.actor_unit ? units.get(e.actor_unit)?.name ?? e.actor_unit : "";
  return el("li", { class: `change ev-${e.event_type}`, "data-case": e.case_id },
    el("time", {}, fmtTime(e.recorded_at)),
    el("span", { class: "ev" }, eventName(e.event_type)),
    el("span", { class: "mono" }, c?.case_number ?? ""),
    el("span", { class: "title" }, c?.title ?? ""),
    el("span", { class: "who" }, who));
}

/** The case file: details, events, assignments, photos, and the dispatch form when allowed. */
export function caseFile(r, units, departments, canDispatch, onDispatch, onClose) {
  const c = r.case;
  const photos = el("div", { class: "photos" }, c.attachments.length ? null : t("noPhotos"));
  const events = el("ol", { class: "events" }, ...r.events.map((e) =>
    el("li", {}, el("time", {}, fmtTime(e.recorded_at)), el("b", {}, eventName(e.event_type)),
      el("span", {}, e.actor_unit ? units.get(e.actor_unit)?.name ?? e.actor_unit : ""))));
  const assignments = el("table", { class: "assignments" }, el("tbody", {}, ...r.assignments.map((a) =>
    el("tr", {}, el("td", {}, units.get(a.unit_code)?.name ?? a.unit_code), el("td", {}, tierName(a.tier, a.unit_code)),
      el("td", {}, ["", "holder", "lead", "assisting"][a.role] ?? ""), el("td", {}, fmtTime(a.created_at))))));
  let form = null;
  if (canDispatch) {
    const lead = el("select", { name: "lead", id: "dispatch-lead", required: true },
      ...departments.map((d) => el("option", { value: d.code }, `${d.name} (${d.code})`)));
    const assisting = el("div", { class: "assisting", id: "dispatch-assisting" }, ...departments.map((d) =>
      el("label", {}, el("input", { type: "checkbox", value: d.code }), d.name)));
    const note = el("input", { name: "note", id: "dispatch-note", maxlength: 200 });
    const button = el("button", { type: "submit", id: "dispatch-submit" }, t("dispatch"));
    form = el("form", { class: "dispatch", on: { submit: (ev) => {
      ev.preventDefault();
      const helpers = [...assisting.querySelectorAll("input:checked")].map((i) => i.value).filter((v) => v !== lead.value);
      button.disabled = true;
      onDispatch({ lead_unit: lead.value, assisting_units: helpers, note: note.value }).finally(() => { button.disabled = false; });
    } } },
    el("h3", {}, t("dispatchTitle")),
    el("label", {}, t("lead"), lead),
    el("fieldset", {}, el("legend", {}, t("assisting")), assisting),
    el("label", {}, t("note"), note),
    button);
  }
  const dialog = el("section", { class: "case-file", id: "case-file", "data-case": c.case_id, "data-version": String(c.version) },
    el("header", {}, el("h2", {}, `${c.case_number} ${c.title}`), el("button", { class: "close", on: { click: onClose } }, t("close"))),
    el("dl", {},
      el("dt", {}, t("status")), el("dd", { id: "case-status" }, statusName(c.status)),
      el("dt", {}, t("holder")), el("dd", { id: "case-holder" }, units.get(c.holder_unit)?.name ?? c.holder_unit),
      el("dt", {}, t("lead")), el("dd", { id: "case-lead" }, c.lead_unit ? units.get(c.lead_unit)?.name ?? c.lead_unit : t("none")),
      el("dt", {}, t("assisting")), el("dd", {}, c.assisting_units.map((u) => units.get(u)?.name ?? u).join("、") || t("none")),
      el("dt", {}, t("due")), el("dd", {}, fmtTime(c.status === PENDING_ACCEPT ? c.accept_due_at : c.handle_due_at)),
      el("dt", {}, t("reports")), el("dd", { id: "case-reports" }, String(c.report_count || 1))),
    el("p", { class: "description" }, c.description),
    el("div", { class: "file-cols" },
      el("div", {}, el("h3", {}, t("events")), events),
      el("div", {}, el("h3", {}, t("assignments")), assignments, el("h3", {}, t("photos")), photos)),
    form,
    el("p", { class: "message", id: "case-message", role: "status" }));
  return { dialog, photos };
}
