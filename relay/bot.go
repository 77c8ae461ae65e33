package relay

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// BotTexts are the relay's own messages to clients of one account.
// Empty fields take the defaults of the account's language.
type BotTexts struct {
	// ComplianceNotice is sent before anything else reaches a client:
	// regulated firms must tell clients the conversation is recorded.
	// Whether a client has had it is read from the archive (notice.go).
	ComplianceNotice string `yaml:"compliance_notice"`
	// Welcome is sent when a client follows the account.
	Welcome string `yaml:"welcome"`
	// OutOfHours answers messages outside business hours; {open} and
	// {close} are replaced by the hours.
	OutOfHours string `yaml:"out_of_hours"`
	// Unassigned answers when no employee serves the client yet.
	Unassigned string `yaml:"unassigned"`
}

// BotAccount configures the bot for one account.
type BotAccount struct {
	// Language of the default texts: "zh" (default) or "en".
	Language string   `yaml:"language"`
	Texts    BotTexts `yaml:"texts"`
}

// BotConfig configures the relay's own messages.
type BotConfig struct {
	// Disabled turns every bot message off.
	Disabled bool `yaml:"disabled"`
	// Timezone of the business hours (Asia/Shanghai).
	Timezone string `yaml:"timezone"`
	// Days are the business days, 0 = Sunday (1-5: Monday to Friday).
	Days []int `yaml:"days"`
	// Open and Close bound the business hours, "15:04" ("09:00", "18:00").
	// Open equal to Close means always open.
	Open  string `yaml:"open"`
	Close string `yaml:"close"`
	// Accounts holds per-account texts, by account id.
	Accounts map[string]BotAccount `yaml:"accounts"`
}

var defaultTexts = map[string]BotTexts{
	"zh": {
		ComplianceNotice: "温馨提示：根据监管要求，本对话内容将被完整记录并存档。",
		Welcome:          "感谢关注！请直接留言，您的专属顾问会尽快回复您。",
		OutOfHours:       "您好，现在是非工作时间（工作日 {open}–{close}）。我们已收到您的消息，将在工作时间尽快回复。",
		Unassigned:       "您好，我们已收到您的消息，正在为您安排专属顾问，请稍候。",
	},
	"en": {
		ComplianceNotice: "Please note: as regulations require, this conversation is recorded and archived.",
		Welcome:          "Thank you for following us! Leave a message and your adviser will answer shortly.",
		OutOfHours:       "Hello, we are outside business hours (weekdays {open}–{close}). We have your message and will answer as soon as we are open.",
		Unassigned:       "Hello, we have your message and are finding the right adviser for you. Please wait a moment.",
	},
}

// BotSender is what the bot needs to send: the Outbox.
type BotSender interface {
	Send(ctx context.Context, req SendRequest) (SendResult, error)
}

// Bot sends the relay's own messages in reaction to archived inbound
// messages: the compliance notice (EnsureNotice, decided from the
// archive), a welcome on subscribe, an out-of-hours reply, and a reply
// while nobody is assigned. Each is an ordinary outbound message —
// archived first, subject to WeChat's window and quota — keyed by the
// conversation or the message it answers, so every relay instance may
// react to the same event and only one message leaves.
type Bot struct {
	cfg  BotConfig
	loc  *time.Location
	open time.Duration
	shut time.Duration
	out  BotSender
	log  *slog.Logger
	now  func() time.Time

	// notices is where the notice is looked up; nil: nowhere, the
	// sender's idempotency alone keeps it single.
	notices     NoticeStore
	noticeMu    sync.Mutex
	noticed     map[ConversationID]noticeMark
	noticeLocks [64]sync.Mutex

	// sub is Run's bus subscription, once Run started.
	sub atomic.Pointer[Subscriber]
}

