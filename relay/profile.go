package relay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Client profiles. An Official Account never tells the firm a client's
// name: employees see an OpenID. A profile is what they know of the
// client instead — a display name, a remark (the one WeChat keeps too,
// user/info/updateremark), tags from the account's vocabulary, and a
// free-text note. A profile is part of the record: every change is
// archived as a new version of the client's profile (who, when, the whole
// profile after the change; the version before it is the "before"),
// never by updating a row, and each version is signed and chained like a
// legal hold (profile_sign.go). The key is the conversation (account and
// OpenID), so a client who unfollows and follows again keeps their
// profile.
//
// The tags an account's profiles may carry are the account's vocabulary
// (TagSet), kept the same way: each change a new signed version of the
// whole list.

// Limits of a profile's fields, in characters. A remark longer than 30
// characters is refused by WeChat (user/info/updateremark).
const (
	MaxProfileName   = 64
	MaxProfileRemark = 30
	MaxProfileNote   = 2000
	MaxProfileTags   = 20
	MaxTagLength     = 20
	MaxAccountTags   = 200
)

// ClientProfile is one version of a client's profile: the whole profile
// as it stood after By changed it at At.
type ClientProfile struct {
	Account string    `json:"account"`
	OpenID  string    `json:"openid"`
	Name    string    `json:"name"`
	Remark  string    `json:"remark"`
	Tags    []string  `json:"tags"`
	Note    string    `json:"note"`
	By      string    `json:"by"`
	At      time.Time `json:"at"`
	RecordSeal
	// Refused, in what Profiles returns, says why newer versions of the
	// profile do not count (written behind the relay's back): the
	// profile is shown as its newest version that does.
	Refused string `json:"refused,omitempty"`
}

// Conv is the conversation of the profile's client.
func (p ClientProfile) Conv() ConversationID { return Conversation(p.Account, p.OpenID) }

// SameContent reports whether p and q say the same of the client.
func (p ClientProfile) SameContent(q ClientProfile) bool {
	return p.Name == q.Name && p.Remark == q.Remark && p.Note == q.Note && slices.Equal(p.Tags, q.Tags)
}

// Matches reports whether the profile's name, remark or note contains
// text (case-insensitively), or its OpenID equals it.
func (p ClientProfile) Matches(text string) bool {
	text = strings.TrimSpace(text)
	if text == "" || p.OpenID == text {
		return true
	}
	text = strings.ToLower(text)
	return strings.Contains(strings.ToLower(p.Name), text) ||
		strings.Contains(strings.ToLower(p.Remark), text) || strings.Contains(strings.ToLower(p.Note), text)
}

// TagSet is one version of an account's tag vocabulary: the whole list
// after By changed it at At.
type TagSet struct {
	Account string    `json:"account"`
	Tags    []string  `json:"tags"`
	By      string    `json:"by"`
	At      time.Time `json:"at"`
	RecordSeal
	Refused string `json:"refused,omitempty"`
}

// ProfileQuery selects the profiles ProfileStore.ProfileRecords reads.
type ProfileQuery struct {
	Account string           // only this account's; "" every account
	Convs   []ConversationID // only these clients'; nil every client
}

// ProfileStore keeps client profiles and tag vocabularies. Both archives
// in storage implement it. Rows are only ever added.
type ProfileStore interface {
	// AppendProfile stores one version of a profile; an identical copy
	// is stored once.
	AppendProfile(ctx context.Context, p ClientProfile) error
	// ProfileRecords returns every stored version of the profiles q
	// selects, identical copies once, oldest first.
	ProfileRecords(ctx context.Context, q ProfileQuery) ([]ClientProfile, error)
	// AppendTagSet stores one version of an account's vocabulary; an
	// identical copy is stored once.
	AppendTagSet(ctx context.Context, t TagSet) error
	// TagSetRecords returns every stored version of account's vocabulary
	// ("" every account's), identical copies once, oldest first.
	TagSetRecords(ctx context.Context, account string) ([]TagSet, error)
}

// Errors of profile changes.
var (
	ErrProfileInvalid  = errors.New("invalid profile")
	ErrProfileConflict = errors.New("the profile was changed meanwhile")
	ErrTagInvalid      = errors.New("invalid tag")
)

