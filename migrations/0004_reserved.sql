-- Placeholder on the `connections` branch only, so that 0005 builds (numbers may not have
-- gaps). The presets branch owns version 4 (client `grants`, presets); at merge its file
-- replaces this one.
SELECT 1;
