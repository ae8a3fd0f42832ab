package backend_test

import (
	"context"
	"fmt"
	"time"

	"github.com/authphone/authphone/emulator"
	"github.com/authphone/authphone/sdk/backend"
	"github.com/authphone/authphone/sdk/cloudapi"
)

// A relying party enrols a user and waits for the phone with the long-poll.
// No phone scans here, so the wait ends with the status still pending, and
// an approval is refused until a phone has enrolled.
func ExampleClient_WaitStatus() {
	emu, _ := emulator.New()
	_ = emu.Start("127.0.0.1:0")
	defer emu.Close(context.Background())
	ctx := context.Background()

	be := backend.New(emu.URL(), backend.WithAccessKey(emu.AccessKey()))
	u, _, _ := be.Enroll(ctx, cloudapi.EnrollRequest{Username: "alice"})
	fmt.Println("enrolment:", u.Status)

	st, err := be.WaitStatus(ctx, u.Enrollment.StatusToken, 100*time.Millisecond)
	fmt.Println("after 100ms:", st.Status, err)

	_, _, err = be.Approve(ctx, cloudapi.ApprovalRequest{Username: "alice"})
	fmt.Println("approval before a phone enrolled:", err)
	// Output:
	// enrolment: new
	// after 100ms: pending <nil>
	// approval before a phone enrolled: 400 Bad Request: user alice has no active authenticator with a second factor; enrol a phone (or upgrade its headless account) first
}
