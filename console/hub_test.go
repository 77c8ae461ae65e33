package console

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/crypto/bcrypt"

	"github.com/wechat-relay/wechat-relay/relay"
)

type fakeBus struct {
	mu   sync.Mutex
	subs []chan relay.Event
}

func (b *fakeBus) Publish(_ context.Context, e relay.Event) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range b.subs {
		s <- e
	}
	return nil
}

func (b *fakeBus) Subscribe(ctx context.Context) (<-chan relay.Event, error) {
	ch := make(chan relay.Event, 100)
	b.mu.Lock()
	b.subs = append(b.subs, ch)
	b.mu.Unlock()
	go func() {
		<-ctx.Done()
		b.mu.Lock()
		defer b.mu.Unlock()
		for i, s := range b.subs {
			if s == ch {
				b.subs = append(b.subs[:i], b.subs[i+1:]...)
			}
		}
		close(ch)
	}()
	return ch, nil
}

func (b *fakeBus) subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

type fakeHistory struct {
	mu   sync.Mutex
	msgs []relay.Message
	// hang, when set, makes Since wait for its context, as a hung
	// ClickHouse does; entered receives each time it starts waiting.
	hang    bool
	entered chan struct{}
}

func (h *fakeHistory) add(m relay.Message) {
	h.mu.Lock()
	h.msgs = append(h.msgs, m)
	h.mu.Unlock()
}

func (h *fakeHistory) Since(ctx context.Context, conv relay.ConversationID, after uint64, limit int) ([]relay.Message, error) {
	h.mu.Lock()
	hang := h.hang
	h.mu.Unlock()
	if hang {
		h.entered <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []relay.Message
	for _, m := range h.msgs {
		if m.Conv == conv && m.Seq > after && len(out) < limit {
			out = append(out, m)
		}
	}
	return out, nil
}

const (
	aliceTok = "alice-token-0123456789"
	bobTok   = "bob-token-0123456789ab"
	supTok   = "sup-token-0123456789ab"
)

type consoleEnv struct {
	outbox   *fakeOutbox
	server   *Server
	bus      *fakeBus
	history  *fakeHistory
	assign   *fakeAssign
	sessions *fakeSessions
	media    *fakeMedia
	qr       *fakeQR
	audit    *fakeAudit
	dirStore *fakeDirectoryStore
	dir      *relay.Directory
	srv      *httptest.Server
}

// newConsoleEnv starts a console over fakes; with, when given, adds to
// or changes its dependencies.
func newConsoleEnv(t testing.TB, cfg Config, with ...func(*Deps)) *consoleEnv {
	t.Helper()
	cfg.Employees = append([]Employee{
		{ID: "alice", Name: "Alice Wang", Role: RoleAgent, Accounts: []string{"acct"}, Token: aliceTok, PasswordHash: testHash(alicePassword)},
		{ID: "bob", Name: "Bob Li", Role: RoleAgent, Accounts: []string{"acct", "acct2"}, Token: bobTok, PasswordHash: testHash(bobPassword)},
		{ID: "sup", Name: "Sue Zhang", Role: RoleSupervisor, AllTeams: true, Token: supTok, PasswordHash: testHash(supPassword)},
		{ID: "tokenonly", Role: RoleAgent, Token: "tokenonly-token-0123456789"},
	}, cfg.Employees...) // and any the test adds
	if cfg.PasswordCost == 0 {
		cfg.PasswordCost = bcrypt.MinCost
	}
	e := &consoleEnv{bus: &fakeBus{}, history: &fakeHistory{}, sessions: newFakeSessions(), media: &fakeMedia{}, qr: &fakeQR{}, audit: &fakeAudit{}}
	e.assign = &fakeAssign{m: map[relay.ConversationID]string{"acct:c-alice": "alice", "acct:c-bob": "bob"}}
	e.outbox = &fakeOutbox{}
	e.media.e = e
	staff, err := relay.NewStaff(&fakePipeline{e: e}, e.assign, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.dirStore = &fakeDirectoryStore{}
	e.dir = relay.NewDirectory(e.dirStore, cfg.Seed([]relay.AccountInfo{{ID: "acct", Name: "Account"}, {ID: "acct2"}}), nil, nil)
	if err := e.dir.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	deps := Deps{
		Bus: e.bus, History: e.history, Assignments: e.assign, Outbox: e.outbox,
		Sessions: e.sessions, Throttle: e.sessions, ReadMarks: e.sessions, Inbox: e.history, Deliveries: e.outbox,
		Media: e.media, Staff: staff, QRCodes: e.qr, Audit: e.audit, Directory: e.dir,
	}
	for _, f := range with {
		f(&deps)
	}
	e.server = NewServer(cfg, deps)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.server.Run(ctx); close(done) }()
	e.srv = httptest.NewServer(e.server.Handler())
	t.Cleanup(func() {
		e.server.Shutdown(context.Background())
		e.srv.Close()
		cancel()
		<-done
	})
	for e.bus.subscribers() == 0 {
		time.Sleep(time.Millisecond)
	}
	return e
}

func (e *consoleEnv) dial(t *testing.T, token string) *websocket.Conn {
	t.Helper()
	h := http.Header{"Authorization": {"Bearer " + token}}
	ws, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(e.srv.URL, "http")+"/api/ws", h)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	t.Cleanup(func() { ws.Close() })
	// The hub registers the connection right after the upgrade; give it a
	// moment so a publish that follows is not missed.
	time.Sleep(20 * time.Millisecond)
	return ws
}

