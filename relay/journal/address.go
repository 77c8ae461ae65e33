package journal

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
)

// The stable addresses of the people and accounts in a conversation,
// under Config.Domain: the same client, employee or account always maps
// to the same address, so the firm's archive files a WeChat conversation
// with the rest of that person's correspondence.
const (
	clientsSub  = "clients."
	staffSub    = "staff."
	accountsSub = "accounts."
)

// atomRE is what is kept as it is in a local part: a dot-atom of the
// characters ids are made of (WeChat openids are letters, digits, '-'
// and '_').
var atomRE = regexp.MustCompile(`^[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*$`)

// localPart maps an id to a local part: the id itself when it is a
// plain dot-atom of at most 64 characters; otherwise "x-" and the hex of
// its SHA-256's first 16 bytes, stable but not readable (the headers
// carry the id itself). An empty id is "unknown".
func localPart(id string) string {
	switch {
	case id == "":
		return "unknown"
	case len(id) <= 64 && atomRE.MatchString(id) && !strings.HasPrefix(id, "x-"):
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return "x-" + hex.EncodeToString(sum[:16])
}

func clientAddress(openid, domain string) string {
	return localPart(openid) + "@" + clientsSub + domain
}
func staffAddress(emp, domain string) string   { return localPart(emp) + "@" + staffSub + domain }
func accountAddress(acc, domain string) string { return localPart(acc) + "@" + accountsSub + domain }

// MessageID is the Message-ID header of the email journaling the ledger
// key (a row id or a transcript key): derived from the key alone (and
// the domain), so every attempt, on every instance, sends the same one
// and the receiving archive drops the copies.
func MessageID(key, domain string) string {
	sum := sha256.Sum256([]byte("wechat-relay/journal/v1\x00" + key))
	return "<" + hex.EncodeToString(sum[:20]) + ".journal@" + domain + ">"
}
