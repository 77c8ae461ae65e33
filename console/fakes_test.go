package console

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/png"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/wechat-relay/wechat-relay/relay"
)

// Stand-ins for the relay and storage parts the console uses. The real
// ones have their own tests; these keep the console's tests in-process
// and let them look inside.

const (
	alicePassword = "alice-password-1"
	bobPassword   = "bob-password-22"
	supPassword   = "sup-password-333"
)

var (
	hashMu sync.Mutex
	hashes = map[string]string{}
)

// testHash is a bcrypt hash of pw at the lowest cost, made once.
func testHash(pw string) string {
	hashMu.Lock()
	defer hashMu.Unlock()
	if h, ok := hashes[pw]; ok {
		return h
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		panic(err)
	}
	hashes[pw] = string(h)
	return string(h)
}

type fakeAssign struct {
	mu sync.Mutex
	m  map[relay.ConversationID]string
}

func (a *fakeAssign) Get(_ context.Context, c relay.ConversationID) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.m[c], nil
}

func (a *fakeAssign) Set(_ context.Context, c relay.ConversationID, emp string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.m[c] = emp
	return nil
}

func (a *fakeAssign) SetIfAbsent(_ context.Context, c relay.ConversationID, emp string) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if cur := a.m[c]; cur != "" {
		return cur, nil
	}
	a.m[c] = emp
	return emp, nil
}

// Conversations summarises the fake archive as the real ones do.
func (h *fakeHistory) Conversations(_ context.Context, f relay.ConversationFilter) ([]relay.ConversationSummary, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	byConv := map[relay.ConversationID][]relay.Message{}
	var order []relay.ConversationID
	for _, m := range h.msgs {
		if _, ok := byConv[m.Conv]; !ok {
			order = append(order, m.Conv)
		}
		byConv[m.Conv] = append(byConv[m.Conv], m)
	}
	var out []relay.ConversationSummary
	for _, c := range order {
		msgs := byConv[c]
		var s relay.ConversationSummary
		var rs, ro, li uint64
		active := f.ActiveSince.IsZero()
		for _, m := range msgs {
			if m.Seq > s.LastSeq {
				s.LastSeq, s.Last = m.Seq, m
			}
			if m.AcceptedAt.After(f.ActiveSince) {
				active = true
			}
			switch {
			case m.Direction == relay.Internal && m.Kind == relay.KindResolve:
				rs = max(rs, m.Seq)
			case m.Direction == relay.Internal && m.Kind == relay.KindReopen:
				ro = max(ro, m.Seq)
			case m.IsInteraction():
				li = max(li, m.Seq)
				if m.AcceptedAt.After(s.LastInteraction) {
					s.LastInteraction = m.AcceptedAt
				}
			}
		}
		s.Conv, s.Account, s.Client, s.Employee = c, s.Last.Account, s.Last.Client, s.Last.Employee
		s.Status = relay.StatusOpen
		if rs > ro && rs > li {
			s.Status = relay.StatusResolved
		}
		if !active || (f.Account != "" && s.Account != f.Account) || (f.Employee != "" && s.Employee != f.Employee) ||
			(f.Status != "" && s.Status != f.Status) || (f.Conv != "" && c != f.Conv) ||
			(len(f.Employees) > 0 && !slices.Contains(f.Employees, s.Employee)) || (f.Convs != nil && !slices.Contains(f.Convs, c)) {
			continue
		}
		out = append(out, s)
	}
	slices.SortStableFunc(out, func(a, b relay.ConversationSummary) int {
		if c := b.Last.AcceptedAt.Compare(a.Last.AcceptedAt); c != 0 {
			return c
		}
		return strings.Compare(string(a.Conv), string(b.Conv))
	})
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

func (h *fakeHistory) CountInbound(_ context.Context, after map[relay.ConversationID]uint64) (map[relay.ConversationID]int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[relay.ConversationID]int{}
	for _, m := range h.msgs {
		if mark, ok := after[m.Conv]; ok && m.Direction == relay.Inbound && m.Seq > mark {
			out[m.Conv]++
		}
	}
	return out, nil
}

func (h *fakeHistory) MaxSeq(_ context.Context, conv relay.ConversationID) (uint64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var n uint64
	for _, m := range h.msgs {
		if m.Conv == conv {
			n = max(n, m.Seq)
		}
	}
	return n, nil
}

func (h *fakeHistory) byID(id string) (relay.Message, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.msgs {
		if m.ID == id {
			return m, true
		}
	}
	return relay.Message{}, false
}

// fakePipeline archives accepted messages at once, numbered and routed
// to the current assignee, and publishes them: the pipeline in a line.
type fakePipeline struct {
	mu sync.Mutex
	e  *consoleEnv
}

func (p *fakePipeline) Accept(ctx context.Context, m relay.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, dup := p.e.history.byID(m.ID); dup {
		return nil
	}
	last, _ := p.e.history.MaxSeq(ctx, m.Conv)
	m.Seq = last + 1
	m.AcceptedAt = time.Now()
	if to := m.Attrs[relay.AttrTo]; m.Kind == relay.KindTransfer && to != "" {
		// The archive writer's routing makes a transfer's move.
		p.e.assign.Set(ctx, m.Conv, to)
	}
	m.Employee, _ = p.e.assign.Get(ctx, m.Conv)
	p.e.publish(m)
	return nil
}

// fakeSessions is SessionStore, LoginThrottle and ReadMarks in a map.
type fakeSessions struct {
	mu       sync.Mutex
	sessions map[string][]byte
	fails    map[string]int
	locks    map[string]time.Time
	marks    map[string]uint64 // employee + "\x00" + conv
	down     bool
}

func newFakeSessions() *fakeSessions {
	return &fakeSessions{sessions: map[string][]byte{}, fails: map[string]int{}, locks: map[string]time.Time{}, marks: map[string]uint64{}}
}

var errStoreDown = errors.New("store down")

func (s *fakeSessions) PutSession(_ context.Context, id string, data []byte, _ time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return errStoreDown
	}
	s.sessions[id] = slices.Clone(data)
	return nil
}

