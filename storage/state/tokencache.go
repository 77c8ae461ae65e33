package state

import "fmt"

// tokenValue turns a value silenceper asks to cache into the string it
// will get back: silenceper only caches tokens and tickets, which are
// strings, and type-asserts what Get returns to string. Anything else is
// refused by both implementations alike rather than stored in a form
// that would come back different.
func tokenValue(val any) (string, error) {
	switch v := val.(type) {
	case string:
		return v, nil
	case []byte:
		return string(v), nil
	default:
		return "", fmt.Errorf("cannot cache a %T: only string and []byte values are supported", val)
	}
}
