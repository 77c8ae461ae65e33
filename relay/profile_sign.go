package relay

import (
	"context"
	"fmt"
)

// Signed, chained client profiles and tag vocabularies (record_seal.go).
// A profile is part of the record, so a version written behind the
// relay's back must not pass for an employee's: each version is hashed,
// chained to the version before it (per client: the conversation id; per
// account for a vocabulary), signed with the instance's seal key, and
// named by the signed audit record the console writes before archiving
// it (ProfileAuditDetail, TagSetAuditDetail). Profiles shows of each
// client the newest version that verifies; a refused one is logged at
// Error and raised as a "profile_refused" ("tags_refused") alert.
//
// # Canonical encoding of a profile version, version 1
//
//	"wechat-relay/profile/v1"
//	account, openid
//	version            (decimal)
//	prev_hash
//	at_ms              (decimal epoch milliseconds, 0 before 1970)
//	name, remark
//	number of tags     (decimal), then each tag
//	note, by
//
// signed as "wechat-relay/profile-signature/v1" || 0x00 || hash.
//
// # Canonical encoding of a vocabulary version, version 1
//
//	"wechat-relay/tags/v1"
//	account
//	version, prev_hash, at_ms
//	number of tags, then each tag
//	by
//
// signed as "wechat-relay/tags-signature/v1" || 0x00 || hash.

const (
	profileTag = "wechat-relay/profile/v1"
	tagSetTag  = "wechat-relay/tags/v1"
)

// Audit actions of profile changes.
const (
	AuditClientProfile = "client_profile"
	AuditClientTags    = "client_tags"
)

var (
	profileKind = recordKind{name: "profile", sigTag: "wechat-relay/profile-signature/v1", action: AuditClientProfile}
	tagSetKind  = recordKind{name: "tags", sigTag: "wechat-relay/tags-signature/v1", action: AuditClientTags}
)

// ComputeHash is the hash of p's fields but Hash, KeyID, Signature and
// Refused.
func (p ClientProfile) ComputeHash() string {
	enc := newEncoder(profileTag)
	enc.str(p.Account)
	enc.str(p.OpenID)
	enc.uint(p.Version)
	enc.str(p.PrevHash)
	enc.uint(archivedMillis(p.At))
	enc.str(p.Name)
	enc.str(p.Remark)
	enc.uint(uint64(len(p.Tags)))
	for _, t := range p.Tags {
		enc.str(t)
	}
	enc.str(p.Note)
	enc.str(p.By)
	return enc.sum()
}

func (p ClientProfile) chained() chained {
	return chained{Chain: string(p.Conv()), Seal: p.RecordSeal, Computed: p.ComputeHash(), At: p.At}
}

// ComputeHash is the hash of t's fields but Hash, KeyID, Signature and
// Refused.
func (t TagSet) ComputeHash() string {
	enc := newEncoder(tagSetTag)
	enc.str(t.Account)
	enc.uint(t.Version)
	enc.str(t.PrevHash)
	enc.uint(archivedMillis(t.At))
	enc.uint(uint64(len(t.Tags)))
	for _, tag := range t.Tags {
		enc.str(tag)
	}
	enc.str(t.By)
	return enc.sum()
}

func (t TagSet) chained() chained {
	return chained{Chain: t.Account, Seal: t.RecordSeal, Computed: t.ComputeHash(), At: t.At}
}

// ProfileSignatureMessage is what a profile version's signature signs.
func ProfileSignatureMessage(hash string) []byte { return signedMessage(profileKind.sigTag, hash) }

// TagSetSignatureMessage is what a vocabulary version's signature signs.
func TagSetSignatureMessage(hash string) []byte { return signedMessage(tagSetKind.sigTag, hash) }

// ProfileAuditDetail is detail followed by the marker naming the profile
// version p: " [profile ACCOUNT:OPENID vVERSION HASH]".
func ProfileAuditDetail(detail string, p ClientProfile) string {
	return recordAuditDetail(detail, profileKind.name, string(p.Conv()), p.Version, p.Hash)
}

// TagSetAuditDetail is detail followed by the marker naming the
// vocabulary version t: " [tags ACCOUNT vVERSION HASH]".
func TagSetAuditDetail(detail string, t TagSet) string {
	return recordAuditDetail(detail, tagSetKind.name, t.Account, t.Version, t.Hash)
}

// ProfileSource is the archive as VerifyProfiles reads it.
type ProfileSource interface {
	ProfileStore
	AuditStore
}

// VerifyProfiles checks every stored profile version and vocabulary
// version of src as VerifyHolds checks holds; problems name the version
// "profile:ACCOUNT:OPENID vN" or "tags:ACCOUNT vN".
func VerifyProfiles(ctx context.Context, src ProfileSource, opt DirectoryVerifyOptions) (profiles, tags *RecordReport, err error) {
	ps, err := src.ProfileRecords(ctx, ProfileQuery{})
	if err != nil {
		return nil, nil, fmt.Errorf("verify: reading client profiles: %w", err)
	}
	recs := make([]chained, len(ps))
	for i, p := range ps {
		recs[i] = p.chained()
	}
	if profiles, err = verifyRecords(ctx, profileKind, recs, src, opt); err != nil {
		return nil, nil, err
	}
	ts, err := src.TagSetRecords(ctx, "")
	if err != nil {
		return nil, nil, fmt.Errorf("verify: reading tag vocabularies: %w", err)
	}
	recs = make([]chained, len(ts))
	for i, t := range ts {
		recs[i] = t.chained()
	}
	if tags, err = verifyRecords(ctx, tagSetKind, recs, src, opt); err != nil {
		return nil, nil, err
	}
	return profiles, tags, nil
}
