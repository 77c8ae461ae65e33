package archivetest

import (
	"crypto/ed25519"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// ComplianceStore is what RunCompliance tests: the audit log, lexicon
// hits and reviews, legal holds and the retention counts.
type ComplianceStore interface {
	relay.Archive
	relay.AuditStore
	relay.AlertStore
	relay.RetentionStore
}

// Tamper changes the stored audit record of writer numbered n behind the
// archive's back: its target becomes "forged" (an UPDATE where the
// backend allows one, or a second, different copy in the same place).
type Tamper func(t *testing.T, writer string, n uint64)

// RunCompliance runs the compliance suite. open is called once per
// subtest and must return a new, empty store. tamper, if not nil, is
// used to check that verify catches an altered audit record.
func RunCompliance(t *testing.T, open func(t *testing.T) ComplianceStore, tamper func(s ComplianceStore) Tamper) {
	t.Helper()
	for _, c := range []struct {
		name string
		run  func(t *testing.T, s ComplianceStore)
	}{
		{"AuditChainRoundTrip", testAuditChain},
		{"AuditSearch", testAuditSearch},
		{"AuditSignaturesRoundTrip", testAuditSignatures},
		{"AlertsAndReviews", testAlertsReviews},
		{"LexiconCatchUpScan", testLexiconCatchUp},
		{"RetentionWithHold", testRetentionHold},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, open(t))
		})
	}
	if tamper != nil {
		t.Run("AuditTamperCaught", func(t *testing.T) {
			t.Parallel()
			s := open(t)
			testAuditTamper(t, s, tamper(s))
		})
	}
}

