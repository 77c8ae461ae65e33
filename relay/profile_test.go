package relay

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// memProfiles is a ProfileStore in memory.
type memProfiles struct {
	mu       sync.Mutex
	profiles []ClientProfile
	sets     []TagSet
	fail     error
}

func (m *memProfiles) AppendProfile(_ context.Context, p ClientProfile) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	p.Tags = slices.Clone(p.Tags)
	m.profiles = append(m.profiles, p)
	return nil
}

func (m *memProfiles) ProfileRecords(_ context.Context, q ProfileQuery) ([]ClientProfile, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []ClientProfile
	for _, p := range m.profiles {
		if (q.Account == "" || p.Account == q.Account) && (q.Convs == nil || slices.Contains(q.Convs, p.Conv())) {
			p.Tags = slices.Clone(p.Tags)
			out = append(out, p)
		}
	}
	return out, nil
}

func (m *memProfiles) AppendTagSet(_ context.Context, t TagSet) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sets = append(m.sets, t)
	return nil
}

func (m *memProfiles) TagSetRecords(_ context.Context, account string) ([]TagSet, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []TagSet
	for _, t := range m.sets {
		if account == "" || t.Account == account {
			out = append(out, t)
		}
	}
	return out, nil
}

// profileFixture is a Profiles over memory, signing with a key of its
// own, whose audit records land in audited.
type profileFixture struct {
	st      *memProfiles
	p       *Profiles
	signer  *SealSigner
	audited []string
}

func newProfileFixture(t *testing.T) *profileFixture {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f := &profileFixture{st: &memProfiles{}, signer: NewSealSigner(priv)}
	if f.p, err = NewProfiles(f.st, RecordTrust{Signer: f.signer, Audit: &memAudit{}}); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *profileFixture) save(p ClientProfile, expect uint64) (ClientProfile, error) {
	if p.At.IsZero() {
		p.At = time.Now()
	}
	return f.p.Save(context.Background(), p, expect, func(before *ClientProfile, after ClientProfile) error {
		f.audited = append(f.audited, ProfileAuditDetail(ProfileChange(before, after), after))
		return nil
	})
}

