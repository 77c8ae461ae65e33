package wxsim

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	qrcode "github.com/skip2/go-qrcode"
)

// QR code actions of qrcode/create.
const (
	QRScene         = "QR_SCENE"           // temporary, integer scene
	QRStrScene      = "QR_STR_SCENE"       // temporary, string scene
	QRLimitScene    = "QR_LIMIT_SCENE"     // permanent, integer scene 1..100000
	QRLimitStrScene = "QR_LIMIT_STR_SCENE" // permanent, string scene
)

// QR limits documented by WeChat.
const (
	qrDefaultExpire = 60      // seconds, when expire_seconds is absent
	qrMaxExpire     = 2592000 // 30 days
	qrMaxLimitScene = 100000  // QR_LIMIT_SCENE scene_id range
	qrMaxSceneStr   = 64      // scene_str length
	qrURLPrefix     = "http://weixin.qq.com/q/"
	qrImageSize     = 430 // pixels, the size showqrcode serves
)

// QRRequest is the body of qrcode/create.
type QRRequest struct {
	ExpireSeconds int64  `json:"expire_seconds,omitempty"`
	ActionName    string `json:"action_name"`
	ActionInfo    struct {
		Scene struct {
			SceneID  int    `json:"scene_id,omitempty"`
			SceneStr string `json:"scene_str,omitempty"`
		} `json:"scene"`
	} `json:"action_info"`
}

// QRInfo describes an issued QR code.
type QRInfo struct {
	AppID    string `json:"appid"`
	Ticket   string `json:"ticket"`
	URL      string `json:"url"` // what the QR image encodes
	Action   string `json:"action_name"`
	SceneID  int    `json:"scene_id,omitempty"`
	SceneStr string `json:"scene_str,omitempty"`
	// Created and ExpiresAt bound a temporary code; ExpiresAt is zero for
	// a permanent one.
	Created   time.Time `json:"created"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// Scene is the scene value as it appears in EventKey: the scene string, or
// the scene id in decimal.
func (q QRInfo) Scene() string {
	if q.SceneStr != "" {
		return q.SceneStr
	}
	return strconv.Itoa(q.SceneID)
}

// qrCode is a stored QR code.
type qrCode struct{ QRInfo }

// createQR validates req and issues a QR code for a. Caller holds s.mu.
func (s *Sim) createQR(a *account, req QRRequest) (QRInfo, *APIError) {
	now := s.clock.Now()
	q := QRInfo{AppID: a.AppID, Action: req.ActionName, Created: now}
	sc := req.ActionInfo.Scene
	switch req.ActionName {
	case QRScene:
		if sc.SceneID <= 0 || sc.SceneID > 1<<31-1 {
			return QRInfo{}, apiErr(CodeInvalidActionInfo, "scene_id")
		}
		q.SceneID = sc.SceneID
	case QRLimitScene:
		if sc.SceneID <= 0 || sc.SceneID > qrMaxLimitScene {
			return QRInfo{}, apiErr(CodeInvalidActionInfo, "scene_id")
		}
		q.SceneID = sc.SceneID
	case QRStrScene, QRLimitStrScene:
		if sc.SceneStr == "" || utf8.RuneCountInString(sc.SceneStr) > qrMaxSceneStr {
			return QRInfo{}, apiErr(CodeInvalidActionInfo, "scene_str")
		}
		q.SceneStr = sc.SceneStr
	default:
		return QRInfo{}, apiErr(CodeInvalidActionInfo, "action_name")
	}
	if req.ActionName == QRScene || req.ActionName == QRStrScene {
		exp := req.ExpireSeconds
		if exp <= 0 {
			exp = qrDefaultExpire
		}
		exp = min(exp, qrMaxExpire)
		q.ExpiresAt = now.Add(time.Duration(exp) * time.Second)
	}
	for {
		q.URL = qrURLPrefix + randString(s.rng, alnumChars, 22)
		if _, dup := s.qrByURL[q.URL]; !dup {
			break
		}
	}
	q.Ticket = qrTicket(q.URL, now, q.ExpiresAt, s.rng.Uint32())
	s.qrs[q.Ticket] = &qrCode{q}
	s.qrByURL[q.URL] = q.Ticket
	return q, nil
}

// qrTicket encodes a ticket the way WeChat's look: base64 of a small
// binary record carrying the QR URL and its times (so tickets contain '+'
// and '/' now and then and must be URL-escaped, as WeChat documents).
func qrTicket(u string, created, expires time.Time, salt uint32) string {
	b := []byte{0x81, 0x07}
	b = binary.LittleEndian.AppendUint32(b, salt)
	b = append(b, 0, 0, 0, 0, 0, 0, 0x01, byte(len(u)))
	b = append(b, u...)
	b = append(b, 0x00, 0x02, 0x04)
	b = binary.LittleEndian.AppendUint32(b, uint32(created.Unix()))
	b = append(b, 0x03, 0x04)
	var exp uint32
	if !expires.IsZero() {
		exp = uint32(expires.Unix())
	}
	b = binary.LittleEndian.AppendUint32(b, exp)
	return base64.StdEncoding.EncodeToString(b)
}

// CreateQR issues a QR code for the account as qrcode/create does.
func (s *Sim) CreateQR(appID string, req QRRequest) (QRInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[appID]
	if !ok {
		return QRInfo{}, fmt.Errorf("%w: %s", ErrUnknownAccount, appID)
	}
	q, e := s.createQR(a, req)
	if e != nil {
		return QRInfo{}, fmt.Errorf("wxsim: create QR: %w", e)
	}
	return q, nil
}

// lookupQR finds a QR code by ticket or by the URL it encodes; expired
// temporary codes report ErrQRExpired. Caller holds s.mu.
func (s *Sim) lookupQR(ticketOrURL string) (*qrCode, error) {
	key := strings.TrimSpace(ticketOrURL)
	if t, ok := s.qrByURL[key]; ok {
		key = t
	}
	q, ok := s.qrs[key]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownQR, ticketOrURL)
	}
	if !q.ExpiresAt.IsZero() && !s.clock.Now().Before(q.ExpiresAt) {
		return q, ErrQRExpired
	}
	return q, nil
}

// ResolveQR tells what a scanned QR code means: its account and scene. It
// accepts the ticket or the URL the QR image encodes.
func (s *Sim) ResolveQR(ticketOrURL string) (QRInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, err := s.lookupQR(ticketOrURL)
	if err != nil {
		if q != nil {
			return q.QRInfo, err
		}
		return QRInfo{}, err
	}
	return q.QRInfo, nil
}

// QRCodes lists the account's unexpired QR codes, oldest first.
func (s *Sim) QRCodes(appID string) ([]QRInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.accounts[appID]; !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownAccount, appID)
	}
	now := s.clock.Now()
	var out []QRInfo
	for _, q := range s.qrs {
		if q.AppID == appID && (q.ExpiresAt.IsZero() || now.Before(q.ExpiresAt)) {
			out = append(out, q.QRInfo)
		}
	}
	sortQRs(out)
	return out, nil
}

func sortQRs(qs []QRInfo) {
	slices.SortFunc(qs, func(a, b QRInfo) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.URL, b.URL)
	})
}

// QRPNG renders content as a PNG QR code of size×size pixels.
func QRPNG(content string, size int) ([]byte, error) {
	png, err := qrcode.Encode(content, qrcode.Medium, size)
	if err != nil {
		return nil, fmt.Errorf("wxsim: encode QR: %w", err)
	}
	return png, nil
}
