package relay

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// ErrTagNotFound is returned by RemoveTag for a tag the vocabulary does
// not hold.
var ErrTagNotFound = errors.New("no such tag")

// Profiles reads and changes client profiles and tag vocabularies,
// signed and checked (profile_sign.go).
type Profiles struct {
	store    ProfileStore
	profiles *recordChecker
	tags     *recordChecker

	// mu keeps this instance's changes from crossing between reading the
	// head of a chain and archiving the version that follows it. Two
	// instances may still both write a version N+1; both count, and the
	// later one is shown.
	mu sync.Mutex
}

// NewProfiles reads and writes the profiles of st, checked with t.
func NewProfiles(st ProfileStore, t RecordTrust) (*Profiles, error) {
	p, err := newRecordChecker(profileKind, t)
	if err != nil {
		return nil, err
	}
	tg, err := newRecordChecker(tagSetKind, t)
	if err != nil {
		return nil, err
	}
	return &Profiles{store: st, profiles: p, tags: tg}, nil
}

// chainHeads is, per chain of cs, the index of its newest version that
// counts by v (-1 when none does) and why the others do not.
func chainHeads(cs []chained, v []verdict) map[string]*chainState {
	out := map[string]*chainState{}
	for i, c := range cs {
		st := out[c.Chain]
		if st == nil {
			st = &chainState{head: -1}
			out[c.Chain] = st
		}
		if v[i].Kind != "" {
			st.refused = append(st.refused, fmt.Sprintf("version %d refused (%s): %s", c.Seal.Version, v[i].Kind, v[i].Detail))
			continue
		}
		if st.head < 0 || laterVersion(c, cs[st.head]) {
			st.head = i
		}
	}
	return out
}

type chainState struct {
	head    int
	refused []string
}

// laterVersion reports whether a is a later version than b: a higher version,
// or of the same version (two instances wrote it at once) the later one.
func laterVersion(a, b chained) bool {
	if c := cmp.Compare(a.Seal.Version, b.Seal.Version); c != 0 {
		return c > 0
	}
	if !a.At.Equal(b.At) {
		return a.At.After(b.At)
	}
	return a.Computed > b.Computed
}

// Current returns the profile of each client q selects that has one: its
// newest version that verifies, with Refused saying why newer ones do
// not. A client none of whose versions verify is listed with Version 0,
// its fields empty, and Refused.
func (s *Profiles) Current(ctx context.Context, q ProfileQuery) (map[ConversationID]ClientProfile, error) {
	recs, err := s.store.ProfileRecords(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("reading client profiles: %w", err)
	}
	return s.current(ctx, recs)
}

func (s *Profiles) current(ctx context.Context, recs []ClientProfile) (map[ConversationID]ClientProfile, error) {
	cs := make([]chained, len(recs))
	for i, r := range recs {
		cs[i] = r.chained()
	}
	v, err := s.profiles.judge(ctx, cs)
	if err != nil {
		return nil, fmt.Errorf("checking client profiles: %w", err)
	}
	out := map[ConversationID]ClientProfile{}
	for chain, st := range chainHeads(cs, v) {
		var p ClientProfile
		if st.head >= 0 {
			p = recs[st.head]
		} else {
			p.Account, p.OpenID = ConversationID(chain).Split()
		}
		p.Refused = strings.Join(st.refused, "; ")
		out[ConversationID(chain)] = p
	}
	return out, nil
}

// Get returns the current profile of the client; Version 0 when it has
// none (yet).
func (s *Profiles) Get(ctx context.Context, account, openid string) (ClientProfile, error) {
	conv := Conversation(account, openid)
	cur, err := s.Current(ctx, ProfileQuery{Account: account, Convs: []ConversationID{conv}})
	if err != nil {
		return ClientProfile{}, err
	}
	p, ok := cur[conv]
	if !ok {
		p = ClientProfile{Account: account, OpenID: openid}
	}
	if p.Tags == nil {
		p.Tags = []string{}
	}
	return p, nil
}

