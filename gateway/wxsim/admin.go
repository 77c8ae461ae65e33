package wxsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// maxAdminBody bounds admin request bodies (client messages may carry
// media, base64-encoded).
const maxAdminBody = 16 << 20

// AdminHandler serves the JSON admin API under /sim/api/, through which
// tests, the phone page and tools drive the simulator:
//
//	GET    /sim/api/state                            time, accounts, faults
//	GET    /sim/api/accounts                         list accounts
//	POST   /sim/api/accounts                         add (Account; empty credentials generated)
//	GET    /sim/api/accounts/{appid}                 one account
//	PATCH  /sim/api/accounts/{appid}                 {callback_url, mode, templates, kf_accounts}
//	GET    /sim/api/accounts/{appid}/clients         list clients
//	POST   /sim/api/accounts/{appid}/clients         new client (not yet following)
//	GET    /sim/api/accounts/{appid}/qrcodes         unexpired QR codes
//	POST   /sim/api/accounts/{appid}/qrcodes         create (qrcode/create body)
//	POST   /sim/api/accounts/{appid}/media?type=T    upload raw bytes as temporary media
//	POST   /sim/api/accounts/{appid}/quota/reset     clear daily counters
//	POST   /sim/api/accounts/{appid}/verify          GET the callback URL with an echostr, as WeChat does on save
//	GET    /sim/api/clients/{openid}                 ClientInfo
//	GET    /sim/api/clients/{openid}/log?after=SEQ   conversation entries after SEQ
//	POST   /sim/api/clients/{openid}/subscribe       follow (no scene)
//	POST   /sim/api/clients/{openid}/unsubscribe     unfollow
//	POST   /sim/api/clients/{openid}/scan            {"qr": ticket or URL}
//	POST   /sim/api/clients/{openid}/messages        ClientMessage (data base64)
//	POST   /sim/api/clients/{openid}/events          ClientEvent
//	POST   /sim/api/clients/{openid}/block_templates {"block": bool}
//	GET    /sim/api/qrcodes/resolve?qr=…             QRInfo of a ticket or URL
//	GET    /sim/api/faults                           list faults
//	PUT    /sim/api/faults                           {"path": "message/custom/send", "fault": Fault}
//	DELETE /sim/api/faults[?path=…]                  clear one or all
//	GET    /sim/api/clock                            {"now", "manual"}
//	POST   /sim/api/clock                            {"set": RFC 3339} or {"advance": "48h"} (ManualClock only)
//	GET    /sim/api/callbacks?limit=N                recent CallbackResults
//
// Client actions answer 200 with the CallbackResult even when the relay's
// answer was refused (the action happened; the result says how the push
// went). Errors are {"error": "…"} with 400, 404 or 409.
func (s *Sim) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /sim/api/state", s.adminState)
	mux.HandleFunc("GET /sim/api/accounts", func(w http.ResponseWriter, r *http.Request) { adminJSON(w, s.Accounts()) })
	mux.HandleFunc("POST /sim/api/accounts", s.adminAddAccount)
	mux.HandleFunc("GET /sim/api/accounts/{appid}", func(w http.ResponseWriter, r *http.Request) {
		a, err := s.Account(r.PathValue("appid"))
		adminResult(w, a, err)
	})
	mux.HandleFunc("PATCH /sim/api/accounts/{appid}", s.adminUpdateAccount)
	mux.HandleFunc("GET /sim/api/accounts/{appid}/clients", func(w http.ResponseWriter, r *http.Request) {
		cs, err := s.Clients(r.PathValue("appid"))
		adminResult(w, cs, err)
	})
	mux.HandleFunc("POST /sim/api/accounts/{appid}/clients", func(w http.ResponseWriter, r *http.Request) {
		c, err := s.NewClient(r.PathValue("appid"))
		if err != nil {
			adminError(w, err)
			return
		}
		info, err := c.Info()
		adminResult(w, info, err)
	})
	mux.HandleFunc("GET /sim/api/accounts/{appid}/qrcodes", func(w http.ResponseWriter, r *http.Request) {
		qs, err := s.QRCodes(r.PathValue("appid"))
		if qs == nil {
			qs = []QRInfo{}
		}
		adminResult(w, qs, err)
	})
	mux.HandleFunc("POST /sim/api/accounts/{appid}/qrcodes", func(w http.ResponseWriter, r *http.Request) {
		var req QRRequest
		if !adminDecode(w, r, &req) {
			return
		}
		q, err := s.CreateQR(r.PathValue("appid"), req)
		adminResult(w, q, err)
	})
	mux.HandleFunc("POST /sim/api/accounts/{appid}/media", func(w http.ResponseWriter, r *http.Request) {
		data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAdminBody))
		if err != nil {
			adminError(w, fmt.Errorf("%w: %v", errBadRequest, err))
			return
		}
		info, err := s.UploadMedia(r.PathValue("appid"), r.URL.Query().Get("type"), data)
		adminResult(w, info, err)
	})
	mux.HandleFunc("POST /sim/api/accounts/{appid}/quota/reset", func(w http.ResponseWriter, r *http.Request) {
		adminResult(w, struct{}{}, s.ResetQuota(r.PathValue("appid")))
	})
	mux.HandleFunc("POST /sim/api/accounts/{appid}/verify", func(w http.ResponseWriter, r *http.Request) {
		if err := s.VerifyCallbackURL(r.Context(), r.PathValue("appid")); err != nil {
			if errors.Is(err, ErrUnknownAccount) {
				adminError(w, err)
			} else {
				adminErrorStatus(w, http.StatusBadGateway, err.Error())
			}
			return
		}
		adminJSON(w, struct {
			OK bool `json:"ok"`
		}{true})
	})
	mux.HandleFunc("GET /sim/api/clients/{openid}", func(w http.ResponseWriter, r *http.Request) {
		info, err := s.ClientInfo(r.PathValue("openid"))
		adminResult(w, info, err)
	})
	mux.HandleFunc("GET /sim/api/clients/{openid}/log", func(w http.ResponseWriter, r *http.Request) {
		after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
		entries, err := s.Log(r.PathValue("openid"), after)
		if entries == nil {
			entries = []LogEntry{}
		}
		adminResult(w, entries, err)
	})
	s.adminClientAction(mux, "subscribe", func(c *Client, r *http.Request) (CallbackResult, error) {
		return c.Subscribe(r.Context())
	})
	s.adminClientAction(mux, "unsubscribe", func(c *Client, r *http.Request) (CallbackResult, error) {
		return c.Unsubscribe(r.Context())
	})
	s.adminClientAction(mux, "scan", func(c *Client, r *http.Request) (CallbackResult, error) {
		var req struct {
			QR string `json:"qr"`
		}
		if err := decodeAdmin(r, &req); err != nil {
			return CallbackResult{}, err
		}
		return c.ScanQR(r.Context(), req.QR)
	})
	s.adminClientAction(mux, "messages", func(c *Client, r *http.Request) (CallbackResult, error) {
		var m ClientMessage
		if err := decodeAdmin(r, &m); err != nil {
			return CallbackResult{}, err
		}
		return c.Send(r.Context(), m)
	})
	s.adminClientAction(mux, "events", func(c *Client, r *http.Request) (CallbackResult, error) {
		var ev ClientEvent
		if err := decodeAdmin(r, &ev); err != nil {
			return CallbackResult{}, err
		}
		return c.Event(r.Context(), ev)
	})
	mux.HandleFunc("POST /sim/api/clients/{openid}/block_templates", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Block bool `json:"block"`
		}
		if !adminDecode(w, r, &req) {
			return
		}
		adminResult(w, struct{}{}, s.SetBlockTemplates(r.PathValue("openid"), req.Block))
	})
	mux.HandleFunc("GET /sim/api/qrcodes/resolve", func(w http.ResponseWriter, r *http.Request) {
		q, err := s.ResolveQR(r.URL.Query().Get("qr"))
		adminResult(w, q, err)
	})
	mux.HandleFunc("GET /sim/api/faults", func(w http.ResponseWriter, r *http.Request) { adminJSON(w, s.Faults()) })
	mux.HandleFunc("PUT /sim/api/faults", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Path  string `json:"path"`
			Fault Fault  `json:"fault"`
		}
		if !adminDecode(w, r, &req) {
			return
		}
		if err := s.SetFault(req.Path, req.Fault); err != nil {
			adminError(w, fmt.Errorf("%w: %v", errBadRequest, err))
			return
		}
		adminJSON(w, s.Faults())
	})
	mux.HandleFunc("DELETE /sim/api/faults", func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Query().Get("path"); p != "" {
			s.ClearFault(p)
		} else {
			s.ClearFaults()
		}
		adminJSON(w, s.Faults())
	})
	mux.HandleFunc("GET /sim/api/clock", s.adminClock)
	mux.HandleFunc("POST /sim/api/clock", s.adminSetClock)
	mux.HandleFunc("GET /sim/api/callbacks", func(w http.ResponseWriter, r *http.Request) {
		log := s.CallbackLog()
		if n, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && n >= 0 && n < len(log) {
			log = log[len(log)-n:]
		}
		adminJSON(w, log)
	})
	mux.HandleFunc("/sim/api/", func(w http.ResponseWriter, r *http.Request) {
		adminErrorStatus(w, http.StatusNotFound, "no such admin route: "+r.Method+" "+r.URL.Path)
	})
	return mux
}

