package commands

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// minPasswordLen is the shortest console password hash-password accepts.
const minPasswordLen = 10

// hashPasswordCommand prints the bcrypt hash of the password read from
// the first line of stdin, for an employee's password_hash (or
// WR_CONSOLE_PASSWORD_HASH_<ID>):
//
//	read -rs PW && printf '%s' "$PW" | wechat-relay hash-password
func hashPasswordCommand(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hash-password", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cost := fs.Int("cost", 12, "bcrypt cost, 10 to 16 (each step doubles the work)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: wechat-relay hash-password [-cost N] < password\n\n"+
			"Reads a console password from the first line of stdin and prints its bcrypt hash,\n"+
			"for console.employees[].password_hash or WR_CONSOLE_PASSWORD_HASH_<ID>.\n"+
			"  read -rs PW && printf '%%s' \"$PW\" | wechat-relay hash-password\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "wechat-relay hash-password: the password is read from stdin, not from arguments (they end up in shell history)")
		return 2
	}
	if *cost < 10 || *cost > 16 {
		fmt.Fprintf(stderr, "wechat-relay hash-password: -cost %d: use 10 to 16\n", *cost)
		return 2
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && err != io.EOF {
		fmt.Fprintf(stderr, "wechat-relay hash-password: reading the password: %v\n", err)
		return 1
	}
	pw := strings.TrimRight(line, "\r\n")
	switch {
	case len([]rune(pw)) < minPasswordLen:
		fmt.Fprintf(stderr, "wechat-relay hash-password: the password must be at least %d characters\n", minPasswordLen)
		return 1
	case len(pw) > 72:
		fmt.Fprintln(stderr, "wechat-relay hash-password: the password must be at most 72 bytes (bcrypt's limit)")
		return 1
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), *cost)
	if err != nil {
		fmt.Fprintf(stderr, "wechat-relay hash-password: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, string(hash))
	return 0
}
