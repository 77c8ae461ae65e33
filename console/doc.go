// Package console serves the people side of the relay: the HTTP API
// (docs/console-api.md), the WebSocket through which employees and
// supervisors receive archived messages live, and the embedded web app.
//
// Sign-in: browsers sign in with an employee id and password (bcrypt
// hashes from the configuration) and get a session cookie; sessions,
// the lockout after repeated failures and read marks live in a store
// shared by every relay instance (storage/state). API clients keep using
// bearer tokens. Requests of a session that change something carry its
// CSRF token. IdentityProvider is the seam for single sign-on.
//
// Shape: a Server (server.go) owns the console's dependencies (Deps)
// and serves all of /api/ (routes.go); its Hub (hub.go) is the live side:
// the WebSocket connections, the bus events handed to them, resume and
// their shutdown. The Server authenticates an upgrade and hands it to
// the Hub. Both ask the same access (access.go) who may see what.
//
// Goroutine model: one Hub per process runs the bus subscription and
// hands each event to the connections allowed to see it; every
// WebSocket connection has exactly one reader and one writer goroutine
// and a bounded send queue. A connection whose queue is full is
// disconnected ("slow consumer") rather than allowed to slow the others;
// it reconnects and catches up from the archive by sequence number.
// HTTP handlers run on the server's goroutines and start none of their
// own beyond a bounded fan-out of look-ups for the inbox and the export
// jobs (export.go). The Server's context is the parent of the Hub's
// (and so of every connection's) and of every export job's; Shutdown
// cancels them.
//
// Invariants: only archived messages are sent (the bus carries nothing
// else, and catch-up reads the archive); an employee receives and reads
// only the conversations assigned to them, supervisors all of them, over
// REST and the WebSocket alike; only the assignee sends to the client;
// staff actions (notes, transfers, resolve, reopen) are archived as
// internal messages that never reach WeChat; every request is
// authenticated before the WebSocket upgrade, and the Origin of an
// upgrade must be allowed; every view of a conversation by a supervisor
// is written to the audit trail before it is answered; message bodies
// are never logged.
package console
