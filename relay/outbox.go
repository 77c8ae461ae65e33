package relay

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"regexp"
	"sync"
	"time"
	"unicode/utf8"
)

// OutboxConfig tunes outbound delivery. Zero values select the defaults
// in the comments.
type OutboxConfig struct {
	// Window is how long after the client's last interaction
	// customer-service messages may be sent (48h, WeChat's rule).
	Window time.Duration `yaml:"window"`
	// SendsPerInteraction caps the messages sent per client interaction
	// (5, WeChat's current rule; errcode 45047 beyond it).
	SendsPerInteraction int `yaml:"sends_per_interaction"`
	// Workers send concurrently, each owning a share of the
	// conversations so that one conversation's messages leave in order (4).
	Workers int `yaml:"workers"`
	// Attempts bounds tries of a send that certainly did not arrive
	// (system busy, connection refused) before it is marked failed (5).
	Attempts int `yaml:"attempts"`
	// SendTimeout bounds one call to WeChat (10s). A call that times out
	// after its request was written has an unknown outcome.
	SendTimeout time.Duration `yaml:"send_timeout"`
	// RetryMin and RetryMax bound the backoff between attempts (500ms, 10s).
	RetryMin time.Duration `yaml:"retry_min"`
	RetryMax time.Duration `yaml:"retry_max"`
	// ScanInterval is how often the archive is searched for outbound
	// messages that were archived but never settled — a crash between
	// archiving and sending (30s).
	ScanInterval time.Duration `yaml:"scan_interval"`
	// SettleAfter is how old an unsettled message must be before the
	// scan acts on it, so that it never races the instance that is
	// sending it right now (2m).
	SettleAfter time.Duration `yaml:"settle_after"`
	// TypingInterval is the least time between two typing indications
	// for one conversation (5s).
	TypingInterval time.Duration `yaml:"typing_interval"`
	// Template is offered to employees when the window or the quota is
	// closed (optional).
	Template string `yaml:"template"`
}

func (c OutboxConfig) withDefaults() OutboxConfig {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Window, 48*time.Hour)
	def(&c.SendTimeout, 10*time.Second)
	def(&c.RetryMin, 500*time.Millisecond)
	def(&c.RetryMax, 10*time.Second)
	def(&c.ScanInterval, 30*time.Second)
	def(&c.SettleAfter, 2*time.Minute)
	def(&c.TypingInterval, 5*time.Second)
	if c.SendsPerInteraction <= 0 {
		c.SendsPerInteraction = 5
	}
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.Attempts <= 0 {
		c.Attempts = 5
	}
	return c
}

// SendRequest is an employee's (or the bot's) message to a client.
type SendRequest struct {
	// Key is the sender's idempotency key: a repeated key returns the
	// first result and sends nothing. Letters, digits, '-', '_', ':', up
	// to 100 characters.
	Key      string
	Conv     ConversationID
	Employee string // who sends; "" for the relay's own messages
	Kind     Kind   // text, image, voice, video or link
	Text     string
	// Upload is the content of an image, voice or video, uploaded to
	// WeChat as temporary media and archived with the message.
	Upload *Upload
	// Attrs: link: title, description, url, pic_url; video: title,
	// description.
	Attrs map[string]string
}

// Upload is a file an employee sends.
type Upload struct {
	FileName    string
	ContentType string
	Data        []byte
}

// SendResult is what the console learns about a send.
type SendResult struct {
	MessageID string
	State     DeliveryState
	ErrCode   int
	ErrMsg    string
	// Duplicate is set when the key had been used: the result is the
	// first send's.
	Duplicate bool
}

// PolicyError is a send refused by the relay before anything was
// archived or sent: outside the window, over the quota.
type PolicyError struct {
	Code     int    // the WeChat errcode the send would have met
	Reason   string // plain words for the employee
	Template string // template to offer instead, "" if none configured
}

func (e *PolicyError) Error() string { return e.Reason }

// ErrBadRequest wraps requests that cannot be sent as they are.
var ErrBadRequest = errors.New("relay: bad send request")

var keyPattern = regexp.MustCompile(`^[A-Za-z0-9_:-]{1,100}$`)

