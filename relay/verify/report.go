package verify

import (
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// What Archive reports. The kinds of problem, the signature and the
// witness reports are relay's (relay.ProblemKind, relay.SignatureReport,
// relay.WitnessReport), shared with the audit log's check.

// Problem is one thing Archive found wrong.
type Problem struct {
	Kind   relay.ProblemKind    `json:"kind"`
	Table  string               `json:"table"` // messages, events or seals
	ID     string               `json:"id"`    // the row's id, or the seal's
	Conv   relay.ConversationID `json:"conv,omitempty"`
	Batch  string               `json:"batch,omitempty"` // the batch (seal id) the row belongs to
	Detail string               `json:"detail"`
}

// Chain sums up one verified chain.
type Chain struct {
	Writer   string    `json:"writer"`
	Stream   string    `json:"stream"`
	Seals    int       `json:"seals"`
	First    uint64    `json:"first"` // number of the first seal found
	Last     uint64    `json:"last"`  // number of the last seal found
	LastHash string    `json:"last_hash"`
	LastAt   time.Time `json:"last_at"`
	Rows     int       `json:"rows"` // rows its seals list
	// Signed and Unsigned count its seals with and without a signature
	// (whether or not public keys were given to check them).
	Signed   int `json:"signed"`
	Unsigned int `json:"unsigned"`
}

// Conversation counts a conversation's problems.
type Conversation struct {
	Conv     relay.ConversationID `json:"conv"`
	Missing  int                  `json:"missing"`
	Altered  int                  `json:"altered"`
	Inserted int                  `json:"inserted"`
}

// Report is what Archive found.
type Report struct {
	// OK is true when nothing is wrong: every row is covered by a seal
	// that lists it with its content, every seal is intact, every chain
	// runs unbroken from 1, and every witnessed seal is there.
	OK     bool    `json:"ok"`
	Chains []Chain `json:"chains"`
	Seals  int     `json:"seals"`
	// Messages and Events count the sealed rows found intact.
	Messages int `json:"messages"`
	Events   int `json:"events"`
	// Counts holds the number of problems of each kind; Problems lists
	// them, up to Options.MaxProblems.
	Counts        map[relay.ProblemKind]int `json:"counts"`
	Problems      []Problem                 `json:"problems"`
	Conversations []Conversation            `json:"conversations"` // those with problems, by id
	Witnesses     []relay.WitnessReport     `json:"witnesses,omitempty"`
	Signatures    relay.SignatureReport     `json:"signatures"`
}

// Progress is how far Archive got, for a progress line.
type Progress struct {
	Seals, Rows, Problems int
}