func msg(conv string, seq uint64, emp string) relay.Message {
	return relay.Message{ID: fmt.Sprintf("%s#%d", conv, seq), Conv: relay.ConversationID(conv), Seq: seq, Employee: emp,
		Kind: relay.KindText, Direction: relay.Inbound, Text: fmt.Sprint("text ", seq), Raw: []byte("<xml>secret raw</xml>")}
}

func (e *consoleEnv) publish(m relay.Message) {
	e.history.add(m)
	e.bus.Publish(context.Background(), relay.Event{Type: relay.EventMessage, Conv: m.Conv, Employee: m.Employee, Message: &m})
}

func read(t *testing.T, ws *websocket.Conn) Frame {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	var f Frame
	if err := ws.ReadJSON(&f); err != nil {
		t.Fatalf("reading frame: %v", err)
	}
	return f
}

// expectNothing checks that no frame arrives for a short while.
func expectNothing(t *testing.T, ws *websocket.Conn) {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
	var f Frame
	if err := ws.ReadJSON(&f); err == nil {
		t.Fatalf("unexpected frame %+v", f)
	}
}

func TestAgentsSeeOnlyTheirConversations(t *testing.T) {
	e := newConsoleEnv(t, Config{})
	alice, bob, sup := e.dial(t, aliceTok), e.dial(t, bobTok), e.dial(t, supTok)
	e.publish(msg("acct:c-alice", 1, "alice"))
	e.publish(msg("acct:c-bob", 1, "bob"))

	f := read(t, alice)
	if f.Type != FrameMessage || f.Conv != "acct:c-alice" || f.Message.Text != "text 1" {
		t.Fatalf("alice got %+v", f)
	}
	expectNothing(t, alice)
	if f := read(t, bob); f.Conv != "acct:c-bob" {
		t.Fatalf("bob got %+v", f)
	}
	expectNothing(t, bob)
	got := []string{read(t, sup).Conv, read(t, sup).Conv}
	if got[0] != "acct:c-alice" || got[1] != "acct:c-bob" {
		t.Fatalf("supervisor got %v", got)
	}
}

func TestResumeAndGapFill(t *testing.T) {
	e := newConsoleEnv(t, Config{})
	for seq := uint64(1); seq <= 3; seq++ {
		e.history.add(msg("acct:c-alice", seq, "alice"))
	}
	alice := e.dial(t, aliceTok)
	alice.WriteJSON(Frame{Type: FrameResume, Conv: "acct:c-alice", Seq: 1})
	for _, want := range []uint64{2, 3} {
		if f := read(t, alice); f.Type != FrameMessage || f.Seq != want {
			t.Fatalf("resume: got %+v, want seq %d", f, want)
		}
	}
	if f := read(t, alice); f.Type != FrameCaughtUp || f.Seq != 3 {
		t.Fatalf("got %+v, want caught_up at 3", f)
	}
	// 4 was archived but its publication lost; 5 arrives live: the
	// connection fills the gap from the archive, in order.
	e.history.add(msg("acct:c-alice", 4, "alice"))
	e.publish(msg("acct:c-alice", 5, "alice"))
	for _, want := range []uint64{4, 5} {
		if f := read(t, alice); f.Seq != want {
			t.Fatalf("got seq %d, want %d", f.Seq, want)
		}
	}
	// A repeated publication is not sent twice.
	e.publish(msg("acct:c-alice", 5, "alice"))
	expectNothing(t, alice)
}

