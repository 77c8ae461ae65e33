package verify

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// Source is the archive as Archive reads it. Every method returns
// physical rows: the copies a replay leaves (ClickHouse keeps them until
// its parts merge) included, so that Archive sees what is stored, not
// what a collapsing read would show.
type Source interface {
	// Seals returns stored seals that come after `after` in the order
	// (writer, stream, number) — from the first for a nil after — in that
	// order, stored copies of one seal one after another. A page holds
	// about limit seals: fewer is allowed (a backend may read a range of
	// numbers at a time), and so is a page that ends in the middle of
	// the copies of its last seal when it holds limit or more (limit <= 0:
	// no bound); an empty page means there are no more.
	Seals(ctx context.Context, after *relay.SealKey, limit int) ([]relay.Seal, error)
	// ScanBatches calls fn for every stored row (messages and events)
	// whose batch id b has from <= b <= to in byte order. An error from
	// fn ends the scan and is returned.
	ScanBatches(ctx context.Context, from, to string, fn func(relay.StoredRow) error) error
	// ScanUnsealed calls fn for every stored row whose batch id is not
	// the id of any stored seal (the empty batch id included).
	ScanUnsealed(ctx context.Context, fn func(relay.StoredRow) error) error
}

func keyOf(s relay.Seal) relay.SealKey {
	return relay.SealKey{Writer: s.Writer, Stream: s.Stream, Number: s.Number}
}

// Options tune Archive. The zero value of each field selects the
// default in its comment.
type Options struct {
	// Witnesses are seal hashes an outside witness kept (from the
	// "archive seal" log lines); each must be found, intact.
	Witnesses []string
	// ChunkRows bounds the rows whose seals are held in memory at once;
	// each chunk is one scan of the batch ids (100000).
	ChunkRows int
	// SealPage is how many seals one query reads (1000).
	SealPage int
	// MaxProblems bounds the problems listed; all are counted (10000).
	MaxProblems int
	// Progress, if set, is called after each chunk.
	Progress func(Progress)
	// PublicKeys, if any, are the writers' seal keys (relay/seal_sign.go):
	// every seal must then carry a signature that one of them verifies.
	PublicKeys []ed25519.PublicKey
	// AllowUnsignedBefore, with PublicKeys, accepts an unsigned seal made
	// (its At) before this time — one written before signing was turned
	// on — unless a signed seal comes before it in its chain: a chain
	// that was signed once stays signed. Zero: no unsigned seal is
	// accepted.
	AllowUnsignedBefore time.Time
}

func (o Options) withDefaults() Options {
	if o.ChunkRows <= 0 {
		o.ChunkRows = 100000
	}
	if o.SealPage <= 0 {
		o.SealPage = 1000
	}
	if o.MaxProblems <= 0 {
		o.MaxProblems = 10000
	}
	return o
}

// maxOrphans bounds the unsealed rows held between the first scan and
// the seals; beyond it they are counted without their ids.
const maxOrphans = 1_000_000

