package dispatch_test

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/png"
	"strings"
	"testing"

	"github.com/authphone/authphone/sdk/dispatch"
	"github.com/authphone/authphone/sdk/qr"
)

const base = "http://127.0.0.1:8722"

func sample() dispatch.Payload {
	return dispatch.New(base, dispatch.Registration, "0b7f3d0e-4b1a-4c55-9a4e-3f1f2a6c9d10")
}

func TestDecodeEveryForm(t *testing.T) {
	p := sample()
	img, err := qr.PNG(p.Encode(), 300)
	if err != nil {
		t.Fatal(err)
	}
	forms := map[string][]byte{
		"base64url":   []byte(p.Encode()),
		"padded":      []byte(p.Encode() + "=="),
		"with spaces": []byte("  " + p.Encode() + "\n"),
		"app link":    []byte(p.AppLink(base)),
		"json":        p.JSON(),
		"data uri":    []byte(dispatch.DataURI(img)),
		"png":         img,
	}
	for name, in := range forms {
		got, err := dispatch.Decode(in)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got != p {
			t.Errorf("%s: got %+v want %+v", name, got, p)
		}
	}
	if p.Kind() != dispatch.Registration || p.Base() != base {
		t.Fatalf("kind %q base %q", p.Kind(), p.Base())
	}
}

func TestDecodeRejects(t *testing.T) {
	p := sample()
	enc := p.Encode()
	blank := image.NewGray(image.Rect(0, 0, 64, 64))
	for i := range blank.Pix {
		blank.Pix[i] = 255
	}
	var blankPNG bytes.Buffer
	_ = png.Encode(&blankPNG, blank)
	_ = color.White
	otherQR, _ := qr.PNG("https://example.com/not-ours", 200)
	jose := strings.Replace(string(p.JSON()), "application/json", "application/jose", 1)
	cases := []struct {
		name string
		in   string
		want error
	}{
		{"empty", "", dispatch.ErrNotDispatch},
		{"garbage", "hello world!", dispatch.ErrNotDispatch},
		{"truncated", enc[:len(enc)-10], dispatch.ErrInvalid},
		{"link without param", base + "/open?x=1", dispatch.ErrNotDispatch},
		{"not our json", `{"a":1}`, dispatch.ErrNotDispatch},
		{"bad token", strings.Replace(string(p.JSON()), p.Token, "not-a-uuid", 1), dispatch.ErrInvalid},
		{"bad kind", strings.Replace(string(p.JSON()), "registration", "launch", 1), dispatch.ErrInvalid},
		{"encrypted", jose, dispatch.ErrEncrypted},
		{"blank image", blankPNG.String(), dispatch.ErrNotDispatch},
		{"other QR", string(otherQR), dispatch.ErrNotDispatch},
		{"bad data uri", "data:text/plain;base64,aGVsbG8=", dispatch.ErrNotDispatch},
	}
	for _, c := range cases {
		_, err := dispatch.Decode([]byte(c.in))
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	p := sample()
	f.Add([]byte(p.Encode()))
	f.Add([]byte(p.AppLink(base)))
	f.Add(p.JSON())
	f.Add([]byte("data:image/png;base64,iVBORw0KGgo="))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := dispatch.Decode(in)
		if err != nil {
			return
		}
		if err := got.Validate(); err != nil {
			t.Fatalf("decoded an invalid payload: %v", err)
		}
		again, err := dispatch.Decode([]byte(got.Encode()))
		if err != nil || again != got {
			t.Fatalf("re-encoding failed: %v", err)
		}
	})
}
