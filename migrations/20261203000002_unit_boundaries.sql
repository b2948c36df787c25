-- Where a point falls (ADR 0032): each region unit may carry its boundary, a GeoJSON Polygon or
-- MultiPolygon checked by gridd before it is written. `boundary_rev` takes a new number from
-- one sequence whenever a boundary is set, changed or removed, so a process holding the grids'
-- index knows it is stale by reading one indexed maximum.

CREATE SEQUENCE unit_boundary_rev;

ALTER TABLE units
    ADD COLUMN boundary     jsonb,
    ADD COLUMN boundary_rev bigint;

CREATE INDEX units_boundary_rev ON units (boundary_rev) WHERE boundary_rev IS NOT NULL;
