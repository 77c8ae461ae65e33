package wxsim

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// Directions of a LogEntry, seen from the client's phone.
const (
	// DirectionIn is a message or event from the client to the account.
	DirectionIn = "in"
	// DirectionOut is a message the platform delivered to the client.
	DirectionOut = "out"
)

// Sources of a LogEntry.
const (
	SourceClient   = "client"   // the client sent it (a message or an event)
	SourceCustom   = "custom"   // message/custom/send
	SourceTemplate = "template" // message/template/send
	SourceReply    = "reply"    // passive reply in the callback answer
)

// maxClientLog bounds each client's log; older entries are dropped (their
// sequence numbers are not reused).
const maxClientLog = 2000

// LogEntry is one message in a client's conversation with the account, as
// its phone would show it.
type LogEntry struct {
	// Seq increases by one per entry of this client, from 1.
	Seq       int64     `json:"seq"`
	Time      time.Time `json:"time"`
	Direction string    `json:"direction"`
	Source    string    `json:"source"`
	MsgType   string    `json:"msgtype"`
	Event     string    `json:"event,omitempty"`
	EventKey  string    `json:"event_key,omitempty"`
	// MsgID is the callback MsgId (client messages) or the template msgid.
	MsgID     string `json:"msgid,omitempty"`
	KFAccount string `json:"kf_account,omitempty"`
	// Content is the text of a text message, or a one-line summary.
	Content string `json:"content,omitempty"`
	MediaID string `json:"media_id,omitempty"`
	// Raw is what went over the wire: the API call's JSON body, or the
	// plaintext XML of a callback or passive reply.
	Raw string `json:"raw,omitempty"`
	// Callback tells how the push of a client's message or event to the
	// relay stands: in flight (pending, retrying) or how it ended. Nil for
	// messages delivered to the client. The pointed-to value is never
	// modified; a change replaces the pointer, so copies stay valid.
	Callback *CallbackState `json:"callback,omitempty"`
}

// ClientInfo describes a simulated client (a WeChat user as one account
// sees it).
type ClientInfo struct {
	AppID          string    `json:"appid"`
	OpenID         string    `json:"openid"`
	Subscribed     bool      `json:"subscribed"`
	SubscribeTime  time.Time `json:"subscribe_time,omitzero"`
	SubscribeScene string    `json:"subscribe_scene,omitempty"`
	QRScene        int       `json:"qr_scene,omitempty"`
	QRSceneStr     string    `json:"qr_scene_str,omitempty"`
	Language       string    `json:"language"`
	Remark         string    `json:"remark,omitempty"`
	TagIDs         []int     `json:"tagid_list"`
	// LastInteraction is when the client last did something that opens the
	// customer-service window (message, subscribe, scan, menu click).
	LastInteraction time.Time `json:"last_interaction,omitzero"`
	// WindowEnds is when custom/send starts answering 45015.
	WindowEnds time.Time `json:"window_ends,omitzero"`
	// SendsLeft is how many custom/send messages may still be sent before
	// the client's next interaction (45047 after).
	SendsLeft int `json:"sends_left"`
	// Typing reports an active "Typing" indicator.
	Typing bool `json:"typing"`
	// LastSeq is the Seq of the newest log entry.
	LastSeq int64 `json:"last_seq"`
}

// client is a simulated WeChat user as seen by one account.
type client struct {
	appID, openID  string
	subscribed     bool
	subscribeTime  time.Time
	subscribeScene string
	qrScene        int
	qrSceneStr     string
	language       string
	remark         string
	tagIDs         []int
	blockTemplates bool

	lastInteraction time.Time
	sends           int // custom/send messages since lastInteraction
	typingUntil     time.Time

	log []LogEntry
	seq int64
}

// interact records an interaction that opens the 48-hour window and resets
// the per-interaction send count. Caller holds s.mu.
func (c *client) interact(now time.Time) {
	c.lastInteraction = now
	c.sends = 0
}

// appendLog adds e to the client's log and returns it with its Seq.
// Caller holds s.mu.
func (c *client) appendLog(e LogEntry) LogEntry {
	c.seq++
	e.Seq = c.seq
	c.log = append(c.log, e)
	if len(c.log) > maxClientLog {
		c.log = slices.Delete(c.log, 0, len(c.log)-maxClientLog)
	}
	return e
}

// setCallback records the callback state of the log entry seq, if it is
// still in the log. Caller holds s.mu.
func (c *client) setCallback(seq int64, st CallbackState) {
	i, ok := slices.BinarySearchFunc(c.log, seq, func(e LogEntry, seq int64) int { return cmp.Compare(e.Seq, seq) })
	if ok {
		c.log[i].Callback = &st
	}
}

