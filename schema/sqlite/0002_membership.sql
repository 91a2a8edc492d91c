-- temper's SQLite schema, version 2: the membership table.
--
-- Each node heartbeats one row per role; expires_at_ms is the writer's clock plus the
-- row's ttl, and readers skip expired rows (Cassandra expires them with a TTL). Expired
-- rows are deleted by the next heartbeat.

CREATE TABLE cluster_membership (
    role              TEXT    NOT NULL,
    host_id           TEXT    NOT NULL,
    rpc_address       TEXT    NOT NULL,
    session_start_ms  INTEGER NOT NULL,
    last_heartbeat_ms INTEGER NOT NULL,
    expires_at_ms     INTEGER NOT NULL,
    PRIMARY KEY (role, host_id)
) WITHOUT ROWID;