func (s *fakeSessions) GetSession(_ context.Context, id string, _ time.Duration) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return nil, errStoreDown
	}
	return s.sessions[id], nil
}

func (s *fakeSessions) DeleteSession(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, id)
	return nil
}

func (s *fakeSessions) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

func (s *fakeSessions) LoginLocked(_ context.Context, id string) (time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return max(time.Until(s.locks[id]), 0), nil
}

func (s *fakeSessions) LoginFailed(_ context.Context, id string, limit int, _, lockout time.Duration) (time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fails[id]++
	if s.fails[id] >= limit {
		s.fails[id] = 0
		s.locks[id] = time.Now().Add(lockout)
		return lockout, nil
	}
	return 0, nil
}

func (s *fakeSessions) LoginSucceeded(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.fails, id)
	return nil
}

func (s *fakeSessions) MarkRead(_ context.Context, emp string, conv relay.ConversationID, seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := emp + "\x00" + string(conv)
	s.marks[k] = max(s.marks[k], seq)
	return nil
}

func (s *fakeSessions) ReadMarks(_ context.Context, emp string, convs []relay.ConversationID) (map[relay.ConversationID]uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[relay.ConversationID]uint64{}
	for _, c := range convs {
		if v, ok := s.marks[emp+"\x00"+string(c)]; ok {
			out[c] = v
		}
	}
	return out, nil
}

type fakeMedia struct {
	mu    sync.Mutex
	items map[string]relay.Media
	e     *consoleEnv
}

func (f *fakeMedia) put(md relay.Media) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.items == nil {
		f.items = map[string]relay.Media{}
	}
	md.SHA256 = relay.ContentHash(md.Data)
	f.items[md.MessageID] = md
}

func (f *fakeMedia) MessageMedia(_ context.Context, id string) (relay.Message, relay.Media, bool, error) {
	f.mu.Lock()
	md, ok := f.items[id]
	f.mu.Unlock()
	if !ok {
		return relay.Message{}, relay.Media{}, false, nil
	}
	m, ok := f.e.history.byID(id)
	return m, md, ok, nil
}

type fakeQR struct {
	mu    sync.Mutex
	calls []string // account + " " + scene
}

func (f *fakeQR) PermanentQR(_ context.Context, account, scene string) ([]byte, error) {
	f.mu.Lock()
	f.calls = append(f.calls, account+" "+scene)
	f.mu.Unlock()
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, 10, 10))); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

type fakeAudit struct {
	mu      sync.Mutex
	records []AuditRecord
	err     error
}

func (a *fakeAudit) Record(_ context.Context, r AuditRecord) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return a.err
	}
	a.records = append(a.records, r)
	return nil
}

func (a *fakeAudit) all() []AuditRecord {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.records)
}

func (a *fakeAudit) fail(err error) {
	a.mu.Lock()
	a.err = err
	a.mu.Unlock()
}

// LatestEvents makes fakeOutbox the Deliveries too: every outbound
// message it was asked to send is "sent".
func (o *fakeOutbox) LatestEvents(_ context.Context, ids []string) (map[string]relay.DeliveryEvent, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]relay.DeliveryEvent{}
	for _, id := range ids {
		if ev, ok := o.events[id]; ok {
			out[id] = ev
		}
	}
	return out, nil
}

// fakeDirectoryStore keeps directory records in memory.
type fakeDirectoryStore struct {
	mu   sync.Mutex
	recs []relay.DirectoryRecord
	err  error
}

func (s *fakeDirectoryStore) AppendDirectory(_ context.Context, r relay.DirectoryRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.recs = append(s.recs, r)
	return nil
}

func (s *fakeDirectoryStore) DirectoryRecords(context.Context) ([]relay.DirectoryRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	return slices.Clone(s.recs), nil
}

func (s *fakeDirectoryStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recs)
}