// maxTextBytes is WeChat's limit for a customer-service text message.
const maxTextBytes = 2048

// WindowState tells an employee, before typing, whether and how much
// they may send.
type WindowState struct {
	Open      bool      `json:"open"`
	ClosesAt  time.Time `json:"closes_at,omitzero"`
	SendsLeft int       `json:"sends_left"`
	Reason    string    `json:"reason,omitempty"`
	Template  string    `json:"template,omitempty"`
}

// OutboxDeps are the parts an Outbox uses.
type OutboxDeps struct {
	// Pipeline makes accepted sends durable; its writer hands them to
	// Queue (its Deps.Outbound) once archived, for the Delivery.
	Pipeline     *Pipeline
	Queue        *OutboundQueue
	Events       EventLog
	Interactions Interactions
	Media        MediaStore
	Sender       Sender // uploads and typing; sends leave through the Delivery
	Dedupe       Dedupe
	// Lexicon, if set, refuses sends that match a blocking rule.
	Lexicon *Lexicon
	Logger  *slog.Logger
	Now     func() time.Time
}

// Outbox accepts outbound messages: policy first, then the archive (the
// pipeline), whose writer hands each archived send to the OutboundQueue,
// from which the Delivery calls WeChat and archives the outcome.
//
// Its methods may be called from any goroutine.
type Outbox struct {
	cfg OutboxConfig
	d   OutboxDeps
	log *slog.Logger

	mu     sync.Mutex
	typing map[ConversationID]time.Time
	// convLocks serialise the policy check and the acceptance of sends in
	// one conversation, so two quick sends cannot both take the last slot.
	convLocks [64]sync.Mutex
	// claims keep a retried send (same key) from being accepted twice, or
	// answered "pending" before its first attempt is durable.
	claims *claims
	// notice, when set, is asked before every send to make sure the
	// conversation has had the compliance notice (NoticeFirst).
	notice func(context.Context, ConversationID) error
}

// NoticeFirst makes every Send first call ensure for its conversation
// (Bot.EnsureNotice), and refuse the send with its error: no client gets
// a reply before the notice that the conversation is recorded. Call it
// before the outbox is used.
func (o *Outbox) NoticeFirst(ensure func(context.Context, ConversationID) error) { o.notice = ensure }