// Archive recomputes every hash, Merkle root and chain link from the
// archive and reports every row that is missing, altered or inserted,
// and every seal that is altered, missing or out of its chain.
//
// It streams: rows are read one chunk of seals at a time (ChunkRows),
// never all at once. It may run while relays write: rows are read
// before the seals that cover them, and a batch sealed during the run is
// verified with its seal, not reported unsealed. A batch sealed after
// the run began may or may not be included.
//
// An error means the archive could not be read; problems found are in
// the report, not errors.
func Archive(ctx context.Context, src Source, opt Options) (*Report, error) {
	v := &verifier{
		ctx: ctx, src: src, opt: opt.withDefaults(),
		rep:       &Report{Counts: map[relay.ProblemKind]int{}},
		convs:     map[relay.ConversationID]*Conversation{},
		orphans:   map[string]*orphanBatch{},
		chains:    map[chainKey]*chainState{},
		witnesses: map[string]*relay.WitnessReport{},
	}
	if len(opt.PublicKeys) > 0 {
		v.keys = map[string]ed25519.PublicKey{}
		sr := &v.rep.Signatures
		sr.Checked = true
		for _, k := range opt.PublicKeys {
			id := relay.SealKeyID(k)
			if _, dup := v.keys[id]; !dup {
				v.keys[id] = k
				sr.Keys = append(sr.Keys, id)
			}
		}
		if !opt.AllowUnsignedBefore.IsZero() {
			t := opt.AllowUnsignedBefore.UTC()
			sr.AllowUnsignedBefore = &t
		}
	}
	for _, h := range opt.Witnesses {
		h = strings.ToLower(strings.TrimSpace(h))
		if h != "" && v.witnesses[h] == nil {
			v.witnesses[h] = &relay.WitnessReport{Hash: h}
		}
	}
	// Unsealed rows first: a batch whose seal is written after this scan
	// is then found with its seal below, and taken off the list.
	if err := src.ScanUnsealed(ctx, v.orphan); err != nil {
		return nil, fmt.Errorf("verify: reading unsealed rows: %w", err)
	}
	if err := v.readSeals(nil, nil); err != nil {
		return nil, err
	}
	// Rows found unsealed whose seal came after its chain was read:
	// read those chains on.
	for _, ck := range v.lateChains() {
		after := relay.SealKey{Writer: ck.writer, Stream: ck.stream}
		if cs := v.chains[ck]; cs != nil {
			after.Number = cs.last
		}
		if err := v.readSeals(&after, &ck); err != nil {
			return nil, err
		}
	}
	v.finish()
	return v.rep, nil
}

type chainKey struct{ writer, stream string }

// chainState is a chain as read so far.
type chainState struct {
	report   *Chain
	last     uint64 // number of the last seal read
	lastHash string // its stored hash
	signed   bool   // a signed seal was read: every later one must be signed
}

// orphanBatch holds the unsealed rows of one batch id.
type orphanBatch struct {
	rows  []Problem
	seen  map[string]bool // table + id: one report per row
	extra int             // rows beyond maxOrphans, counted only
}

type verifier struct {
	ctx context.Context
	src Source
	opt Options
	rep *Report

	convs     map[relay.ConversationID]*Conversation
	orphans   map[string]*orphanBatch
	nOrphans  int
	chains    map[chainKey]*chainState
	order     []chainKey
	witnesses map[string]*relay.WitnessReport
	keys      map[string]ed25519.PublicKey // by key id; nil: signatures are not checked

	cur   *chainState
	chunk *chunk
	rows  int
}

// chunk is a run of consecutive seals of one chain whose rows are read
// in one scan.
type chunk struct {
	seals    map[string]*sealCheck
	from, to string
	leaves   int
}

// sealCheck is one seal and the rows found under its id.
type sealCheck struct {
	seal   relay.Seal
	leaves map[string]relay.Leaf
	rows   map[string]*rowCheck // by id
	order  []string             // ids in the order first seen
}

// rowCheck is what was found of one id in a batch.
type rowCheck struct {
	table     string
	conv      relay.ConversationID
	hash      string // computed from the first copy
	conflict  bool   // another copy has other content
	badColumn bool   // a copy's hash column differs from its content
}

func (v *verifier) problem(p Problem) {
	v.rep.Counts[p.Kind]++
	if len(v.rep.Problems) < v.opt.MaxProblems {
		v.rep.Problems = append(v.rep.Problems, p)
	}
	if p.Conv == "" {
		return
	}
	c := v.convs[p.Conv]
	if c == nil {
		c = &Conversation{Conv: p.Conv}
		v.convs[p.Conv] = c
	}
	switch p.Kind {
	case relay.ProblemMissing:
		c.Missing++
	case relay.ProblemAltered:
		c.Altered++
	case relay.ProblemInserted:
		c.Inserted++
	}
}

