package wxsim

import (
	"net/http"
	"slices"
)

// userInfoResponse is user/info's answer. Since 2021-12-27 WeChat no
// longer returns nickname or headimgurl (nor sex, city, province, country),
// so neither does the simulator.
type userInfoResponse struct {
	Subscribe      int    `json:"subscribe"`
	OpenID         string `json:"openid"`
	Language       string `json:"language,omitempty"`
	SubscribeTime  int64  `json:"subscribe_time,omitempty"`
	Remark         string `json:"remark"`
	GroupID        int    `json:"groupid"`
	TagIDList      []int  `json:"tagid_list"`
	SubscribeScene string `json:"subscribe_scene,omitempty"`
	QRScene        int    `json:"qr_scene"`
	QRSceneStr     string `json:"qr_scene_str"`
}

// handleUserInfo serves user/info; a non-follower is {"subscribe":0,
// "openid":…} and nothing else, as on WeChat.
func (s *Sim) handleUserInfo(w http.ResponseWriter, r *http.Request) {
	var resp any
	s.mu.Lock()
	e := func() *APIError {
		a, e := s.authLocked(r, pathUserInfo)
		if e != nil {
			return e
		}
		c, ok := s.clients[r.URL.Query().Get("openid")]
		if !ok || c.appID != a.AppID {
			return apiErr(CodeInvalidOpenID, "")
		}
		if !c.subscribed {
			resp = struct {
				Subscribe int    `json:"subscribe"`
				OpenID    string `json:"openid"`
			}{0, c.openID}
			return nil
		}
		tags := slices.Clone(c.tagIDs)
		if tags == nil {
			tags = []int{}
		}
		resp = userInfoResponse{
			Subscribe: 1, OpenID: c.openID, Language: c.language, SubscribeTime: c.subscribeTime.Unix(),
			Remark: c.remark, TagIDList: tags, SubscribeScene: c.subscribeScene,
			QRScene: c.qrScene, QRSceneStr: c.qrSceneStr,
		}
		return nil
	}()
	s.mu.Unlock()
	if e != nil {
		s.writeAPIError(w, e)
		return
	}
	writeJSON(w, resp)
}

// userGetPage is how many openids user/get returns per call.
const userGetPage = 10000

// handleUserGet serves user/get: followers, oldest first, paged by
// next_openid.
func (s *Sim) handleUserGet(w http.ResponseWriter, r *http.Request) {
	type data struct {
		OpenID []string `json:"openid"`
	}
	type response struct {
		Total      int    `json:"total"`
		Count      int    `json:"count"`
		Data       *data  `json:"data,omitempty"`
		NextOpenID string `json:"next_openid"`
	}
	var resp response
	s.mu.Lock()
	a, e := s.authLocked(r, pathUserGet)
	if e == nil {
		var followers []string
		for _, id := range a.clients {
			if s.clients[id].subscribed {
				followers = append(followers, id)
			}
		}
		start := 0
		if next := r.URL.Query().Get("next_openid"); next != "" {
			if i := slices.Index(followers, next); i >= 0 {
				start = i + 1
			} else {
				e = apiErr(CodeInvalidOpenID, "next_openid")
			}
		}
		if e == nil {
			page := followers[start:min(len(followers), start+userGetPage)]
			resp = response{Total: len(followers), Count: len(page)}
			if len(page) > 0 {
				resp.Data = &data{OpenID: slices.Clone(page)}
				resp.NextOpenID = page[len(page)-1]
			}
		}
	}
	s.mu.Unlock()
	if e != nil {
		s.writeAPIError(w, e)
		return
	}
	writeJSON(w, resp)
}

// handleUserRemark serves user/info/updateremark.
func (s *Sim) handleUserRemark(w http.ResponseWriter, r *http.Request) {
	body, bodyErr := readBody(r)
	s.mu.Lock()
	e := func() *APIError {
		a, e := s.authLocked(r, pathUserRemark)
		if e != nil {
			return e
		}
		if e := requirePost(r); e != nil {
			return e
		}
		if bodyErr != nil {
			return bodyErr
		}
		var req struct {
			OpenID string `json:"openid"`
			Remark string `json:"remark"`
		}
		if e := decodeJSON(body, &req); e != nil {
			return e
		}
		c, ok := s.clients[req.OpenID]
		if !ok || c.appID != a.AppID {
			return apiErr(CodeInvalidOpenID, "")
		}
		if len([]rune(req.Remark)) > 30 {
			return apiErr(CodeContentTooLong, "remark")
		}
		c.remark = req.Remark
		return nil
	}()
	s.mu.Unlock()
	if e != nil {
		s.writeAPIError(w, e)
		return
	}
	writeOK(w)
}

// handleCallbackIP serves getcallbackip: the addresses callbacks come from.
func (s *Sim) handleCallbackIP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	_, e := s.authLocked(r, pathGetCallbackIP)
	s.mu.Unlock()
	if e != nil {
		s.writeAPIError(w, e)
		return
	}
	writeJSON(w, struct {
		IPList []string `json:"ip_list"`
	}{slices.Clone(s.cfg.CallbackIPs)})
}

// handleClearQuota serves clear_quota: resets the account's daily counters.
func (s *Sim) handleClearQuota(w http.ResponseWriter, r *http.Request) {
	body, bodyErr := readBody(r)
	s.mu.Lock()
	e := func() *APIError {
		a, e := s.checkToken(r.URL.Query().Get("access_token"))
		if e != nil {
			return e
		}
		if e := requirePost(r); e != nil {
			return e
		}
		if bodyErr != nil {
			return bodyErr
		}
		var req struct {
			AppID string `json:"appid"`
		}
		if e := decodeJSON(body, &req); e != nil {
			return e
		}
		if req.AppID != a.AppID {
			return apiErr(CodeInvalidAppID, "")
		}
		a.calls = map[string]int{}
		a.forceRefreshes = 0
		return nil
	}()
	s.mu.Unlock()
	if e != nil {
		s.writeAPIError(w, e)
		return
	}
	writeOK(w)
}
