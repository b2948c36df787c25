-- What a photo says of itself (ADR 0035): when and where its EXIF says it was taken, kept as
-- evidence beside the report's own time and point. Empty when the file carries neither.

ALTER TABLE media
    ADD COLUMN taken_at  timestamptz,
    ADD COLUMN taken_lat double precision CHECK (taken_lat BETWEEN -90 AND 90),
    ADD COLUMN taken_lon double precision CHECK (taken_lon BETWEEN -180 AND 180),
    ADD CONSTRAINT media_taken_point CHECK ((taken_lat IS NULL) = (taken_lon IS NULL));