func TestAgentCannotReadAnotherAgentsConversation(t *testing.T) {
	e := newConsoleEnv(t, Config{})
	e.history.add(msg("acct:c-bob", 1, "bob"))
	alice := e.dial(t, aliceTok)
	alice.WriteJSON(Frame{Type: FrameResume, Conv: "acct:c-bob"})
	if f := read(t, alice); f.Type != FrameError || !strings.Contains(f.Error, "forbidden") {
		t.Fatalf("socket resume of bob's conversation: %+v", f)
	}

	req, _ := http.NewRequest("GET", e.srv.URL+"/api/conversations/acct:c-bob/messages", nil)
	req.Header.Set("Authorization", "Bearer "+aliceTok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("REST read of bob's conversation by alice: %d", resp.StatusCode)
	}
	req.Header.Set("Authorization", "Bearer "+bobTok)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("REST read of bob's conversation by bob: %d", resp.StatusCode)
	}
}

func TestUpgradeRefusals(t *testing.T) {
	e := newConsoleEnv(t, Config{})
	url := "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/api/ws"
	tests := []struct {
		name   string
		header http.Header
		status int
	}{
		{"no token", http.Header{}, http.StatusUnauthorized},
		{"wrong token", http.Header{"Authorization": {"Bearer nope-nope-nope-nope"}}, http.StatusUnauthorized},
		{"cross-site origin", http.Header{"Authorization": {"Bearer " + aliceTok}, "Origin": {"https://evil.example"}}, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, resp, err := websocket.DefaultDialer.Dial(url, tt.header)
			if err == nil {
				t.Fatal("upgrade succeeded")
			}
			if resp == nil || resp.StatusCode != tt.status {
				t.Fatalf("status %v, want %d", resp, tt.status)
			}
		})
	}
	// The console's own origin is fine.
	h := http.Header{"Authorization": {"Bearer " + aliceTok}, "Origin": {e.srv.URL}}
	ws, _, err := websocket.DefaultDialer.Dial(url, h)
	if err != nil {
		t.Fatalf("same-origin upgrade: %v", err)
	}
	ws.Close()
}

func TestSlowConsumerIsDisconnectedOthersUnaffected(t *testing.T) {
	e := newConsoleEnv(t, Config{SendQueue: 16})
	slow := e.dial(t, supTok) // never reads
	fast := e.dial(t, supTok)
	got := make(chan uint64, 1000)
	go func() {
		for {
			var f Frame
			fast.SetReadDeadline(time.Now().Add(5 * time.Second))
			if err := fast.ReadJSON(&f); err != nil {
				close(got)
				return
			}
			got <- f.Seq
		}
	}()
	const n = 400
	big := strings.Repeat("x", 64<<10) // fills the slow socket's buffers quickly
	for i := uint64(1); i <= n; i++ {
		m := msg("acct:c-alice", i, "alice")
		m.Text = big
		e.publish(m)
		// The fast consumer keeps up: it gets every message, in order,
		// while the slow one falls behind.
		if s := <-got; s != i {
			t.Fatalf("fast consumer got seq %d, want %d", s, i)
		}
	}
	// The slow socket is closed. Its close frame says why when it gets
	// through, but it queues behind the frames the reader never took: a
	// writer blocked on a full TCP window times out and the connection
	// ends without one (1006) — so the hub's count is what tells.
	slow.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := slow.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) && ce.Code != websocket.ClosePolicyViolation && ce.Code != websocket.CloseAbnormalClosure {
			t.Fatalf("slow consumer closed with %v, want policy violation", err)
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the slow consumer was never disconnected")
		}
		break
	}
	if got := testutil.ToFloat64(e.server.hub.disconnects.WithLabelValues(reasonSlowConsumer)); got != 1 {
		t.Errorf("disconnects{reason=slow_consumer} = %v, want 1", got)
	}
}

func TestMessageFramesOmitRawBody(t *testing.T) {
	e := newConsoleEnv(t, Config{})
	alice := e.dial(t, aliceTok)
	e.publish(msg("acct:c-alice", 1, "alice"))
	alice.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, data, err := alice.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "secret raw") {
		t.Fatalf("frame carries the raw callback body: %s", data)
	}
}

// Shutdown cancels what a connection is waiting for (a resume reading a
// hung archive) instead of waiting out its timeout.
func TestShutdownCancelsAResume(t *testing.T) {
	e := newConsoleEnv(t, Config{})
	e.history.mu.Lock()
	e.history.hang, e.history.entered = true, make(chan struct{}, 10)
	e.history.mu.Unlock()
	alice := e.dial(t, aliceTok)
	alice.WriteJSON(Frame{Type: FrameResume, Conv: "acct:c-alice"})
	<-e.history.entered
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.server.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with a resume waiting on the archive: %v", err)
	}
}
