package relay

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// Lexicon policy: word and regex lists per Official Account, matched on
// the text of inbound and outbound messages. A hit is archived (a
// LexiconHit), enters the review queue, and raises a live alert to
// supervisors; an outbound rule with Block refuses the send before
// anything is archived or sent (Outbox.Send).
//
// Rules apply per account and per team (of the employee who handles the
// conversation, or who sends). Words match as
// substrings, case-insensitively for letters with case (Latin, Greek,
// Cyrillic), exactly for Chinese; regexes are Go RE2 syntax, matched
// case-insensitively.

// LexiconRule is one named list.
type LexiconRule struct {
	// Name identifies the rule in alerts, refusals and reviews.
	Name string `yaml:"name"`
	// Accounts it applies to; empty: every account.
	Accounts []string `yaml:"accounts"`
	// Teams it applies to: messages of conversations held by, and sends
	// of, the members of these teams (console.teams or made by admins;
	// membership as the directory says now). Empty: everyone.
	Teams []string `yaml:"teams"`
	// Words match as substrings.
	Words []string `yaml:"words"`
	// Regex are RE2 patterns.
	Regex []string `yaml:"regex"`
	// Direction: "inbound", "outbound" or "both" (empty: both).
	Direction string `yaml:"direction"`
	// Block refuses an outbound send that matches, with Reason.
	Block bool `yaml:"block"`
	// Reason is shown to the employee whose send is blocked, and in
	// alerts.
	Reason string `yaml:"reason"`
}

// Lexicon is the compiled rules. The zero value and nil match nothing.
type Lexicon struct {
	rules []compiledRule
	// blocked, if set, is told of every send a rule refused, before the
	// refusal is returned (to audit the attempt).
	blocked func(ctx context.Context, req SendRequest, m LexiconMatch)
	// teamsOf says which teams an employee is in, for rules with Teams.
	teamsOf func(employee string) []string
}

// TeamsOf sets fn to tell the teams of an employee (the directory's).
// Without it, rules with Teams match nothing. Set it before the lexicon
// is used.
func (l *Lexicon) TeamsOf(fn func(employee string) []string) {
	l.teamsOf = fn
}

// OnBlocked sets fn to be called with every send a blocking rule
// refuses. Set it before the lexicon is used.
func (l *Lexicon) OnBlocked(fn func(ctx context.Context, req SendRequest, m LexiconMatch)) {
	l.blocked = fn
}

type compiledRule struct {
	LexiconRule
	accounts map[string]bool
	dir      Direction // "" for both
	words    []string  // lower-cased
	regex    []*regexp.Regexp
}

// NewLexicon compiles rules, reporting every problem at once.
func NewLexicon(rules []LexiconRule) (*Lexicon, error) {
	var errs []error
	l := &Lexicon{}
	seen := map[string]bool{}
	for i, r := range rules {
		where := fmt.Sprintf("lexicon[%d]", i)
		if r.Name == "" {
			errs = append(errs, fmt.Errorf("%s: name is required", where))
		} else if seen[r.Name] {
			errs = append(errs, fmt.Errorf("%s: duplicate name %q", where, r.Name))
		}
		seen[r.Name] = true
		c := compiledRule{LexiconRule: r}
		switch r.Direction {
		case "", "both":
		case "inbound", string(Inbound):
			c.dir = Inbound
		case "outbound", string(Outbound):
			c.dir = Outbound
		default:
			errs = append(errs, fmt.Errorf("%s (%s): direction %q is not inbound, outbound or both", where, r.Name, r.Direction))
		}
		if r.Block && c.dir == Inbound {
			errs = append(errs, fmt.Errorf("%s (%s): block applies to outbound messages only", where, r.Name))
		}
		if len(r.Words) == 0 && len(r.Regex) == 0 {
			errs = append(errs, fmt.Errorf("%s (%s): needs words or regex", where, r.Name))
		}
		if len(r.Accounts) > 0 {
			c.accounts = map[string]bool{}
			for _, a := range r.Accounts {
				c.accounts[a] = true
			}
		}
		for _, w := range r.Words {
			if w = strings.TrimSpace(w); w != "" {
				c.words = append(c.words, strings.ToLower(w))
			}
		}
		for _, p := range r.Regex {
			re, err := regexp.Compile("(?i)" + p)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s (%s): regex %q: %w", where, r.Name, p, err))
				continue
			}
			c.regex = append(c.regex, re)
		}
		l.rules = append(l.rules, c)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return l, nil
}

