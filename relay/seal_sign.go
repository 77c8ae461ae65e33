package relay

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// Signed seals: each writer signs every seal it stores with an Ed25519
// key kept outside the archive, so that someone who can write the archive
// and recompute hashes still cannot append or rewrite seals that verify
// with the relay's public key.
//
// # What is signed
//
// The signature covers the seal's Hash (which covers every other field of
// the seal), domain-separated:
//
//	message   = "wechat-relay/seal-signature/v1" || 0x00 || Hash
//
// Hash as it is stored: 64 lowercase hex ASCII characters. Signature is
// the standard base64 (with padding) of ed25519.Sign(private key,
// message): 88 characters. KeyID names the key: the lowercase hex of the
// first 8 bytes of the SHA-256 of the raw 32-byte Ed25519 public key (16
// hex digits). Neither field is part of the hash encoding (version 1 is
// unchanged), so seals written before signing was turned on verify as
// before, as unsigned seals.
//
// # Key files
//
// The private key is a PEM "PRIVATE KEY" block, PKCS #8, as
// `openssl genpkey -algorithm ed25519` or `wechat-relay seal-key` writes
// it; public keys are PEM "PUBLIC KEY" blocks (PKIX), as `openssl pkey
// -pubout` writes them, several to a file allowed.

// sealSignatureTag is the domain separation of the signed message.
const sealSignatureTag = "wechat-relay/seal-signature/v1"

// SealSignatureMessage is what a seal's signature signs: the tag, a zero
// byte, and the seal's hash as stored (hex).
func SealSignatureMessage(hash string) []byte { return signedMessage(sealSignatureTag, hash) }

// signedMessage is tag, a zero byte, and hash: the tag keeps a signature
// of one kind of record from passing for another's.
func signedMessage(tag, hash string) []byte {
	msg := make([]byte, 0, len(tag)+1+len(hash))
	msg = append(msg, tag...)
	msg = append(msg, 0)
	return append(msg, hash...)
}

// SealKeyID is the id of an Ed25519 public key: the lowercase hex of the
// first 8 bytes of the SHA-256 of its 32 raw bytes.
func SealKeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// SealSigner signs seals with one private key.
type SealSigner struct {
	key ed25519.PrivateKey
	id  string
}

// NewSealSigner returns a signer for key.
func NewSealSigner(key ed25519.PrivateKey) *SealSigner {
	return &SealSigner{key: key, id: SealKeyID(key.Public().(ed25519.PublicKey))}
}

// KeyID is the id of the signer's public key.
func (s *SealSigner) KeyID() string { return s.id }

// PublicKey is the signer's public key.
func (s *SealSigner) PublicKey() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// Sign returns seal with KeyID and Signature set for its Hash. A nil
// signer leaves the seal unsigned.
func (s *SealSigner) Sign(seal Seal) Seal {
	if s == nil {
		return seal
	}
	seal.KeyID = s.id
	seal.Signature = s.signature(SealSignatureMessage(seal.Hash))
	return seal
}

// ParseSealPrivateKey reads an Ed25519 private key from PEM (PKCS #8,
// "PRIVATE KEY"). Other blocks before it (a "PUBLIC KEY") are skipped.
func ParseSealPrivateKey(data []byte) (ed25519.PrivateKey, error) {
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, errors.New(`no PEM "PRIVATE KEY" block (an Ed25519 key in PKCS #8, as openssl genpkey -algorithm ed25519 writes it)`)
		}
		if b.Type != "PRIVATE KEY" {
			continue
		}
		k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("not a PKCS #8 private key: %w", err)
		}
		ed, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("a %T, not an Ed25519 key", k)
		}
		return ed, nil
	}
}

// ParseSealPublicKeys reads every Ed25519 public key (PEM "PUBLIC KEY",
// PKIX) in data; at least one is required. Blocks of other types are
// skipped, so a file may carry notes between keys.
func ParseSealPublicKeys(data []byte) ([]ed25519.PublicKey, error) {
	var out []ed25519.PublicKey
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		switch b.Type {
		case "PUBLIC KEY":
		case "PRIVATE KEY":
			return nil, errors.New("a private key: give the public key (wechat-relay seal-key prints it; or openssl pkey -in KEY -pubout)")
		default:
			continue
		}
		k, err := x509.ParsePKIXPublicKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("public key %d: %w", len(out)+1, err)
		}
		ed, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("public key %d: a %T, not an Ed25519 key", len(out)+1, k)
		}
		out = append(out, ed)
	}
	if len(out) == 0 {
		return nil, errors.New(`no PEM "PUBLIC KEY" block`)
	}
	return out, nil
}

