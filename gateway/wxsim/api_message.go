package wxsim

import (
	"fmt"
	"net/http"
	"time"
)

// customSendRequest is the body of message/custom/send, every type.
type customSendRequest struct {
	ToUser  string `json:"touser"`
	MsgType string `json:"msgtype"`
	Text    *struct {
		Content string `json:"content"`
	} `json:"text"`
	Image  *mediaRef `json:"image"`
	Voice  *mediaRef `json:"voice"`
	MpNews *mediaRef `json:"mpnews"`
	Video  *struct {
		MediaID      string `json:"media_id"`
		ThumbMediaID string `json:"thumb_media_id"`
		Title        string `json:"title"`
		Description  string `json:"description"`
	} `json:"video"`
	Music *struct {
		Title        string `json:"title"`
		Description  string `json:"description"`
		MusicURL     string `json:"musicurl"`
		HQMusicURL   string `json:"hqmusicurl"`
		ThumbMediaID string `json:"thumb_media_id"`
	} `json:"music"`
	News *struct {
		Articles []struct {
			Title       string `json:"title"`
			Description string `json:"description"`
			URL         string `json:"url"`
			PicURL      string `json:"picurl"`
		} `json:"articles"`
	} `json:"news"`
	MpNewsArticle *struct {
		ArticleID string `json:"article_id"`
	} `json:"mpnewsarticle"`
	MsgMenu *struct {
		HeadContent string `json:"head_content"`
		List        []struct {
			ID      string `json:"id"`
			Content string `json:"content"`
		} `json:"list"`
		TailContent string `json:"tail_content"`
	} `json:"msgmenu"`
	WxCard *struct {
		CardID string `json:"card_id"`
	} `json:"wxcard"`
	MiniProgramPage *struct {
		Title        string `json:"title"`
		AppID        string `json:"appid"`
		PagePath     string `json:"pagepath"`
		ThumbMediaID string `json:"thumb_media_id"`
	} `json:"miniprogrampage"`
	CustomService *struct {
		KFAccount string `json:"kf_account"`
	} `json:"customservice"`
}

type mediaRef struct {
	MediaID string `json:"media_id"`
}

func (m *mediaRef) id() string {
	if m == nil {
		return ""
	}
	return m.MediaID
}

// handleCustomSend serves message/custom/send: token, openid, body, then
// the 48-hour window and the per-interaction cap; an accepted message is
// logged on the client's phone.
func (s *Sim) handleCustomSend(w http.ResponseWriter, r *http.Request) {
	body, bodyErr := readBody(r)
	s.mu.Lock()
	e := s.customSendLocked(r, body, bodyErr)
	s.mu.Unlock()
	if e != nil {
		s.writeAPIError(w, e)
		return
	}
	writeOK(w)
}

func (s *Sim) customSendLocked(r *http.Request, body []byte, bodyErr *APIError) *APIError {
	a, e := s.authLocked(r, pathCustomSend)
	if e != nil {
		return e
	}
	if e := requirePost(r); e != nil {
		return e
	}
	if bodyErr != nil {
		return bodyErr
	}
	var req customSendRequest
	if e := decodeJSON(body, &req); e != nil {
		return e
	}
	c, ok := s.clients[req.ToUser]
	if !ok || c.appID != a.AppID {
		return apiErr(CodeInvalidOpenID, "")
	}
	entry, e := s.checkCustomBody(a, &req)
	if e != nil {
		return e
	}
	if req.CustomService != nil && req.CustomService.KFAccount != "" {
		if len(a.kf) > 0 && !a.kf[req.CustomService.KFAccount] {
			return apiErr(CodeInvalidKFAccount, "")
		}
		entry.KFAccount = req.CustomService.KFAccount
	}
	if e := s.customCheck(c, true); e != nil {
		return e
	}
	c.sends++
	c.typingUntil = time.Time{}
	entry.Time = s.clock.Now()
	entry.Direction = DirectionOut
	entry.Source = SourceCustom
	entry.MsgType = req.MsgType
	entry.Raw = string(body)
	c.appendLog(entry)
	return nil
}

