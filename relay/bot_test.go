package relay

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

type recordingSender struct {
	mu   sync.Mutex
	reqs []SendRequest
}

func (s *recordingSender) Send(_ context.Context, r SendRequest) (SendResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = append(s.reqs, r)
	return SendResult{}, nil
}

func TestBotReactions(t *testing.T) {
	sh, _ := time.LoadLocation("Asia/Shanghai")
	inHours := time.Date(2026, 11, 25, 10, 0, 0, 0, sh)  // Wednesday 10:00
	outHours := time.Date(2026, 11, 28, 10, 0, 0, 0, sh) // Saturday
	evening := time.Date(2026, 11, 25, 18, 30, 0, 0, sh) // Wednesday 18:30
	msg := func(seq uint64, kind Kind, event string, at time.Time, emp string) Message {
		return Message{ID: "in:acct:1", Account: "acct", Client: "c", Conv: "acct:c", Seq: seq, Direction: Inbound,
			Kind: kind, Event: event, AcceptedAt: at, Employee: emp}
	}
	tests := []struct {
		name string
		m    Message
		want []string // key prefixes, in order
	}{
		// A new bot with nothing to look the notice up in: every
		// interaction begins with the notice (the outbox's key keeps it
		// single); see notice_test.go for the archive's answers.
		{"first message in hours", msg(1, KindText, "", inHours, "alice"), []string{"bot-notice"}},
		{"subscribe", msg(1, KindEvent, "subscribe", inHours, "alice"), []string{"bot-notice", "bot-welcome-"}},
		{"later message in hours", msg(5, KindText, "", inHours, "alice"), []string{"bot-notice"}},
		{"weekend", msg(5, KindText, "", outHours, "alice"), []string{"bot-notice", "bot-ooh-20261128"}},
		{"evening", msg(5, KindImage, "", evening, "alice"), []string{"bot-notice", "bot-ooh-20261125"}},
		{"nobody assigned", msg(5, KindText, "", inHours, ""), []string{"bot-notice", "bot-unassigned-20261125"}},
		{"menu click", msg(5, KindEvent, "CLICK", inHours, "alice"), []string{"bot-notice"}},
		{"unsubscribe", msg(5, KindEvent, "unsubscribe", outHours, ""), nil},
		{"location report", msg(1, KindEvent, "LOCATION", inHours, "alice"), nil},
		{"menu link", msg(1, KindEvent, "VIEW", inHours, "alice"), nil},
		{"outbound", Message{Direction: Outbound, Kind: KindText, Seq: 1, Conv: "acct:c"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := &recordingSender{}
			b, err := NewBot(BotConfig{}, rs, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			b.React(context.Background(), tt.m)
			var got []string
			for _, r := range rs.reqs {
				if r.Conv != "acct:c" || r.Kind != KindText || r.Text == "" || r.Employee != "" {
					t.Fatalf("request %+v", r)
				}
				got = append(got, r.Key)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("sent %v, want %v", got, tt.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) || !keyPattern.MatchString(got[i]) {
					t.Fatalf("sent %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestBotTextsAndConfig(t *testing.T) {
	rs := &recordingSender{}
	b, err := NewBot(BotConfig{Days: []int{0, 1, 2, 3, 4, 5, 6}, Open: "08:30", Close: "20:00", Accounts: map[string]BotAccount{
		"en":     {Language: "en"},
		"custom": {Texts: BotTexts{Unassigned: "稍等", OutOfHours: "{open}-{close} only"}},
	}}, rs, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	sat := time.Date(2026, 11, 28, 21, 0, 0, 0, b.loc)
	b.React(context.Background(), Message{ID: "x", Account: "en", Conv: "en:c", Seq: 1, Direction: Inbound, Kind: KindText, AcceptedAt: sat, Employee: "a"})
	b.React(context.Background(), Message{ID: "y", Account: "custom", Conv: "custom:c", Seq: 2, Direction: Inbound, Kind: KindText, AcceptedAt: sat, Employee: "a"})
	b.React(context.Background(), Message{ID: "z", Account: "custom", Conv: "custom:c", Seq: 3, Direction: Inbound, Kind: KindText, AcceptedAt: sat.Add(-2 * time.Hour)})
	texts := []string{}
	for _, r := range rs.reqs {
		texts = append(texts, r.Text)
	}
	want := []string{
		"Please note: as regulations require, this conversation is recorded and archived.",
		"Hello, we are outside business hours (weekdays 08:30–20:00). We have your message and will answer as soon as we are open.",
		"温馨提示：根据监管要求，本对话内容将被完整记录并存档。", // custom:c's first interaction seen here
		"08:30-20:00 only",
		"稍等",
	}
	if !slices.Equal(texts, want) {
		t.Fatalf("texts %q\nwant  %q", texts, want)
	}

	for name, cfg := range map[string]BotConfig{
		"bad timezone":     {Timezone: "Mars/Olympus"},
		"bad hour":         {Open: "9am", Close: "18:00"},
		"bad language":     {Accounts: map[string]BotAccount{"a": {Language: "fr"}}},
		"notice too long":  {Accounts: map[string]BotAccount{"a": {Texts: BotTexts{ComplianceNotice: strings.Repeat("录", 700)}}}},
		"notice not UTF-8": {Accounts: map[string]BotAccount{"a": {Texts: BotTexts{ComplianceNotice: "\xff"}}}},
	} {
		if _, err := NewBot(cfg, rs, nil, nil); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}
