package wxsim

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strconv"
)

// Alphabets of WeChat's identifiers: openids and tokens use base64url-ish
// characters, QR codes and nonces digits and letters.
const (
	urlSafeChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	alnumChars   = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	hexChars     = "0123456789abcdef"
)

// newRand returns the simulator's deterministic random source.
func newRand(seed uint64) *rand.Rand {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	copy(key[8:], "wxsim deterministic source")
	return rand.New(rand.NewChaCha8(key))
}

func randString(r *rand.Rand, alphabet string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

// openIDPrefix is the part all openids of one account share, as real
// openids of one account do ("o6_bmj…"): "o" and five characters derived
// from the AppID.
func openIDPrefix(appID string) string {
	sum := sha1.Sum([]byte(appID))
	enc := base64.RawURLEncoding.EncodeToString(sum[:])
	return "o" + enc[:5]
}

// newOpenID returns a 28-character openid for appID.
func newOpenID(r *rand.Rand, appID string) string {
	return openIDPrefix(appID) + randString(r, urlSafeChars, 22)
}

// newAccessToken returns a token shaped like WeChat's: a numeric version
// prefix, an underscore and base64url-ish characters, 136 long in all.
func newAccessToken(r *rand.Rand) string {
	return "89_" + randString(r, urlSafeChars, 133)
}

// newMediaID returns a 64-character temporary media id.
func newMediaID(r *rand.Rand) string { return randString(r, urlSafeChars, 64) }

// newNonce returns a callback nonce: WeChat sends digits.
func newNonce(r *rand.Rand) string { return strconv.FormatUint(r.Uint64N(9e9)+1e9, 10) }

// newRID returns a request id like the one WeChat appends to errmsg.
func newRID(r *rand.Rand) string {
	return fmt.Sprintf("%08x-%08x-%08x", r.Uint32(), r.Uint32(), r.Uint32())
}

// newAppSecret returns a 32-hex-digit AppSecret.
func newAppSecret(r *rand.Rand) string { return randString(r, hexChars, 32) }

// newAppID returns "wx" and 16 hex digits.
func newAppID(r *rand.Rand) string { return "wx" + randString(r, hexChars, 16) }

// newOriginalID returns an account's original id, "gh_" and 12 hex digits:
// WeChat's ToUserName in callbacks.
func newOriginalID(r *rand.Rand) string { return "gh_" + randString(r, hexChars, 12) }

// newEncodingAESKey returns a 43-character EncodingAESKey.
func newEncodingAESKey(r *rand.Rand) string { return randString(r, alnumChars, 43) }

// newCallbackToken returns a callback Token (3–32 letters and digits).
func newCallbackToken(r *rand.Rand) string { return randString(r, alnumChars, 32) }
