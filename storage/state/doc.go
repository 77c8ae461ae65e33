// Package state holds the small pieces of shared, hot state the relay
// needs between instances: retry dedupe (relay.Dedupe), per-conversation
// sequence counters (relay.Sequencer), conversation assignments
// (relay.Assignments) and the WeChat access-token cache used by
// silenceper/wechat (its cache.Cache and cache.ContextCache interfaces).
//
// Each has two implementations behind the same contract:
//
//   - Redis (RedisDedupe, RedisSequencer, RedisAssignments,
//     RedisTokenCache), used in production and in the tests. Every key
//     lives under a configurable prefix (DefaultPrefix when empty), so
//     several deployments or test runs can share one Redis. Each
//     operation touches a single key, so a Redis Cluster works too.
//   - Memory (MemoryDedupe, ...), for the embedded first-run mode where
//     one process is the whole deployment. They are safe for concurrent
//     use and keep no goroutines: expired entries are swept lazily.
//
// # Keys
//
//	<prefix>dedupe:<key>   "held:<owner>" for the lease, then "done" for the TTL (Dedupe)
//	<prefix>seq:<conv>     integer, no TTL             (Sequencer)
//	<prefix>seqids:{<prefix>seq:<conv>}  hash id -> "<number> <writer>", numbered and not yet released; 24h TTL (Sequencer)
//	<prefix>seqdone:{<prefix>seq:<conv>} sorted set id -> until (Unix ms), released in the last relay.ArchivedGrace (Sequencer)
//	<prefix>line:{<conv>}  sorted set ticket -> message id, 24h TTL; <prefix>line:{<conv>}:who, hash message id -> "<ms> <process>" (its owner); <prefix>line:{<conv>}:n, the last ticket (AcceptOrder)
//	<prefix>line-epoch     random id, no TTL: changes when Redis loses its data (AcceptOrder)
//	<prefix>line-alive     hash writer -> alive until (Unix ms), no TTL (AcceptOrder)
//	<prefix>assign         hash conv -> employee        (Assignments)
//	<prefix>token:<key>    string with a TTL           (token cache)
//
// # Invariants
//
// Sequence counters never go backwards: Seed only creates a missing
// counter (SET NX) and Number only increments an existing one (a Lua script
// checks EXISTS and INCRs atomically), so a counter Redis has forgotten
// surfaces as relay.ErrUnseeded instead of silently restarting at 1. The
// caller then seeds from the archive's highest sequence. This relies on
// Redis not losing acknowledged writes while keeping the key: a failover
// to a replica that missed the last INCRs would hand out a number twice,
// and the archive's key is what catches that.
//
// # Timeouts and Redis outages
//
// Every call passes its ctx to go-redis. go-redis binds a ctx deadline to
// socket reads and writes only when the client was built with
// Options.ContextTimeoutEnabled = true; otherwise each attempt is bounded
// by DialTimeout/ReadTimeout/WriteTimeout (5 s by default) and repeated up
// to MaxRetries times. The wiring should therefore enable
// ContextTimeoutEnabled and keep those timeouts short, so that when Redis
// is down the relay's calls fail within their deadline instead of
// stalling the pipeline. Errors are returned wrapped with what was being
// done; the code here never retries on its own.
//
// What that looks like (TestRedisDown, with ContextTimeoutEnabled): with
// Redis killed, go-redis redials until the deadline, so calls fail at
// their deadline with "context deadline exceeded"; with Redis hung, the
// read times out at the deadline. Once Redis is back, the pool may keep
// failing fast for about a second until its background redial succeeds.
// A restarted Redis without persistence has forgotten every key: claims
// start afresh, assignments are empty and Next returns
// relay.ErrUnseeded until the caller reseeds.
//
// The token cache interface has no ctx and no error on reads: its Redis
// version bounds every call with its own timeout and, on a Redis error,
// logs it and reports a miss, so silenceper falls back to fetching a
// token (stable_token is safe to fetch from several instances).
package state