// NewBot checks cfg and returns a bot that sends through out and decides
// the compliance notice from notices (the archive); without notices it
// relies on the sender's idempotency alone.
func NewBot(cfg BotConfig, out BotSender, notices NoticeStore, log *slog.Logger) (*Bot, error) {
	if cfg.Timezone == "" {
		cfg.Timezone = "Asia/Shanghai"
	}
	if cfg.Days == nil {
		cfg.Days = []int{1, 2, 3, 4, 5}
	}
	if cfg.Open == "" && cfg.Close == "" {
		cfg.Open, cfg.Close = "09:00", "18:00"
	}
	loc, err := time.LoadLocation(cfg.Timezone)
	if err != nil {
		return nil, fmt.Errorf("bot.timezone %q: %w", cfg.Timezone, err)
	}
	open, err := clock(cfg.Open)
	if err != nil {
		return nil, fmt.Errorf("bot.open: %w", err)
	}
	shut, err := clock(cfg.Close)
	if err != nil {
		return nil, fmt.Errorf("bot.close: %w", err)
	}
	for id, a := range cfg.Accounts {
		if _, ok := defaultTexts[a.lang()]; !ok {
			return nil, fmt.Errorf("bot.accounts.%s.language %q is not zh or en", id, a.Language)
		}
		if err := checkNoticeText(a.Texts.ComplianceNotice); err != nil {
			return nil, fmt.Errorf("bot.accounts.%s.texts.compliance_notice: %w", id, err)
		}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Bot{cfg: cfg, loc: loc, open: open, shut: shut, out: out, log: log, now: time.Now,
		notices: notices, noticed: map[ConversationID]noticeMark{}}
	if b.notices == nil && !cfg.Disabled {
		log.Warn("bot: the archive cannot be asked whether a client had the compliance notice; relying on the sender's idempotency")
	}
	return b, nil
}

func (a BotAccount) lang() string {
	if a.Language == "" {
		return "zh"
	}
	return a.Language
}

func clock(s string) (time.Duration, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}

// Run reacts to the archived messages that arrive on the bus until ctx
// is done, subscribing again with backoff whenever the subscription
// fails (what it missed meanwhile is caught up by EnsureNotice).
func (b *Bot) Run(ctx context.Context, bus Bus) error {
	if b.cfg.Disabled {
		<-ctx.Done()
		return nil
	}
	sub := &Subscriber{Name: "bot", Bus: bus, Log: b.log}
	b.sub.Store(sub)
	return sub.Run(ctx, func(e Event) {
		if e.Type == EventMessage && e.Message != nil {
			b.React(ctx, *e.Message)
		}
	})
}

// Subscribed returns nil while the bot's bus subscription is up, or the
// bot is disabled (a readiness check).
func (b *Bot) Subscribed() error {
	if b.cfg.Disabled {
		return nil
	}
	if sub := b.sub.Load(); sub != nil {
		return sub.Check()
	}
	return errNotSubscribed
}

// React sends what m calls for, if anything. Every interaction of the
// client checks the compliance notice (cheap once it is known sent), so
// that neither what the conversation began with nor a bus event lost
// decides it; the other replies follow it, or wait for the next
// interaction when it cannot be sent.
func (b *Bot) React(ctx context.Context, m Message) {
	if b.cfg.Disabled || m.Direction != Inbound || !m.IsInteraction() {
		return
	}
	if err := b.EnsureNotice(ctx, m.Conv); err != nil {
		b.log.Warn("compliance notice not sent; no other bot message before it", "conv", m.Conv, "msg_id", m.ID, "err", err)
		return
	}
	texts := b.texts(m.Account)
	type reply struct{ why, key, text string }
	var replies []reply
	if m.Kind == KindEvent && m.Event == "subscribe" {
		replies = append(replies, reply{"welcome", "welcome", texts.Welcome})
	}
	if m.Kind != KindEvent {
		day := m.AcceptedAt.In(b.loc).Format("20060102")
		switch {
		case !b.businessHours(m.AcceptedAt):
			replies = append(replies, reply{"out of hours", "ooh-" + day, strings.NewReplacer("{open}", b.cfg.Open, "{close}", b.cfg.Close).Replace(texts.OutOfHours)})
		case m.Employee == "":
			replies = append(replies, reply{"unassigned", "unassigned-" + day, texts.Unassigned})
		}
	}
	for _, r := range replies {
		if r.text == "" {
			continue
		}
		// Keyed by the conversation (daily replies) or the message
		// (welcome), so repeats and other instances are no-ops.
		key := "bot-" + r.key
		if r.key == "welcome" {
			key += "-" + keySafe(m.ID)
		}
		_, err := b.out.Send(ctx, SendRequest{Key: key, Conv: m.Conv, Kind: KindText, Text: r.text})
		if err != nil {
			b.log.Info("bot message not sent", "why", r.why, "conv", m.Conv, "err", err)
		}
	}
}

func (b *Bot) texts(account string) BotTexts {
	a := b.cfg.Accounts[account]
	t, def := a.Texts, defaultTexts[a.lang()]
	if t.ComplianceNotice == "" {
		t.ComplianceNotice = def.ComplianceNotice
	}
	if t.Welcome == "" {
		t.Welcome = def.Welcome
	}
	if t.OutOfHours == "" {
		t.OutOfHours = def.OutOfHours
	}
	if t.Unassigned == "" {
		t.Unassigned = def.Unassigned
	}
	return t
}

func (b *Bot) businessHours(at time.Time) bool {
	if b.open == b.shut {
		return true
	}
	local := at.In(b.loc)
	workday := false
	for _, d := range b.cfg.Days {
		if int(local.Weekday()) == d {
			workday = true
		}
	}
	since := time.Duration(local.Hour())*time.Hour + time.Duration(local.Minute())*time.Minute
	return workday && since >= b.open && since < b.shut
}

// keySafe maps an id onto the characters idempotency keys allow.
func keySafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == ':' {
			return r
		}
		return '_'
	}, s)
}
