package wxsim

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"
)

// Subscribe scenes reported by user/info.
const (
	SceneSearch = "ADD_SCENE_SEARCH"
	SceneQRCode = "ADD_SCENE_QR_CODE"
)

// Client is a handle on one simulated WeChat user of one account. Its
// actions change the platform's state first (as the real platform records
// what the user did whatever the relay answers) and then push the callback
// to the relay, on the caller's goroutine.
type Client struct {
	sim    *Sim
	AppID  string
	OpenID string
}

// ClientMessage is a message a client sends. Zero fields are filled with
// plausible values (generated media for image, voice, video and
// shortvideo).
type ClientMessage struct {
	// MsgType: text, image, voice, video, shortvideo, location, link, file.
	MsgType string `json:"msgtype"`
	// Content is a text message's text.
	Content string `json:"content,omitempty"`
	// Data is the media file (image, voice, video, shortvideo) or the file
	// (file); generated when nil.
	Data []byte `json:"data,omitempty"`
	// Format is a voice message's codec ("amr" unless Data is MP3).
	Format string `json:"format,omitempty"`
	// Recognition is the speech-recognition text WeChat adds to voice
	// messages when the account enables it.
	Recognition string `json:"recognition,omitempty"`
	// Location fields.
	LocationX float64 `json:"location_x,omitempty"`
	LocationY float64 `json:"location_y,omitempty"`
	Scale     int     `json:"scale,omitempty"`
	Label     string  `json:"label,omitempty"`
	// Link and file fields.
	Title       string `json:"title,omitempty"`
	Description string `json:"description,omitempty"`
	URL         string `json:"url,omitempty"`
}

// ClientEvent is a menu or location event a client causes.
type ClientEvent struct {
	// Event: CLICK, VIEW, LOCATION, scancode_push, scancode_waitmsg, …
	Event string `json:"event"`
	// Key is the menu key (CLICK) or URL (VIEW).
	Key       string  `json:"key,omitempty"`
	MenuID    string  `json:"menu_id,omitempty"`
	Latitude  float64 `json:"latitude,omitempty"`
	Longitude float64 `json:"longitude,omitempty"`
	Precision float64 `json:"precision,omitempty"`
}

// interactingEvents open the customer-service window, per WeChat: menu
// clicks that push an event, and the scan-code menus (not VIEW, not
// LOCATION).
var interactingEvents = map[string]bool{"CLICK": true, "scancode_push": true, "scancode_waitmsg": true}

// Info describes the client now.
func (c *Client) Info() (ClientInfo, error) { return c.sim.ClientInfo(c.OpenID) }

// Log returns the client's conversation entries after seq.
func (c *Client) Log(after int64) ([]LogEntry, error) { return c.sim.Log(c.OpenID, after) }

// Delivered returns what the platform delivered to the client.
func (c *Client) Delivered() ([]LogEntry, error) { return c.sim.Delivered(c.OpenID) }

// act runs build under the lock with the client and its account, logs the
// resulting push as the client's, then delivers it.
func (c *Client) act(ctx context.Context, build func(cl *client, a *account, now time.Time) (push, LogEntry, error)) (CallbackResult, error) {
	s := c.sim
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return CallbackResult{}, ErrClosed
	}
	cl, err := s.lookupClient(c.OpenID)
	if err != nil {
		s.mu.Unlock()
		return CallbackResult{}, err
	}
	a := s.accounts[cl.appID]
	now := s.clock.Now()
	p, entry, err := build(cl, a, now)
	if err != nil {
		s.mu.Unlock()
		return CallbackResult{}, err
	}
	p.appID, p.openID, p.createTime, p.toPhone = a.AppID, cl.openID, now.Unix(), true
	entry.Time, entry.Direction, entry.Source = now, DirectionIn, SourceClient
	entry.MsgType, entry.Event, entry.MsgID, entry.Raw = p.msgType, p.event, p.msgID, string(p.plain)
	entry.Callback = &CallbackState{Status: CallbackPending, Attempts: 1, Tries: s.cfg.CallbackTries}
	p.logSeq = cl.appendLog(entry).Seq
	s.mu.Unlock()
	return s.deliver(ctx, p)
}

// eventPush builds an event push. Caller holds s.mu.
func eventPush(a *account, cl *client, now time.Time, event, key string, extra func(x *xmlBuilder)) push {
	x := newXML().header(a.OriginalID, cl.openID, now.Unix(), "event").cdata("Event", event).cdata("EventKey", key)
	if extra != nil {
		extra(x)
	}
	return push{msgType: "event", event: event, plain: x.done()}
}

