package wxsim

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// templateSendRequest is the body of message/template/send.
type templateSendRequest struct {
	ToUser      string `json:"touser"`
	TemplateID  string `json:"template_id"`
	URL         string `json:"url"`
	ClientMsgID string `json:"client_msg_id"`
	Data        map[string]struct {
		Value string `json:"value"`
		Color string `json:"color"`
	} `json:"data"`
}

// Template job statuses reported by TEMPLATESENDJOBFINISH.
const (
	TemplateStatusSuccess   = "success"
	TemplateStatusUserBlock = "failed:user block"
)

// handleTemplateSend serves message/template/send: any follower, whatever
// the 48-hour window, with a configured template; the message is logged on
// the phone and TEMPLATESENDJOBFINISH is pushed to the relay afterwards.
// A repeated client_msg_id for the same openid within TemplateDedupe
// answers the first msgid and sends nothing.
func (s *Sim) handleTemplateSend(w http.ResponseWriter, r *http.Request) {
	body, bodyErr := readBody(r)
	var (
		msgID int64
		job   *push
	)
	s.mu.Lock()
	e := func() *APIError {
		a, e := s.authLocked(r, pathTemplateSend)
		if e != nil {
			return e
		}
		if e := requirePost(r); e != nil {
			return e
		}
		if bodyErr != nil {
			return bodyErr
		}
		var req templateSendRequest
		if e := decodeJSON(body, &req); e != nil {
			return e
		}
		c, ok := s.clients[req.ToUser]
		if !ok || c.appID != a.AppID {
			return apiErr(CodeInvalidOpenID, "")
		}
		if !a.templates[req.TemplateID] {
			return apiErr(CodeInvalidTemplateID, "")
		}
		if !c.subscribed {
			return apiErr(CodeRequireSubscribe, "")
		}
		now := s.clock.Now()
		key := c.openID + "\x00" + req.ClientMsgID
		if req.ClientMsgID != "" {
			if rec, ok := a.templateIDs[key]; ok && now.Sub(rec.at) < s.cfg.TemplateDedupe {
				msgID = rec.msgID
				return nil
			}
		}
		s.templateID += 1 + s.rng.Int64N(50)
		msgID = s.templateID
		if req.ClientMsgID != "" {
			a.templateIDs[key] = templateRecord{msgID: msgID, at: now}
		}
		status := TemplateStatusSuccess
		if c.blockTemplates {
			status = TemplateStatusUserBlock
		} else {
			c.appendLog(LogEntry{Time: now, Direction: DirectionOut, Source: SourceTemplate, MsgType: "template",
				MsgID: strconv.FormatInt(msgID, 10), Content: templateSummary(&req), Raw: string(body)})
		}
		x := newXML().header(a.OriginalID, c.openID, now.Unix(), "event").cdata("Event", "TEMPLATESENDJOBFINISH").
			int("MsgID", msgID).cdata("Status", status)
		job = &push{appID: a.AppID, openID: c.openID, msgType: "event", event: "TEMPLATESENDJOBFINISH",
			msgID: strconv.FormatInt(msgID, 10), createTime: now.Unix(), plain: x.done()}
		return nil
	}()
	s.mu.Unlock()
	if e != nil {
		s.writeAPIError(w, e)
		return
	}
	if job != nil {
		s.goAsync(func(ctx context.Context) {
			if d := s.cfg.TemplateJobDelay; d > 0 {
				t := time.NewTimer(d)
				defer t.Stop()
				select {
				case <-t.C:
				case <-ctx.Done():
					return
				}
			}
			_, _ = s.deliver(ctx, *job) // the result goes to CallbackLog
		})
	}
	writeJSON(w, struct {
		APIError
		MsgID int64 `json:"msgid"`
	}{APIError{Msg: "ok"}, msgID})
}

// templateSummary renders a template message for the phone log:
// "template_id: key=value; …".
func templateSummary(req *templateSendRequest) string {
	keys := make([]string, 0, len(req.Data))
	for k := range req.Data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+req.Data[k].Value)
	}
	return req.TemplateID + ": " + strings.Join(parts, "; ")
}
