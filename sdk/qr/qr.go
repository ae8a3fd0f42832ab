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

// PNG renders content as a size×size PNG QR code with medium error correction.
func PNG(content string, size int) ([]byte, error) {
	b, err := qrcode.Encode(content, qrcode.Medium, size)
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
		return "", fmt.Errorf("read image: %w", err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(m)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoQRCode, err)
	}
	hints := map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_TRY_HARDER: true}
	res, err := zxqr.NewQRCodeReader().Decode(bmp, hints)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoQRCode, err)
	}
	return res.GetText(), nil
}
