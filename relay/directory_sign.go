package relay

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Signed, chained directory records. The directory decides who signs in
// and with which role, so a row inserted into the archive behind the
// relay's back must not become a working credential. Each version of an
// entry (DirectoryRecord) therefore carries:
//
//   - Hash, the hex SHA-256 of its canonical encoding (below), which
//     covers every field but Hash, KeyID and Signature;
//   - PrevHash, the Hash of the version of the same (Kind, ID) it
//     follows ("" for the first);
//   - KeyID and Signature: the writer's seal key (pipeline.seal_key_file)
//     signs Hash, domain-separated, as seals and audit records are
//     (seal_sign.go), and encoded the same way:
//
//	message = "wechat-relay/directory-signature/v1" || 0x00 || Hash
//
// and the admin API writes, before it archives the version, an admin
// audit record (password_change for an employee's own password; signed
// too) whose Detail ends with the marker
// DirectoryAuditDetail adds: the entry, its version and Hash. A forger
// cannot make that record without the key either.
//
// # Canonical encoding of a directory record, version 1
//
// As for messages and audit records (seal.go): each field a big-endian
// uint64 length and its bytes, numbers in decimal, hex SHA-256 of the
// whole:
//
//	"wechat-relay/directory/v1"
//	kind, id
//	version            (decimal)
//	prev_hash
//	at_ms              (decimal epoch milliseconds, 0 before 1970)
//	by
//	deleted            ("1" or "0")
//	data
//
// How the relay treats each record when it loads the directory, and
// which unsigned records it still accepts, is in directory_trust.go.

const (
	directoryTag          = "wechat-relay/directory/v1"
	directorySignatureTag = "wechat-relay/directory-signature/v1"
)

// DirLegacy is the kind of the records that pin the unsigned records
// written before signing began (directory_trust.go). They are not
// entries of the directory.
const DirLegacy = "legacy"

// ComputeHash is the hash of r's fields other than Hash, KeyID and
// Signature.
func (r DirectoryRecord) ComputeHash() string {
	enc := newEncoder(directoryTag)
	enc.str(r.Kind)
	enc.str(r.ID)
	enc.uint(r.Version)
	enc.str(r.PrevHash)
	enc.uint(archivedMillis(r.At))
	enc.str(r.By)
	enc.bool(r.Deleted)
	enc.str(r.Data)
	return enc.sum()
}

// Signed reports whether r carries a signature (valid or not).
func (r DirectoryRecord) Signed() bool { return r.KeyID != "" || r.Signature != "" }

// DirectorySignatureMessage is what a directory record's signature
// signs: the tag, a zero byte, and the record's hash as stored (hex).
func DirectorySignatureMessage(hash string) []byte {
	return signedMessage(directorySignatureTag, hash)
}

// SignDirectory returns r with KeyID and Signature set for its Hash. A
// nil signer leaves the record unsigned.
func (s *SealSigner) SignDirectory(r DirectoryRecord) DirectoryRecord {
	if s == nil {
		return r
	}
	r.KeyID = s.id
	r.Signature = s.signature(DirectorySignatureMessage(r.Hash))
	return r
}

// CheckDirectorySignature checks r's signature against keys (by key id).
func CheckDirectorySignature(r DirectoryRecord, keys map[string]ed25519.PublicKey) SignatureStatus {
	return checkSignature(r.KeyID, r.Signature, DirectorySignatureMessage(r.Hash), keys)
}

// DirectoryAuditDetail is detail, the admin's description of a change,
// followed by the marker that ties the audit record to the archived
// version rec: " [directory KIND:ID vVERSION HASH]" (recordAuditDetail).
func DirectoryAuditDetail(detail string, rec DirectoryRecord) string {
	return recordAuditDetail(detail, "directory", DirectoryAuditTarget(rec.Kind, rec.ID), rec.Version, rec.Hash)
}

// DirectoryAuditTarget is the Target of the admin audit record of a
// change to an entry: "KIND:ID".
func DirectoryAuditTarget(kind, id string) string { return kind + ":" + id }

// AuditedVersion reads the marker of DirectoryAuditDetail in an admin
// (or password_change, sso_grant: directoryAuditActions) audit record: the entry's kind and id, the version and its hash; ok is
// false when e records no directory version (records written before
// directory records were signed have no marker).
func AuditedVersion(e AuditEntry) (kind, id string, version uint64, hash string, ok bool) {
	if !slices.Contains(directoryAuditActions, e.Action) {
		return "", "", 0, "", false
	}
	entry, version, hash, ok := auditedRecord(e.Detail, "directory")
	if !ok || entry != e.Target {
		return "", "", 0, "", false
	}
	kind, id, found := strings.Cut(entry, ":")
	if !found {
		return "", "", 0, "", false
	}
	return kind, id, version, hash, true
}

// legacyPin is the Data of a DirLegacy record: the hashes (ComputeHash)
// of the unsigned records accepted as legacy, sorted.
type legacyPin struct {
	Hashes []string `json:"hashes"`
}

func encodePin(hashes []string) string {
	h := slices.Clone(hashes)
	slices.Sort(h)
	data, _ := json.Marshal(legacyPin{Hashes: slices.Compact(h)})
	return string(data)
}

func decodePin(data string) ([]string, error) {
	var p legacyPin
	if err := json.Unmarshal([]byte(data), &p); err != nil {
		return nil, fmt.Errorf("legacy pin: %w", err)
	}
	return p.Hashes, nil
}