// NewOutbox returns an outbox.
func NewOutbox(cfg OutboxConfig, d OutboxDeps) (*Outbox, error) {
	if d.Pipeline == nil || d.Queue == nil || d.Events == nil || d.Interactions == nil || d.Sender == nil || d.Dedupe == nil {
		return nil, errors.New("relay: outbox needs pipeline, queue, events, interactions, sender and dedupe")
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Outbox{
		cfg: cfg.withDefaults(), d: d, log: d.Logger, typing: map[ConversationID]time.Time{},
		claims: &claims{d: d.Dedupe, lease: defaultClaimLease, wait: defaultClaimWait, log: d.Logger},
	}, nil
}

// OutboundID is the archive id of an outbound message sent with key.
func OutboundID(conv ConversationID, key string) string { return "out:" + string(conv) + ":" + key }

// Window returns what may be sent in conv now.
func (o *Outbox) Window(ctx context.Context, conv ConversationID) (WindowState, error) {
	last, sends, err := o.countSends(ctx, conv)
	if err != nil {
		return WindowState{}, err
	}
	now := o.d.Now()
	w := WindowState{Template: o.cfg.Template}
	switch {
	case last.IsZero():
		w.Reason = "the client has not written yet; WeChat allows customer-service messages only after the client's interaction"
	case now.Sub(last) >= o.cfg.Window:
		w.Reason = fmt.Sprintf("more than %v since the client's last message: WeChat allows only template messages now", o.cfg.Window)
	case sends >= o.cfg.SendsPerInteraction:
		w.ClosesAt = last.Add(o.cfg.Window)
		w.Reason = fmt.Sprintf("%d messages sent since the client's last message, WeChat's limit; wait for the client to write", sends)
	default:
		w.Open = true
		w.ClosesAt = last.Add(o.cfg.Window)
		w.SendsLeft = o.cfg.SendsPerInteraction - sends
		w.Template = ""
	}
	return w, nil
}

// countSends returns the client's last interaction and the sends since:
// those the archive holds plus those still in the spool. A send that moves
// from the spool into the archive while the archive is being read could be
// counted twice or not at all, so the count is taken again when that
// happened.
func (o *Outbox) countSends(ctx context.Context, conv ConversationID) (time.Time, int, error) {
	for attempt := 1; ; attempt++ {
		gen, spooled := o.d.Queue.spooledIn(conv)
		last, sends, err := o.d.Interactions.LastInteraction(ctx, conv)
		if err != nil {
			return time.Time{}, 0, fmt.Errorf("reading the last interaction of %s: %w", conv, err)
		}
		moved, _ := o.d.Queue.spooledIn(conv)
		if moved == gen || attempt == 5 {
			return last, sends + spooled, nil
		}
	}
}

// Send checks policy, archives the message as pending and queues it for
// WeChat. It returns once the message is durable; the outcome follows on
// the bus.
func (o *Outbox) Send(ctx context.Context, req SendRequest) (SendResult, error) {
	if err := o.validate(req); err != nil {
		return SendResult{}, err
	}
	if err := o.d.Lexicon.checkOutbound(ctx, req); err != nil {
		return SendResult{}, err
	}
	if o.notice != nil {
		if err := o.notice(ctx, req.Conv); err != nil {
			return SendResult{}, fmt.Errorf("sending the compliance notice first: %w", err)
		}
	}
	id := OutboundID(req.Conv, req.Key)
	var res SendResult
	dup, err := o.claims.once(ctx, "send:"+id, 7*24*time.Hour, func() (err error) {
		res, err = o.accept(ctx, req, id)
		return err
	})
	switch {
	case err != nil:
		return SendResult{}, err
	case dup:
		return o.result(ctx, id, true)
	}
	return res, nil
}

// accept makes the send with id durable, unless the archive has it
// already: policy, the upload, then the spool. It runs under the send's
// claim, which an error releases.
func (o *Outbox) accept(ctx context.Context, req SendRequest, id string) (SendResult, error) {
	if res, ok, err := archivedResult(ctx, o.d.Events, id); err != nil || ok {
		return res, err
	}
	lock := &o.convLocks[convHash(req.Conv)%uint32(len(o.convLocks))]
	lock.Lock()
	defer lock.Unlock()
	w, err := o.Window(ctx, req.Conv)
	if err != nil {
		return SendResult{}, err
	}
	if !w.Open {
		code := ErrCodeOutOfWindow
		if !w.ClosesAt.IsZero() {
			code = ErrCodeSendQuota
		}
		return SendResult{}, &PolicyError{Code: code, Reason: w.Reason, Template: w.Template}
	}

	account, client := req.Conv.Split()
	m := Message{
		ID: id, Account: account, Client: client, Conv: req.Conv, Direction: Outbound, Kind: req.Kind,
		Text: req.Text, Attrs: cloneAttrs(req.Attrs), CreatedAt: o.d.Now(),
	}
	// Employee is the conversation's assignee, set by routing as for
	// every message; who wrote this one is kept beside it.
	if req.Employee != "" {
		m.Attrs = withAttr(m.Attrs, "sent_by", req.Employee)
	}
	if req.Upload != nil {
		mediaID, err := o.d.Sender.UploadMedia(ctx, account, req.Kind, req.Upload.FileName, req.Upload.Data)
		if err != nil {
			return SendResult{}, fmt.Errorf("uploading %s to WeChat: %w", req.Kind, err)
		}
		m.MediaID = mediaID
		m.Attrs = withAttr(m.Attrs, "file_name", req.Upload.FileName)
		if o.d.Media != nil {
			if err := o.d.Media.PutMedia(ctx, mediaOf(m, req.Upload, o.d.Now())); err != nil {
				return SendResult{}, fmt.Errorf("archiving the uploaded %s: %w", req.Kind, err)
			}
		}
	}
	o.d.Queue.spooling(m)
	// Under the send's claim: the pipeline need not claim the id again.
	if err := o.d.Pipeline.acceptClaimed(ctx, m); err != nil {
		o.d.Queue.unspool(m)
		return SendResult{}, fmt.Errorf("archiving the message: %w", err)
	}
	return SendResult{MessageID: id, State: DeliveryPending}, nil
}

func (o *Outbox) validate(req SendRequest) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, a...))
	}
	if !keyPattern.MatchString(req.Key) {
		return bad("idempotency key must be 1-100 letters, digits, '-', '_' or ':'")
	}
	if a, c := req.Conv.Split(); a == "" || c == "" {
		return bad("conversation %q is not <account>:<openid>", req.Conv)
	}
	switch req.Kind {
	case KindText:
		if req.Text == "" {
			return bad("text is empty")
		}
		if len(req.Text) > maxTextBytes || !utf8.ValidString(req.Text) {
			return bad("text must be valid UTF-8 of at most %d bytes", maxTextBytes)
		}
	case KindImage, KindVoice, KindVideo:
		if req.Upload == nil || len(req.Upload.Data) == 0 {
			return bad("%s needs a file", req.Kind)
		}
	case KindLink:
		if req.Attrs["title"] == "" || req.Attrs["url"] == "" {
			return bad("link needs a title and a url")
		}
	default:
		return bad("cannot send %q through WeChat's customer-service API", req.Kind)
	}
	return nil
}

