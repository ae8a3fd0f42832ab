package backend_test

import (
	"context"
	"testing"

	"github.com/authphone/authphone/emulator"
	"github.com/authphone/authphone/sdk/backend"
	"github.com/authphone/authphone/sdk/cloudapi"
)

func TestMinimalAnswersLeaveTheQRImageOut(t *testing.T) {
	emu, err := emulator.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := emu.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close(context.Background()) })
	ctx := context.Background()
	full, _, err := backend.New(emu.URL(), backend.WithAccessKey(emu.AccessKey())).Enroll(ctx, cloudapi.EnrollRequest{Username: "a"})
	if err != nil || full.Enrollment.QRCode == nil || full.Enrollment.QRCode.DataURI == "" {
		t.Fatalf("full answer: %+v %v", full, err)
	}
	min, _, err := backend.New(emu.URL(), backend.WithAccessKey(emu.AccessKey()), backend.WithMinimalAnswers()).Enroll(ctx, cloudapi.EnrollRequest{Username: "b"})
	if err != nil || min.Enrollment.QRCode == nil || min.Enrollment.QRCode.DataURI != "" || min.Enrollment.QRCode.URL == "" || min.Enrollment.AppLinkURI == "" {
		t.Fatalf("minimal answer: %+v %v", min.Enrollment, err)
	}
}