func auditLog(t *testing.T, s ComplianceStore, writer string, clock *time.Time) *relay.AuditLog {
	l, err := relay.NewAuditLog(s, writer, nil, func() time.Time { *clock = clock.Add(time.Second); return *clock })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func appendAudit(t *testing.T, l *relay.AuditLog, e relay.AuditEntry) relay.AuditEntry {
	t.Helper()
	got, err := l.Append(testCtx(t), e)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return got
}

func testAuditChain(t *testing.T, s ComplianceStore) {
	ctx := testCtx(t)
	clock := base
	l := auditLog(t, s, "w1", &clock)
	want := []relay.AuditEntry{
		{Employee: "sup", Role: "supervisor", Action: relay.AuditSignIn, Remote: "10.0.0.1:5000 (x-forwarded-for 1.2.3.4)", UserAgent: "Firefox/1"},
		{Employee: "sup", Role: "supervisor", Action: "open_conversation", Conv: "acc:c1", Remote: "10.0.0.1:5000", UserAgent: "Firefox/1"},
		{Employee: "cmp", Role: "compliance", Action: relay.AuditSearch, Detail: `{"text":"保证收益"}`, Remote: "10.0.0.2:1", UserAgent: "curl"},
	}
	for i := range want {
		want[i] = appendAudit(t, l, want[i])
	}
	if want[0].Number != 1 || want[1].Prev != want[0].Hash || want[2].Number != 3 {
		t.Fatalf("chain not linked: %+v", want)
	}
	// A second log of the same writer (a restart) continues the chain.
	l2 := auditLog(t, s, "w1", &clock)
	e4 := appendAudit(t, l2, relay.AuditEntry{Employee: "sup", Action: relay.AuditSignOut})
	if e4.Number != 4 || e4.Prev != want[2].Hash {
		t.Fatalf("restarted chain: number %d prev %q, want 4 and %q", e4.Number, e4.Prev, want[2].Hash)
	}
	latest, ok, err := s.LatestAudit(ctx, "w1")
	if err != nil || !ok || latest != e4 {
		t.Fatalf("LatestAudit = %+v, %v, %v; want %+v", latest, ok, err, e4)
	}
	if _, ok, err := s.LatestAudit(ctx, "nobody"); err != nil || ok {
		t.Fatalf("LatestAudit(nobody) = %v, %v", ok, err)
	}
	rep, err := relay.VerifyAudit(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.Records != 4 || len(rep.Chains) != 1 || rep.Chains[0].LastHash != e4.Hash {
		t.Fatalf("VerifyAudit = %+v", rep)
	}
	// A retried insert of the same record is harmless.
	if err := s.AppendAudit(ctx, e4); err != nil {
		t.Fatal(err)
	}
	if rep, err := relay.VerifyAudit(ctx, s); err != nil || !rep.OK {
		t.Fatalf("VerifyAudit after a retried insert = %+v, %v", rep, err)
	}
}

// Signed audit records come back with their key id and signature (the
// columns of migration 0007), from every reader, and still verify with
// the public key; unsigned ones come back unsigned; a retried insert of
// a signed record is harmless.
func testAuditSignatures(t *testing.T, s ComplianceStore) {
	ctx := testCtx(t)
	clock := base
	signer := relay.NewSealSigner(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)))
	l := auditLog(t, s, "signed", &clock)
	l.SignWith(signer)
	var want []relay.AuditEntry
	for i := range 2 {
		e := appendAudit(t, l, relay.AuditEntry{Employee: "sup", Role: "supervisor", Action: relay.AuditExport, Conv: fmt.Sprintf("acc:c%d", i)})
		if e.KeyID != signer.KeyID() || e.Signature == "" {
			t.Fatalf("Append left the record unsigned: %+v", e)
		}
		want = append(want, e)
	}
	unsigned := appendAudit(t, auditLog(t, s, "plain", &clock), relay.AuditEntry{Employee: "sup", Action: relay.AuditSignIn})
	if unsigned.KeyID != "" || unsigned.Signature != "" {
		t.Fatalf("a log without a signer signed: %+v", unsigned)
	}

	latest, ok, err := s.LatestAudit(ctx, "signed")
	if err != nil || !ok || latest != want[1] {
		t.Fatalf("LatestAudit = %+v, %v, %v; want %+v", latest, ok, err, want[1])
	}
	if got, ok, err := s.LatestAudit(ctx, "plain"); err != nil || !ok || got != unsigned {
		t.Fatalf("LatestAudit(plain) = %+v, %v, %v; want %+v", got, ok, err, unsigned)
	}
	found, err := s.SearchAudit(ctx, relay.AuditQuery{Action: relay.AuditExport})
	if err != nil || len(found) != 2 || found[0] != want[1] || found[1] != want[0] {
		t.Fatalf("SearchAudit = %+v, %v; want %+v", found, err, want)
	}
	var scanned []relay.AuditEntry
	if err := s.ScanAudit(ctx, func(e relay.AuditEntry) error {
		if e.Writer == "signed" {
			scanned = append(scanned, e)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(scanned) != 2 || scanned[0] != want[0] || scanned[1] != want[1] {
		t.Fatalf("ScanAudit = %+v; want %+v", scanned, want)
	}
	keys := map[string]ed25519.PublicKey{signer.KeyID(): signer.PublicKey()}
	for _, e := range scanned {
		if st := relay.CheckAuditSignature(e, keys); st != relay.SignatureValid {
			t.Errorf("the signature of %s read back does not verify: status %v", e.ID, st)
		}
	}

	if err := s.AppendAudit(ctx, want[1]); err != nil {
		t.Fatal(err)
	}
	rep, err := relay.VerifyAuditWith(ctx, s, relay.AuditVerifyOptions{
		PublicKeys: []ed25519.PublicKey{signer.PublicKey()}, AllowUnsignedBefore: unsigned.At.Add(time.Millisecond),
	})
	if err != nil {
		t.Fatal(err)
	}
	if sr := rep.Signatures; !rep.OK || sr.Valid != 2 || sr.Signed != 2 || sr.Unsigned != 1 || sr.UnsignedAllowed != 1 {
		t.Fatalf("VerifyAuditWith the key = %+v", rep)
	}
}

func testAuditSearch(t *testing.T, s ComplianceStore) {
	ctx := testCtx(t)
	clock := base
	l := auditLog(t, s, "w1", &clock)
	var all []relay.AuditEntry
	for i := range 6 {
		emp := []string{"a1", "sup"}[i%2]
		act := []string{relay.AuditSignIn, relay.AuditExport, relay.AuditTransfer}[i%3]
		all = append(all, appendAudit(t, l, relay.AuditEntry{Employee: emp, Action: act, Conv: fmt.Sprintf("acc:c%d", i)}))
	}
	got, err := s.SearchAudit(ctx, relay.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 6 || got[0].Number != 6 || got[5].Number != 1 {
		t.Fatalf("SearchAudit(all) = %d records, newest first wanted: %+v", len(got), got)
	}
	got, err = s.SearchAudit(ctx, relay.AuditQuery{Employee: "sup", Action: relay.AuditExport})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != all[1] {
		t.Fatalf("SearchAudit(sup, export) = %+v, want %+v", got, all[1])
	}
	got, err = s.SearchAudit(ctx, relay.AuditQuery{From: all[2].At, To: all[4].At})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Number != 4 || got[1].Number != 3 {
		t.Fatalf("SearchAudit(time range) = %+v", got)
	}
	if got, err = s.SearchAudit(ctx, relay.AuditQuery{Limit: 2}); err != nil || len(got) != 2 {
		t.Fatalf("SearchAudit(limit 2) = %d, %v", len(got), err)
	}
}

func testAuditTamper(t *testing.T, s ComplianceStore, tamper Tamper) {
	ctx := testCtx(t)
	clock := base
	l := auditLog(t, s, "w1", &clock)
	for range 3 {
		appendAudit(t, l, relay.AuditEntry{Employee: "sup", Action: "open_conversation", Conv: "acc:c1"})
	}
	tamper(t, "w1", 2)
	deadline := time.Now().Add(30 * time.Second)
	for {
		rep, err := relay.VerifyAudit(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK {
			if !slices.ContainsFunc(rep.Problems, func(p relay.AuditProblem) bool { return p.ID == "w1/audit/00000000000000000002" }) {
				t.Fatalf("problems do not name the forged record: %+v", rep.Problems)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the tampered audit record was not caught: %+v", rep)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func testAlertsReviews(t *testing.T, s ComplianceStore) {
	ctx := testCtx(t)
	lex, err := relay.NewLexicon([]relay.LexiconRule{
		{Name: "promise", Words: []string{"保证收益", "Guaranteed Return"}},
		{Name: "pct", Regex: []string{`\d+%\s*(yield|回报)`}, Direction: "inbound"},
	})
	if err != nil {
		t.Fatal(err)
	}
	w := &relay.LexiconWatcher{Lexicon: lex}
	in := message(conv("c1"), 1)
	in.Text = "你们保证收益吗？还有 8% 回报"
	out := message(conv("c2"), 1)
	out.Direction, out.Text = relay.Outbound, "We offer a GUARANTEED return of 5% yield"
	hits := append(w.Hits(in), w.Hits(out)...)
	// inbound: promise + pct; outbound: promise only (pct is inbound).
	if len(hits) != 3 {
		t.Fatalf("hits = %+v, want 3", hits)
	}
	if err := s.AppendHits(ctx, hits); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendHits(ctx, hits[:1]); err != nil { // a second instance writes the same
		t.Fatal(err)
	}
	got, err := s.Alerts(ctx, relay.AlertQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("Alerts = %d hits, want 3 (one per id): %+v", len(got), got)
	}
	rev := relay.AlertReview{ID: "r1", HitID: hits[0].ID, Decision: relay.DecisionEscalated, Comment: "看起来违规", Reviewer: "cmp", At: base.Add(time.Minute)}
	if err := s.AppendReview(ctx, rev); err != nil {
		t.Fatal(err)
	}
	rev2 := rev
	rev2.ID, rev2.Decision, rev2.At = "r2", relay.DecisionReviewed, base.Add(2*time.Minute)
	if err := s.AppendReview(ctx, rev2); err != nil {
		t.Fatal(err)
	}
	h, ok, err := s.Hit(ctx, hits[0].ID)
	if err != nil || !ok || h.Review == nil || h.Review.ID != "r2" || h.Review.Reviewer != "cmp" {
		t.Fatalf("Hit = %+v %v %v, want the latest review r2", h, ok, err)
	}
	open, err := s.Alerts(ctx, relay.AlertQuery{Status: "open"})
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 2 || slices.ContainsFunc(open, func(x relay.LexiconHit) bool { return x.ID == hits[0].ID }) {
		t.Fatalf("open alerts = %+v", open)
	}
	reviewed, err := s.Alerts(ctx, relay.AlertQuery{Status: relay.DecisionReviewed})
	if err != nil || len(reviewed) != 1 || reviewed[0].ID != hits[0].ID || reviewed[0].Matched == "" {
		t.Fatalf("reviewed alerts = %+v, %v", reviewed, err)
	}
	if _, ok, err := s.Hit(ctx, "hit-none"); err != nil || ok {
		t.Fatalf("Hit(none) = %v, %v", ok, err)
	}

	// By employee, filtered before the limit: a newer hit of another
	// team's employee does not crowd a supervisor's out.
	bob := relay.LexiconHit{ID: "hit-bob", Account: "acct", Conv: conv("c3"), MessageID: "m-bob", Direction: relay.Inbound,
		Employee: "bob", Rule: "promise", Matched: "保证", Excerpt: "保证", At: base.Add(time.Hour)}
	carol := bob
	carol.ID, carol.MessageID, carol.Employee, carol.At = "hit-carol", "m-carol", "carol", base.Add(2*time.Hour)
	if err := s.AppendHits(ctx, []relay.LexiconHit{bob, carol}); err != nil {
		t.Fatal(err)
	}
	got, err = s.Alerts(ctx, relay.AlertQuery{Employees: []string{"bob", ""}, Limit: 1})
	if err != nil || len(got) != 1 || got[0].ID != "hit-bob" {
		t.Fatalf("bob's newest alert = %+v, %v; want hit-bob", got, err)
	}
}

// testLexiconCatchUp runs the lexicon watcher's catch-up scan on the
// store (its Search and its hits): a message archived but never published
// is matched and alerted once; one whose hit is archived already (the bus
// path, or another instance) is not alerted; a later scan and a restarted
// watcher alert nothing again. It relies on Alerts bounding At by From and
// To like Search bounds AcceptedAt.
func testLexiconCatchUp(t *testing.T, s ComplianceStore) {
	ctx := testCtx(t)
	src, ok := s.(relay.Searcher)
	if !ok {
		t.Fatalf("%T is not a relay.Searcher", s)
	}
	lex, err := relay.NewLexicon([]relay.LexiconRule{{Name: "promise", Words: []string{"保证收益", "guaranteed return"}}})
	if err != nil {
		t.Fatal(err)
	}
	lost := message(conv("lost"), 100)
	lost.Text = "你们保证收益吗"
	seen := message(conv("seen"), 120)
	seen.Direction, seen.Text = relay.Outbound, "a Guaranteed Return"
	plain := message(conv("plain"), 130)
	early := message(conv("early"), 1) // before the first window
	early.Text = "保证收益"
	if err := s.Insert(ctx, []relay.Message{lost, seen, plain, early}); err != nil {
		t.Fatal(err)
	}
	// Windows: [base+25s, base+4m55s), then [base+25s, base+5m55s); a
	// restarted watcher's [base+1m25s, base+5m55s).
	now := base.Add(5 * time.Minute)
	var alerted []string
	watcher := func() *relay.LexiconWatcher {
		return &relay.LexiconWatcher{Lexicon: lex, Store: s, Scan: src, ScanOverlap: 4*time.Minute + 30*time.Second,
			Now: func() time.Time { return now }, Alert: func(h relay.LexiconHit) { alerted = append(alerted, h.ID) }}
	}
	w := watcher()
	// The bus delivered seen: its hit is archived (and was alerted).
	if err := s.AppendHits(ctx, w.Hits(seen)); err != nil {
		t.Fatal(err)
	}
	if n, err := w.CatchUp(ctx); err != nil || n != 1 {
		t.Fatalf("CatchUp = %d, %v; want 1 (lost)", n, err)
	}
	lostHit := relay.HitID(lost.ID, "promise")
	if !slices.Equal(alerted, []string{lostHit}) {
		t.Fatalf("alerted = %v, want lost's hit only", alerted)
	}
	if h, ok, err := s.Hit(ctx, lostHit); err != nil || !ok || h.MessageID != lost.ID || h.Rule != "promise" || !h.At.Equal(lost.AcceptedAt.Truncate(time.Millisecond)) {
		t.Fatalf("Hit(lost) = %+v, %v, %v", h, ok, err)
	}
	if _, ok, err := s.Hit(ctx, relay.HitID(early.ID, "promise")); err != nil || ok {
		t.Fatalf("early's hit archived (%v, %v): it is before the window", ok, err)
	}
	now = now.Add(time.Minute)
	if n, err := w.CatchUp(ctx); err != nil || n != 0 {
		t.Fatalf("second CatchUp = %d, %v; want 0", n, err)
	}
	if n, err := watcher().CatchUp(ctx); err != nil || n != 0 {
		t.Fatalf("CatchUp after a restart = %d, %v; want 0", n, err)
	}
	if len(alerted) != 1 {
		t.Fatalf("alerted = %v, want lost's hit once", alerted)
	}
	got, err := s.Alerts(ctx, relay.AlertQuery{})
	if err != nil || len(got) != 2 {
		t.Fatalf("Alerts = %+v, %v; want lost's and seen's hits", got, err)
	}
	// Alerts bounds At like Search bounds AcceptedAt: [From, To).
	at := lost.AcceptedAt.Truncate(time.Millisecond)
	for _, c := range []struct {
		from, to time.Time
		want     int
	}{{at, at.Add(time.Millisecond), 1}, {at.Add(time.Millisecond), seen.AcceptedAt, 0}, {early.AcceptedAt, at, 0}} {
		if got, err := s.Alerts(ctx, relay.AlertQuery{From: c.from, To: c.to}); err != nil || len(got) != c.want {
			t.Errorf("Alerts from %s to %s = %d hits, %v; want %d", c.from, c.to, len(got), err, c.want)
		}
	}
}

func testRetentionHold(t *testing.T, s ComplianceStore) {
	ctx := testCtx(t)
	at := func(y int, m time.Month) time.Time { return time.Date(y, m, 10, 12, 0, 0, 0, time.UTC) }
	var msgs []relay.Message
	add := func(account, client string, seq uint64, when time.Time) {
		c := relay.Conversation(account, client)
		m := message(c, seq)
		m.ID = fmt.Sprintf("%s-%d", c, seq)
		m.Account, m.Client, m.AcceptedAt, m.CreatedAt = account, client, when, when
		msgs = append(msgs, m)
	}
	add("acc", "old1", 1, at(2018, 1))
	add("acc", "old1", 2, at(2018, 1))
	add("acc", "held", 1, at(2018, 2))
	add("acc", "old1", 3, at(2018, 2))
	add("acc", "new", 1, at(2026, 1))
	add("other", "x", 1, at(2018, 1))
	if err := s.Insert(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	lh, err := relay.NewLegalHolds(s, relay.RecordTrust{})
	if err != nil {
		t.Fatal(err)
	}
	noAudit := func(relay.Hold) error { return nil }
	if _, err := lh.Place(ctx, relay.Hold{ID: "h1", Account: "acc", Client: "held", Reason: "litigation 2026-17", PlacedBy: "cmp", At: base}, noAudit); err != nil {
		t.Fatal(err)
	}
	holds, err := lh.InForce(ctx)
	if err != nil || len(holds) != 1 || holds[0].Client != "held" || holds[0].PlacedBy != "cmp" {
		t.Fatalf("Holds = %+v, %v", holds, err)
	}
	rep, err := relay.BuildRetentionReport(ctx, lh, map[string]relay.Retention{"acc": {N: 7, Unit: 'y'}}, time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		acc, month         string
		n, held            int
		expired, droppable bool
	}
	var got []row
	for _, r := range rep.Rows {
		got = append(got, row{r.Account, r.Month, r.Messages, r.Held, r.Expired, r.Droppable})
	}
	want := []row{
		{"acc", "201801", 2, 0, true, true},
		{"acc", "201802", 2, 1, true, false},
		{"acc", "202601", 1, 0, false, false},
		{"other", "201801", 1, 0, false, false},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("retention report rows:\n got %+v\nwant %+v", got, want)
	}
	if len(rep.Holds) != 1 {
		t.Fatalf("report holds = %+v", rep.Holds)
	}
	// 201801 holds "other" too, which keeps everything: not droppable as a
	// whole partition.
	wantParts := []relay.PartitionRow{
		{Month: "201801", Messages: 3, Held: 0, Droppable: false},
		{Month: "201802", Messages: 2, Held: 1, Droppable: false},
		{Month: "202601", Messages: 1, Held: 0, Droppable: false},
	}
	if !slices.Equal(rep.Partitions, wantParts) {
		t.Fatalf("partitions:\n got %+v\nwant %+v", rep.Partitions, wantParts)
	}
	rep, err = relay.BuildRetentionReport(ctx, lh, map[string]relay.Retention{"*": {N: 7, Unit: 'y'}}, time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if p := rep.Partitions[0]; p.Month != "201801" || !p.Droppable {
		t.Fatalf("201801 with every account expired: %+v", p)
	}
}