// ValidateProfile checks p's fields, its tags against vocabulary. New
// tags must be in vocabulary; tags of kept (the version p follows) may
// stay after they left it.
func ValidateProfile(p ClientProfile, vocabulary, kept []string) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrProfileInvalid, fmt.Sprintf(format, args...))
	}
	if err := validClientKey(p.Account, p.OpenID); err != nil {
		return bad("%v", err)
	}
	for _, f := range []struct {
		name, value string
		max         int
		multiline   bool
	}{{"name", p.Name, MaxProfileName, false}, {"remark", p.Remark, MaxProfileRemark, false}, {"note", p.Note, MaxProfileNote, true}} {
		if err := validText(f.value, f.max, f.multiline); err != nil {
			return bad("%s %v", f.name, err)
		}
	}
	if len(p.Tags) > MaxProfileTags {
		return bad("at most %d tags", MaxProfileTags)
	}
	for i, t := range p.Tags {
		if slices.Contains(p.Tags[:i], t) {
			return bad("tag %q given twice", t)
		}
		if !slices.Contains(vocabulary, t) && !slices.Contains(kept, t) {
			return bad("tag %q is not one of the account's tags", t)
		}
	}
	return nil
}

// ValidateTag checks a tag before it joins a vocabulary.
func ValidateTag(tag string) error {
	if strings.TrimSpace(tag) != tag || tag == "" {
		return fmt.Errorf("%w: a tag must not be empty or start or end with a space", ErrTagInvalid)
	}
	if err := validText(tag, MaxTagLength, false); err != nil {
		return fmt.Errorf("%w: %v", ErrTagInvalid, err)
	}
	if strings.ContainsAny(tag, ",/") {
		return fmt.Errorf("%w: a tag must not contain ',' or '/'", ErrTagInvalid)
	}
	return nil
}

// validClientKey checks the account and OpenID a profile is kept under:
// both go into audit records' markers, so neither may hold spaces.
func validClientKey(account, openid string) error {
	for _, f := range []struct{ name, v string }{{"account", account}, {"openid", openid}} {
		if f.v == "" || len(f.v) > 128 {
			return fmt.Errorf("%s must have 1 to 128 characters", f.name)
		}
		if strings.ContainsFunc(f.v, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == '/' }) {
			return fmt.Errorf("%s %q holds a space, a control character or '/'", f.name, f.v)
		}
	}
	if strings.Contains(account, ":") {
		return fmt.Errorf("account %q holds ':'", account)
	}
	return nil
}

// validText checks a text field: valid UTF-8, at most max characters, no
// control characters but, when multiline, line breaks and tabs.
func validText(s string, max int, multiline bool) error {
	if !utf8.ValidString(s) {
		return errors.New("is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(s); n > max {
		return fmt.Errorf("has %d characters, at most %d", n, max)
	}
	if strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsControl(r) && !(multiline && (r == '\n' || r == '\r' || r == '\t'))
	}) {
		return errors.New("holds a control character")
	}
	return nil
}

// ProfileChange says, for people and the audit record, which fields of
// a profile a version changed from before (nil: the first version).
func ProfileChange(before *ClientProfile, after ClientProfile) string {
	var b ClientProfile
	if before != nil {
		b = *before
	}
	var parts []string
	if b.Name != after.Name {
		parts = append(parts, fmt.Sprintf("name %q → %q", b.Name, after.Name))
	}
	if b.Remark != after.Remark {
		parts = append(parts, fmt.Sprintf("remark %q → %q", b.Remark, after.Remark))
	}
	if !slices.Equal(b.Tags, after.Tags) {
		parts = append(parts, fmt.Sprintf("tags [%s] → [%s]", strings.Join(b.Tags, ", "), strings.Join(after.Tags, ", ")))
	}
	if b.Note != after.Note {
		parts = append(parts, fmt.Sprintf("note (%d → %d characters)", utf8.RuneCountInString(b.Note), utf8.RuneCountInString(after.Note)))
	}
	if len(parts) == 0 {
		return "no change"
	}
	return strings.Join(parts, "; ")
}
