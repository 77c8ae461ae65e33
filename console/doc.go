// Package console serves the people side of the relay: the HTTP API and
// the WebSocket through which employees and supervisors receive archived
// messages live.
//
// Goroutine model: one Hub per process runs the bus subscription and
// hands each event to the connections allowed to see it; every
// WebSocket connection has exactly one reader and one writer goroutine
// and a bounded send queue. A connection whose queue is full is
// disconnected ("slow consumer") rather than allowed to slow the others;
// it reconnects and catches up from the archive by sequence number.
//
// Invariants: only archived messages are sent (the bus carries nothing
// else, and catch-up reads the archive); an employee receives only the
// conversations assigned to them, supervisors all of them; every
// request is authenticated before the WebSocket upgrade, and the Origin
// of an upgrade must be allowed.
package console