// History returns every version of the client's profile, oldest first;
// Refused is set on each version that does not verify.
func (s *Profiles) History(ctx context.Context, account, openid string) ([]ClientProfile, error) {
	recs, err := s.store.ProfileRecords(ctx, ProfileQuery{Account: account, Convs: []ConversationID{Conversation(account, openid)}})
	if err != nil {
		return nil, fmt.Errorf("reading the profile of %s: %w", openid, err)
	}
	cs := make([]chained, len(recs))
	for i, r := range recs {
		cs[i] = r.chained()
	}
	v, err := s.profiles.judge(ctx, cs)
	if err != nil {
		return nil, fmt.Errorf("checking the profile of %s: %w", openid, err)
	}
	for i := range recs {
		if v[i].Kind != "" {
			recs[i].Refused = fmt.Sprintf("%s: %s", v[i].Kind, v[i].Detail)
		}
	}
	slices.SortStableFunc(recs, func(a, b ClientProfile) int {
		if c := cmp.Compare(a.Version, b.Version); c != 0 {
			return c
		}
		return a.At.Compare(b.At)
	})
	return recs, nil
}

// Find returns the current profiles of account ("" every account) whose
// text matches (ClientProfile.Matches) and that carry tag ("" any).
func (s *Profiles) Find(ctx context.Context, account, text, tag string) ([]ClientProfile, error) {
	cur, err := s.Current(ctx, ProfileQuery{Account: account})
	if err != nil {
		return nil, err
	}
	var out []ClientProfile
	for _, p := range cur {
		if p.Version > 0 && p.Matches(text) && (tag == "" || slices.Contains(p.Tags, tag)) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b ClientProfile) int { return strings.Compare(string(a.Conv()), string(b.Conv())) })
	return out, nil
}

// Save archives p (its Account, OpenID, Name, Remark, Tags, Note, By and
// At) as the version after the client's current one, whose Version must
// be expect (0: the client has no profile yet), else
// ErrProfileConflict. audit is called with the current version (nil for
// none) and the new one, sealed, to write its audit record
// (ProfileAuditDetail); an error of audit stops it. A p that changes
// nothing archives nothing and returns the current version.
func (s *Profiles) Save(ctx context.Context, p ClientProfile, expect uint64, audit func(before *ClientProfile, after ClientProfile) error) (ClientProfile, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	conv := p.Conv()
	if err := validClientKey(p.Account, p.OpenID); err != nil {
		return ClientProfile{}, fmt.Errorf("%w: %v", ErrProfileInvalid, err)
	}
	recs, err := s.store.ProfileRecords(ctx, ProfileQuery{Account: p.Account, Convs: []ConversationID{conv}})
	if err != nil {
		return ClientProfile{}, fmt.Errorf("reading the profile of %s: %w", p.OpenID, err)
	}
	cur, err := s.current(ctx, recs)
	if err != nil {
		return ClientProfile{}, err
	}
	var before *ClientProfile
	if c, ok := cur[conv]; ok && c.Version > 0 {
		before = &c
	}
	var have uint64
	var kept []string
	if before != nil {
		have, kept = before.Version, before.Tags
	}
	if have != expect {
		return ClientProfile{}, fmt.Errorf("%w: it is at version %d, not %d; reload it", ErrProfileConflict, have, expect)
	}
	vocab, err := s.Tags(ctx, p.Account)
	if err != nil {
		return ClientProfile{}, err
	}
	if p.Tags == nil {
		p.Tags = []string{}
	}
	if err := ValidateProfile(p, vocab.Tags, kept); err != nil {
		return ClientProfile{}, err
	}
	if before != nil && before.SameContent(p) {
		return *before, nil
	}
	p.At, p.RecordSeal, p.Refused = p.At.UTC().Truncate(time.Millisecond), RecordSeal{}, ""
	cs := make([]chained, len(recs))
	for i, r := range recs {
		cs[i] = r.chained()
	}
	if err := s.profiles.seal(ctx, cs, string(conv), &p.RecordSeal, func() string { return p.ComputeHash() }); err != nil {
		return ClientProfile{}, fmt.Errorf("sealing the profile of %s: %w", p.OpenID, err)
	}
	if err := audit(before, p); err != nil {
		return ClientProfile{}, fmt.Errorf("auditing the profile of %s: %w", p.OpenID, err)
	}
	s.profiles.wrote(p.Hash)
	if err := s.store.AppendProfile(ctx, p); err != nil {
		return ClientProfile{}, fmt.Errorf("archiving the profile of %s: %w", p.OpenID, err)
	}
	return p, nil
}

