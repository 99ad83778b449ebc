-- Request-log dedup per writer (DESIGN §6.7): `(writer, service, request_id)` is unique, where
-- writer is the API key that sent the record (`sqs` for the queue, `keyledger` for its own
-- requests), so that no writer can claim another's request id first and make its record vanish.
--
-- Records and keys stored before this migration have no known writer: they get 'unknown'. A
-- writer re-delivering such a record after the upgrade stores it once more (at most one
-- duplicate per record, only across the upgrade), which is the safe side of the trade.
-- ADD COLUMN with a constant default is a catalogue change only (no table rewrite, also on the
-- partitions). The default stays: functions of the previous release, still running while a
-- deploy rolls over, insert without a writer, and their rows must not fail.
ALTER TABLE request_log ADD COLUMN writer text NOT NULL DEFAULT 'unknown';

-- The keys table is not partitioned, so its unique key needs no partition column: it stays the
-- one place that settles dedup across monthly partitions (see 0001).
ALTER TABLE request_log_keys ADD COLUMN writer text NOT NULL DEFAULT 'unknown';
ALTER TABLE request_log_keys DROP CONSTRAINT request_log_keys_pkey;
ALTER TABLE request_log_keys ADD PRIMARY KEY (writer, service, request_id);
