-- Covering indexes for `GET /v1/requests/stats` (DESIGN §6.10, shared::request_log::stats):
-- the statement reads only occurred_at, service, status_code and duration_ms, so with these
-- two every bucket is an index-only range scan (no heap page is read, however large the
-- bodies stored beside the record are): one for the whole log, one for a service's records.
-- The endpoint filter has no index of its own: it is applied to the rows of the time range.
--
-- CREATE INDEX on the partitioned table builds the index on every partition and attaches it;
-- partitions created later (request_log_create_partition, 0001) get it by the same rule.
-- migrate applies all pending files in one transaction, so CONCURRENTLY is not possible: the
-- build holds a SHARE lock on request_log until the deploy commits, which makes ingest wait
-- (reads go on) for as long as the build of the retained partitions takes, and the lock wait
-- before it is bounded by migrate's lock_timeout (shared::migrations::LOCK_TIMEOUT).
--
-- Cost on ingest: two more B-tree entries per record; the first is appended at the right
-- edge (records arrive in time order), the second lands beside request_log_service's entry.
CREATE INDEX request_log_stats ON request_log (occurred_at) INCLUDE (status_code, duration_ms);
CREATE INDEX request_log_service_stats ON request_log (service, occurred_at) INCLUDE (status_code, duration_ms);
