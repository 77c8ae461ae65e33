package wxsim

import (
	"bytes"
	"crypto/subtle"
	"encoding/xml"
	"fmt"
	"net/http"
	"strconv"

	"github.com/silenceper/wechat/v2/util"
)

// replyXML is a passive reply, or the encrypted envelope around one.
type replyXML struct {
	XMLName      xml.Name `xml:"xml"`
	ToUserName   string   `xml:"ToUserName"`
	FromUserName string   `xml:"FromUserName"`
	CreateTime   string   `xml:"CreateTime"`
	MsgType      string   `xml:"MsgType"`
	Content      string   `xml:"Content"`
	Image        struct {
		MediaID string `xml:"MediaId"`
	} `xml:"Image"`
	Voice struct {
		MediaID string `xml:"MediaId"`
	} `xml:"Voice"`
	Video struct {
		MediaID     string `xml:"MediaId"`
		Title       string `xml:"Title"`
		Description string `xml:"Description"`
	} `xml:"Video"`
	Music struct {
		Title        string `xml:"Title"`
		MusicURL     string `xml:"MusicUrl"`
		HQMusicURL   string `xml:"HQMusicUrl"`
		ThumbMediaID string `xml:"ThumbMediaId"`
	} `xml:"Music"`
	ArticleCount string `xml:"ArticleCount"`
	Articles     []struct {
		Title string `xml:"Title"`
		URL   string `xml:"Url"`
	} `xml:"Articles>item"`

	// The safe-mode envelope.
	Encrypt      string `xml:"Encrypt"`
	MsgSignature string `xml:"MsgSignature"`
	TimeStamp    string `xml:"TimeStamp"`
	Nonce        string `xml:"Nonce"`
}

// judgeAnswer checks the relay's answer as WeChat does and, for a valid
// passive reply, delivers it to the client. It sets res.Status and returns
// nil for an acceptable answer.
func (s *Sim) judgeAnswer(av acctView, p push, status int, body []byte, res *CallbackResult) error {
	bad := func(format string, args ...any) error {
		res.Status = CallbackError
		return fmt.Errorf("%w: %s", ErrBadAnswer, fmt.Sprintf(format, args...))
	}
	if status != http.StatusOK {
		return bad("HTTP status %d", status)
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || string(trimmed) == "success" {
		res.Status = CallbackSuccess
		return nil
	}
	var env replyXML
	if err := xml.Unmarshal(trimmed, &env); err != nil {
		return bad("neither success nor reply XML: %v", err)
	}
	plain := trimmed
	reply := env
	if env.Encrypt != "" {
		if av.mode == ModePlain {
			return bad("encrypted reply in plain mode")
		}
		want := util.Signature(av.token, env.TimeStamp, env.Nonce, env.Encrypt)
		if env.TimeStamp == "" || env.Nonce == "" ||
			subtle.ConstantTimeCompare([]byte(want), []byte(env.MsgSignature)) != 1 {
			return bad("reply MsgSignature does not match")
		}
		_, inner, err := util.DecryptMsg(av.appID, env.Encrypt, av.aesKey)
		if err != nil {
			return bad("reply does not decrypt: %v", err)
		}
		if len(bytes.TrimSpace(inner)) == 0 {
			// The client would see "该公众号暂时无法提供服务".
			return bad("empty encrypted reply")
		}
		plain = inner
		reply = replyXML{}
		if err := xml.Unmarshal(inner, &reply); err != nil {
			return bad("decrypted reply is not XML: %v", err)
		}
	} else if av.mode == ModeSafe {
		return bad("plaintext reply in safe mode")
	}
	entry, err := s.checkReply(av, p, &reply)
	if err != nil {
		return bad("%v", err)
	}
	res.Reply = string(plain)
	res.Status = CallbackReply
	if p.toPhone && reply.MsgType != "transfer_customer_service" {
		entry.Raw = string(plain)
		s.mu.Lock()
		if c, ok := s.clients[p.openID]; ok {
			entry.Time = s.clock.Now()
			c.appendLog(entry)
		}
		s.mu.Unlock()
	}
	return nil
}

// checkReply validates a plaintext passive reply and describes it for the
// phone log.
func (s *Sim) checkReply(av acctView, p push, r *replyXML) (LogEntry, error) {
	e := LogEntry{Direction: DirectionOut, Source: SourceReply, MsgType: r.MsgType}
	if r.ToUserName != p.openID {
		return e, fmt.Errorf("reply ToUserName %q is not the client %q", r.ToUserName, p.openID)
	}
	if r.FromUserName != av.originalID {
		return e, fmt.Errorf("reply FromUserName %q is not the account %q", r.FromUserName, av.originalID)
	}
	if _, err := strconv.ParseInt(r.CreateTime, 10, 64); err != nil {
		return e, fmt.Errorf("reply CreateTime %q is not a number", r.CreateTime)
	}
	media := func(id string, types ...string) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		m, apiE := s.lookupMedia(av.appID, id)
		if apiE != nil {
			return fmt.Errorf("reply media %q: %w", id, apiE)
		}
		for _, t := range types {
			if m.typ == t {
				return nil
			}
		}
		return fmt.Errorf("reply media %q is %s", id, m.typ)
	}
	switch r.MsgType {
	case "text":
		if r.Content == "" {
			return e, fmt.Errorf("text reply without Content")
		}
		e.Content = r.Content
	case "image":
		e.MediaID, e.Content = r.Image.MediaID, "[image]"
		return e, media(r.Image.MediaID, MediaImage)
	case "voice":
		e.MediaID, e.Content = r.Voice.MediaID, "[voice]"
		return e, media(r.Voice.MediaID, MediaVoice)
	case "video":
		e.MediaID, e.Content = r.Video.MediaID, "[video] "+r.Video.Title
		return e, media(r.Video.MediaID, MediaVideo)
	case "music":
		e.Content = "[music] " + r.Music.Title
		if r.Music.ThumbMediaID != "" {
			return e, media(r.Music.ThumbMediaID, MediaThumb, MediaImage)
		}
	case "news":
		n, err := strconv.Atoi(r.ArticleCount)
		if err != nil || n < 1 || n > 8 || n != len(r.Articles) {
			return e, fmt.Errorf("news reply ArticleCount %q does not match %d articles", r.ArticleCount, len(r.Articles))
		}
		e.Content = "[news] " + r.Articles[0].Title
	case "transfer_customer_service":
	default:
		return e, fmt.Errorf("reply MsgType %q is not a passive reply type", r.MsgType)
	}
	return e, nil
}
