// The command-centre board: signs in with a token held in memory only, loads the county's
// registry and open cases, then keeps them current from WatchCases without a reload.
import * as api from "./api.js";
import { t, setLang, currentLang } from "./i18n.js";
import * as v from "./views.js";

const OPEN = ["REPORTED", "PENDING_ACCEPT", "IN_PROGRESS", "PENDING_VERIFICATION"];
const LIVE_ITEMS = 60;
const STATS_EVERY_MS = 60_000;

const state = {
  token: null, me: null, region: "",
  units: new Map(), grids: [], townships: [], departments: [],
  cases: new Map(), stats: null, live: [], cursor: "",
  watch: null, timers: [], open: null,
  // what the last action on the open case came to, kept across its redraws
  notice: null,
};

const $ = (id) => document.getElementById(id);

function claims(token) {
  const parts = token.split(".");
  if (parts.length !== 3) throw new Error(t("badToken"));
  const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(b64.padEnd(Math.ceil(b64.length / 4) * 4, "="));
  return JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (ch) => ch.charCodeAt(0))));
}

/** The region a unit watches: a department watches its county. */
function regionOf(unit) {
  return unit.includes("-") ? unit.split("-")[0] : unit;
}

function call(path, req, resp, msg) {
  return api.call(path, req, resp, msg, state.token);
}

// ---- sign in and out ----

function showLogin(message) {
  $("login").hidden = false;
  $("board").hidden = true;
  $("login-error").textContent = message ?? "";
  $("token").focus();
}

async function signIn(ev) {
  ev.preventDefault();
  const token = $("token").value.trim();
  try {
    const c = claims(token);
    if (c.exp && c.exp * 1000 < Date.now()) throw new Error(t("expired"));
    const region = c.unit ? regionOf(c.unit) : $("region").value.trim();
    if (!/^\d{2,12}$/.test(region)) throw new Error(t("regionHint"));
    state.token = token;
    state.me = { unit: c.unit ?? "", role: c.role ?? "", sub: c.sub ?? "" };
    state.region = region;
    $("token").value = "";
    $("login").hidden = true;
    $("board").hidden = false;
    await start();
  } catch (e) {
    stop();
    state.token = null;
    showLogin(e.message);
  }
}

function stop() {
  liveOk = null;
  $("status").textContent = "";
  state.watch?.abort();
  state.watch = null;
  for (const id of state.timers) clearInterval(id);
  state.timers = [];
}

function signOut() {
  stop();
  Object.assign(state, { token: null, me: null, cases: new Map(), live: [], cursor: "", stats: null, open: null, duty: null });
  $("duty").textContent = "";
  $("case-layer").replaceChildren();
  showLogin();
}

// ---- loading ----

async function loadRegistry() {
  const units = await api.all("RoutingService/ListUnits", "ListUnitsRequest", "ListUnitsResponse",
    { region_code: state.region }, state.token, "units");
  const mine = units.filter((u) => u.code.startsWith(state.region));
  state.units = new Map(mine.map((u) => [u.code, u]));
  state.grids = mine.filter((u) => u.kind === 1 && u.boundary);
  state.townships = mine.filter((u) => u.kind === 3);
  state.departments = mine.filter((u) => u.kind === 6).sort((a, b) => a.code.localeCompare(b.code));
}

async function loadCases() {
  const statuses = OPEN.map((s) => api.enumValue("CaseStatus", s));
  const cases = await api.all("ConsoleService/ListCases", "ListCasesRequest", "ListCasesResponse",
    { region_code: state.region, statuses }, state.token, "cases");
  for (const c of cases) keep(c);
}

/** Today's indicators of each township's area (its subtree), side by side. */
async function loadStats() {
  const from = new Date();
  from.setHours(0, 0, 0, 0);
  const to = new Date();
  try {
    const rows = await Promise.all(state.townships.map(async (u) => {
      const r = await call("ConsoleService/GetStats", "GetStatsRequest", "GetStatsResponse",
        { region_code: u.code, from, to });
      return { unit: u, indicators: r.total };
    }));
    state.stats = rows;
    renderIndicators();
  } catch (e) {
    $("indicators").replaceChildren(v.el("p", { class: "error" }, e.message));
  }
}

