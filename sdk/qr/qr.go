// Package qr makes real QR code images and reads them back: PNG encoding with
// github.com/skip2/go-qrcode and decoding of PNG/JPEG images with
// github.com/makiuchi-d/gozxing.
package qr

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // scanning accepts JPEG photos of a QR code
	_ "image/png"

	"github.com/makiuchi-d/gozxing"
	zxqr "github.com/makiuchi-d/gozxing/qrcode"
	qrcode "github.com/skip2/go-qrcode"
)

// ErrNoQRCode means an image was read but holds no readable QR code.
var ErrNoQRCode = errors.New("no readable QR code in the image")

// ErrBadImage means the bytes are not a PNG or JPEG image that decodes.
var ErrBadImage = errors.New("not a readable PNG or JPEG image")

// PNG renders content as a PNG QR code with medium error correction, at
// most size pixels wide. Every module is a whole number of pixels (the image
// may be a little smaller than size), which keeps it exactly decodable.
func PNG(content string, size int) ([]byte, error) {
	q, err := qrcode.New(content, qrcode.Medium)
	if err != nil {
		return nil, fmt.Errorf("make QR code: %w", err)
	}
	modules := len(q.Bitmap()) // quiet zone included
	b, err := q.PNG(-max(1, size/modules))
	if err != nil {
		return nil, fmt.Errorf("make QR code: %w", err)
	}
	return b, nil
}

// IsImage reports whether b starts like a PNG or JPEG file.
func IsImage(b []byte) bool {
	return bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) || bytes.HasPrefix(b, []byte{0xFF, 0xD8, 0xFF})
}

// Read decodes a PNG or JPEG image and returns the text of the QR code in it.
func Read(img []byte) (string, error) {
	m, _, err := image.Decode(bytes.NewReader(img))
	if err != nil {
		return "", ErrBadImage
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(m)
	if err != nil {
		return "", ErrNoQRCode
	}
	// The detector handles photos; a clean rendered code is read exactly
	// as a pure barcode when the detector stumbles on it.
	res, err := zxqr.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_TRY_HARDER: true})
	if err != nil {
		pure, perr := zxqr.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true})
		if perr != nil {
			return "", ErrNoQRCode // the decoder's own words mean nothing to a user
		}
		res = pure
	}
	return res.GetText(), nil
}
