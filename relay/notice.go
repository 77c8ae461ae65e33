package relay

import (
	"context"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// The compliance notice ("this conversation is recorded") must reach
// every client before, or with, the first reply the client gets. Whether
// a conversation has had it is read from the archive, not inferred from
// one bus event: the notice is an ordinary outbound message with a
// deterministic id, OutboundID(conv, NoticeKey), so the archive answers
// for every relay instance, after restarts, and for conversations that
// began before the notice was decided this way.
//
// Bot.EnsureNotice is the one entry point. The bot calls it for every
// inbound interaction it sees on the bus; the outbox calls it before
// each reply, so that a lost bus event, a conversation that began with
// a location report or a staff note, or a client who followed before
// the relay sent notices at all still gets the notice before the first
// reply.

// NoticeKey is the idempotency key of the compliance notice: conversation
// conv's notice is archived as OutboundID(conv, NoticeKey). Should WeChat
// refuse or lose it, it is sent again under NoticeKey-2, NoticeKey-3.
const NoticeKey = "bot-notice"

// noticeAttempts bounds the notices sent to one conversation: a notice
// that WeChat refused (failed), the relay refused, or whose outcome is
// unknown is sent again under the next key, up to this many in all.
const noticeAttempts = 3

// noticeRecheck is how long a conversation whose notice is on its way
// (archived or spooled, not yet known to be sent) is not looked up again.
const noticeRecheck = 30 * time.Second

// noticeCacheMax bounds the conversations whose notice state is kept in
// memory; the cache starts afresh beyond it (the archive still answers).
const noticeCacheMax = 100_000

// noticeKey is the key of the n-th notice attempt, from 1.
func noticeKey(n int) string {
	if n == 1 {
		return NoticeKey
	}
	return NoticeKey + "-" + strconv.Itoa(n)
}

// NoticeStore is the part of the archive the notice is decided from.
// Both archives (storage/archive, storage/embedded) implement it.
type NoticeStore interface {
	// ArchivedIDs reports which of ids are archived as messages of conv,
	// with their sequence, whenever they were accepted (unlike
	// Archive.Existing, which may look only near a given time).
	ArchivedIDs(ctx context.Context, conv ConversationID, ids []string) (map[string]uint64, error)
	// LatestEvents is EventLog.LatestEvents.
	LatestEvents(ctx context.Context, messageIDs []string) (map[string]DeliveryEvent, error)
}

// noticeMark is what this process knows of a conversation's notice.
type noticeMark struct {
	settled bool      // sent (or given up on): never looked up again
	until   time.Time // on its way: not looked up again before then
}

// noticeSending marks the context of the notice's own send, so that an
// EnsureNotice the sender makes for it returns at once.
type noticeSending struct{}

// EnsureNotice makes sure the compliance notice of conv has been sent, or
// is archived and on its way, and sends it (through the outbox: policy,
// archive, WeChat) if not. It returns nil once the notice is, or is
// about to be, ahead of anything sent to conv afterwards; an error
// (a *PolicyError when WeChat's window or quota forbids sending, or
// the archive's) when it is not.
//
// It is safe for concurrent use, idempotent, and cheap after the first
// time: once the archive shows the notice sent, the fact is kept in
// memory and no query is made. Every relay instance may call it for the
// same conversation; the notice's fixed key lets one message leave.
//
// A sender that calls EnsureNotice from Send (the outbox, before each
// reply) is not asked again for the notice itself: its context carries a
// mark and EnsureNotice returns nil at once. Such a caller must not hold
// a lock the notice's own Send takes (the outbox's conversation lock).
//
// With the bot disabled, it does nothing.
func (b *Bot) EnsureNotice(ctx context.Context, conv ConversationID) error {
	if b.cfg.Disabled || ctx.Value(noticeSending{}) != nil {
		return nil
	}
	if b.noticeKnown(conv) {
		return nil
	}
	lock := &b.noticeLocks[convHash(conv)%uint32(len(b.noticeLocks))]
	lock.Lock()
	defer lock.Unlock()
	if b.noticeKnown(conv) {
		return nil
	}
	attempt, err := b.noticeDue(ctx, conv)
	if err != nil || attempt == 0 {
		return err
	}
	account, _ := conv.Split()
	sctx := context.WithValue(ctx, noticeSending{}, conv)
	res, err := b.out.Send(sctx, SendRequest{Key: noticeKey(attempt), Conv: conv, Kind: KindText, Text: b.texts(account).ComplianceNotice})
	if err != nil {
		return fmt.Errorf("sending the compliance notice to %s: %w", conv, err)
	}
	b.log.Info("compliance notice sent", "conv", conv, "msg_id", res.MessageID, "attempt", attempt, "duplicate", res.Duplicate)
	if b.notices == nil {
		// Nothing to confirm it from: the sender's idempotency is all
		// there is.
		b.markNotice(conv, noticeMark{settled: true})
		return nil
	}
	b.markNotice(conv, noticeMark{until: b.now().Add(noticeRecheck)})
	return nil
}

// noticeDue reads the archive and returns the attempt to send now (1 to
// noticeAttempts), or 0 when none is due: the notice is sent, on its way,
// or was given up on. It records what it learns in the cache.
func (b *Bot) noticeDue(ctx context.Context, conv ConversationID) (int, error) {
	if b.notices == nil {
		return 1, nil
	}
	ids := make([]string, noticeAttempts)
	for i := range ids {
		ids[i] = OutboundID(conv, noticeKey(i+1))
	}
	archived, err := b.notices.ArchivedIDs(ctx, conv, ids)
	if err != nil {
		return 0, fmt.Errorf("looking up the compliance notice of %s: %w", conv, err)
	}
	if len(archived) == 0 {
		return 1, nil
	}
	latest, err := b.notices.LatestEvents(ctx, ids)
	if err != nil {
		return 0, fmt.Errorf("looking up the delivery of the compliance notice of %s: %w", conv, err)
	}
	for i, id := range ids {
		_, isArchived := archived[id]
		ev, hasEvent := latest[id]
		switch {
		case !isArchived && !hasEvent:
			// The first unused key. (An attempt still in some spool is
			// not archived yet: sending its key again is a duplicate the
			// outbox answers without a second message.)
			return i + 1, nil
		case !hasEvent, !ev.State.Final():
			// Archived, about to be sent or being sent.
			b.markNotice(conv, noticeMark{until: b.now().Add(noticeRecheck)})
			return 0, nil
		case ev.State == DeliverySent:
			b.markNotice(conv, noticeMark{settled: true})
			return 0, nil
		}
		// Failed, refused or unknown: not known to have reached the
		// client. A second notice is harmless, a missing one is not.
	}
	b.log.Warn("compliance notice not delivered after every attempt; not sent again", "conv", conv, "attempts", noticeAttempts)
	b.markNotice(conv, noticeMark{settled: true})
	return 0, nil
}

func (b *Bot) noticeKnown(conv ConversationID) bool {
	b.noticeMu.Lock()
	defer b.noticeMu.Unlock()
	m, ok := b.noticed[conv]
	return ok && (m.settled || b.now().Before(m.until))
}

func (b *Bot) markNotice(conv ConversationID, m noticeMark) {
	b.noticeMu.Lock()
	defer b.noticeMu.Unlock()
	if _, ok := b.noticed[conv]; !ok && len(b.noticed) >= noticeCacheMax {
		clear(b.noticed)
	}
	b.noticed[conv] = m
}

// checkNoticeText refuses, at start, a notice that could never be sent:
// every reply to the account would wait for it.
func checkNoticeText(s string) error {
	if len(s) > maxTextBytes || !utf8.ValidString(s) {
		return fmt.Errorf("must be valid UTF-8 of at most %d bytes", maxTextBytes)
	}
	return nil
}