/** Who is on duty at the signed-in unit now (365天服務不打烊); nothing when it keeps no roster. */
async function loadDuty() {
  if (!state.me.unit) return;
  try {
    const r = await call("DutyService/WhoIsOnDuty", "WhoIsOnDutyRequest", "WhoIsOnDutyResponse",
      { unit_code: state.me.unit });
    state.duty = r.on_duty;
  } catch {
    state.duty = null;
  }
  renderDuty();
}

function renderDuty() {
  const d = state.duty;
  $("duty").textContent = d?.length
    ? `${t("onDuty")}: ${d.map((x) => `${x.person?.name ?? ""}`).join("、")} (${d[0].shift})`
    : "";
}

/** Indicators again soon after changes, at most every ten seconds. */
let statsDue = null;
function statsSoon() {
  statsDue ??= setTimeout(() => { statsDue = null; loadStats(); }, 10_000);
}

/** Keeps the newer of what we hold and what arrived (changes can overtake a listing). */
function keep(c) {
  const held = state.cases.get(c.case_id);
  if (held && held.version > c.version) return;
  const open = OPEN.some((s) => api.enumValue("CaseStatus", s) === c.status);
  if (open) state.cases.set(c.case_id, c);
  else state.cases.delete(c.case_id);
}

async function start() {
  $("whoami").textContent = `${state.units.get(state.me.unit)?.name ?? state.me.unit} · ${state.me.role}`;
  $("status").textContent = t("loading");
  await loadRegistry();
  $("whoami").textContent = `${state.units.get(state.me.unit)?.name ?? state.me.unit ?? state.region} · ${state.me.role}`;
  // the watch starts from "now" before the listing is read: nothing falls between the two
  await new Promise((started) => watch(started));
  await loadCases();
  render();
  loadStats();
  loadDuty();
  state.timers.push(setInterval(loadStats, STATS_EVERY_MS));
  state.timers.push(setInterval(loadDuty, STATS_EVERY_MS));
  state.timers.push(setInterval(renderClocks, 15_000));
}

// ---- live ----

/** Follows the region's changes, resuming from the last cursor; `started` is called once. */
async function watch(started) {
  const abort = new AbortController();
  state.watch = abort;
  let delay = 500;
  while (!abort.signal.aborted) {
    try {
      await api.stream("ConsoleService/WatchCases", "WatchCasesRequest", "CaseChange",
        { region_code: state.region, after_cursor: state.cursor }, state.token,
        () => { setLive(true); delay = 500; started(); }, onChange, abort.signal);
    } catch (e) {
      started();
      if (abort.signal.aborted) return;
      if (e.code === "UNAUTHENTICATED" || e.code === "PERMISSION_DENIED") {
        signOut();
        showLogin(e.message);
        return;
      }
    }
    if (abort.signal.aborted) return;
    setLive(false);
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 15_000);
  }
}

let liveOk = null;
function setLive(ok) {
  liveOk = ok;
  const s = $("status");
  s.textContent = ok ? t("connected") : t("reconnecting");
  s.className = ok ? "live-ok" : "live-lost";
}

let renderPending = false;
function onChange(ch) {
  state.cursor = ch.cursor;
  if (ch.case) keep(ch.case);
  statsSoon();
  state.live.unshift(ch);
  state.live.length = Math.min(state.live.length, LIVE_ITEMS);
  $("live-list").prepend(v.change(ch, state.units));
  while ($("live-list").children.length > LIVE_ITEMS) $("live-list").lastChild.remove();
  if (state.open === ch.event.case_id) openCase(ch.event.case_id);
  if (!renderPending) {
    renderPending = true;
    requestAnimationFrame(() => { renderPending = false; render(); });
  }
}

// ---- drawing ----