// orphan keeps an unsealed row until the seals are read.
func (v *verifier) orphan(r relay.StoredRow) error {
	b := r.BatchID()
	o := v.orphans[b]
	if o == nil {
		o = &orphanBatch{seen: map[string]bool{}}
		v.orphans[b] = o
	}
	key := r.Table() + "\x00" + r.ID()
	if o.seen[key] {
		return nil
	}
	if v.nOrphans >= maxOrphans {
		o.extra++
		return nil
	}
	v.nOrphans++
	o.seen[key] = true
	detail := "no seal covers it: its batch " + b + " has no seal"
	if b == "" {
		detail = "no seal covers it: it has no batch id"
	}
	o.rows = append(o.rows, Problem{Kind: relay.ProblemInserted, Table: r.Table(), ID: r.ID(), Conv: r.Conv(), Batch: b, Detail: detail})
	return nil
}

// readSeals reads seals after `after` (all, for nil), only of chain
// `only` if it is set, checking each chain and each chunk's rows.
func (v *verifier) readSeals(after *relay.SealKey, only *chainKey) error {
	limit := v.opt.SealPage
	for {
		page, err := v.src.Seals(v.ctx, after, limit)
		if err != nil {
			return fmt.Errorf("verify: reading seals: %w", err)
		}
		last := len(page) == 0
		if only != nil {
			n := 0
			for n < len(page) && page[n].Writer == only.writer && page[n].Stream == only.stream {
				n++
			}
			if n < len(page) {
				page, last = page[:n], true // the chain ends here
			}
		}
		use := page
		if !last && len(page) >= limit {
			// A full page: the copies of its last seal may go on in the
			// next one, so that seal is read again with them.
			k := keyOf(page[len(page)-1])
			i := len(page)
			for i > 0 && keyOf(page[i-1]) == k {
				i--
			}
			if i == 0 {
				limit *= 2 // one seal with a page of copies: read more at once
				continue
			}
			use = page[:i]
		}
		for i := 0; i < len(use); {
			j := i + 1
			for j < len(use) && keyOf(use[j]) == keyOf(use[i]) {
				j++
			}
			if err := v.addSeal(use[i:j]); err != nil {
				return err
			}
			i = j
		}
		if last || len(use) == 0 {
			return v.flush()
		}
		k := keyOf(use[len(use)-1])
		after = &k
	}
}

