// Package bus implements relay.Bus, the fan-out of archived events to
// every relay instance's console: RedisBus over Redis pub/sub for
// production and the tests, MemoryBus for the embedded single-process
// mode. Both have the same semantics.
//
// # Delivery
//
// The bus is best effort, at most once. Everything on it is already in
// the archive, so a console that misses events catches up from the
// archive by sequence number (relay.Archive.Since); the bus never waits
// for a slow or absent consumer.
//
//   - Subscribe returns only once the subscription is in place (for Redis,
//     once Redis has confirmed it), so every event published after
//     Subscribe returns reaches that subscription, barring the losses
//     below.
//   - Events published by one caller, one Publish after the other, arrive
//     in that order at every subscription. Concurrent publishers are not
//     ordered relative to each other.
//   - Each subscription has a bounded buffer (Options.Buffer). When it is
//     full, new events for that subscription are dropped, counted in
//     Dropped and logged once per episode (when dropping starts, and with
//     the count when the subscriber catches up), never blocking the
//     publisher or the Redis reader. Events are never dropped silently.
//   - RedisBus: pub/sub keeps nothing for a disconnected subscriber.
//     go-redis reconnects and resubscribes by itself (it also pings an
//     idle connection every few seconds to notice a dead one); events
//     published while the subscription was down are lost to it. Its
//     channel stays open through an outage and is closed only when the
//     ctx given to Subscribe ends.
//   - A Publish that returns an error may still have been delivered: the
//     command can reach Redis before the deadline expires (seen with a
//     hung Redis that resumes). A caller that retries can therefore
//     deliver an event twice; consumers must ignore an event whose
//     message sequence they already have.
//
// Each subscription is served by one goroutine that ends, and closes the
// returned channel, when the ctx given to Subscribe is done. A RedisBus
// subscription also holds a Redis connection of its own (plus go-redis'
// reader and health-check goroutines): subscribe once per process and
// fan out locally, as the console hub does, rather than once per socket.
//
// # Encoding
//
// RedisBus sends each relay.Event as JSON on one channel,
// <prefix>bus. relay.Message round-trips: Raw travels as base64, Attrs as
// an object; times come back equal (time.Time.Equal) but without their
// monotonic reading and possibly in another *time.Location. Strings
// must be valid UTF-8 (JSON replaces invalid bytes with U+FFFD); the
// relay sanitises Text for that reason and keeps exact bytes in Raw.
// relay.Message has no json tags, so its fields travel under their Go
// names: renaming a field changes the wire format between instances of
// different versions. MemoryBus
// hands every subscription its own copy of the message (Attrs and Raw
// included), as a decoded copy from Redis would be, so a consumer may
// keep or modify what it receives.
//
// # Redis outages
//
// Publish and Subscribe pass their ctx to go-redis, which binds ctx
// deadlines to socket I/O only when the client has
// Options.ContextTimeoutEnabled; the wiring should set it, with short
// dial/read/write timeouts, so Publish fails within its deadline when
// Redis is down (see TestRedisDown). Subscribe also bounds its wait for
// the confirmation by SubscribeTimeout.
package bus
