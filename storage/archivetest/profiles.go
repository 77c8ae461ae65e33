package archivetest

import (
	"crypto/ed25519"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// ProfileStore is what client profiles need of an archive: the profiles
// and vocabularies (relay.ProfileStore) and the audit log their versions
// are checked against.
type ProfileStore interface {
	relay.ProfileStore
	relay.AuditStore
}

// RunProfiles runs the suite of client profiles (relay/profile.go) over
// an archive: versions kept whole and never overwritten, read back as
// written, signed and chained, and a version written behind the relay's
// back neither shown nor passed by verify. open is called once per
// subtest and must return a new, empty store.
func RunProfiles(t *testing.T, open func(t *testing.T) ProfileStore) {
	t.Helper()
	for _, c := range []struct {
		name string
		run  func(t *testing.T, s ProfileStore)
	}{
		{"RoundTrip", testProfileRoundTrip},
		{"VersionsNeverOverwritten", testProfileVersions},
		{"ForgedVersionRefused", testForgedProfile},
		{"Verify", testVerifyProfiles},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, open(t))
		})
	}
}

// profileRig is one relay instance: its key, audit log and profiles.
type profileRig struct {
	s        ProfileStore
	signer   *relay.SealSigner
	audit    *relay.AuditLog
	profiles *relay.Profiles
}

func newProfileRig(t *testing.T, s ProfileStore) *profileRig {
	t.Helper()
	r := &profileRig{s: s, signer: newSigner(t)}
	var err error
	if r.audit, err = relay.NewAuditLog(s, "relay-a", nil, nil); err != nil {
		t.Fatal(err)
	}
	r.audit.SignWith(r.signer)
	if r.profiles, err = relay.NewProfiles(s, relay.RecordTrust{Signer: r.signer, Audit: s}); err != nil {
		t.Fatal(err)
	}
	return r
}

// save changes a profile as the console does: sealed, audited, archived.
func (r *profileRig) save(t *testing.T, p relay.ClientProfile, expect uint64) (relay.ClientProfile, error) {
	t.Helper()
	p.At = time.Now()
	return r.profiles.Save(testCtx(t), p, expect, func(before *relay.ClientProfile, after relay.ClientProfile) error {
		_, err := r.audit.Append(testCtx(t), relay.AuditEntry{Employee: after.By, Role: "agent", Action: relay.AuditClientProfile,
			Conv: string(after.Conv()), Target: after.OpenID, Detail: relay.ProfileAuditDetail(relay.ProfileChange(before, after), after)})
		return err
	})
}