// addSeal checks one seal (all its stored copies) against its chain and
// adds it to the current chunk.
func (v *verifier) addSeal(copies []relay.Seal) error {
	s := copies[0]
	ck := chainKey{s.Writer, s.Stream}
	cs := v.chains[ck]
	if cs == nil || cs != v.cur {
		if err := v.flush(); err != nil {
			return err
		}
	}
	if cs == nil {
		cs = &chainState{report: &Chain{Writer: s.Writer, Stream: s.Stream, First: s.Number}}
		v.chains[ck] = cs
		v.order = append(v.order, ck)
	}
	v.cur = cs

	// Copies: identical ones are a retried insert; different ones are
	// two seals claiming one place.
	distinct := []relay.Seal{s}
	for _, c := range copies[1:] {
		if !slices.ContainsFunc(distinct, func(d relay.Seal) bool { return sameSeal(c, d) }) {
			distinct = append(distinct, c)
		}
	}
	if len(distinct) > 1 {
		v.problem(Problem{Kind: relay.ProblemSealAltered, Table: "seals", ID: s.ID,
			Detail: fmt.Sprintf("%d different seals stored as number %d of %s/%s", len(distinct), s.Number, s.Writer, s.Stream)})
		// Go on with the one that fits: intact and linked to the chain
		// (and, when keys are given, validly signed, if one is).
		fits := func(d relay.Seal) bool { return d.Flaw() == "" && (cs.last == 0 || d.Prev == cs.lastHash) }
		if i := slices.IndexFunc(distinct, func(d relay.Seal) bool {
			return fits(d) && v.keys != nil && relay.CheckSealSignature(d, v.keys) == relay.SignatureValid
		}); i >= 0 {
			s = distinct[i]
		} else if i := slices.IndexFunc(distinct, fits); i >= 0 {
			s = distinct[i]
		}
	}

	if why := s.Flaw(); why != "" {
		v.problem(Problem{Kind: relay.ProblemSealAltered, Table: "seals", ID: s.ID, Detail: why})
	}
	want := relay.BatchID(s.Writer, s.Stream, s.Number)
	if s.ID != want {
		v.problem(Problem{Kind: relay.ProblemSealAltered, Table: "seals", ID: s.ID,
			Detail: fmt.Sprintf("its id does not match its place in the chain (%s)", want)})
	}
	switch {
	case cs.last == 0 && s.Number > 1:
		v.problem(Problem{Kind: relay.ProblemSealMissing, Table: "seals", ID: relay.BatchID(s.Writer, s.Stream, 1),
			Detail: fmt.Sprintf("the chain %s/%s starts at seal %d: seals 1 to %d are missing", s.Writer, s.Stream, s.Number, s.Number-1)})
	case cs.last == 0 && s.Prev != "":
		v.problem(Problem{Kind: relay.ProblemChainBroken, Table: "seals", ID: s.ID,
			Detail: "the first seal of the chain names a previous seal"})
	case cs.last != 0 && s.Number > cs.last+1:
		what := fmt.Sprintf("seal %d", cs.last+1)
		if s.Number > cs.last+2 {
			what = fmt.Sprintf("seals %d to %d", cs.last+1, s.Number-1)
		}
		v.problem(Problem{Kind: relay.ProblemSealMissing, Table: "seals", ID: relay.BatchID(s.Writer, s.Stream, cs.last+1),
			Detail: fmt.Sprintf("%s of %s/%s missing between %d and %d", what, s.Writer, s.Stream, cs.last, s.Number)})
	case cs.last != 0 && s.Prev != cs.lastHash:
		v.problem(Problem{Kind: relay.ProblemChainBroken, Table: "seals", ID: s.ID,
			Detail: fmt.Sprintf("its prev %s is not the hash %s of seal %d: seal %d was rewritten or replaced, and the rows it lists are unproven",
				short(s.Prev), short(cs.lastHash), cs.last, cs.last)})
	}
	if w := v.witnesses[strings.ToLower(s.Hash)]; w != nil && s.Flaw() == "" {
		w.Found, w.Seal = true, s.ID
	}
	v.checkSignature(cs, s)

	cs.last, cs.lastHash = s.Number, s.Hash
	r := cs.report
	r.Seals++
	r.Last, r.LastHash, r.LastAt = s.Number, s.Hash, s.At
	r.Rows += len(s.Leaves)
	v.rep.Seals++

	// The rows found unsealed before the seals were read were waiting
	// for this one.
	for _, c := range copies {
		delete(v.orphans, c.ID)
	}

	if v.chunk == nil {
		v.chunk = &chunk{seals: map[string]*sealCheck{}, from: s.ID, to: s.ID}
	}
	if _, dup := v.chunk.seals[s.ID]; dup {
		return nil // an id used twice (reported above): its rows are checked once
	}
	sc := &sealCheck{seal: s, leaves: make(map[string]relay.Leaf, len(s.Leaves)), rows: map[string]*rowCheck{}}
	for _, l := range s.Leaves {
		sc.leaves[l.ID] = l
	}
	v.chunk.seals[s.ID] = sc
	v.chunk.from = min(v.chunk.from, s.ID)
	v.chunk.to = max(v.chunk.to, s.ID)
	v.chunk.leaves += len(s.Leaves)
	if v.chunk.leaves >= v.opt.ChunkRows {
		return v.flush()
	}
	return nil
}

// sameSeal reports whether two stored copies of a seal are identical,
// signature included (Ed25519 signs deterministically: a seal stored
// again carries the same one).
func sameSeal(a, b relay.Seal) bool {
	return a.ID == b.ID && a.Hash == b.Hash && a.ComputeHash() == b.ComputeHash() &&
		a.KeyID == b.KeyID && a.Signature == b.Signature
}