// errBadRequest marks admin errors caused by the request.
var errBadRequest = errors.New("bad request")

// adminClientAction registers POST /sim/api/clients/{openid}/<name>.
func (s *Sim) adminClientAction(mux *http.ServeMux, name string, act func(c *Client, r *http.Request) (CallbackResult, error)) {
	mux.HandleFunc("POST /sim/api/clients/{openid}/"+name, func(w http.ResponseWriter, r *http.Request) {
		c, err := s.Client(r.PathValue("openid"))
		if err != nil {
			adminError(w, err)
			return
		}
		res, err := act(c, r)
		if err != nil && res.Attempts == 0 && res.Status == "" {
			// The action itself was refused (not following, bad input…).
			adminError(w, err)
			return
		}
		adminJSON(w, res)
	})
}

func (s *Sim) adminState(w http.ResponseWriter, r *http.Request) {
	_, manual := s.clock.(*ManualClock)
	adminJSON(w, struct {
		Now      time.Time     `json:"now"`
		Manual   bool          `json:"manual_clock"`
		Accounts []Account     `json:"accounts"`
		Faults   []FaultStatus `json:"faults"`
	}{s.Now(), manual, s.Accounts(), s.Faults()})
}

func (s *Sim) adminAddAccount(w http.ResponseWriter, r *http.Request) {
	var a Account
	if !adminDecode(w, r, &a) {
		return
	}
	got, err := s.AddAccount(a)
	adminResult(w, got, err)
}

