-- Reserved: 0003 belongs to the connections branch (tags, client-credentials connections),
-- which is merged separately; this stand-in only keeps the numbering gap-free on the presets
-- branch and is replaced by that branch's 0003 at merge.
SELECT 1;
