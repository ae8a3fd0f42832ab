package qr_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/authphone/authphone/sdk/qr"
)

// TestRoundTripMany renders and reads back many payloads of the length the
// emulator uses: every one must come back exactly.
func TestRoundTripMany(t *testing.T) {
	for i := range 100 {
		text := fmt.Sprintf("eyJubWFfZGF0YSI6eyJ0b2tlbiI6IjAwMDAwMDAwLTAwMDAtNDAwMC04MDAwLTAwMDAwMDAwMDAwMCIsInJlZGVlbV91cmwiOiJodHRwOi8vMTI3LjAuMC4xOjg3MjIvX2FwcC90b2tlbi9yZWRlZW0vcmVnaXN0cmF0aW9uIn0sIm5tYV9kYXRhX2NvbnRlbnRfdHlwZSI6ImFwcGxpY2F0aW9uL2pzb24iLCJubWFfZGF0YV92ZXJzaW9uIjoiMSJ9-%04d", i)
		png, err := qr.PNG(text, 300)
		if err != nil {
			t.Fatal(err)
		}
		got, err := qr.Read(png)
		if err != nil || got != text {
			t.Fatalf("payload %d: %q %v", i, got, err)
		}
	}
}

func TestReadRejectsNonImages(t *testing.T) {
	if _, err := qr.Read([]byte("not an image")); err == nil {
		t.Fatal("read garbage")
	}
	if qr.IsImage([]byte("hello")) {
		t.Fatal("text taken for an image")
	}
	_ = errors.Is
}
