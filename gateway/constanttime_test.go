package gateway

import (
	"testing"

	"github.com/wechat-relay/wechat-relay/storage/testenv/ctcompare"
)

// WeChat's signature and msg_signature, and the AppID inside a
// ciphertext, are compared in constant time, so that a forger cannot
// learn the signature byte by byte from how long a refusal takes. No
// test can time it reliably; the source is checked instead.
func TestSignaturesComparedInConstantTime(t *testing.T) {
	ctcompare.Check(t, "crypto.go", "signatureOK", "decryptMessage")
}