// checkSignature counts s's signature and, when keys are given, checks
// it: a bad one, one by an unknown key, and a missing one that
// AllowUnsignedBefore does not cover are problems.
func (v *verifier) checkSignature(cs *chainState, s relay.Seal) {
	sr := &v.rep.Signatures
	signed := s.KeyID != "" || s.Signature != ""
	after := cs.signed
	if signed {
		sr.Signed++
		cs.report.Signed++
		cs.signed = true
		if sr.ByKey == nil {
			sr.ByKey = map[string]int{}
		}
		sr.ByKey[s.KeyID]++
	} else {
		sr.Unsigned++
		cs.report.Unsigned++
	}
	if v.keys == nil {
		return
	}
	place := fmt.Sprintf("seal %d of writer %s, stream %s", s.Number, s.Writer, s.Stream)
	p := Problem{Table: "seals", ID: s.ID}
	switch relay.CheckSealSignature(s, v.keys) {
	case relay.SignatureValid:
		sr.Valid++
		return
	case relay.SignatureBad:
		sr.Bad++
		p.Kind, p.Detail = relay.ProblemBadSignature, fmt.Sprintf("%s: its signature by key %s does not verify: the seal was written or rewritten without that key", place, s.KeyID)
	case relay.SignatureUnknownKey:
		sr.UnknownKey++
		key := s.KeyID
		if key == "" {
			key = `""`
		}
		p.Kind, p.Detail = relay.ProblemUnknownKey, fmt.Sprintf("%s: signed by key %s, which is not among the public keys given", place, key)
	case relay.SignatureUnsigned:
		cut := v.opt.AllowUnsignedBefore
		switch {
		case !cut.IsZero() && s.At.Before(cut) && !after:
			sr.UnsignedAllowed++
			return
		case !cut.IsZero() && after:
			p.Detail = fmt.Sprintf("%s: not signed, and an earlier seal of its chain is: a signed chain stays signed", place)
		case !cut.IsZero():
			p.Detail = fmt.Sprintf("%s: not signed, and made at %s, not before %s", place, s.At.UTC().Format(time.RFC3339Nano), cut.UTC().Format(time.RFC3339Nano))
		default:
			p.Detail = fmt.Sprintf("%s: not signed (seals written before signing was turned on: -allow-unsigned-before TIME)", place)
		}
		sr.UnsignedRefused++
		p.Kind = relay.ProblemUnsigned
	}
	v.problem(p)
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12] + "…"
	}
	if h == "" {
		return `""`
	}
	return h
}

