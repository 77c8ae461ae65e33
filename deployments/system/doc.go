// Package system builds one relay process from its configuration and
// runs it: the archive (ClickHouse, or the embedded one for trials), the
// spool, Redis (one server or Sentinel) or in-memory state, the pipeline,
// outbox, bot, directory and lexicon, the console hub, the WeChat
// gateway and the HTTP server (system.go, redis.go), and the workers
// that own every long-running goroutine (workers.go).
//
// Serve is the `serve` command; Start, Wait, Shutdown and Close are its
// steps, which the end-to-end tests (deployments/e2e) use too, so that a
// test relay starts and stops exactly as a served one does. In demo mode
// the WeChat simulator runs in-process (demosim.go).
//
// It lives under deployments/ because the top level of the repository is
// fixed: it is the code that puts the relay's packages together, as the
// files beside it put the processes together.
package system
