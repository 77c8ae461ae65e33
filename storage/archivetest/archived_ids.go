package archivetest

import (
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/wechat-relay/wechat-relay/relay"
)

// The cases of relay.NoticeStore's ArchivedIDs: the lookup the bot
// decides the compliance notice from.

func archivedIDs(t *testing.T, s Store, c relay.ConversationID, ids ...string) map[string]uint64 {
	t.Helper()
	got, err := s.ArchivedIDs(testCtx(t), c, ids)
	if err != nil {
		t.Fatalf("ArchivedIDs(%s, %d ids): %v", c, len(ids), err)
	}
	if got == nil {
		t.Errorf("ArchivedIDs(%s, %d ids) returned a nil map, want an empty one", c, len(ids))
	}
	return got
}

func testArchivedIDs(t *testing.T, s Store) {
	a, b := conv("o_ids_a"), conv("o_ids_b")
	other := relay.Conversation("acc2", "o_ids_a") // same client, another account
	ma := messages(a, 1, 2, 3)
	mb := messages(b, 1)
	// The notice of a, sent years before its other messages, and one
	// months after: found whenever it was accepted.
	early := outMessage(a, 4, -3*365*24*time.Hour)
	early.ID = relay.OutboundID(a, "bot-notice")
	late := outMessage(a, 5, 200*24*time.Hour)
	late.ID = relay.OutboundID(a, "bot-notice-2")
	// The same key in another conversation.
	mbNotice := outMessage(b, 2, time.Minute)
	mbNotice.ID = relay.OutboundID(b, "bot-notice")
	mo := message(other, 1)
	mo.Account = "acc2"
	mo.ID = relay.OutboundID(other, "bot-notice")
	insert(t, s, ma...)
	insert(t, s, early, late)
	insert(t, s, mb[0], mbNotice, mo)
	// A replay: copies collapse into one id with its sequence.
	insert(t, s, early, ma[0])

	for _, c := range []struct {
		name string
		conv relay.ConversationID
		ids  []string
		want map[string]uint64
	}{
		{"nil", a, nil, map[string]uint64{}},
		{"empty", a, []string{}, map[string]uint64{}},
		{"missing", a, []string{"in:acc:nope", relay.OutboundID(a, "bot-notice-3"), ""}, map[string]uint64{}},
		{"all of a", a, []string{ma[0].ID, ma[1].ID, ma[2].ID, early.ID, late.ID},
			map[string]uint64{ma[0].ID: 1, ma[1].ID: 2, ma[2].ID: 3, early.ID: 4, late.ID: 5}},
		{"years and months apart", a, []string{early.ID, late.ID, relay.OutboundID(a, "bot-notice-3")},
			map[string]uint64{early.ID: 4, late.ID: 5}},
		{"repeated", a, []string{early.ID, early.ID, "x", "x"}, map[string]uint64{early.ID: 4}},
		{"only the conversation asked about", a, []string{mb[0].ID, mbNotice.ID, mo.ID, early.ID},
			map[string]uint64{early.ID: 4}},
		{"another conversation", b, []string{early.ID, mbNotice.ID, mb[0].ID},
			map[string]uint64{mbNotice.ID: 2, mb[0].ID: 1}},
		{"another account", other, []string{early.ID, mo.ID}, map[string]uint64{mo.ID: 1}},
		{"unknown conversation", conv("o_ids_nobody"), []string{early.ID}, map[string]uint64{}},
		{"prefix or case is not a match", a, []string{
			early.ID[:len(early.ID)-1], early.ID + " ", relay.OutboundID(a, "BOT-NOTICE"), relay.OutboundID(a, "bot"),
		}, map[string]uint64{}},
	} {
		if got := archivedIDs(t, s, c.conv, c.ids...); !maps.Equal(got, c.want) {
			t.Errorf("%s: ArchivedIDs(%s, %q) = %v, want %v", c.name, c.conv, c.ids, got, c.want)
		}
	}
}

// testArchivedIDsMany asks about more ids than one query of either
// backend carries.
func testArchivedIDsMany(t *testing.T, s Store) {
	c := conv("o_ids_many")
	msgs := messages(c, seqRange(1, 30)...)
	insert(t, s, msgs...)
	var ids []string
	want := map[string]uint64{}
	for i := range 2500 {
		if i%100 == 7 && i/100 < len(msgs) {
			m := msgs[i/100]
			ids = append(ids, m.ID)
			want[m.ID] = m.Seq
			continue
		}
		ids = append(ids, fmt.Sprintf("out:%s:absent-%d", c, i))
	}
	if got := archivedIDs(t, s, c, ids...); !maps.Equal(got, want) {
		t.Errorf("ArchivedIDs(%d ids) = %v, want %v", len(ids), got, want)
	}
}