// Tags returns the current vocabulary of account: its newest version
// that verifies (Version 0, no tags, when it has none).
func (s *Profiles) Tags(ctx context.Context, account string) (TagSet, error) {
	_, cur, err := s.tagSets(ctx, account)
	return cur, err
}

// tagSets reads account's vocabulary versions and picks the current one.
func (s *Profiles) tagSets(ctx context.Context, account string) ([]chained, TagSet, error) {
	recs, err := s.store.TagSetRecords(ctx, account)
	if err != nil {
		return nil, TagSet{}, fmt.Errorf("reading the tags of %s: %w", account, err)
	}
	cs := make([]chained, len(recs))
	for i, r := range recs {
		cs[i] = r.chained()
	}
	v, err := s.tags.judge(ctx, cs)
	if err != nil {
		return nil, TagSet{}, fmt.Errorf("checking the tags of %s: %w", account, err)
	}
	cur := TagSet{Account: account, Tags: []string{}}
	if st := chainHeads(cs, v)[account]; st != nil {
		if st.head >= 0 {
			cur = recs[st.head]
		}
		cur.Refused = strings.Join(st.refused, "; ")
	}
	return cs, cur, nil
}

// AddTag adds tag to account's vocabulary, by by at at; audit is called
// with the new version, sealed, to write its audit record
// (TagSetAuditDetail). A tag already there changes nothing.
func (s *Profiles) AddTag(ctx context.Context, account, tag, by string, at time.Time, audit func(TagSet) error) (TagSet, error) {
	if err := ValidateTag(tag); err != nil {
		return TagSet{}, err
	}
	return s.changeTags(ctx, account, by, at, audit, func(tags []string) ([]string, error) {
		if slices.Contains(tags, tag) {
			return nil, nil
		}
		if len(tags) >= MaxAccountTags {
			return nil, fmt.Errorf("%w: an account has at most %d tags", ErrTagInvalid, MaxAccountTags)
		}
		return append(slices.Clone(tags), tag), nil
	})
}

// RemoveTag takes tag out of account's vocabulary (profiles that carry it
// keep it until they are changed); ErrTagNotFound if it is not there.
func (s *Profiles) RemoveTag(ctx context.Context, account, tag, by string, at time.Time, audit func(TagSet) error) (TagSet, error) {
	return s.changeTags(ctx, account, by, at, audit, func(tags []string) ([]string, error) {
		if !slices.Contains(tags, tag) {
			return nil, fmt.Errorf("%w: %q", ErrTagNotFound, tag)
		}
		return slices.DeleteFunc(slices.Clone(tags), func(t string) bool { return t == tag }), nil
	})
}

// changeTags archives the version of account's vocabulary change makes
// of the current one; change returns nil for no change.
func (s *Profiles) changeTags(ctx context.Context, account, by string, at time.Time, audit func(TagSet) error, change func([]string) ([]string, error)) (TagSet, error) {
	if err := validClientKey(account, "-"); err != nil {
		return TagSet{}, fmt.Errorf("%w: %v", ErrTagInvalid, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, cur, err := s.tagSets(ctx, account)
	if err != nil {
		return TagSet{}, err
	}
	tags, err := change(cur.Tags)
	if err != nil || tags == nil {
		return cur, err
	}
	t := TagSet{Account: account, Tags: tags, By: by, At: at.UTC().Truncate(time.Millisecond)}
	if err := s.tags.seal(ctx, cs, account, &t.RecordSeal, func() string { return t.ComputeHash() }); err != nil {
		return TagSet{}, fmt.Errorf("sealing the tags of %s: %w", account, err)
	}
	if err := audit(t); err != nil {
		return TagSet{}, fmt.Errorf("auditing the tags of %s: %w", account, err)
	}
	s.tags.wrote(t.Hash)
	if err := s.store.AppendTagSet(ctx, t); err != nil {
		return TagSet{}, fmt.Errorf("archiving the tags of %s: %w", account, err)
	}
	return t, nil
}