// customCheck answers whether a customer-service message (or typing) may
// reach c now: 45015 outside the window or after unsubscribing, 45047 when
// the sends since the last interaction are used up (counting only when
// countSend). Caller holds s.mu.
func (s *Sim) customCheck(c *client, countSend bool) *APIError {
	now := s.clock.Now()
	if !c.subscribed || c.lastInteraction.IsZero() || now.Sub(c.lastInteraction) > s.cfg.Window {
		return apiErr(CodeOutOfWindow, "")
	}
	if countSend && c.sends >= s.cfg.SendsPerInteraction {
		return apiErr(CodeOutOfResponseCount, "")
	}
	return nil
}

func (s *Sim) clientInfo(c *client) ClientInfo {
	now := s.clock.Now()
	info := ClientInfo{
		AppID:           c.appID,
		OpenID:          c.openID,
		Subscribed:      c.subscribed,
		SubscribeTime:   c.subscribeTime,
		SubscribeScene:  c.subscribeScene,
		QRScene:         c.qrScene,
		QRSceneStr:      c.qrSceneStr,
		Language:        c.language,
		Remark:          c.remark,
		TagIDs:          slices.Clone(c.tagIDs),
		LastInteraction: c.lastInteraction,
		Typing:          now.Before(c.typingUntil),
		LastSeq:         c.seq,
	}
	if info.TagIDs == nil {
		info.TagIDs = []int{}
	}
	if !c.lastInteraction.IsZero() {
		info.WindowEnds = c.lastInteraction.Add(s.cfg.Window)
		if c.subscribed && now.Before(info.WindowEnds) {
			info.SendsLeft = max(0, s.cfg.SendsPerInteraction-c.sends)
		}
	}
	return info
}

// lookupClient returns the client with openID. Caller holds s.mu.
func (s *Sim) lookupClient(openID string) (*client, error) {
	c, ok := s.clients[openID]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownClient, openID)
	}
	return c, nil
}

// NewClient creates a WeChat user who has found the account but does not
// follow it yet; Subscribe or ScanQR makes it a follower.
func (s *Sim) NewClient(appID string) (*Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[appID]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownAccount, appID)
	}
	var id string
	for {
		id = newOpenID(s.rng, appID)
		if _, dup := s.clients[id]; !dup {
			break
		}
	}
	s.clients[id] = &client{appID: appID, openID: id, language: "zh_CN"}
	a.clients = append(a.clients, id)
	return &Client{sim: s, AppID: appID, OpenID: id}, nil
}

// Client returns a handle on the existing client openID.
func (s *Sim) Client(openID string) (*Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.lookupClient(openID)
	if err != nil {
		return nil, err
	}
	return &Client{sim: s, AppID: c.appID, OpenID: c.openID}, nil
}

// ClientInfo describes the client openID.
func (s *Sim) ClientInfo(openID string) (ClientInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.lookupClient(openID)
	if err != nil {
		return ClientInfo{}, err
	}
	return s.clientInfo(c), nil
}

// Clients lists the account's clients, followers or not, oldest first.
func (s *Sim) Clients(appID string) ([]ClientInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[appID]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownAccount, appID)
	}
	out := make([]ClientInfo, 0, len(a.clients))
	for _, id := range a.clients {
		out = append(out, s.clientInfo(s.clients[id]))
	}
	return out, nil
}

// Log returns the client's log entries with Seq greater than after.
func (s *Sim) Log(openID string, after int64) ([]LogEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.lookupClient(openID)
	if err != nil {
		return nil, err
	}
	i, _ := slices.BinarySearchFunc(c.log, after+1, func(e LogEntry, seq int64) int { return cmp.Compare(e.Seq, seq) })
	return slices.Clone(c.log[i:]), nil
}

// Delivered returns the messages the platform delivered to the client
// (custom, template and passive replies), oldest first.
func (s *Sim) Delivered(openID string) ([]LogEntry, error) {
	all, err := s.Log(openID, 0)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(e LogEntry) bool { return e.Direction != DirectionOut }), nil
}

// SetBlockTemplates makes the client refuse template messages, so that
// TEMPLATESENDJOBFINISH reports "failed:user block".
func (s *Sim) SetBlockTemplates(openID string, block bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.lookupClient(openID)
	if err != nil {
		return err
	}
	c.blockTemplates = block
	return nil
}
