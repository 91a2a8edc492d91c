-- temper's SQLite schema, version 6: Nexus endpoints.
--
-- Cluster-wide, unique by id and by name; `version` is the compare-and-set token every
-- update bumps (UpdateNexusEndpoint's version). `data` is the endpoint's spec, opaque here.

CREATE TABLE nexus_endpoints (
    id      TEXT    NOT NULL PRIMARY KEY,
    name    TEXT    NOT NULL UNIQUE,
    version INTEGER NOT NULL,
    data    BLOB    NOT NULL
);
