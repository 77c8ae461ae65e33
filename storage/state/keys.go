package state

// DefaultPrefix is the key prefix used when a constructor is given "".
const DefaultPrefix = "wr:"

// keyPrefix returns prefix, or DefaultPrefix when it is empty, so the
// zero value of a configuration field means the default.
func keyPrefix(prefix string) string {
	if prefix == "" {
		return DefaultPrefix
	}
	return prefix
}
