-- 0005: the directory — every version of every employee, team and account
-- entry that admins changed at run time (relay/directory.go,
-- relay.DirectoryStore).
--
-- Append-only like the rest: a change is a new row (a new version of its
-- entry), never an update, so the archive keeps who held which role and
-- which rights at any time. Plain MergeTree, not Replacing: a record
-- written twice (a retried insert) stays as two identical copies, which
-- the reader collapses; two different records of one version (two
-- instances changing an entry at once) both stay, and the relay picks the
-- same one everywhere. No partitions: the directory is small and its
-- history is kept whole, so retention, which drops monthly partitions of
-- the message tables, has nothing to drop here. Times are epoch
-- milliseconds (UTC).
CREATE TABLE IF NOT EXISTS directory (
    kind    String,
    id      String,
    version UInt64,
    at_ms   UInt64,
    by      String,
    deleted UInt8,
    data    String
) ENGINE = MergeTree()
ORDER BY (kind, id, version);
