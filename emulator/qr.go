package emulator

import (
	"bytes"
	stdpng "image/png"
	"net/http"
	"strings"
	"sync"

	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/dispatch"
	"github.com/authphone/authphone/sdk/qr"
)

// QRSize is the side of the enrolment and approval QR PNGs, in pixels.
const QRSize = 300

// PathQR is where the PNG of a pending operation's QR code is served:
// PathQR + dispatch token + ".png" (the qrCode.url of an answer).
const PathQR = "/qr/"

// wantsMinimal reports whether the client asked (RFC 7240 Prefer:
// return=minimal) for the answer without the QR image inline: its qrCode
// then carries only the URL, and the PNG is rendered if that is fetched.
func wantsMinimal(r *http.Request) bool {
	for _, v := range r.Header.Values("Prefer") {
		for p := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(p), "return=minimal") {
				return true
			}
		}
	}
	return false
}

// qrCode describes the QR code of payload: its URL, and the PNG inline
// unless minimal. It runs after the transaction, never inside it.
func (s *Server) qrCode(base string, p dispatch.Payload, minimal bool) (*cloudapi.QRCode, error) {
	out := &cloudapi.QRCode{Type: "image/png", Size: QRSize, URL: base + PathQR + p.Token + ".png"}
	if minimal {
		return out, nil
	}
	png, err := s.qrPNG(p)
	if err != nil {
		return nil, err
	}
	if cfg, err := stdpng.DecodeConfig(bytes.NewReader(png)); err == nil {
		out.Size = cfg.Width // whole pixels per module: a little under QRSize
	}
	out.DataURI = dispatch.DataURI(png)
	return out, nil
}

// qrPNG renders payload's QR code once: an answer's inline image and a
// fetch of its URL share it.
func (s *Server) qrPNG(p dispatch.Payload) ([]byte, error) {
	text := p.Encode()
	if png, ok := s.qrs.get(text); ok {
		return png, nil
	}
	png, err := qr.PNG(text, QRSize)
	if err != nil {
		return nil, err
	}
	s.qrs.put(text, png)
	return png, nil
}

// handleQR serves the PNG of a pending operation's QR code, rendering it on
// the first request. A redeemed, expired or unknown token is a 404.
func (s *Server) handleQR(w http.ResponseWriter, r *http.Request) {
	token, ok := strings.CutSuffix(r.PathValue("file"), ".png")
	if !ok || token == "" {
		s.fail(w, r, errf(http.StatusNotFound, "no such QR code: ask for %s<token>.png, the qrCode.url of an enrol or approval", PathQR))
		return
	}
	var dt *DispatchToken
	err := s.store.View(r.Context(), func(st Tx) (err error) {
		dt, err = st.DispatchToken(token)
		return err
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if dt == nil || dt.Redeemed || !s.now().Before(dt.ExpiresAt) ||
		(dt.Kind != string(dispatch.Registration) && dt.Kind != string(dispatch.Authentication)) {
		s.fail(w, r, errf(http.StatusNotFound, "no pending operation has this QR code (it was scanned, expired or never existed)"))
		return
	}
	png, err := s.qrPNG(dispatch.New(s.base(r), dispatch.Kind(dt.Kind), dt.Token))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "no-store") // it holds a single-use token
	_, _ = w.Write(png)
}

// qrCache keeps the last rendered PNGs, a few hundred at most.
type qrCache struct {
	mu    sync.Mutex
	png   map[string][]byte
	order []string
}

const qrCacheSize = 256

func (c *qrCache) get(k string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.png[k]
	return b, ok
}

func (c *qrCache) put(k string, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.png == nil {
		c.png = map[string][]byte{}
	}
	if _, ok := c.png[k]; ok {
		return
	}
	if len(c.order) >= qrCacheSize {
		delete(c.png, c.order[0])
		c.order = c.order[1:]
	}
	c.png[k] = b
	c.order = append(c.order, k)
}