// LexiconMatch is one rule that matched a text.
type LexiconMatch struct {
	Rule    string `json:"rule"`
	Matched string `json:"matched"` // the word or the text the regex matched
	Block   bool   `json:"block"`
	Reason  string `json:"reason,omitempty"`
}

// Match returns the rules of account and of the teams of employee (who
// handles or sends the message) that match text in direction d, one
// match per rule, in the rules' order.
func (l *Lexicon) Match(account, employee string, d Direction, text string) []LexiconMatch {
	if l == nil || text == "" {
		return nil
	}
	lower := strings.ToLower(text)
	var out []LexiconMatch
	var teams []string // of employee, once needed
	teamsKnown := false
	for _, r := range l.rules {
		if r.accounts != nil && !r.accounts[account] {
			continue
		}
		if len(r.Teams) > 0 {
			if !teamsKnown && l.teamsOf != nil && employee != "" {
				teams, teamsKnown = l.teamsOf(employee), true
			}
			if !slices.ContainsFunc(r.Teams, func(t string) bool { return slices.Contains(teams, t) }) {
				continue
			}
		}
		if r.dir != "" && r.dir != d {
			continue
		}
		matched := ""
		for _, w := range r.words {
			if strings.Contains(lower, w) {
				matched = w
				break
			}
		}
		if matched == "" {
			for _, re := range r.regex {
				if m := re.FindString(text); m != "" {
					matched = m
					break
				}
			}
		}
		if matched != "" {
			out = append(out, LexiconMatch{Rule: r.Name, Matched: matched, Block: r.Block && d == Outbound, Reason: r.Reason})
		}
	}
	return out
}

// ErrCodeLexicon is the code of a PolicyError for a send a lexicon rule
// blocked. Not a WeChat errcode: WeChat never saw the message.
const ErrCodeLexicon = -10001

// checkOutbound refuses a send whose text matches a blocking rule.
func (l *Lexicon) checkOutbound(ctx context.Context, req SendRequest) error {
	if l == nil {
		return nil
	}
	account, _ := req.Conv.Split()
	for _, m := range l.Match(account, req.Employee, Outbound, matchedText(req.Text, req.Attrs)) {
		if m.Block {
			if l.blocked != nil {
				l.blocked(ctx, req, m)
			}
			why := m.Reason
			if why == "" {
				why = fmt.Sprintf("the text contains %q", m.Matched)
			}
			return &PolicyError{Code: ErrCodeLexicon, Reason: fmt.Sprintf("blocked by the compliance rule %q: %s. Nothing was sent or archived.", m.Rule, why)}
		}
	}
	return nil
}

// LexiconHit is an archived hit: a rule that matched an archived message.
type LexiconHit struct {
	ID        string         `json:"id"`
	Account   string         `json:"account"`
	Conv      ConversationID `json:"conv"`
	MessageID string         `json:"message_id"`
	Direction Direction      `json:"direction"`
	Employee  string         `json:"employee,omitempty"`
	Rule      string         `json:"rule"`
	Matched   string         `json:"matched"`
	Excerpt   string         `json:"excerpt"`
	At        time.Time      `json:"at"`
	// Review is the latest decision, nil while the hit waits in the
	// queue (filled by AlertStore.Alerts; by ReviewLog, the latest that
	// verifies).
	Review *AlertReview `json:"review,omitempty"`
	// Reviews are every stored decision on the hit, oldest first (filled
	// by the archives, for ReviewLog to check).
	Reviews []AlertReview `json:"-"`
	// Flag, set by ReviewLog, says why a review of the hit did not
	// count (forged, badly signed...): the hit is back in the queue.
	Flag string `json:"flag,omitempty"`
}

