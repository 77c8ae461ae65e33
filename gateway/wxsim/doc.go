// Package wxsim is a local stand-in for WeChat's Official Account platform:
// the API the relay calls (api.weixin.qq.com's /cgi-bin/ paths) and the
// callbacks WeChat sends to the relay, reproduced closely enough that the
// relay cannot tell the difference except by URL.
//
// Nobody can reach WeChat from a test machine, so everything the relay must
// get right about WeChat is exercised against this package: token rotation
// and quotas, the 48-hour customer-service window and its per-interaction
// send cap, temporary media that vanishes after three days, parametric QR
// codes, signed and AES-encrypted callbacks, and WeChat's habit of retrying
// a callback that is not answered within five seconds.
//
// # Shape
//
// A Sim holds the platform's state: accounts, simulated clients (openids),
// followers, tokens, media, QR tickets and, per client, a log of every
// message that went either way (what a phone would show). NewServer wraps a
// Sim in an http.Handler that serves the WeChat API under /cgi-bin/, a
// small JSON admin API under /sim/api/ for tests and tools, and the phone
// page under /phone/: a WeChat-like web page (embedded from web/, served
// by console/webassets, the one package of this module wxsim imports)
// where a person plays a simulated client through the admin API.
//
// Simulated clients (Client) subscribe, scan QR codes, send every message
// type and click menus; each action is POSTed to the account's CallbackURL,
// signed and, in compatible or safe mode, encrypted exactly as WeChat does.
//
// # Rules and time
//
// Every time-based rule reads the Clock in Config, never time.Now, so tests
// use a ManualClock to step over 48 hours or three days. Network timing
// (callback timeouts, injected latency) uses real time.
//
// # Goroutines and locks
//
// A Sim owns the goroutines it starts (the asynchronous
// TEMPLATESENDJOBFINISH deliveries); Close stops and waits for them, and
// releases requests hung by a fault. All state is guarded by one mutex,
// Sim.mu, which is never held during network I/O or while sleeping; the
// only lock taken under it is a ManualClock's, a leaf. Callbacks are
// delivered on the caller's goroutine; Server.Serve owns its http.Server
// and returns only once it has shut down.
//
// # Faithfulness
//
// Error codes and messages follow WeChat's public documentation; error
// messages carry a " rid: …" suffix like the real ones, so callers must
// compare errcode, never errmsg. Where the documentation is silent the
// choice made is noted at the rule (see Config). wxsim imports only
// github.com/silenceper/wechat/v2/util for the signing and AES primitives,
// never the root package (its init() turns on debug logging).
package wxsim