// checkCustomBody validates the message part of a custom/send body and
// returns the phone log entry describing it. Caller holds s.mu.
func (s *Sim) checkCustomBody(a *account, req *customSendRequest) (LogEntry, *APIError) {
	var e LogEntry
	media := func(id string, types ...string) *APIError {
		m, err := s.lookupMedia(a.AppID, id)
		if err != nil {
			return err
		}
		for _, t := range types {
			if m.typ == t {
				return nil
			}
		}
		return apiErr(CodeInvalidMediaID, "media type mismatch")
	}
	switch req.MsgType {
	case "text":
		if req.Text == nil || req.Text.Content == "" {
			return e, apiErr(CodeEmptyContent, "")
		}
		if len(req.Text.Content) > s.cfg.TextMaxBytes {
			return e, apiErr(CodeContentTooLong, "")
		}
		e.Content = req.Text.Content
	case "image":
		if err := media(req.Image.id(), MediaImage); err != nil {
			return e, err
		}
		e.MediaID, e.Content = req.Image.id(), "[image]"
	case "voice":
		if err := media(req.Voice.id(), MediaVoice); err != nil {
			return e, err
		}
		e.MediaID, e.Content = req.Voice.id(), "[voice]"
	case "video":
		if req.Video == nil {
			return e, apiErr(CodeMissingMediaID, "")
		}
		if err := media(req.Video.MediaID, MediaVideo); err != nil {
			return e, err
		}
		if req.Video.ThumbMediaID != "" {
			if err := media(req.Video.ThumbMediaID, MediaThumb, MediaImage); err != nil {
				return e, err
			}
		}
		e.MediaID, e.Content = req.Video.MediaID, "[video] "+req.Video.Title
	case "music":
		if req.Music == nil || req.Music.MusicURL == "" && req.Music.HQMusicURL == "" {
			return e, apiErr(CodeDataFormat, "music")
		}
		if err := media(req.Music.ThumbMediaID, MediaThumb, MediaImage); err != nil {
			return e, err
		}
		e.Content = "[music] " + req.Music.Title
	case "news":
		if req.News == nil || len(req.News.Articles) == 0 {
			return e, apiErr(CodeEmptyNewsData, "")
		}
		if len(req.News.Articles) > 1 {
			// Since 2018-10-12 a news message carries one article.
			return e, apiErr(CodeTooManyArticles, "")
		}
		e.Content = "[news] " + req.News.Articles[0].Title
	case "mpnews":
		// Permanent material is not simulated: any non-empty id is taken.
		if req.MpNews.id() == "" {
			return e, apiErr(CodeMissingMediaID, "")
		}
		e.MediaID, e.Content = req.MpNews.id(), "[mpnews]"
	case "mpnewsarticle":
		if req.MpNewsArticle == nil || req.MpNewsArticle.ArticleID == "" {
			return e, apiErr(CodeDataFormat, "article_id")
		}
		e.Content = "[article] " + req.MpNewsArticle.ArticleID
	case "msgmenu":
		if req.MsgMenu == nil || len(req.MsgMenu.List) == 0 {
			return e, apiErr(CodeDataFormat, "msgmenu list")
		}
		for _, it := range req.MsgMenu.List {
			if it.ID == "" || it.Content == "" {
				return e, apiErr(CodeDataFormat, "msgmenu item")
			}
		}
		e.Content = req.MsgMenu.HeadContent
	case "wxcard":
		if req.WxCard == nil || req.WxCard.CardID == "" {
			return e, apiErr(CodeInvalidCardID, "")
		}
		e.Content = "[card] " + req.WxCard.CardID
	case "miniprogrampage":
		p := req.MiniProgramPage
		if p == nil || p.Title == "" || p.AppID == "" || p.PagePath == "" {
			return e, apiErr(CodeDataFormat, "miniprogrampage")
		}
		if err := media(p.ThumbMediaID, MediaThumb, MediaImage); err != nil {
			return e, err
		}
		e.Content = "[miniprogram] " + p.Title
	default:
		return e, apiErr(CodeInvalidMessageType, "")
	}
	return e, nil
}

// typingRequest is the body of message/custom/typing.
type typingRequest struct {
	ToUser  string `json:"touser"`
	Command string `json:"command"`
}

// handleTyping serves message/custom/typing ("Typing" shows the indicator
// for TypingTTL, "CancelTyping" hides it), under the same window rule as
// custom/send but without using up the per-interaction cap.
func (s *Sim) handleTyping(w http.ResponseWriter, r *http.Request) {
	body, bodyErr := readBody(r)
	s.mu.Lock()
	e := func() *APIError {
		a, e := s.authLocked(r, pathCustomTyping)
		if e != nil {
			return e
		}
		if e := requirePost(r); e != nil {
			return e
		}
		if bodyErr != nil {
			return bodyErr
		}
		var req typingRequest
		if e := decodeJSON(body, &req); e != nil {
			return e
		}
		c, ok := s.clients[req.ToUser]
		if !ok || c.appID != a.AppID {
			return apiErr(CodeInvalidOpenID, "")
		}
		if req.Command != "Typing" && req.Command != "CancelTyping" {
			return apiErr(CodeDataFormat, fmt.Sprintf("command %q", req.Command))
		}
		if e := s.customCheck(c, false); e != nil {
			return e
		}
		if req.Command == "Typing" {
			c.typingUntil = s.clock.Now().Add(s.cfg.TypingTTL)
		} else {
			c.typingUntil = time.Time{}
		}
		return nil
	}()
	s.mu.Unlock()
	if e != nil {
		s.writeAPIError(w, e)
		return
	}
	writeOK(w)
}