// HitID is the id of the hit of rule on message id: the same on every
// relay instance.
func HitID(messageID, rule string) string {
	sum := sha256.Sum256([]byte(messageID + "\x00" + rule))
	return "hit-" + hex.EncodeToString(sum[:12])
}

// Review decisions.
const (
	DecisionReviewed  = "reviewed"
	DecisionEscalated = "escalated"
)

// AlertReview is a decision on a hit.
type AlertReview struct {
	ID       string    `json:"id"`
	HitID    string    `json:"hit_id"`
	Decision string    `json:"decision"` // DecisionReviewed or DecisionEscalated
	Comment  string    `json:"comment"`
	Reviewer string    `json:"reviewer"`
	At       time.Time `json:"at"`
	// RecordSeal chains the decisions on one hit and signs each
	// (review_sign.go).
	RecordSeal
}

// AlertQuery selects hits. Zero fields select everything.
type AlertQuery struct {
	Account  string
	From, To time.Time
	// Status: "open" (no decision yet), "reviewed", "escalated", or ""
	// for all.
	Status string
	// Employees, when set, keeps the hits of these employees only ("" for
	// hits that belong to nobody): a supervisor in teams sees their
	// members'. The store filters before the limit, so that other teams'
	// hits do not crowd theirs out.
	Employees []string
	Limit     int // newest first (500)
}

// AlertStore archives hits and review decisions. Both archives in
// storage implement it.
type AlertStore interface {
	// AppendHits stores hits; a hit whose id is stored already is not
	// stored again (readers see one).
	AppendHits(ctx context.Context, hits []LexiconHit) error
	// AppendReview stores a decision.
	AppendReview(ctx context.Context, r AlertReview) error
	// Alerts returns the hits q selects with their latest decision,
	// newest first.
	Alerts(ctx context.Context, q AlertQuery) ([]LexiconHit, error)
	// Hit returns one hit, ok false when there is none.
	Hit(ctx context.Context, id string) (LexiconHit, bool, error)
}

// LexiconWatcher matches every archived message on the bus, archives the
// hits and hands them to Alert (the console's live alert). Every relay
// instance runs one: each archives the same hits (same ids, collapsed by
// the readers) and alerts the supervisors connected to it.
//
// With Scan set it also scans the archive for the messages accepted
// recently (lexicon_scan.go), to match those whose publication the bus
// lost.
type LexiconWatcher struct {
	Lexicon *Lexicon
	Bus     Bus
	Store   AlertStore
	// Alert, if set, is called with each hit once it is archived.
	Alert func(LexiconHit)
	Log   *slog.Logger

	// Scan, if set, is the archive scanned every ScanEvery (1 minute
	// when <= 0) for the messages accepted since the previous scan's
	// upper bound minus ScanOverlap (10 minutes when <= 0; the first
	// scan looks back that far), up to ScanSettle (5 seconds when <= 0)
	// ago. See CatchUp.
	Scan        Searcher
	ScanEvery   time.Duration
	ScanOverlap time.Duration
	ScanSettle  time.Duration
	// Now is the scan's clock; time.Now when nil.
	Now func() time.Time

	scan scanState

	subOnce    sync.Once
	subscriber *Subscriber
}

// Run watches until ctx ends.
func (w *LexiconWatcher) Run(ctx context.Context) error {
	log := w.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if w.Scan != nil {
		var scans sync.WaitGroup
		defer scans.Wait()
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel() // before the Wait: the scans end with the bus
		scans.Go(func() { w.scanLoop(ctx, log) })
	}
	// A failed or lost subscription is retried with backoff: meanwhile
	// the catch-up scan finds what the bus did not bring.
	return w.sub(log).Run(ctx, func(e Event) { w.watch(ctx, log, e) })
}

