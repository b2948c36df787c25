"""The sample registry's own check: the same invariants a loader relies on, so that a bad edit
of generate.py fails there, not at load. Imported by generate.py."""

from __future__ import annotations

import datetime as dt
import re

from generate import (CITY, COUNTY, DAY, FORMAT, MIN_COMMUNITIES, MIN_DEPARTMENTS, MIN_GRIDS,
                      MIN_TOWNSHIPS, SEVERITIES, TEST_POINT, TIERS, UNIT_KINDS, inside)

DEPT_RE = re.compile(r"^(\d{6})-([A-Z0-9]{2,10})$")
# kind -> (code length, parent kind)
HIERARCHY = {"CITY": (4, None), "COUNTY": (6, "CITY"), "TOWNSHIP": (9, "COUNTY"),
             "COMMUNITY": (12, "TOWNSHIP"), "GRID": (15, "COMMUNITY")}


def check_limit(limit: object, where: str) -> None:
    assert isinstance(limit, dict) and set(limit) == {"minutes", "clock"}, where
    assert isinstance(limit["minutes"], int) and limit["minutes"] > 0, where
    assert limit["clock"] in ("WORKING", "NATURAL"), where


def check(doc: dict) -> None:
    assert set(doc) == {"format", "units", "categories", "policies"}
    assert doc["format"] == FORMAT

    # Units: codes, parents before children, no duplicates.
    seen: dict[str, dict] = {}
    names_under: set[tuple[str | None, str]] = set()
    for u in doc["units"]:
        assert set(u) - {"boundary"} == {"code", "name", "kind", "parent_code"}, u
        assert ("boundary" in u) == (u["kind"] not in ("CITY", "DEPARTMENT")), u
        code, kind, parent = u["code"], u["kind"], u["parent_code"]
        assert kind in UNIT_KINDS, u
        assert code not in seen, f"duplicate unit code {code}"
        assert u["name"], u
        assert (parent, u["name"]) not in names_under, f"duplicate name under {parent}: {u}"
        names_under.add((parent, u["name"]))
        if parent is None:
            assert not seen and kind == "CITY", f"only the first unit (the city) has no parent: {u}"
        else:
            assert parent in seen, f"parent of {code} missing or listed later"
        if kind == "DEPARTMENT":
            m = DEPT_RE.match(code)
            assert m and m.group(1) == parent and seen[parent]["kind"] == "COUNTY", u
        else:
            length, parent_kind = HIERARCHY[kind]
            assert code.isdigit() and len(code) == length, u
            if parent_kind is not None:
                assert seen[parent]["kind"] == parent_kind and code.startswith(parent), u
                assert code[len(parent):] != "0" * (length - len(parent)), u
        seen[code] = u

    count = {k: sum(1 for u in doc["units"] if u["kind"] == k) for k in UNIT_KINDS}
    assert count["CITY"] == 1 and count["COUNTY"] >= 1
    assert count["TOWNSHIP"] >= MIN_TOWNSHIPS, count
    assert count["COMMUNITY"] >= MIN_COMMUNITIES, count
    assert count["GRID"] >= MIN_GRIDS, count
    assert count["DEPARTMENT"] >= MIN_DEPARTMENTS, count
    for t in (u for u in doc["units"] if u["kind"] == "TOWNSHIP"):
        k = sum(1 for u in doc["units"] if u["parent_code"] == t["code"])
        assert 4 <= k <= 6, f"{t['code']} has {k} communities"
    for c in (u for u in doc["units"] if u["kind"] == "COMMUNITY"):
        k = sum(1 for u in doc["units"] if u["parent_code"] == c["code"])
        assert 5 <= k <= 7, f"{c['code']} has {k} grids"
    # Boundaries: closed rings, and the test point in the first grid and no other.
    for u in doc["units"]:
        if "boundary" in u:
            ring = u["boundary"]["coordinates"][0]
            assert ring[0] == ring[-1] and len(ring) >= 5, u["code"]
    holders = [u["code"] for u in doc["units"]
               if u["kind"] == "GRID" and inside(TEST_POINT, u["boundary"]["coordinates"][0])]
    assert holders == [f"{COUNTY[0]}001001001"], holders

    # Categories.
    cats: dict[str, dict] = {}
    for c in doc["categories"]:
        assert set(c) == {"code", "name", "parent_code", "default_severity",
                          "accept_limit", "handle_limit"}, c
        code = c["code"]
        assert code not in cats, f"duplicate category {code}"
        assert code.isdigit() and len(code) in (2, 4), c
        if len(code) == 2:
            assert c["parent_code"] is None, c
        else:
            assert c["parent_code"] == code[:2] and code[2:] != "00", c
            assert c["parent_code"] in cats, f"parent of {code} missing or listed later"
        assert c["default_severity"] in SEVERITIES, c
        check_limit(c["accept_limit"], code)
        check_limit(c["handle_limit"], code)
        cats[code] = c
    tops = [c for c in cats if len(c) == 2]
    assert len(tops) == 8, tops
    for t in tops:
        k = sum(1 for c in cats if len(c) == 4 and c.startswith(t))
        assert 3 <= k <= 5, f"category {t} has {k} sub-categories"

    # Policies.
    counties = {code for code, u in seen.items() if u["kind"] == "COUNTY"}
    depts = {code for code, u in seen.items() if u["kind"] == "DEPARTMENT"}
    policy_counties = set()
    for p in doc["policies"]:
        assert set(p) == {"county_code", "severity_tiers", "category_tiers", "departments",
                          "sla", "calendar"}, set(p)
        county = p["county_code"]
        assert county in counties and county not in policy_counties, county
        policy_counties.add(county)

        assert set(p["severity_tiers"]) == set(SEVERITIES), p["severity_tiers"]
        assert all(t in TIERS for t in p["severity_tiers"].values())
        for cat, tier in p["category_tiers"].items():
            assert cat in cats and tier in TIERS, (cat, tier)

        rules: dict[str, dict] = {}
        for r in p["departments"]:
            assert set(r) == {"category", "lead", "assisting"}, r
            assert r["category"] in cats and r["category"] not in rules, r
            for d in [r["lead"], *r["assisting"]]:
                assert d in depts and d.startswith(county + "-"), f"unknown department {d}"
            assert r["lead"] not in r["assisting"], r
            assert len(set(r["assisting"])) == len(r["assisting"]), r
            rules[r["category"]] = r
        for c in cats:  # every category resolves: itself, else its top-level category
            assert c in rules or c[:2] in rules, f"no department for category {c}"
        assert all(t in rules for t in tops)

        keys = set()
        for r in p["sla"]:
            assert set(r) == {"tier", "category", "severity", "accept", "handle"}, r
            assert r["tier"] in TIERS, r
            assert r["category"] is None or r["category"] in cats, r
            assert r["severity"] is None or r["severity"] in SEVERITIES, r
            assert r["accept"] is not None or r["handle"] is not None, r
            for f in ("accept", "handle"):
                if r[f] is not None:
                    check_limit(r[f], f"sla {r}")
            key = (r["tier"], r["category"], r["severity"])
            assert key not in keys, f"duplicate sla rule {key}"
            keys.add(key)
            if r["category"] is None and r["severity"] is None:
                assert r["accept"] and r["handle"], f"tier default needs both limits: {r}"
        for t in TIERS:
            assert (t, None, None) in keys, f"no default SLA for tier {t}"

        cal = p["calendar"]
        assert set(cal) == {"utc_offset_minutes", "periods", "holidays", "makeup_workdays"}
        assert cal["utc_offset_minutes"] == 480
        prev_end, total = None, 0
        for per in cal["periods"]:
            s = dt.time.fromisoformat(per["start"])
            e = dt.time.fromisoformat(per["end"])
            assert s < e and (prev_end is None or prev_end <= s), per
            prev_end = e
            total += (e.hour * 60 + e.minute) - (s.hour * 60 + s.minute)
        assert total == DAY, f"working day is {total} minutes, expected {DAY}"
        hol = [dt.date.fromisoformat(d) for d in cal["holidays"]]
        mk = [dt.date.fromisoformat(d) for d in cal["makeup_workdays"]]
        assert hol == sorted(set(hol)) and mk == sorted(set(mk))
        assert not set(hol) & set(mk)
        assert all(d.weekday() >= 5 for d in mk), "a make-up working day must fall on a weekend"
        assert sum(1 for d in hol if d.weekday() < 5) > 0