// LoadSealSigner reads the private key file at path. The error says
// which file and what is wrong with it.
func LoadSealSigner(path string) (*SealSigner, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("seal key file: %w", err)
	}
	key, err := ParseSealPrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("seal key file %s: %w", path, err)
	}
	return NewSealSigner(key), nil
}

// LoadTrustedKeys reads the public keys in the file at path
// (Config.TrustedKeysFile); "" gives none.
func LoadTrustedKeys(path string) ([]ed25519.PublicKey, error) {
	if strings.TrimSpace(path) == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("trusted keys file: %w", err)
	}
	keys, err := ParseSealPublicKeys(data)
	if err != nil {
		return nil, fmt.Errorf("trusted keys file %s: %w", path, err)
	}
	return keys, nil
}

// sealSignerFor loads the key that cfg.SealKeyFile names, or, without
// one, logs once that seals (and audit records) will not be signed and
// returns nil.
func sealSignerFor(cfg Config, log *slog.Logger) (*SealSigner, error) {
	if strings.TrimSpace(cfg.SealKeyFile) == "" {
		log.Warn("no seal key: seals and audit records are hash-chained but not signed, so someone who can write the archive could append or rewrite them undetected; "+
			"create a key with `wechat-relay seal-key -out FILE` and set pipeline.seal_key_file (or WR_SEAL_KEY_FILE)",
			"component", "seal")
		return nil, nil
	}
	s, err := LoadSealSigner(cfg.SealKeyFile)
	if err != nil {
		return nil, fmt.Errorf("relay: pipeline.seal_key_file: %w", err)
	}
	log.Info("signing seals", "component", "seal", "key_id", s.KeyID())
	return s, nil
}

// SignatureStatus is what checking one seal's signature found.
type SignatureStatus int

// The outcomes of CheckSealSignature.
const (
	SignatureUnsigned   SignatureStatus = iota // no KeyID and no Signature
	SignatureValid                             // signed by a known key, and it verifies
	SignatureUnknownKey                        // signed, by a key not given
	SignatureBad                               // signed by a known key, and it does not verify (or is malformed)
)

// CheckSealSignature checks s's signature against keys (by key id).
func CheckSealSignature(s Seal, keys map[string]ed25519.PublicKey) SignatureStatus {
	return checkSignature(s.KeyID, s.Signature, SealSignatureMessage(s.Hash), keys)
}

// checkSignature checks a signature (base64) by the key keyID of msg.
func checkSignature(keyID, signature string, msg []byte, keys map[string]ed25519.PublicKey) SignatureStatus {
	if keyID == "" && signature == "" {
		return SignatureUnsigned
	}
	pub, ok := keys[keyID]
	if !ok {
		return SignatureUnknownKey
	}
	sig, err := base64.StdEncoding.DecodeString(signature)
	if err != nil || len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, msg, sig) {
		return SignatureBad
	}
	return SignatureValid
}

// Signed audit records: the writer's seal key also signs every audit
// record (audit.go) it appends, over the record's Hash, with its own
// domain separation, so that a seal's signature can never pass for an
// audit record's or the other way round:
//
//	message   = "wechat-relay/audit-signature/v1" || 0x00 || Hash
//
// KeyID and Signature are encoded as for seals, and are not part of the
// audit hash (encoding version 1 is unchanged).

// auditSignatureTag is the domain separation of an audit record's
// signed message.
const auditSignatureTag = "wechat-relay/audit-signature/v1"

// AuditSignatureMessage is what an audit record's signature signs: the
// tag, a zero byte, and the record's hash as stored (hex).
func AuditSignatureMessage(hash string) []byte { return signedMessage(auditSignatureTag, hash) }

// SignAudit returns e with KeyID and Signature set for its Hash. A nil
// signer leaves the record unsigned.
func (s *SealSigner) SignAudit(e AuditEntry) AuditEntry {
	if s == nil {
		return e
	}
	e.KeyID = s.id
	e.Signature = s.signature(AuditSignatureMessage(e.Hash))
	return e
}

// CheckAuditSignature checks e's signature against keys (by key id).
func CheckAuditSignature(e AuditEntry, keys map[string]ed25519.PublicKey) SignatureStatus {
	return checkSignature(e.KeyID, e.Signature, AuditSignatureMessage(e.Hash), keys)
}

// signature is the standard base64 of the Ed25519 signature of msg: the
// Signature field of every signed record (seals, audit records,
// directory versions, holds, reviews).
func (s *SealSigner) signature(msg []byte) string {
	return base64.StdEncoding.EncodeToString(ed25519.Sign(s.key, msg))
}