// sub returns the watcher's bus subscription, made on first use.
func (w *LexiconWatcher) sub(log *slog.Logger) *Subscriber {
	w.subOnce.Do(func() { w.subscriber = &Subscriber{Name: "lexicon", Bus: w.Bus, Log: log} })
	return w.subscriber
}

// Subscribed returns nil while the watcher's bus subscription is up (a
// readiness check).
func (w *LexiconWatcher) Subscribed() error { return w.sub(w.Log).Check() }

// watch raises the alerts of one event.
func (w *LexiconWatcher) watch(ctx context.Context, log *slog.Logger, e Event) {
	if e.Type != EventMessage || e.Message == nil {
		return
	}
	hits := w.Hits(*e.Message)
	if len(hits) == 0 {
		return
	}
	// A hit must be archived before it is shown; retry briefly.
	var err error
	for attempt := range 5 {
		if err = w.Store.AppendHits(ctx, hits); err == nil || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(attempt+1) * 200 * time.Millisecond):
		}
	}
	if err != nil {
		log.Error("archiving lexicon hits failed; no alert raised", "msg_id", e.Message.ID, "conv", e.Message.Conv, "err", err)
		return
	}
	for _, h := range hits {
		if !w.claim(h.ID) {
			continue // the catch-up scan alerted it already
		}
		log.Info("lexicon hit", "rule", h.Rule, "msg_id", h.MessageID, "conv", h.Conv, "direction", h.Direction)
		if w.Alert != nil {
			w.Alert(h)
		}
	}
}

// Hits returns the hits of m, an archived message.
func (w *LexiconWatcher) Hits(m Message) []LexiconHit {
	if m.Direction != Inbound && m.Direction != Outbound {
		return nil
	}
	text := matchedText(m.Text, m.Attrs)
	emp := m.Employee
	if by := m.Attrs["sent_by"]; by != "" {
		emp = by
	}
	matches := w.Lexicon.Match(m.Account, emp, m.Direction, text)
	out := make([]LexiconHit, 0, len(matches))
	for _, x := range matches {
		at := m.AcceptedAt
		if at.IsZero() {
			at = time.Now()
		}
		out = append(out, LexiconHit{
			ID: HitID(m.ID, x.Rule), Account: m.Account, Conv: m.Conv, MessageID: m.ID, Direction: m.Direction,
			Employee: emp, Rule: x.Rule, Matched: x.Matched, Excerpt: excerpt(text, x.Matched), At: millis(at),
		})
	}
	return out
}

// matchedText is what the lexicon reads of a message: its text, and the
// title and description of a link.
func matchedText(text string, attrs map[string]string) string {
	for _, k := range []string{"title", "description"} {
		if v := attrs[k]; v != "" {
			text += "\n" + v
		}
	}
	return text
}

// excerpt is up to 40 characters either side of the first match.
func excerpt(text, matched string) string {
	r := []rune(text)
	i := strings.Index(strings.ToLower(text), strings.ToLower(matched))
	if i < 0 {
		i = 0
	}
	start := len([]rune(text[:min(i, len(text))]))
	lo, hi := max(start-40, 0), min(start+len([]rune(matched))+40, len(r))
	return string(r[lo:hi])
}

// ValidDecision reports whether d is a review decision.
func ValidDecision(d string) bool {
	return slices.Contains([]string{DecisionReviewed, DecisionEscalated}, d)
}

// FilterAlerts keeps the hits of status ("open", "reviewed",
// "escalated"; "" for all), at most limit of them. A flagged hit (a
// review of it did not verify) is open, whatever its Review.
func FilterAlerts(hits []LexiconHit, status string, limit int) []LexiconHit {
	out := hits[:0:0]
	for _, h := range hits {
		switch {
		case status == "":
		case status == "open" && h.Review != nil && h.Flag == "":
			continue
		case status != "open" && (h.Review == nil || h.Review.Decision != status):
			continue
		}
		out = append(out, h)
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out
}