// Subscribe follows the account from a search or profile page (no scene).
func (c *Client) Subscribe(ctx context.Context) (CallbackResult, error) {
	return c.act(ctx, func(cl *client, a *account, now time.Time) (push, LogEntry, error) {
		if cl.subscribed {
			return push{}, LogEntry{}, ErrAlreadyFollowing
		}
		cl.subscribed, cl.subscribeTime, cl.subscribeScene = true, now, SceneSearch
		cl.qrScene, cl.qrSceneStr = 0, ""
		cl.interact(now)
		return eventPush(a, cl, now, "subscribe", "", nil), LogEntry{Content: "[subscribe]"}, nil
	})
}

// ScanQR scans a parametric QR code, by the URL its image encodes or its
// ticket: a non-follower subscribes (EventKey "qrscene_<scene>"), a
// follower sends SCAN (EventKey "<scene>"); both carry the Ticket.
func (c *Client) ScanQR(ctx context.Context, ticketOrURL string) (CallbackResult, error) {
	return c.act(ctx, func(cl *client, a *account, now time.Time) (push, LogEntry, error) {
		q, err := c.sim.lookupQR(ticketOrURL)
		if err != nil {
			return push{}, LogEntry{}, err
		}
		if q.AppID != a.AppID {
			return push{}, LogEntry{}, fmt.Errorf("%w: it belongs to account %s", ErrUnknownQR, q.AppID)
		}
		scene := q.Scene()
		ticket := func(x *xmlBuilder) { x.cdata("Ticket", q.Ticket) }
		cl.interact(now)
		if cl.subscribed {
			return eventPush(a, cl, now, "SCAN", scene, ticket), LogEntry{EventKey: scene, Content: "[scan] " + scene}, nil
		}
		cl.subscribed, cl.subscribeTime, cl.subscribeScene = true, now, SceneQRCode
		cl.qrScene, cl.qrSceneStr = q.SceneID, q.SceneStr
		key := "qrscene_" + scene
		return eventPush(a, cl, now, "subscribe", key, ticket), LogEntry{EventKey: key, Content: "[subscribe] " + scene}, nil
	})
}

// Unsubscribe stops following the account. The openid stays the same if
// the client follows again, as on WeChat.
func (c *Client) Unsubscribe(ctx context.Context) (CallbackResult, error) {
	return c.act(ctx, func(cl *client, a *account, now time.Time) (push, LogEntry, error) {
		if !cl.subscribed {
			return push{}, LogEntry{}, ErrNotFollowing
		}
		cl.subscribed = false
		cl.typingUntil = time.Time{}
		return eventPush(a, cl, now, "unsubscribe", "", nil), LogEntry{Content: "[unsubscribe]"}, nil
	})
}

// Event sends a menu or location event. CLICK and the scan-code menus open
// the customer-service window; VIEW and LOCATION do not.
func (c *Client) Event(ctx context.Context, ev ClientEvent) (CallbackResult, error) {
	return c.act(ctx, func(cl *client, a *account, now time.Time) (push, LogEntry, error) {
		if !cl.subscribed {
			return push{}, LogEntry{}, ErrNotFollowing
		}
		if ev.Event == "" || ev.Event == "subscribe" || ev.Event == "unsubscribe" || ev.Event == "SCAN" {
			return push{}, LogEntry{}, fmt.Errorf("wxsim: event %q: use Subscribe, Unsubscribe or ScanQR", ev.Event)
		}
		if interactingEvents[ev.Event] {
			cl.interact(now)
		}
		var p push
		if ev.Event == "LOCATION" {
			x := newXML().header(a.OriginalID, cl.openID, now.Unix(), "event").cdata("Event", ev.Event).
				float("Latitude", ev.Latitude).float("Longitude", ev.Longitude).float("Precision", ev.Precision)
			p = push{msgType: "event", event: ev.Event, plain: x.done()}
		} else {
			p = eventPush(a, cl, now, ev.Event, ev.Key, func(x *xmlBuilder) {
				if ev.MenuID != "" {
					x.num("MenuId", ev.MenuID)
				}
			})
		}
		return p, LogEntry{EventKey: ev.Key, Content: "[" + ev.Event + "] " + ev.Key}, nil
	})
}

// Click presses a CLICK menu item.
func (c *Client) Click(ctx context.Context, key string) (CallbackResult, error) {
	return c.Event(ctx, ClientEvent{Event: "CLICK", Key: key})
}

// View follows a VIEW menu link.
func (c *Client) View(ctx context.Context, u string) (CallbackResult, error) {
	return c.Event(ctx, ClientEvent{Event: "VIEW", Key: u})
}

// SendText sends a text message; the text goes out raw in CDATA, control
// characters included, as WeChat sends it.
func (c *Client) SendText(ctx context.Context, text string) (CallbackResult, error) {
	return c.Send(ctx, ClientMessage{MsgType: "text", Content: text})
}

// SendImage sends a picture (a generated PNG when data is nil).
func (c *Client) SendImage(ctx context.Context, data []byte) (CallbackResult, error) {
	return c.Send(ctx, ClientMessage{MsgType: "image", Data: data})
}

