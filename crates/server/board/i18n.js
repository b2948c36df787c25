// Labels in Chinese and English. The page starts in the browser's language and can switch.
const LABELS = {
  zh: {
    title: "网格事件指挥调度台",
    signIn: "登录",
    signOut: "退出",
    token: "令牌",
    tokenHint: "粘贴签发给本单位的访问令牌；页面只在本次会话的内存中保存它。",
    region: "区域代码",
    regionHint: "令牌不含单位时填写，例如 360102",
    badToken: "令牌无法读取：应为三段式 JWT。",
    expired: "令牌已过期，请重新登录。",
    queues: "各级待受理队列",
    waiting: "待受理",
    oldest: "最久",
    handling: "处置中",
    checking: "待核查",
    routing: "待分派",
    lights: "时限红黄绿灯",
    green: "正常",
    yellow: "临期",
    red: "超时",
    noClock: "无时限",
    indicators: "今日指标（按街道乡镇）",
    township: "街道/乡镇",
    reported: "上报",
    closed: "办结",
    onTime: "按时办结率",
    satisfaction: "满意率",
    grade: "等级",
    map: "网格分布（按在办案件着色）",
    openCases: "在办案件",
    live: "实时动态",
    connected: "实时连接正常",
    reconnecting: "实时连接中断，正在重连…",
    caseNo: "案件编号",
    caseTitle: "标题",
    tier: "层级",
    holder: "当前单位",
    status: "状态",
    due: "时限",
    age: "已等",
    events: "事件记录",
    assignments: "派单记录",
    photos: "照片",
    noPhotos: "无照片",
    dispatch: "派遣",
    dispatchTitle: "派遣：指定主办与协办部门",
    lead: "主办部门",
    assisting: "协办部门",
    note: "派遣说明",
    dispatched: "已派遣",
    reports: "上报人次",
    close: "关闭",
    role: "角色",
    none: "无",
    error: "出错",
    loading: "加载中…",
    minutes: "分",
    hours: "小时",
    days: "天",
    cases: "件",
    onDuty: "当前值班",
    lang: "English",
  },
  en: {
    title: "Grid events command board",
    signIn: "Sign in",
    signOut: "Sign out",
    token: "Token",
    tokenHint: "Paste the access token issued to your unit; the page keeps it in memory for this session only.",
    region: "Region code",
    regionHint: "When the token names no unit, e.g. 360102",
    badToken: "The token cannot be read: a JWT has three parts.",
    expired: "The token has expired; please sign in again.",
    queues: "Waiting to be accepted, by tier",
    waiting: "waiting",
    oldest: "oldest",
    handling: "Handling",
    checking: "Being checked",
    routing: "Being routed",
    lights: "Clocks",
    green: "on time",
    yellow: "due soon",
    red: "overdue",
    noClock: "no clock",
    indicators: "Today's indicators by township",
    township: "Township",
    reported: "Reported",
    closed: "Closed",
    onTime: "On time",
    satisfaction: "Satisfied",
    grade: "Grade",
    map: "Grids, coloured by open cases",
    openCases: "Open cases",
    live: "Live changes",
    connected: "Live",
    reconnecting: "Live connection lost, reconnecting…",
    caseNo: "Case",
    caseTitle: "Title",
    tier: "Tier",
    holder: "Held by",
    status: "Status",
    due: "Due",
    age: "Waiting",
    events: "Events",
    assignments: "Assignments",
    photos: "Photos",
    noPhotos: "No photos",
    dispatch: "Dispatch",
    dispatchTitle: "Dispatch to a lead and assisting departments",
    lead: "Lead department",
    assisting: "Assisting departments",
    note: "Note",
    dispatched: "Dispatched",
    reports: "Reports",
    close: "Close",
    role: "Role",
    none: "none",
    error: "Error",
    loading: "Loading…",
    minutes: "min",
    hours: "h",
    days: "d",
    cases: "cases",
    onDuty: "On duty",
    lang: "中文",
  },
};

const TIERS = {
  zh: { 1: "网格", 2: "社区", 3: "街道/乡镇", 4: "区县", 5: "市", dept: "部门" },
  en: { 1: "Grid", 2: "Community", 3: "Township", 4: "County", 5: "City", dept: "Departments" },
};

const STATUSES = {
  zh: { 1: "待分派", 2: "待受理", 3: "处置中", 4: "待核查", 5: "已结案", 6: "已作废", 7: "已合并" },
  en: { 1: "Routing", 2: "Waiting", 3: "Handling", 4: "Checking", 5: "Closed", 6: "Rejected", 7: "Merged" },
};

const EVENTS = {
  zh: {
    reported: "上报", routed: "分派", accepted: "受理", called_up: "呼叫上级", escalated: "超时上移",
    returned: "退回", dispatched: "派遣", part_submitted: "协办反馈", result_submitted: "提交结果",
    verified: "核查", extension_requested: "申请延期", extension_decided: "延期审批", flagged: "标记",
    overdue: "超时", warned: "预警", rejected: "作废", merged: "合并", rated: "评价",
    repeated: "重复上报", repeat_added: "又有人报", repeat_removed: "拆出重复", split: "拆分",
    recurred: "复发",
  },
  en: {},
};

// `?lang=zh` or `?lang=en` fixes the language (a wall screen's URL); else the browser's
let lang = (new URLSearchParams(location.search).get("lang") || navigator.language || "zh")
  .toLowerCase().startsWith("en") ? "en" : "zh";

export function currentLang() {
  return lang;
}

export function setLang(l) {
  lang = l === "en" ? "en" : "zh";
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
}

export function t(key) {
  return LABELS[lang][key] ?? LABELS.en[key] ?? key;
}

export function tierName(tier, unitCode) {
  if (unitCode && unitCode.includes("-")) return TIERS[lang].dept;
  return TIERS[lang][tier] ?? String(tier);
}

export function statusName(status) {
  return STATUSES[lang][status] ?? String(status);
}

export function eventName(type) {
  return EVENTS[lang][type] ?? type.replaceAll("_", " ");
}

export function duration(ms) {
  const m = Math.max(0, Math.floor(ms / 60000));
  if (m < 60) return `${m} ${t("minutes")}`;
  if (m < 48 * 60) return `${Math.floor(m / 60)} ${t("hours")} ${m % 60} ${t("minutes")}`;
  return `${Math.floor(m / 1440)} ${t("days")}`;
}
