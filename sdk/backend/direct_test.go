package backend_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/authphone/authphone/sdk/backend"
	"github.com/authphone/authphone/sdk/cloudapi"
)

// A call goes to the transport directly when the http.Client adds nothing;
// an answer that redirects is still followed as the client follows it,
// without asking the first URL twice, and the headers are the same either
// way.
func TestDirectCallsFollowRedirectsAndSendTheHeaders(t *testing.T) {
	var seen []string
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+cloudapi.PathStatus, func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.URL.Path+" "+r.Header.Get("Authorization")+" "+r.Header.Get("Content-Type"))
		http.Redirect(w, r, "/moved"+cloudapi.PathStatus, http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("POST /moved"+cloudapi.PathStatus, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		seen = append(seen, r.URL.Path+" "+r.Header.Get("Authorization")+" "+r.Header.Get("Content-Type")+" "+string(b))
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"transactionId":"t","status":"succeeded"}`)
	})
	mux.HandleFunc("POST "+cloudapi.PathApproval, func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, "POST "+r.URL.Path)
		http.Redirect(w, r, "/result", http.StatusSeeOther) // done; read the answer there
	})
	mux.HandleFunc("GET /result", func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, "GET "+r.URL.Path+" "+r.Header.Get("Authorization"))
		_, _ = io.WriteString(w, `{"transactionId":"t2","statusToken":"st","userId":"u","createdAt":"2026-12-03T09:00:00Z"}`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, c := range []*backend.Client{
		backend.New(srv.URL, backend.WithAccessKey("k")),                                                         // httplimit's client: direct
		backend.New(srv.URL, backend.WithAccessKey("k"), backend.WithHTTPClient(&http.Client{})),                 // direct
		backend.New(srv.URL, backend.WithAccessKey("k"), backend.WithHTTPClient(&http.Client{Timeout: 1 << 40})), // through the client
	} {
		seen = nil
		st, err := c.Status(context.Background(), "st.x", 0)
		if err != nil || st.Status != cloudapi.StatusSucceeded || st.TransactionID != "t" {
			t.Fatalf("%+v %v", st, err)
		}
		want := []string{cloudapi.PathStatus + " Bearer k application/json",
			"/moved" + cloudapi.PathStatus + " Bearer k application/json " + `{"statusToken":"st.x"}`}
		if strings.Join(seen, "\n") != strings.Join(want, "\n") {
			t.Errorf("the cloud saw\n%s\nwant\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
		}
		seen = nil
		ap, _, err := c.Approve(context.Background(), cloudapi.ApprovalRequest{Username: "a"})
		if err != nil || ap.TransactionID != "t2" {
			t.Fatalf("%+v %v", ap, err)
		}
		if got := strings.Join(seen, "\n"); got != "POST "+cloudapi.PathApproval+"\nGET /result Bearer k" {
			t.Errorf("the cloud saw\n%s", got)
		}
	}
}

// A cloud that cannot be reached is ErrUnreachable on the direct path too.
func TestDirectCallUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	_, err := backend.New(url).Status(context.Background(), "st.x", 0)
	if !errors.Is(err, backend.ErrUnreachable) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
}
