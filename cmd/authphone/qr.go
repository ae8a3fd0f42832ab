package main

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/authphone/authphone/sdk/qr"
	"github.com/mdp/qrterminal/v3"
	"github.com/spf13/cobra"
)

// drawQR draws text as a QR code with half blocks. It never asks the
// terminal for sixel support (that query can hang under tmux, CI or a pager).
func drawQR(w io.Writer, text string) {
	qrterminal.GenerateWithConfig(text, qrterminal.Config{
		Level: qrterminal.M, Writer: w, HalfBlocks: true, QuietZone: 2,
		BlackChar: qrterminal.BLACK_BLACK, WhiteBlackChar: qrterminal.WHITE_BLACK,
		WhiteChar: qrterminal.WHITE_WHITE, BlackWhiteChar: qrterminal.BLACK_WHITE,
	})
}

// qrContent is what an app link's QR code holds: the dispatch payload itself
// (smaller than the whole link); other text is drawn as is.
func qrContent(link string) string {
	if u, err := url.Parse(link); err == nil {
		if p := u.Query().Get("dispatchTokenResponse"); p != "" {
			return p
		}
	}
	return link
}

// qrText turns any QR input into the text to encode: an image or data: URI
// is decoded, anything else is taken as is.
func qrText(in []byte) (string, error) {
	if qr.IsImage(in) {
		return qr.Read(in)
	}
	s := strings.TrimSpace(string(in))
	if rest, ok := strings.CutPrefix(s, "data:image/"); ok {
		_, b64, ok := strings.Cut(rest, ";base64,")
		if !ok {
			return "", fmt.Errorf("the data: URI is not base64: expected data:image/png;base64,…")
		}
		img, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return "", fmt.Errorf("the data: URI has bad base64: %w", err)
		}
		return qr.Read(img)
	}
	if s == "" {
		return "", usageErrorf("nothing to show: give a payload, app link, data: URI or QR image")
	}
	return s, nil
}

func newQRCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "qr [INPUT]",
		Short: "Show a payload, app link, data: URI or QR image as a QR code in the terminal",
		Example: `  authphone qr 'http://127.0.0.1:8722/open?dispatchTokenResponse=eyJ...'
  authphone qr enrolment.png
  authphone backend enroll carol --json | jq -r .enrollment.qrCode.dataUri | authphone qr -`,
		Args: maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := a.readInput(args, "a payload, app link, data: URI or QR image")
			if err != nil {
				return err
			}
			text, err := qrText(in)
			if err != nil {
				return err
			}
			if a.json {
				a.printJSON(map[string]string{"text": text})
				return nil
			}
			drawQR(a.io.out, text)
			a.printf("%s\n", text)
			return nil
		},
	}
}