func (r *profileRig) addTags(t *testing.T, account string, tags ...string) {
	t.Helper()
	for _, tag := range tags {
		_, err := r.profiles.AddTag(testCtx(t), account, tag, "sup", time.Now(), func(ts relay.TagSet) error {
			_, err := r.audit.Append(testCtx(t), relay.AuditEntry{Employee: "sup", Role: "supervisor", Action: relay.AuditClientTags,
				Target: ts.Account, Detail: relay.TagSetAuditDetail("added "+tag, ts)})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func testProfileRoundTrip(t *testing.T, s ProfileStore) {
	ctx := testCtx(t)
	at := time.Date(2025, 3, 4, 5, 6, 7, 8_000_000, time.UTC)
	p := relay.ClientProfile{Account: "acc", OpenID: "o:with-colon", Name: "王小明", Remark: "VIP 客户", Tags: []string{"高净值", "b"},
		Note: "line one\nline two", By: "alice", At: at, RecordSeal: relay.RecordSeal{Version: 1, Hash: "h1", KeyID: "k", Signature: "s"}}
	other := relay.ClientProfile{Account: "acc2", OpenID: "o2", Tags: nil, By: "bob", At: at.Add(time.Second),
		RecordSeal: relay.RecordSeal{Version: 1, Hash: "h2"}}
	for _, rec := range []relay.ClientProfile{p, p, other} { // the second: a retried insert
		if err := s.AppendProfile(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.ProfileRecords(ctx, relay.ProfileQuery{})
	if err != nil || len(all) != 2 {
		t.Fatalf("ProfileRecords(all) = %+v, %v; want the two versions, the copy once", all, err)
	}
	if got := all[0]; got.Account != p.Account || got.OpenID != p.OpenID || got.Name != p.Name || got.Remark != p.Remark ||
		!slices.Equal(got.Tags, p.Tags) || got.Note != p.Note || got.By != p.By || !got.At.Equal(at) ||
		got.RecordSeal != p.RecordSeal || got.ComputeHash() != p.ComputeHash() {
		t.Errorf("read back %+v\nwrote     %+v", got, p)
	}
	if len(all[1].Tags) != 0 {
		t.Errorf("no tags read back as %q", all[1].Tags)
	}
	for _, c := range []struct {
		q    relay.ProfileQuery
		want int
	}{
		{relay.ProfileQuery{Account: "acc"}, 1},
		{relay.ProfileQuery{Convs: []relay.ConversationID{p.Conv()}}, 1},
		{relay.ProfileQuery{Convs: []relay.ConversationID{p.Conv(), other.Conv()}}, 2},
		{relay.ProfileQuery{Account: "acc2", Convs: []relay.ConversationID{p.Conv()}}, 0},
		{relay.ProfileQuery{Convs: []relay.ConversationID{}}, 0},
	} {
		if got, err := s.ProfileRecords(ctx, c.q); err != nil || len(got) != c.want {
			t.Errorf("ProfileRecords(%+v) = %d versions, %v; want %d", c.q, len(got), err, c.want)
		}
	}

	ts := relay.TagSet{Account: "acc", Tags: []string{"高净值", "b"}, By: "sup", At: at, RecordSeal: relay.RecordSeal{Version: 1, Hash: "t1"}}
	for _, rec := range []relay.TagSet{ts, ts, {Account: "acc2", Tags: []string{}, By: "sup", At: at, RecordSeal: relay.RecordSeal{Version: 1}}} {
		if err := s.AppendTagSet(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	sets, err := s.TagSetRecords(ctx, "acc")
	if err != nil || len(sets) != 1 || !slices.Equal(sets[0].Tags, ts.Tags) || sets[0].RecordSeal != ts.RecordSeal || !sets[0].At.Equal(at) {
		t.Errorf("TagSetRecords(acc) = %+v, %v; want %+v once", sets, err, ts)
	}
	if sets, err := s.TagSetRecords(ctx, ""); err != nil || len(sets) != 2 {
		t.Errorf("TagSetRecords(all) = %+v, %v; want 2", sets, err)
	}
	if err := s.AppendProfile(ctx, relay.ClientProfile{Account: "acc", OpenID: "o"}); err == nil {
		t.Error("a profile without a version was stored")
	}
}

func testProfileVersions(t *testing.T, s ProfileStore) {
	ctx := testCtx(t)
	r := newProfileRig(t, s)
	base := relay.ClientProfile{Account: "acc", OpenID: "oClient1", By: "alice"}

	// Tags must be the account's.
	p := base
	p.Name, p.Tags = "Mr Wang", []string{"vip"}
	if _, err := r.save(t, p, 0); !errors.Is(err, relay.ErrProfileInvalid) {
		t.Fatalf("a tag outside the vocabulary: %v; want ErrProfileInvalid", err)
	}
	r.addTags(t, "acc", "vip", "prospect")
	v1, err := r.save(t, p, 0)
	if err != nil || v1.Version != 1 || v1.PrevHash != "" || v1.Signature == "" {
		t.Fatalf("first save = %+v, %v", v1, err)
	}
	p.Remark, p.Tags, p.Note, p.By = "met in Shanghai", []string{"vip", "prospect"}, "prefers mornings", "bob"
	if _, err := r.save(t, p, 0); !errors.Is(err, relay.ErrProfileConflict) {
		t.Fatalf("a save from a stale version: %v; want ErrProfileConflict", err)
	}
	v2, err := r.save(t, p, 1)
	if err != nil || v2.Version != 2 || v2.PrevHash != v1.Hash {
		t.Fatalf("second save = %+v, %v", v2, err)
	}
	// Nothing changed: nothing archived.
	if same, err := r.save(t, p, 2); err != nil || same.Version != 2 || same.Hash != v2.Hash {
		t.Fatalf("an unchanged save = %+v, %v; want version 2 back", same, err)
	}
	// A tag leaving the vocabulary stays on the profiles that carry it.
	if _, err := r.profiles.RemoveTag(ctx, "acc", "prospect", "sup", time.Now(), func(relay.TagSet) error { return nil }); err != nil {
		t.Fatal(err)
	}
	p.Name = "Wang Xiaoming"
	v3, err := r.save(t, p, 2)
	if err != nil || v3.Version != 3 || !slices.Equal(v3.Tags, []string{"vip", "prospect"}) {
		t.Fatalf("a save keeping a retired tag = %+v, %v", v3, err)
	}
	other := base
	other.OpenID, other.Tags = "oClient2", []string{"prospect"}
	if _, err := r.save(t, other, 0); !errors.Is(err, relay.ErrProfileInvalid) {
		t.Errorf("a retired tag given to another client: %v; want ErrProfileInvalid", err)
	}

	hist, err := r.profiles.History(ctx, "acc", "oClient1")
	if err != nil || len(hist) != 3 {
		t.Fatalf("History = %+v, %v; want 3 versions", hist, err)
	}
	if hist[0].Name != "Mr Wang" || hist[0].By != "alice" || hist[1].Note != "prefers mornings" || hist[1].By != "bob" || hist[2].Name != "Wang Xiaoming" {
		t.Errorf("History = %+v", hist)
	}
	cur, err := r.profiles.Get(ctx, "acc", "oClient1")
	if err != nil || cur.Version != 3 || cur.Name != "Wang Xiaoming" || cur.Refused != "" {
		t.Errorf("Get = %+v, %v", cur, err)
	}
	found, err := r.profiles.Find(ctx, "acc", "xiaoming", "vip")
	if err != nil || len(found) != 1 || found[0].OpenID != "oClient1" {
		t.Errorf("Find(xiaoming, vip) = %+v, %v", found, err)
	}
	if found, _ := r.profiles.Find(ctx, "acc", "", "prospect"); len(found) != 1 {
		t.Errorf("Find(tag prospect) = %+v; want oClient1", found)
	}
	if found, _ := r.profiles.Find(ctx, "acc", "nobody", ""); len(found) != 0 {
		t.Errorf("Find(nobody) = %+v; want none", found)
	}
	// The audit log names every version.
	recs, err := s.SearchAudit(ctx, relay.AuditQuery{Action: relay.AuditClientProfile})
	if err != nil || len(recs) != 3 {
		t.Errorf("client_profile audit records = %d, %v; want 3", len(recs), err)
	}
}

func testForgedProfile(t *testing.T, s ProfileStore) {
	ctx := testCtx(t)
	r := newProfileRig(t, s)
	r.addTags(t, "acc", "vip")
	v1, err := r.save(t, relay.ClientProfile{Account: "acc", OpenID: "oClient1", Name: "Wang", Tags: []string{"vip"}, By: "alice"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The insider renames the client in the archive: unsigned, chained.
	forged := v1
	forged.Version, forged.PrevHash, forged.Name, forged.By = 2, v1.Hash, "Someone Else", "alice"
	forged.At = time.Now().UTC().Truncate(time.Millisecond)
	forged.Hash, forged.KeyID, forged.Signature = forged.ComputeHash(), "", ""
	if err := s.AppendProfile(ctx, forged); err != nil {
		t.Fatal(err)
	}
	cur, err := r.profiles.Get(ctx, "acc", "oClient1")
	if err != nil || cur.Version != 1 || cur.Name != "Wang" || !strings.Contains(cur.Refused, "unsigned") {
		t.Fatalf("Get after a forged version = %+v, %v; want version 1, flagged", cur, err)
	}
	// A forged vocabulary does not let a tag in.
	ts, err := r.profiles.Tags(ctx, "acc")
	if err != nil {
		t.Fatal(err)
	}
	ft := ts
	ft.Version, ft.PrevHash, ft.Tags, ft.At = 2, ts.Hash, []string{"vip", "smuggled"}, time.Now().UTC().Truncate(time.Millisecond)
	ft.Hash, ft.KeyID, ft.Signature = ft.ComputeHash(), "", ""
	if err := s.AppendTagSet(ctx, ft); err != nil {
		t.Fatal(err)
	}
	if got, err := r.profiles.Tags(ctx, "acc"); err != nil || !slices.Equal(got.Tags, []string{"vip"}) || got.Refused == "" {
		t.Errorf("Tags after a forged version = %+v, %v; want [vip], flagged", got, err)
	}
	// The next genuine version follows the one that counts.
	v2, err := r.save(t, relay.ClientProfile{Account: "acc", OpenID: "oClient1", Name: "Wang Wei", Tags: []string{"vip"}, By: "bob"}, 1)
	if err != nil || v2.Version != 2 || v2.PrevHash != v1.Hash {
		t.Fatalf("a save after a forged version = %+v, %v; want version 2 after version 1", v2, err)
	}
	// An instance that only trusts the key sees the same.
	fresh, err := relay.NewProfiles(s, relay.RecordTrust{PublicKeys: []ed25519.PublicKey{r.signer.PublicKey()}, Audit: s})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := fresh.Get(ctx, "acc", "oClient1"); err != nil || got.Name != "Wang Wei" {
		t.Errorf("a second instance: %+v, %v", got, err)
	}
}

func testVerifyProfiles(t *testing.T, s ProfileStore) {
	ctx := testCtx(t)
	r := newProfileRig(t, s)
	r.addTags(t, "acc", "vip", "lead")
	v1, err := r.save(t, relay.ClientProfile{Account: "acc", OpenID: "oClient1", Name: "Wang", Tags: []string{"vip"}, By: "alice"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.save(t, relay.ClientProfile{Account: "acc", OpenID: "oClient1", Name: "Wang Wei", By: "alice"}, 1); err != nil {
		t.Fatal(err)
	}
	opt := relay.DirectoryVerifyOptions{PublicKeys: []ed25519.PublicKey{r.signer.PublicKey()}}
	profiles, tags, err := relay.VerifyProfiles(ctx, s, opt)
	if err != nil || !profiles.OK || profiles.Records != 2 || profiles.Audited != 2 || !tags.OK || tags.Records != 2 {
		t.Fatalf("VerifyProfiles of intact profiles = %+v, %+v, %v", profiles, tags, err)
	}
	forged := v1
	forged.Version, forged.Name, forged.At = 3, "Forged", time.Now().UTC().Truncate(time.Millisecond)
	forged.Hash = forged.ComputeHash() // still carries v1's signature: of another hash
	if err := s.AppendProfile(ctx, forged); err != nil {
		t.Fatal(err)
	}
	profiles, _, err = relay.VerifyProfiles(ctx, s, opt)
	if err != nil || profiles.OK || len(profiles.Problems) != 1 || profiles.Problems[0].ID != "profile:acc:oClient1 v3" ||
		profiles.Problems[0].Kind != relay.ProblemBadSignature {
		t.Errorf("VerifyProfiles with a forged version = %+v, %v; want profile:acc:oClient1 v3 bad_signature", profiles, err)
	}
}
