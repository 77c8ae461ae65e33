// Package e2e holds the end-to-end tests of wechat-relay and nothing
// else: signed WeChat callbacks into whole relays on the real ClickHouse
// and Redis, employees on real WebSockets and in a real browser
// (chromium), two relays behind the shipped nginx, the commands (verify,
// export, retention-report, serve) run on what those relays archived,
// and the Go benchmark of the callback path.
//
// Every test relay is started the way `serve` starts one
// (deployments/system Start, with every worker and the HTTP server) and
// stopped the way it stops (Shutdown, Close); TestMain (main_test.go)
// runs the one WeChat simulator they all call, because silenceper's API
// base URL is process-wide.
package e2e