// SendVoice sends a voice message (generated AMR when data is nil).
func (c *Client) SendVoice(ctx context.Context, data []byte) (CallbackResult, error) {
	return c.Send(ctx, ClientMessage{MsgType: "voice", Data: data})
}

// SendVideo sends a video (generated MP4 when data is nil), with a JPEG
// thumbnail.
func (c *Client) SendVideo(ctx context.Context, data []byte) (CallbackResult, error) {
	return c.Send(ctx, ClientMessage{MsgType: "video", Data: data})
}

// SendLocation sends a location.
func (c *Client) SendLocation(ctx context.Context, x, y float64, scale int, label string) (CallbackResult, error) {
	return c.Send(ctx, ClientMessage{MsgType: "location", LocationX: x, LocationY: y, Scale: scale, Label: label})
}

// SendLink sends a link (shared from an article).
func (c *Client) SendLink(ctx context.Context, title, description, u string) (CallbackResult, error) {
	return c.Send(ctx, ClientMessage{MsgType: "link", Title: title, Description: description, URL: u})
}

// Send sends any client message. Media is registered in the media store
// first, so the relay can fetch it with media/get for MediaTTL.
func (c *Client) Send(ctx context.Context, m ClientMessage) (CallbackResult, error) {
	base := c.sim.baseURL(nil)
	return c.act(ctx, func(cl *client, a *account, now time.Time) (push, LogEntry, error) {
		if !cl.subscribed {
			return push{}, LogEntry{}, ErrNotFollowing
		}
		s := c.sim
		msgID := s.nextMsgID()
		seed := msgID
		x := newXML().header(a.OriginalID, cl.openID, now.Unix(), m.MsgType)
		entry := LogEntry{}
		stored := func(typ string, data []byte, gen func() []byte) (*media, error) {
			if data == nil {
				data = gen()
			}
			ct, e := sniffMedia(typ, data)
			if e != nil {
				return nil, fmt.Errorf("wxsim: client %s media: %w", m.MsgType, e)
			}
			return s.storeMedia(a.AppID, typ, ct, data), nil
		}
		switch m.MsgType {
		case "text":
			x.cdata("Content", m.Content)
			entry.Content = m.Content
		case "image":
			md, err := stored(MediaImage, m.Data, func() []byte { return GeneratePNG(seed) })
			if err != nil {
				return push{}, entry, err
			}
			x.cdata("PicUrl", base+"/sim/media/"+md.id).cdata("MediaId", md.id)
			entry.MediaID, entry.Content = md.id, "[image]"
		case "voice":
			md, err := stored(MediaVoice, m.Data, func() []byte { return GenerateAMR(2) })
			if err != nil {
				return push{}, entry, err
			}
			format := m.Format
			if format == "" {
				format = "amr"
				if md.contentType == "audio/mpeg" {
					format = "mp3"
				}
			}
			x.cdata("MediaId", md.id).cdata("Format", format)
			if m.Recognition != "" {
				x.cdata("Recognition", m.Recognition)
			}
			entry.MediaID, entry.Content = md.id, "[voice] "+m.Recognition
		case "video", "shortvideo":
			md, err := stored(MediaVideo, m.Data, func() []byte { return GenerateMP4(seed) })
			if err != nil {
				return push{}, entry, err
			}
			th := s.storeMedia(a.AppID, MediaThumb, "image/jpeg", GenerateJPEG(seed))
			x.cdata("MediaId", md.id).cdata("ThumbMediaId", th.id)
			entry.MediaID, entry.Content = md.id, "["+m.MsgType+"]"
		case "location":
			scale := m.Scale
			if scale == 0 {
				scale = 15
			}
			x.float("Location_X", m.LocationX).float("Location_Y", m.LocationY).int("Scale", int64(scale)).cdata("Label", m.Label)
			entry.Content = "[location] " + m.Label
		case "link":
			x.cdata("Title", m.Title).cdata("Description", m.Description).cdata("Url", m.URL)
			entry.Content = "[link] " + m.Title
		case "file":
			data := m.Data
			if data == nil {
				data = []byte("wxsim file " + strconv.FormatUint(seed, 10) + "\n")
			}
			sum := md5.Sum(data)
			title := m.Title
			if title == "" {
				title = "file.txt"
			}
			x.cdata("Title", title).cdata("Description", m.Description).
				cdata("FileKey", randString(s.rng, alnumChars, 32)).
				cdata("FileMd5", hex.EncodeToString(sum[:])).int("FileTotalLen", int64(len(data)))
			entry.Content = "[file] " + title
		default:
			return push{}, entry, fmt.Errorf("wxsim: clients cannot send msgtype %q", m.MsgType)
		}
		x.int("MsgId", int64(msgID))
		cl.interact(now)
		return push{msgType: m.MsgType, msgID: strconv.FormatUint(msgID, 10), plain: x.done()}, entry, nil
	})
}
