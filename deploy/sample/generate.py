#!/usr/bin/env python3
"""Write the sample registry for Donghu District (东湖区), Nanchang: county-360102.json.

The file is the seed a development or demo deployment loads so that routing, escalation and
SLA arithmetic have a realistic county to work on: the unit tree down to grids, a two-level
event catalogue, and the county's routing/SLA policy with the 2026 working calendar.
The format is described in docs/seed-format.md.

Run from anywhere:  python3 deploy/sample/generate.py
The output is deterministic (no randomness, stable ordering), so regenerating gives a
byte-identical file unless this script changes; diffs of the JSON are therefore reviewable.
check() runs before anything is written, so an invalid file is never produced.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import re
import sys
from pathlib import Path

FORMAT = "griddispatch.registry/v1"
OUT = Path(__file__).resolve().parent / "county-360102.json"

CITY = ("3601", "南昌市")
COUNTY = ("360102", "东湖区")

# One working day on the calendar below (08:30-12:00 and 14:00-17:30) is 420 minutes; every
# WORKING limit is written as a multiple of it, or of an hour, so the intent stays readable.
HOUR = 60
DAY = 420

TIERS = ("COMMUNITY", "TOWNSHIP", "COUNTY", "CITY")
SEVERITIES = ("GENERAL", "LARGER", "MAJOR", "ESPECIALLY_MAJOR")
UNIT_KINDS = ("CITY", "COUNTY", "TOWNSHIP", "COMMUNITY", "GRID", "DEPARTMENT")

# Minimum sizes, so the sample stays large enough to exercise paging, fan-out and
# per-township statistics in demos and load tests.
MIN_TOWNSHIPS = 8
MIN_COMMUNITIES = 40
MIN_GRIDS = 240
MIN_DEPARTMENTS = 12


def w(minutes: int) -> dict:
    """A limit counted in working minutes (the calendar's periods, skipping rest days)."""
    return {"minutes": minutes, "clock": "WORKING"}


def n(minutes: int) -> dict:
    """A limit counted on the wall clock (emergencies and utilities do not wait for Monday)."""
    return {"minutes": minutes, "clock": "NATURAL"}


# --------------------------------------------------------------------------------------------
# Units
# --------------------------------------------------------------------------------------------

# Streets (街道) and the one town (镇) of the district, with their communities / villages.
# The township and community names are the district's streets and plausible community names;
# the 3-digit sequence numbers are assigned here in list order and are NOT the statistics
# bureau's official codes -- a production registry must take codes from the bureau's
# 统计用区划代码 instead.
TOWNSHIPS: list[tuple[str, list[str]]] = [
    ("公园街道", ["公园社区", "孺子亭社区", "东湖社区", "书院社区", "青山路社区"]),
    ("滕王阁街道", ["滕王阁社区", "榕门路社区", "中山路社区", "沿江社区", "象山北路社区"]),
    ("八一桥街道", ["八一桥社区", "叠山路社区", "永叔路社区", "站前路社区", "民德路社区", "胜利路社区"]),
    ("百花洲街道", ["百花洲社区", "八一大道社区", "渊明路社区", "佑民寺社区", "子固路社区"]),
    ("豫章街道", ["豫章社区", "孺子路社区", "都司前社区", "船山路社区", "象山南路社区"]),
    ("董家窑街道", ["董家窑社区", "贤士社区", "湖滨社区", "上海路社区", "青山南路社区"]),
    ("墩子塘街道", ["墩子塘社区", "南京西路社区", "顺化门社区", "德胜门社区"]),
    ("大院街道", ["省府大院社区", "北京西路社区", "阳明路社区", "福州路社区", "洪都社区"]),
    ("彭家桥街道", ["彭家桥社区", "解放路社区", "三经路社区", "二七北路社区", "国威社区"]),
    ("沙井街道", ["沙井社区", "江大南路社区", "丁公路社区", "赣江社区"]),
    ("扬子洲镇", ["扬子洲村", "新洲村", "黄城村", "北岸村", "扬农村"]),
]

# County departments that the command centre dispatches to: (suffix, name).
# Suffixes are the customary pinyin initials of the department's short name.
DEPARTMENTS: list[tuple[str, str]] = [
    ("CGJ", "东湖区城市管理局"),
    ("ZJJ", "东湖区住房和城乡建设局"),
    ("GAFJ", "南昌市公安局东湖分局"),
    ("XFJY", "南昌市东湖区消防救援大队"),
    ("SJJ", "东湖区市场监督管理局"),
    ("STHJ", "南昌市生态环境局东湖分局"),
    ("MZJ", "东湖区民政局"),
    ("SFJ", "东湖区司法局"),
    ("WJW", "东湖区卫生健康委员会"),
    ("YJJ", "东湖区应急管理局"),
    ("SWJ", "东湖区水务局"),
    ("JTJ", "东湖区交通运输局"),
    ("XFJ", "东湖区信访局"),
    ("RSJ", "东湖区人力资源和社会保障局"),
    ("FGW", "东湖区发展和改革委员会"),
]


def dept(suffix: str) -> str:
    return f"{COUNTY[0]}-{suffix}"


def grids_in(community_index: int) -> int:
    """5, 6 or 7 grids per community (a grid is about 300 households), cycling so that
    communities differ in size without any randomness."""
    return 5 + community_index % 3


def unit(code: str, name: str, kind: str, parent: str | None) -> dict:
    return {"code": code, "name": name, "kind": kind, "parent_code": parent}


# --------------------------------------------------------------------------------------------
# Boundaries: plausible, non-overlapping outlines that tile the county. The county is a
# rectangle split into rows of townships, each township into rows of communities, each
# community into rows of grids. Grid dividers slant a little (seeded by the grid's code, so the
# file never changes between runs), which makes quadrilaterals rather than a chessboard.
# Every coordinate is rounded to 6 decimals (about 0.1 m) once and reused by both neighbours,
# so shared edges are exactly shared.
# --------------------------------------------------------------------------------------------

# The county's south-west corner and size in degrees (about 6.8 km by 6.7 km). The corner
# sits just south-west of the point the tests report at, which therefore falls in grid 001
# of the first community.
SW_LON, SW_LAT = 115.8984, 28.6824
WIDTH, HEIGHT = 0.070, 0.060
# Where the tests and the demo report from (WGS-84), inside 360102001001001.
TEST_POINT = (115.8992, 28.6832)


def r6(x: float) -> float:
    return round(x, 6)


def split_rows(n: int) -> list[int]:
    """n cells in round(sqrt(n)) rows, the longer rows first: 11 -> [4, 4, 3]."""
    rows = max(1, round(math.sqrt(n)))
    return [n // rows + (1 if i < n % rows else 0) for i in range(rows)]


def rect(w: float, s: float, e: float, n: float) -> list[list[float]]:
    return [[w, s], [e, s], [e, n], [w, n], [w, s]]


def cells(box: tuple[float, float, float, float], n: int, slant: str | None) -> list[list[list[float]]]:
    """n rings tiling `box` (w, s, e, n), row by row from the south, west to east. With a
    `slant` seed, inner dividers lean by up to a fifth of a cell width."""
    w, s, e, nn = box
    rows = split_rows(n)
    ys = [r6(s + (nn - s) * j / len(rows)) for j in range(len(rows))] + [nn]
    rng = random.Random(slant) if slant else None
    out = []
    for j, k in enumerate(rows):
        step = (e - w) / k
        bottom = [w] + [r6(w + step * i) for i in range(1, k)] + [e]
        top = list(bottom)
        if rng:
            for i in range(1, k):
                bottom[i] = r6(bottom[i] + rng.uniform(-0.2, 0.2) * step)
                top[i] = r6(top[i] + rng.uniform(-0.2, 0.2) * step)
        for i in range(k):
            y0, y1 = ys[j], ys[j + 1]
            if rng:
                ring = [[bottom[i], y0], [bottom[i + 1], y0], [top[i + 1], y1], [top[i], y1],
                        [bottom[i], y0]]
            else:
                ring = rect(bottom[i], y0, bottom[i + 1], y1)
            out.append(ring)
    return out


def bbox(ring: list[list[float]]) -> tuple[float, float, float, float]:
    xs, ys = [p[0] for p in ring], [p[1] for p in ring]
    return min(xs), min(ys), max(xs), max(ys)


def polygon(ring: list[list[float]]) -> dict:
    return {"type": "Polygon", "coordinates": [ring]}


def inside(pt: tuple[float, float], ring: list[list[float]]) -> bool:
    """Even-odd rule: enough to check the sample, which has no point on an edge."""
    x, y = pt
    c = False
    for (x1, y1), (x2, y2) in zip(ring, ring[1:]):
        if (y1 > y) != (y2 > y) and x < (x2 - x1) * (y - y1) / (y2 - y1) + x1:
            c = not c
    return c


def build_units() -> list[dict]:
    # Emitted level by level so every parent precedes its children; a loader can then
    # upsert in file order without resolving forward references.
    city, county = CITY[0], COUNTY[0]
    county_ring = rect(SW_LON, SW_LAT, r6(SW_LON + WIDTH), r6(SW_LAT + HEIGHT))
    county_unit = unit(county, COUNTY[1], "COUNTY", city)
    county_unit["boundary"] = polygon(county_ring)
    units = [unit(city, CITY[1], "CITY", None), county_unit]
    units += [unit(dept(s), name, "DEPARTMENT", county) for s, name in DEPARTMENTS]

    townships, communities, grids = [], [], []
    community_index = 0
    t_rings = cells(bbox(county_ring), len(TOWNSHIPS), None)
    for t, (t_name, c_names) in enumerate(TOWNSHIPS, start=1):
        t_code = f"{county}{t:03d}"
        townships.append(unit(t_code, t_name, "TOWNSHIP", county))
        townships[-1]["boundary"] = polygon(t_rings[t - 1])
        c_rings = cells(bbox(t_rings[t - 1]), len(c_names), None)
        for c, c_name in enumerate(c_names, start=1):
            c_code = f"{t_code}{c:03d}"
            communities.append(unit(c_code, c_name, "COMMUNITY", t_code))
            communities[-1]["boundary"] = polygon(c_rings[c - 1])
            n = grids_in(community_index)
            g_rings = cells(bbox(c_rings[c - 1]), n, c_code)
            for g in range(1, n + 1):
                grids.append(unit(f"{c_code}{g:03d}", f"{c_name}第{g}网格", "GRID", c_code))
                grids[-1]["boundary"] = polygon(g_rings[g - 1])
            community_index += 1
    return units + townships + communities + grids


# --------------------------------------------------------------------------------------------
# Categories: two levels in the manner of GB/T 30428.2 (大类 / 小类)
# --------------------------------------------------------------------------------------------

# (code, name, default_severity, accept_limit, handle_limit). Top-level rows carry the limits
# that apply to the class as a whole; each sub-category states its own (possibly equal) limits
# so that a case never has to look further than its own category.
CATEGORIES: list[tuple[str, str, str, dict, dict]] = [
    ("01", "矛盾纠纷", "GENERAL", w(HOUR), w(5 * DAY)),
    ("0101", "邻里纠纷", "GENERAL", w(HOUR), w(3 * DAY)),
    ("0102", "婚姻家庭纠纷", "GENERAL", w(HOUR), w(5 * DAY)),
    ("0103", "物业纠纷", "GENERAL", w(HOUR), w(5 * DAY)),
    ("0104", "劳资纠纷", "GENERAL", w(HOUR), w(5 * DAY)),
    ("0105", "投诉信访", "GENERAL", w(HOUR), w(13 * DAY)),
    ("02", "安全隐患", "GENERAL", w(30), w(DAY)),
    ("0201", "消防隐患", "GENERAL", w(30), w(DAY)),
    ("0202", "燃气隐患", "GENERAL", w(30), w(4 * HOUR)),
    ("0203", "房屋安全", "GENERAL", w(30), w(2 * DAY)),
    ("0204", "道路交通安全隐患", "GENERAL", w(30), w(2 * DAY)),
    ("0205", "特种设备隐患", "GENERAL", w(30), w(DAY)),
    ("03", "治安", "GENERAL", w(30), w(3 * DAY)),
    ("0301", "治安隐患", "GENERAL", w(30), w(3 * DAY)),
    ("0302", "涉黄涉赌涉毒线索", "GENERAL", w(30), w(5 * DAY)),
    ("0303", "噪声扰民", "GENERAL", w(30), w(4 * HOUR)),
    ("0304", "出租房屋管理", "GENERAL", w(HOUR), w(5 * DAY)),
    ("04", "民生诉求", "GENERAL", w(HOUR), w(3 * DAY)),
    ("0401", "供水", "GENERAL", w(30), n(24 * HOUR)),
    ("0402", "供电", "GENERAL", w(30), n(24 * HOUR)),
    ("0403", "供气", "GENERAL", w(30), n(24 * HOUR)),
    ("0404", "社会保障", "GENERAL", w(HOUR), w(3 * DAY)),
    ("0405", "医疗卫生", "GENERAL", w(HOUR), w(3 * DAY)),
    ("05", "环境卫生", "GENERAL", w(30), w(4 * HOUR)),
    ("0501", "暴露垃圾", "GENERAL", w(30), w(4 * HOUR)),
    ("0502", "道路清扫", "GENERAL", w(30), w(2 * HOUR)),
    ("0503", "公厕管理", "GENERAL", w(30), w(4 * HOUR)),
    ("0504", "污水外溢", "GENERAL", w(30), w(DAY)),
    ("0505", "油烟污染", "GENERAL", w(HOUR), w(5 * DAY)),
    ("06", "市容秩序", "GENERAL", w(HOUR), w(DAY)),
    ("0601", "违法建设", "GENERAL", w(HOUR), w(7 * DAY)),
    ("0602", "乱张贴乱涂写", "GENERAL", w(30), w(4 * HOUR)),
    ("0603", "占道经营", "GENERAL", w(30), w(2 * HOUR)),
    ("0604", "车辆乱停放", "GENERAL", w(30), w(4 * HOUR)),
    ("0605", "户外广告设施", "GENERAL", w(HOUR), w(5 * DAY)),
    ("07", "特殊人群", "GENERAL", w(HOUR), w(3 * DAY)),
    ("0701", "社区矫正对象", "GENERAL", w(HOUR), w(DAY)),
    ("0702", "严重精神障碍患者", "GENERAL", w(30), w(DAY)),
    ("0703", "社区戒毒康复人员", "GENERAL", w(30), w(DAY)),
    ("0704", "困境老人儿童", "GENERAL", w(HOUR), w(3 * DAY)),
    # Emergencies start one level up (LARGER) and run on the wall clock: a fire reported at
    # 17:25 on a Friday must not wait for Monday morning.
    ("08", "突发事件", "LARGER", n(15), n(2 * HOUR)),
    ("0801", "火灾", "LARGER", n(15), n(2 * HOUR)),
    ("0802", "内涝", "LARGER", n(15), n(2 * HOUR)),
    ("0803", "燃气泄漏", "LARGER", n(15), n(2 * HOUR)),
    ("0804", "群体性事件", "LARGER", n(15), n(2 * HOUR)),
    ("0805", "公共卫生事件", "LARGER", n(15), n(2 * HOUR)),
]


def build_categories() -> list[dict]:
    out = []
    for code, name, severity, accept, handle in CATEGORIES:
        out.append({
            "code": code,
            "name": name,
            "parent_code": code[:2] if len(code) == 4 else None,
            "default_severity": severity,
            "accept_limit": accept,
            "handle_limit": handle,
        })
    return out


# --------------------------------------------------------------------------------------------
# Policy
# --------------------------------------------------------------------------------------------

# First tier by severity: an ordinary matter starts with the community; anything the
# emergency-response law grades higher starts where the matching command authority sits.
SEVERITY_TIERS = {"GENERAL": "COMMUNITY", "LARGER": "TOWNSHIP", "MAJOR": "COUNTY",
                  "ESPECIALLY_MAJOR": "CITY"}

# Categories whose first tier differs from the severity default, because the power to act
# does not exist lower down.
CATEGORY_TIERS = {
    "0105": "TOWNSHIP",  # complaints are registered by the street's 信访 office, not the community
    "0302": "COUNTY",    # vice leads go straight to the police
    "0601": "TOWNSHIP",  # illegal construction: the township's law-enforcement team acts
    "0801": "COUNTY",    # fire: the county command centre dispatches the fire brigade
    "0803": "COUNTY",    # gas leak: fire brigade and gas utility
    "0804": "COUNTY",    # mass incidents are always commanded at county level
}

# Who leads and who assists when a case is dispatched to county departments. One entry per
# top-level category covers all its sub-categories; sub-category entries override it.
DEPARTMENT_RULES: list[tuple[str, str, list[str]]] = [
    ("01", "SFJ", ["XFJ"]),            # people's mediation sits with the justice bureau
    ("0103", "ZJJ", ["SFJ"]),          # property-management disputes: housing bureau
    ("0104", "RSJ", ["SFJ"]),          # wage arrears: labour inspection
    ("0105", "XFJ", []),
    ("02", "YJJ", ["ZJJ"]),
    ("0201", "XFJY", ["ZJJ", "YJJ"]),
    ("0202", "ZJJ", ["SJJ", "XFJY"]),  # gas safety is regulated by housing; appliances by SAMR
    ("0203", "ZJJ", ["YJJ"]),
    ("0204", "JTJ", ["GAFJ"]),
    ("0205", "SJJ", ["ZJJ"]),          # lifts and boilers: market supervision
    ("03", "GAFJ", []),
    ("0303", "GAFJ", ["STHJ", "CGJ"]),
    ("04", "MZJ", []),
    ("0401", "SWJ", []),
    ("0402", "FGW", []),               # power supply is coordinated through the energy office
    ("0403", "ZJJ", []),
    ("0404", "RSJ", ["MZJ"]),
    ("0405", "WJW", []),
    ("05", "CGJ", []),
    ("0504", "SWJ", ["CGJ"]),
    ("0505", "STHJ", ["CGJ", "SJJ"]),
    ("06", "CGJ", []),
    ("0601", "CGJ", ["ZJJ"]),
    ("0604", "CGJ", ["GAFJ", "JTJ"]),
    ("07", "MZJ", []),
    ("0701", "SFJ", []),               # community corrections
    ("0702", "WJW", ["GAFJ", "MZJ"]),
    ("0703", "GAFJ", ["WJW"]),
    ("08", "YJJ", []),
    ("0801", "XFJY", ["YJJ", "GAFJ"]),
    ("0802", "SWJ", ["YJJ", "CGJ"]),
    ("0803", "XFJY", ["ZJJ", "YJJ"]),
    ("0804", "GAFJ", ["XFJ", "SFJ"]),
    ("0805", "WJW", ["YJJ", "SJJ"]),
]


def sla_rule(tier: str, category: str | None, severity: str | None,
             accept: dict | None, handle: dict | None) -> dict:
    return {"tier": tier, "category": category, "severity": severity,
            "accept": accept, "handle": handle}


def build_sla() -> list[dict]:
    rules = [
        # Tier defaults: the backstop when nothing more specific (and no catalogue limit)
        # applies. Higher tiers receive the harder cases, so they get longer.
        sla_rule("COMMUNITY", None, None, w(HOUR), w(3 * DAY)),
        sla_rule("TOWNSHIP", None, None, w(HOUR), w(5 * DAY)),
        sla_rule("COUNTY", None, None, w(2 * HOUR), w(7 * DAY)),
        sla_rule("CITY", None, None, w(2 * HOUR), w(10 * DAY)),
    ]
    for tier in TIERS:
        # Serious events must be picked up within the half hour, day or night; handling time
        # still comes from the category.
        rules.append(sla_rule(tier, None, "MAJOR", n(30), None))
        rules.append(sla_rule(tier, None, "ESPECIALLY_MAJOR", n(15), None))
        # Emergencies keep their 15-minute pick-up even when graded MAJOR (the category rule
        # outranks the looser severity rule) ...
        rules.append(sla_rule(tier, "08", None, n(15), None))
        # ... and get 10 minutes when graded MAJOR or above.
        rules.append(sla_rule(tier, "08", "MAJOR", n(10), None))
        rules.append(sla_rule(tier, "08", "ESPECIALLY_MAJOR", n(10), None))
    # A dangerous house graded LARGER means people may have to leave: accept on the wall clock
    # and finish the on-site assessment the same day.
    rules.append(sla_rule("TOWNSHIP", "0203", "LARGER", n(30), n(8 * HOUR)))
    # Illegal construction escalated to the county goes through formal demolition procedure.
    rules.append(sla_rule("COUNTY", "0601", None, None, w(10 * DAY)))
    return rules


# The 2026 mainland public holidays and make-up working days (调休上班), from the State Council
# General Office notice on the 2026 holiday arrangements (国务院办公厅关于2026年部分节假日安排的
# 通知, 4 Nov 2025). Weekend days inside a holiday period are listed too, so each period reads
# as the notice does. This list must be replaced every year from that year's notice.
HOLIDAYS_2026 = [
    ("2026-01-01", "2026-01-03"),  # 元旦
    ("2026-02-15", "2026-02-23"),  # 春节
    ("2026-04-04", "2026-04-06"),  # 清明节
    ("2026-05-01", "2026-05-05"),  # 劳动节
    ("2026-06-19", "2026-06-21"),  # 端午节
    ("2026-09-25", "2026-09-27"),  # 中秋节
    ("2026-10-01", "2026-10-07"),  # 国庆节
]
MAKEUP_WORKDAYS_2026 = [
    "2026-01-04",  # Sun, for 元旦
    "2026-02-14",  # Sat, for 春节
    "2026-02-28",  # Sat, for 春节
    "2026-05-09",  # Sat, for 劳动节
    "2026-09-20",  # Sun, for 国庆节
    "2026-10-10",  # Sat, for 国庆节
]


def expand(periods: list[tuple[str, str]]) -> list[str]:
    days = []
    for first, last in periods:
        d, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
        while d <= end:
            days.append(d.isoformat())
            d += dt.timedelta(days=1)
    return days


def build_calendar() -> dict:
    return {
        "utc_offset_minutes": 480,  # China Standard Time, no daylight saving
        "periods": [
            {"start": "08:30:00", "end": "12:00:00"},
            {"start": "14:00:00", "end": "17:30:00"},
        ],
        "holidays": expand(HOLIDAYS_2026),
        "makeup_workdays": list(MAKEUP_WORKDAYS_2026),
    }


def build_policy() -> dict:
    return {
        "county_code": COUNTY[0],
        "severity_tiers": dict(SEVERITY_TIERS),
        "category_tiers": dict(CATEGORY_TIERS),
        "departments": [
            {"category": c, "lead": dept(lead), "assisting": [dept(a) for a in assisting]}
            for c, lead, assisting in DEPARTMENT_RULES
        ],
        "sla": build_sla(),
        "calendar": build_calendar(),
    }


def build() -> dict:
    return {
        "format": FORMAT,
        "units": build_units(),
        "categories": build_categories(),
        "policies": [build_policy()],
    }


def main() -> int:
    from check_sample import check  # after this module is loaded: it imports from it

    doc = build()
    check(doc)
    # boundaries on one line each, so the file stays readable in a diff
    compact = {}
    for u in doc["units"]:
        if "boundary" in u:
            key = f"@boundary:{u['code']}@"
            compact[key] = json.dumps(u["boundary"], separators=(",", ":"))
            u["boundary"] = key
    text = json.dumps(doc, ensure_ascii=False, indent=2) + "\n"
    text = re.sub(r'"(@boundary:[^@]+@)"', lambda m: compact[m.group(1)], text)
    OUT.write_text(text, encoding="utf-8")
    kinds = {k: sum(1 for u in doc["units"] if u["kind"] == k) for k in UNIT_KINDS}
    summary = ", ".join(f"{k}={v}" for k, v in kinds.items())
    print(f"wrote {OUT.name}: {summary}, categories={len(doc['categories'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