func (f *profileFixture) tag(t *testing.T, tags ...string) {
	t.Helper()
	for _, tag := range tags {
		if _, err := f.p.AddTag(context.Background(), "acc", tag, "sup", time.Now(), func(ts TagSet) error {
			f.audited = append(f.audited, TagSetAuditDetail("added "+tag, ts))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestProfileSaveSignsAndChains(t *testing.T) {
	f := newProfileFixture(t)
	f.tag(t, "vip")
	v1, err := f.save(ClientProfile{Account: "acc", OpenID: "oA", Name: "王先生", Tags: []string{"vip"}, By: "alice"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if v1.Version != 1 || v1.PrevHash != "" || v1.Hash != v1.ComputeHash() || v1.KeyID != f.signer.KeyID() {
		t.Fatalf("first version = %+v", v1)
	}
	sig, _ := base64.StdEncoding.DecodeString(v1.Signature)
	if !ed25519.Verify(f.signer.PublicKey(), ProfileSignatureMessage(v1.Hash), sig) {
		t.Error("the first version's signature does not verify")
	}
	v2, err := f.save(ClientProfile{Account: "acc", OpenID: "oA", Name: "王伟", Remark: "老客户", Tags: []string{"vip"}, By: "bob"}, 1)
	if err != nil || v2.Version != 2 || v2.PrevHash != v1.Hash {
		t.Fatalf("second version = %+v, %v", v2, err)
	}
	want := ` [profile acc:oA v2 ` + v2.Hash + `]`
	last := f.audited[len(f.audited)-1]
	if !strings.HasSuffix(last, want) || !strings.Contains(last, `name "王先生" → "王伟"`) || !strings.Contains(last, `remark "" → "老客户"`) {
		t.Errorf("audit detail %q; want the change and the marker %q", last, want)
	}
	if id, ver, hash, ok := auditedRecord(last, profileKind.name); !ok || id != "acc:oA" || ver != 2 || hash != v2.Hash {
		t.Errorf("the marker reads back as %q v%d %q, %v", id, ver, hash, ok)
	}
	// The hash covers every field: a changed tag list is another hash.
	other := v2
	other.Tags = []string{"vip", "x"}
	if other.ComputeHash() == v2.Hash {
		t.Error("the hash does not cover the tags")
	}
	other = v2
	other.Tags = []string{"vi", "pvip"} // same concatenation
	v2b := v2
	v2b.Tags = []string{"vipvi", "p"}
	if other.ComputeHash() == v2b.ComputeHash() {
		t.Error("tags are not length-prefixed in the hash")
	}
}

func TestProfileSaveRefusesBadInputAndChangesNothing(t *testing.T) {
	f := newProfileFixture(t)
	f.tag(t, "vip")
	long := strings.Repeat("长", MaxProfileRemark+1)
	for _, c := range []struct {
		name string
		p    ClientProfile
	}{
		{"no openid", ClientProfile{Account: "acc"}},
		{"openid with a space", ClientProfile{Account: "acc", OpenID: "o A"}},
		{"openid with a slash", ClientProfile{Account: "acc", OpenID: "o/A"}},
		{"remark too long", ClientProfile{Account: "acc", OpenID: "oA", Remark: long}},
		{"name too long", ClientProfile{Account: "acc", OpenID: "oA", Name: strings.Repeat("x", MaxProfileName+1)}},
		{"name with a newline", ClientProfile{Account: "acc", OpenID: "oA", Name: "a\nb"}},
		{"note with a control character", ClientProfile{Account: "acc", OpenID: "oA", Note: "a\x00b"}},
		{"note too long", ClientProfile{Account: "acc", OpenID: "oA", Note: strings.Repeat("n", MaxProfileNote+1)}},
		{"invalid UTF-8", ClientProfile{Account: "acc", OpenID: "oA", Name: "\xff"}},
		{"unknown tag", ClientProfile{Account: "acc", OpenID: "oA", Tags: []string{"gold"}}},
		{"tag twice", ClientProfile{Account: "acc", OpenID: "oA", Tags: []string{"vip", "vip"}}},
	} {
		if _, err := f.save(c.p, 0); !errors.Is(err, ErrProfileInvalid) {
			t.Errorf("%s: %v; want ErrProfileInvalid", c.name, err)
		}
	}
	if len(f.st.profiles) != 0 {
		t.Errorf("refused profiles archived: %+v", f.st.profiles)
	}
	// A note may hold line breaks.
	if _, err := f.save(ClientProfile{Account: "acc", OpenID: "oA", Note: "a\nb\tc", Remark: long[:len(long)-len("长")]}, 0); err != nil {
		t.Errorf("a multi-line note, a remark of the maximum length: %v", err)
	}
}

func TestProfileSaveConflictAndUnchanged(t *testing.T) {
	f := newProfileFixture(t)
	p := ClientProfile{Account: "acc", OpenID: "oA", Name: "Wang", By: "alice"}
	if _, err := f.save(p, 1); !errors.Is(err, ErrProfileConflict) {
		t.Errorf("expecting version 1 of a client without a profile: %v; want ErrProfileConflict", err)
	}
	if _, err := f.save(p, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.save(p, 0); !errors.Is(err, ErrProfileConflict) {
		t.Errorf("a second first version: %v; want ErrProfileConflict", err)
	}
	got, err := f.save(p, 1)
	if err != nil || got.Version != 1 || len(f.st.profiles) != 1 || len(f.audited) != 1 {
		t.Errorf("an unchanged save = %+v, %v; %d versions, %d audit records; want version 1, nothing written", got, err, len(f.st.profiles), len(f.audited))
	}
}

func TestProfileAuditFailureWritesNothing(t *testing.T) {
	f := newProfileFixture(t)
	_, err := f.p.Save(context.Background(), ClientProfile{Account: "acc", OpenID: "oA", Name: "Wang", At: time.Now()}, 0,
		func(*ClientProfile, ClientProfile) error { return errors.New("audit down") })
	if err == nil || len(f.st.profiles) != 0 {
		t.Errorf("with the audit log down: %v, %d versions archived; want an error and none", err, len(f.st.profiles))
	}
	_, err = f.p.AddTag(context.Background(), "acc", "vip", "sup", time.Now(), func(TagSet) error { return errors.New("audit down") })
	if err == nil || len(f.st.sets) != 0 {
		t.Errorf("a tag with the audit log down: %v, %d versions; want an error and none", err, len(f.st.sets))
	}
}

func TestProfileTags(t *testing.T) {
	f := newProfileFixture(t)
	ctx := context.Background()
	for _, bad := range []string{"", " vip", "a,b", "a/b", "x\ty", strings.Repeat("t", MaxTagLength+1)} {
		if _, err := f.p.AddTag(ctx, "acc", bad, "sup", time.Now(), func(TagSet) error { return nil }); !errors.Is(err, ErrTagInvalid) {
			t.Errorf("AddTag(%q): %v; want ErrTagInvalid", bad, err)
		}
	}
	f.tag(t, "vip", "潜在客户", "vip")
	ts, err := f.p.Tags(ctx, "acc")
	if err != nil || !slices.Equal(ts.Tags, []string{"vip", "潜在客户"}) || ts.Version != 2 {
		t.Fatalf("Tags = %+v, %v; want [vip 潜在客户] at version 2 (adding vip again changes nothing)", ts, err)
	}
	if _, err := f.p.RemoveTag(ctx, "acc", "gold", "sup", time.Now(), func(TagSet) error { return nil }); !errors.Is(err, ErrTagNotFound) {
		t.Errorf("removing an unknown tag: %v; want ErrTagNotFound", err)
	}
	if ts, err = f.p.RemoveTag(ctx, "acc", "vip", "sup", time.Now(), func(TagSet) error { return nil }); err != nil || !slices.Equal(ts.Tags, []string{"潜在客户"}) || ts.Version != 3 {
		t.Errorf("RemoveTag = %+v, %v", ts, err)
	}
	if other, err := f.p.Tags(ctx, "acc2"); err != nil || other.Version != 0 || len(other.Tags) != 0 {
		t.Errorf("another account's tags = %+v, %v; want none", other, err)
	}
}

// A client who unfollows and follows again has the same OpenID, so the
// same conversation and the same profile: nothing keys a profile by a
// follow.
func TestProfileSurvivesRefollow(t *testing.T) {
	f := newProfileFixture(t)
	if _, err := f.save(ClientProfile{Account: "acc", OpenID: "oA", Name: "Wang", By: "alice"}, 0); err != nil {
		t.Fatal(err)
	}
	got, err := f.p.Get(context.Background(), "acc", "oA")
	if err != nil || got.Name != "Wang" || got.Conv() != Conversation("acc", "oA") {
		t.Errorf("Get = %+v, %v", got, err)
	}
}

func TestProfileMatchesAndFind(t *testing.T) {
	f := newProfileFixture(t)
	f.tag(t, "vip")
	for _, p := range []ClientProfile{
		{Account: "acc", OpenID: "oA", Name: "Wang Wei", Tags: []string{"vip"}},
		{Account: "acc", OpenID: "oB", Name: "Li Na", Remark: "wants a call"},
		{Account: "acc", OpenID: "oC", Note: "Met WANG's sister"},
	} {
		if _, err := f.save(p, 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		text, tag string
		want      []string
	}{
		{"wang", "", []string{"oA", "oC"}},
		{"wang", "vip", []string{"oA"}},
		{"", "vip", []string{"oA"}},
		{"CALL", "", []string{"oB"}},
		{"oB", "", []string{"oB"}},
		{"nobody", "", nil},
	} {
		found, err := f.p.Find(context.Background(), "acc", c.text, c.tag)
		var got []string
		for _, p := range found {
			got = append(got, p.OpenID)
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("Find(%q, %q) = %v, %v; want %v", c.text, c.tag, got, err, c.want)
		}
	}
}

func TestProfileChange(t *testing.T) {
	if got := ProfileChange(nil, ClientProfile{Name: "A"}); got != `name "" → "A"` {
		t.Errorf("first version: %q", got)
	}
	b := ClientProfile{Name: "A", Tags: []string{"x"}, Note: "abc"}
	a := ClientProfile{Name: "A", Tags: []string{"x", "y"}, Note: "abcd"}
	if got := ProfileChange(&b, a); got != "tags [x] → [x, y]; note (3 → 4 characters)" {
		t.Errorf("change: %q", got)
	}
	if got := ProfileChange(&b, b); got != "no change" {
		t.Errorf("no change: %q", got)
	}
}
