-- Placeholder on the `connections` branch only, so that 0005 builds (numbers may not have
-- gaps). Another branch owns version 3; at merge its file replaces this one.
SELECT 1;
