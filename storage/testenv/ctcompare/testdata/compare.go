package compare

import (
	"bytes"
	"crypto/hmac"
	"crypto/subtle"
)

func constant(got, want []byte) bool {
	if len(got) == 0 || got == nil {
		return false
	}
	return subtle.ConstantTimeCompare(got, want) == 1
}

func withHMAC(got, want []byte) bool { return hmac.Equal(got, want) }

func equalOperator(got, want string) bool { return got == want }

func bytesEqual(got, want []byte) bool { return bytes.Equal(got, want) }

func both(got, want []byte) bool {
	return subtle.ConstantTimeCompare(got, want) == 1 || string(got) != string(want)
}