// result returns what is known of an earlier send with the same id.
func (o *Outbox) result(ctx context.Context, id string, dup bool) (SendResult, error) {
	res, ok, err := archivedResult(ctx, o.d.Events, id)
	if err != nil {
		return SendResult{}, err
	}
	if !ok {
		// Claimed but not archived yet (still in the spool, or its first
		// attempt is being made right now).
		return SendResult{MessageID: id, State: DeliveryPending, Duplicate: dup}, nil
	}
	res.Duplicate = dup
	return res, nil
}

// archivedResult looks the message up in the archive.
func archivedResult(ctx context.Context, events EventLog, id string) (SendResult, bool, error) {
	ev, err := events.LatestEvents(ctx, []string{id})
	if err != nil {
		return SendResult{}, false, fmt.Errorf("looking up the earlier send: %w", err)
	}
	if e, ok := ev[id]; ok {
		return SendResult{MessageID: id, State: e.State, ErrCode: e.ErrCode, ErrMsg: e.ErrMsg, Duplicate: true}, true, nil
	}
	return SendResult{}, false, nil
}

// Typing forwards an employee's typing, at most once per TypingInterval
// per conversation. It reports whether it was forwarded.
func (o *Outbox) Typing(ctx context.Context, conv ConversationID) (bool, error) {
	now := o.d.Now()
	o.mu.Lock()
	if last, ok := o.typing[conv]; ok && now.Sub(last) < o.cfg.TypingInterval {
		o.mu.Unlock()
		return false, nil
	}
	o.typing[conv] = now
	o.mu.Unlock()
	account, client := conv.Split()
	ctx, cancel := context.WithTimeout(ctx, o.cfg.SendTimeout)
	defer cancel()
	if err := o.d.Sender.Typing(ctx, account, client, true); err != nil {
		return false, fmt.Errorf("forwarding typing: %w", err)
	}
	return true, nil
}

func convHash(c ConversationID) uint32 {
	h := fnv.New32a()
	h.Write([]byte(c))
	return h.Sum32()
}

func cloneAttrs(a map[string]string) map[string]string {
	if len(a) == 0 {
		return nil
	}
	out := make(map[string]string, len(a))
	for k, v := range a {
		out[k] = v
	}
	return out
}

func withAttr(a map[string]string, k, v string) map[string]string {
	if a == nil {
		a = map[string]string{}
	}
	a[k] = v
	return a
}

func mediaOf(m Message, u *Upload, now time.Time) Media {
	return Media{
		SHA256: ContentHash(u.Data), MessageID: m.ID, MediaID: m.MediaID, ContentType: u.ContentType,
		FileName: u.FileName, Data: u.Data, FetchedAt: now,
	}
}
