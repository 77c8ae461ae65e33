package sendtest

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"testing"

	"github.com/wechat-relay/wechat-relay/gateway"
	"github.com/wechat-relay/wechat-relay/gateway/wxsim"
)

// An employee's permanent QR code, through the simulator's qrcode/create
// and showqrcode: a PNG, created once, and a client who scans it sends
// the employee's scene.
func TestEmployeeQRCode(t *testing.T) {
	e := newEnv(t, nil, nil)
	qr, err := gateway.NewQRCodes(e.api, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	img, err := qr.PermanentQR(ctx, e.id, "emp:alice")
	if err != nil {
		t.Fatalf("PermanentQR: %v", err)
	}
	if _, err := png.Decode(bytes.NewReader(img)); err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if cfg, _, err := image.DecodeConfig(bytes.NewReader(img)); err != nil || cfg.Width < 100 {
		t.Fatalf("image %+v, %v", cfg, err)
	}
	again, err := qr.PermanentQR(ctx, e.id, "emp:alice")
	if err != nil || !bytes.Equal(again, img) {
		t.Fatalf("second call: %v", err)
	}
	codes, err := sim.QRCodes(e.acct.AppID)
	if err != nil {
		t.Fatal(err)
	}
	if len(codes) != 1 || codes[0].Action != wxsim.QRLimitStrScene || codes[0].SceneStr != "emp:alice" || !codes[0].ExpiresAt.IsZero() {
		t.Fatalf("codes at the simulator: %+v; want one permanent code for emp:alice", codes)
	}

	// A new client scans it: the relay receives subscribe with the scene.
	c, err := sim.NewClient(e.acct.AppID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ScanQR(ctx, codes[0].URL); err != nil {
		t.Fatalf("scan: %v", err)
	}
	in := e.inbox.got()
	last := in[len(in)-1]
	if last.Event != "subscribe" || last.EventKey != "qrscene_emp:alice" || last.Client != c.OpenID {
		t.Fatalf("callback after the scan: %+v", last)
	}

	// After the token was replaced behind the relay's back, creating
	// another code still works (one refresh).
	e.forceRotate()
	if _, err := qr.PermanentQR(ctx, e.id, "emp:bob"); err != nil {
		t.Fatalf("after token rotation: %v", err)
	}
}