// flush reads the rows of the current chunk's seals and checks them.
func (v *verifier) flush() error {
	c := v.chunk
	if c == nil {
		return nil
	}
	v.chunk = nil
	err := v.src.ScanBatches(v.ctx, c.from, c.to, func(r relay.StoredRow) error {
		sc := c.seals[r.BatchID()]
		if sc == nil {
			return nil // another chunk's, or unsealed (reported by ScanUnsealed)
		}
		v.rows++
		id := r.ID()
		h := r.ComputeHash()
		rc := sc.rows[id]
		if rc == nil {
			rc = &rowCheck{table: r.Table(), conv: r.Conv(), hash: h}
			sc.rows[id] = rc
			sc.order = append(sc.order, id)
		} else if h != rc.hash || r.Table() != rc.table {
			rc.conflict = true
		}
		if r.StoredHash() != h {
			rc.badColumn = true
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("verify: reading the rows of batches %s to %s: %w", c.from, c.to, err)
	}
	ids := make([]string, 0, len(c.seals))
	for id := range c.seals {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		v.checkBatch(c.seals[id])
	}
	if v.opt.Progress != nil {
		v.opt.Progress(Progress{Seals: v.rep.Seals, Rows: v.rows, Problems: v.problems()})
	}
	return nil
}

func (v *verifier) problems() int {
	n := 0
	for _, c := range v.rep.Counts {
		n += c
	}
	return n
}

// checkBatch compares the rows found under a seal's id with its leaves.
func (v *verifier) checkBatch(sc *sealCheck) {
	s := sc.seal
	for _, id := range sc.order {
		rc := sc.rows[id]
		p := Problem{Table: rc.table, ID: id, Conv: rc.conv, Batch: s.ID}
		leaf, listed := sc.leaves[id]
		switch {
		case rc.table != s.Stream:
			p.Kind, p.Detail = relay.ProblemInserted, fmt.Sprintf("a row of %s in a batch of %s", rc.table, s.Stream)
		case !listed:
			p.Kind, p.Detail = relay.ProblemInserted, "its batch's seal does not list it"
		case rc.conflict:
			p.Kind, p.Detail = relay.ProblemAltered, "stored copies of it differ"
		case rc.hash != leaf.Hash:
			p.Kind, p.Detail = relay.ProblemAltered, fmt.Sprintf("its content hashes to %s, its seal recorded %s", short(rc.hash), short(leaf.Hash))
		case rc.badColumn:
			p.Kind, p.Detail = relay.ProblemAltered, "its hash column does not match its content"
		default:
			if rc.table == relay.StreamMessages {
				v.rep.Messages++
			} else {
				v.rep.Events++
			}
			continue
		}
		v.problem(p)
	}
	for _, l := range s.Leaves {
		if _, found := sc.rows[l.ID]; !found {
			v.problem(Problem{Kind: relay.ProblemMissing, Table: s.Stream, ID: l.ID, Conv: l.Conv, Batch: s.ID,
				Detail: "its seal lists it, the archive does not have it"})
		}
	}
}

// lateChains returns the chains that unsealed rows claim to belong to
// beyond the last seal read: their seal may have been written during
// the run.
func (v *verifier) lateChains() []chainKey {
	var out []chainKey
	seen := map[chainKey]bool{}
	for b := range v.orphans {
		w, s, n, ok := relay.ParseBatchID(b)
		ck := chainKey{w, s}
		if !ok || seen[ck] {
			continue
		}
		if cs := v.chains[ck]; cs == nil || n > cs.last {
			seen[ck] = true
			out = append(out, ck)
		}
	}
	slices.SortFunc(out, func(a, b chainKey) int {
		return cmp.Or(cmp.Compare(a.writer, b.writer), cmp.Compare(a.stream, b.stream))
	})
	return out
}

// finish reports what is left unsealed and sums up.
func (v *verifier) finish() {
	batches := make([]string, 0, len(v.orphans))
	for b := range v.orphans {
		batches = append(batches, b)
	}
	slices.Sort(batches)
	for _, b := range batches {
		o := v.orphans[b]
		next := ""
		if w, s, n, ok := relay.ParseBatchID(b); ok {
			if cs := v.chains[chainKey{w, s}]; (cs == nil && n == 1) || (cs != nil && n == cs.last+1) {
				next = fmt.Sprintf(" (the next batch of writer %s: a crash before its seal was written leaves this until that writer starts again)", w)
			}
		}
		for _, p := range o.rows {
			p.Detail += next
			v.problem(p)
		}
		for range o.extra {
			v.problem(Problem{Kind: relay.ProblemInserted, Batch: b, Detail: "no seal covers it (one of many: not listed)"})
		}
	}
	for _, ck := range v.order {
		v.rep.Chains = append(v.rep.Chains, *v.chains[ck].report)
	}
	hashes := make([]string, 0, len(v.witnesses))
	for h := range v.witnesses {
		hashes = append(hashes, h)
	}
	slices.Sort(hashes)
	for _, h := range hashes {
		w := v.witnesses[h]
		v.rep.Witnesses = append(v.rep.Witnesses, *w)
		if !w.Found {
			v.problem(Problem{Kind: relay.ProblemWitnessMissing, Table: "seals", ID: h,
				Detail: "a witnessed seal is not in the archive, or not intact"})
		}
	}
	for _, c := range v.convs {
		v.rep.Conversations = append(v.rep.Conversations, *c)
	}
	slices.SortFunc(v.rep.Conversations, func(a, b Conversation) int { return cmp.Compare(a.Conv, b.Conv) })
	v.rep.OK = v.problems() == 0
}