func (s *Sim) adminUpdateAccount(w http.ResponseWriter, r *http.Request) {
	var req struct {
		CallbackURL string   `json:"callback_url"`
		Mode        Mode     `json:"mode"`
		Templates   []string `json:"templates"`
		KFAccounts  []string `json:"kf_accounts"`
	}
	if !adminDecode(w, r, &req) {
		return
	}
	a, err := s.UpdateAccount(r.PathValue("appid"), req.CallbackURL, req.Mode, req.Templates, req.KFAccounts)
	adminResult(w, a, err)
}

func (s *Sim) adminClock(w http.ResponseWriter, r *http.Request) {
	_, manual := s.clock.(*ManualClock)
	adminJSON(w, struct {
		Now    time.Time `json:"now"`
		Manual bool      `json:"manual"`
	}{s.Now(), manual})
}

func (s *Sim) adminSetClock(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Set     *time.Time `json:"set"`
		Advance string     `json:"advance"`
	}
	if !adminDecode(w, r, &req) {
		return
	}
	mc, ok := s.clock.(*ManualClock)
	if !ok {
		adminErrorStatus(w, http.StatusConflict, ErrManualClock.Error())
		return
	}
	if req.Set != nil {
		mc.Set(*req.Set)
	}
	if req.Advance != "" {
		d, err := time.ParseDuration(req.Advance)
		if err != nil {
			adminError(w, fmt.Errorf("%w: advance: %v", errBadRequest, err))
			return
		}
		mc.Advance(d)
	}
	s.adminClock(w, r)
}

func decodeAdmin(r *http.Request, v any) error {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxAdminBody+1))
	if err != nil {
		return fmt.Errorf("%w: %v", errBadRequest, err)
	}
	if len(b) > maxAdminBody {
		return fmt.Errorf("%w: body too large", errBadRequest)
	}
	if len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %v", errBadRequest, err)
	}
	return nil
}

// adminDecode decodes the request body into v, answering 400 on failure.
func adminDecode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := decodeAdmin(r, v); err != nil {
		adminError(w, err)
		return false
	}
	return true
}

func adminJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func adminResult(w http.ResponseWriter, v any, err error) {
	if err != nil {
		adminError(w, err)
		return
	}
	adminJSON(w, v)
}

// adminError maps a Go API error onto an HTTP status.
func adminError(w http.ResponseWriter, err error) {
	status := http.StatusBadRequest
	var apiE *APIError
	switch {
	case errors.Is(err, ErrUnknownAccount), errors.Is(err, ErrUnknownClient), errors.Is(err, ErrUnknownQR):
		status = http.StatusNotFound
	case errors.Is(err, ErrAlreadyFollowing), errors.Is(err, ErrNotFollowing), errors.Is(err, ErrDuplicateAccount),
		errors.Is(err, ErrQRExpired), errors.Is(err, ErrClosed):
		status = http.StatusConflict
	case errors.As(err, &apiE), errors.Is(err, errBadRequest), errors.Is(err, ErrBadAccount):
		status = http.StatusBadRequest
	}
	adminErrorStatus(w, status, err.Error())
}

func adminErrorStatus(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Error string `json:"error"`
	}{msg})
}
