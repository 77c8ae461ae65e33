package gateway

import (
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/silenceper/wechat/v2/util"
)

// Errors of the decryption path. Both mean the callback is refused with
// 400; they are told apart for logs and metrics.
var (
	// errBadCiphertext: the Encrypt value is not base64, not whole AES
	// blocks, or its padding or length prefix is wrong.
	errBadCiphertext = errors.New("ciphertext does not decrypt")
	// errWrongAppID: the ciphertext decrypts but names another AppID,
	// so it was made for a different account.
	errWrongAppID = errors.New("ciphertext is for another AppID")
)

// signatureOK reports whether got is sha1(sort(parts)) — WeChat's
// signature and msg_signature — comparing in constant time, so the
// token cannot be probed byte by byte.
func signatureOK(got string, parts ...string) bool {
	if got == "" {
		return false
	}
	want := util.Signature(parts...)
	return subtle.ConstantTimeCompare([]byte(strings.ToLower(got)), []byte(want)) == 1
}

// decryptMessage opens the Encrypt value of a callback (or an encrypted
// echostr) with the 32-byte key of the account whose AppID is appID, and
// returns the plaintext exactly as WeChat encrypted it.
//
// It uses silenceper's AESDecryptMsg rather than DecryptMsg, whose
// untyped Chinese errors cannot tell a foreign AppID from garbage.
func decryptMessage(key []byte, appID, encrypted string) ([]byte, error) {
	ct, err := base64.StdEncoding.DecodeString(encrypted)
	if err != nil {
		return nil, fmt.Errorf("%w: base64: %w", errBadCiphertext, err)
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("%w: key is %d bytes, want 32", errBadCiphertext, len(key))
	}
	_, plain, gotAppID, err := util.AESDecryptMsg(ct, key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errBadCiphertext, err)
	}
	if subtle.ConstantTimeCompare(gotAppID, []byte(appID)) != 1 {
		return nil, errWrongAppID
	}
	return plain, nil
}
