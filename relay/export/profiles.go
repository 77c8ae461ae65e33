package export

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/wechat-relay/wechat-relay/relay"
)

// ProfileSource is what an export reads of the clients' profiles
// (relay.ProfileStore). A Source that implements it has the profiles of
// the exported conversations' clients exported too: profiles.jsonl,
// every archived version with its hash, chain link and signature, and
// the newest in the transcript's heading of each conversation.
type ProfileSource interface {
	ProfileRecords(ctx context.Context, q relay.ProfileQuery) ([]relay.ClientProfile, error)
}

// Profile is one line of profiles.jsonl: one archived version of a
// client's profile, as stored (relay/profile_sign.go says how to check
// its hash and signature).
type Profile struct {
	Account   string   `json:"account"`
	OpenID    string   `json:"openid"`
	Conv      string   `json:"conv"`
	Version   uint64   `json:"version"`
	At        string   `json:"at"`
	By        string   `json:"by"`
	Name      string   `json:"name"`
	Remark    string   `json:"remark"`
	Tags      []string `json:"tags"`
	Note      string   `json:"note"`
	PrevHash  string   `json:"prev_hash"`
	Hash      string   `json:"hash"`
	KeyID     string   `json:"key_id,omitempty"`
	Signature string   `json:"signature,omitempty"`
}

// readProfiles reads every version of the profiles of msgs' clients, by
// conversation then version; nil when src keeps no profiles.
func (x *run) readProfiles(msgs []relay.Message) ([]relay.ClientProfile, error) {
	ps, ok := x.src.(ProfileSource)
	if !ok || len(msgs) == 0 {
		return nil, nil
	}
	convs := []relay.ConversationID{}
	for _, m := range msgs {
		if !slices.Contains(convs, m.Conv) {
			convs = append(convs, m.Conv)
		}
	}
	recs, err := ps.ProfileRecords(x.ctx, relay.ProfileQuery{Convs: convs})
	if err != nil {
		return nil, fmt.Errorf("relay: export: reading client profiles: %w", err)
	}
	slices.SortStableFunc(recs, func(a, b relay.ClientProfile) int {
		return cmp.Or(cmp.Compare(a.Conv(), b.Conv()), cmp.Compare(a.Version, b.Version), a.At.Compare(b.At))
	})
	return recs, nil
}

// writeProfiles writes profiles.jsonl when the source keeps profiles.
func (x *run) writeProfiles(recs []relay.ClientProfile) error {
	if _, ok := x.src.(ProfileSource); !ok {
		return nil
	}
	rows := make([]Profile, len(recs))
	for i, p := range recs {
		tags := p.Tags
		if tags == nil {
			tags = []string{}
		}
		rows[i] = Profile{Account: p.Account, OpenID: p.OpenID, Conv: string(p.Conv()), Version: p.Version, At: formatTime(p.At),
			By: p.By, Name: p.Name, Remark: p.Remark, Tags: tags, Note: p.Note,
			PrevHash: p.PrevHash, Hash: p.Hash, KeyID: p.KeyID, Signature: p.Signature}
	}
	x.man.Counts.Profiles = len(rows)
	return x.put("profiles.jsonl", func(w io.Writer) error { return writeJSONLines(w, rows) })
}

// latestProfiles is the newest archived version of each client's
// profile among recs (sorted by readProfiles), by conversation.
func latestProfiles(recs []relay.ClientProfile) map[relay.ConversationID]relay.ClientProfile {
	out := map[relay.ConversationID]relay.ClientProfile{}
	for _, p := range recs {
		out[p.Conv()] = p
	}
	return out
}
