-- Repeated reports (ADR 0044): every case keeps the geohash cell of its point (7 characters,
-- about 150 m), so that the open cases near a new report are found by an index probe per
-- neighbouring cell. The server computes the cell for new cases; this function, which gives
-- the same answer (a test compares them), fills in the cases written before.
CREATE FUNCTION gd_geohash(lat double precision, lon double precision, len integer)
RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    base32 constant text := '0123456789bcdefghjkmnpqrstuvwxyz';
    lon_bits integer := (5 * len + 1) / 2;
    lat_bits integer := (5 * len) / 2;
    x bigint := LEAST(floor((lon / 360.0 + 0.5) * (2::numeric ^ lon_bits)), 2::numeric ^ lon_bits - 1);
    y bigint := LEAST(floor((lat / 180.0 + 0.5) * (2::numeric ^ lat_bits)), 2::numeric ^ lat_bits - 1);
    out text := '';
    ch integer := 0;
    b integer;
    bit integer;
BEGIN
    FOR b IN 0 .. 5 * len - 1 LOOP
        IF b % 2 = 0 THEN
            bit := ((x >> (lon_bits - 1 - b / 2)) & 1)::integer;
        ELSE
            bit := ((y >> (lat_bits - 1 - b / 2)) & 1)::integer;
        END IF;
        ch := ch * 2 + bit;
        IF b % 5 = 4 THEN
            out := out || substr(base32, ch + 1, 1);
            ch := 0;
        END IF;
    END LOOP;
    RETURN out;
END
$$;

ALTER TABLE cases ADD COLUMN spot text COLLATE "C";
UPDATE cases SET spot = gd_geohash(lat, lon, 7);
-- the search: the cells around a point, one category, reported since a time; the columns never
-- change after the insert, so the index costs a case's later updates nothing
CREATE INDEX cases_spot ON cases (spot, category, reported_at) WHERE spot IS NOT NULL;