function render() {
  renderClocks();
  const byGrid = new Map();
  for (const c of state.cases.values()) byGrid.set(c.grid_code, (byGrid.get(c.grid_code) ?? 0) + 1);
  $("map").replaceChildren(v.map(state.grids, state.townships, byGrid));
}

function renderClocks() {
  const now = new Date();
  const cases = [...state.cases.values()];
  $("queues").replaceChildren(...v.queues(cases, now));
  $("lights").replaceChildren(v.lights(cases, now));
  $("case-table").replaceChildren(v.caseTable(cases, now, state.units, openCase));
  $("open-count").textContent = String(cases.length);
  $("clock").textContent = now.toLocaleTimeString(document.documentElement.lang, { hour12: false });
}

function renderIndicators() {
  $("indicators").replaceChildren(v.indicators(state.stats ?? []));
}

function renderAll() {
  for (const e of document.querySelectorAll("[data-label]")) e.textContent = t(e.dataset.label);
  $("lang").textContent = t("lang");
  document.title = t("title");
  if (state.token) {
    if (liveOk !== null) setLive(liveOk);
    renderDuty();
    render();
    renderIndicators();
    $("live-list").replaceChildren(...state.live.map((ch) => v.change(ch, state.units)));
    if (state.open) openCase(state.open);
  }
}

// ---- a case ----

/** Whether this caller may dispatch the case: it holds it at a township or above. */
function canDispatch(c) {
  const mine = state.me.unit === c.holder_unit && !c.holder_unit.includes("-") && c.tier >= 3;
  return mine && (c.status === v.PENDING_ACCEPT || c.status === v.IN_PROGRESS) && state.departments.length > 0;
}

async function openCase(id) {
  state.open = id;
  let r;
  try {
    r = await call("ConsoleService/GetCase", "GetCaseRequest", "GetCaseResponse", { case_id: id });
  } catch (e) {
    $("case-layer").replaceChildren(v.el("section", { class: "case-file" }, v.el("p", { class: "error" }, e.message)));
    return;
  }
  if (state.open !== id) return;
  keep(r.case);
  const { dialog, photos } = v.caseFile(r, state.units, state.departments, canDispatch(r.case),
    (d) => dispatch(r.case, d), closeCase);
  $("case-layer").replaceChildren(dialog);
  if (state.notice?.caseId === id) {
    $("case-message").textContent = state.notice.text;
    $("case-message").className = state.notice.error ? "message error" : "message";
  }
  for (const a of r.case.attachments) {
    api.photoUrl(id, a.content_hash, state.token)
      .then((url) => photos.append(v.el("img", { src: url, alt: a.content_hash.slice(0, 12) })))
      .catch((e) => photos.append(v.el("span", { class: "error" }, e.message)));
  }
}

function closeCase() {
  state.open = null;
  state.notice = null;
  $("case-layer").replaceChildren();
}

async function dispatch(c, d) {
  try {
    const r = await call("EscalationService/Dispatch", "DispatchRequest", "DispatchResponse", {
      case_id: c.case_id, unit_code: state.me.unit, lead_unit: d.lead_unit,
      assisting_units: d.assisting_units, note: d.note, expected_version: c.version,
    });
    keep(r.case);
    render();
    state.notice = { caseId: c.case_id, text: t("dispatched") };
  } catch (e) {
    state.notice = { caseId: c.case_id, text: `${t("error")}: ${e.message}`, error: true };
  }
  await openCase(c.case_id);
}

// ---- start ----

document.addEventListener("DOMContentLoaded", async () => {
  setLang(currentLang());
  $("login-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  $("lang").addEventListener("click", () => { setLang(currentLang() === "zh" ? "en" : "zh"); renderAll(); });
  document.addEventListener("keydown", (e) => e.key === "Escape" && closeCase());
  renderAll();
  try {
    await api.loadSchema();
    $("sign-in").disabled = false;
  } catch (e) {
    $("login-error").textContent = e.message;
  }
  showLogin();
});
