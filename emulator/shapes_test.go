package emulator_test

// The backend API's response shapes, as the public Authentication Cloud API
// reference shows them (ARCHITECTURE.md, "The backend API against the
// public API reference"). Each test reads the raw JSON, so it fails if a
// field goes missing, gets renamed or changes its JSON type.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	stdpng "image/png"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authphone/authphone/emulator"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/google/uuid"
)

// obj is a decoded JSON object.
type obj = map[string]any

// rawJSON sends a request and decodes the answer as a JSON object.
func (c *cloud) rawJSON(method, path string, hdr map[string]string, body []byte) (int, obj) {
	c.t.Helper()
	var out obj
	code := c.do(method, path, hdr, body, &out)
	return code, out
}

// Kinds of JSON values a shape names.
const (
	jString = "string"
	jNumber = "number"
	jBool   = "bool"
	jArray  = "array"
	jObject = "object"
	jTime   = "time"   // a string, RFC 3339 in UTC (Z)
	jUUID   = "uuid"   // a string, a UUID
	jAbsent = "absent" // not there at all
)

// checkShape reports every member of want that o lacks or has with
// another JSON type.
func checkShape(t *testing.T, what string, o obj, want map[string]string) {
	t.Helper()
	for k, kind := range want {
		v, ok := o[k]
		if kind == jAbsent {
			if ok {
				t.Errorf("%s: %s should be absent, is %v", what, k, v)
			}
			continue
		}
		if !ok {
			t.Errorf("%s: no %s in %v", what, k, o)
			continue
		}
		good := false
		switch kind {
		case jString:
			_, good = v.(string)
		case jNumber:
			_, good = v.(float64)
		case jBool:
			_, good = v.(bool)
		case jArray:
			_, good = v.([]any)
		case jObject:
			_, good = v.(obj)
		case jTime:
			s, _ := v.(string)
			_, err := time.Parse(time.RFC3339, s)
			good = err == nil && strings.HasSuffix(s, "Z")
		case jUUID:
			s, _ := v.(string)
			_, err := uuid.Parse(s)
			good = err == nil
		}
		if !good {
			t.Errorf("%s: %s = %#v is not a %s", what, k, v, kind)
		}
	}
}

// asTime reads a time member.
func asTime(t *testing.T, o obj, k string) time.Time {
	t.Helper()
	s, _ := o[k].(string)
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("%s = %v: %v", k, o[k], err)
	}
	return at
}

// clock reads the emulator's time.
func (c *cloud) clock() time.Time {
	c.t.Helper()
	var cr cloudapi.ClockResponse
	if code := c.do("GET", cloudapi.PathClock, backendAuth, nil, &cr); code != 200 {
		c.t.Fatalf("clock: %d", code)
	}
	return cr.Now
}

var authenticatorShape = map[string]string{
	"authenticatorId": jUUID, "name": jString, "type": jString, "authenticatorType": jString, "state": jString,
	"enrolledAt": jTime, "updatedAt": jTime, "uaf": jObject,
}

// TestEnrollResponseShape: POST /api/v1/users/enroll answers 201 with the
// user, its authenticators (each in the users endpoint's shape) and the
// enrollment: a PNG QR code as a data URI with its size, and the app link.
func TestEnrollResponseShape(t *testing.T) {
	c := newCloud(t)
	code, u := c.rawJSON("POST", cloudapi.PathEnroll, backendAuth, mustJSON(cloudapi.EnrollRequest{Username: "erin"}))
	if code != 201 {
		t.Fatalf("enroll: %d %v", code, u)
	}
	checkShape(t, "enroll", u, map[string]string{"userId": jUUID, "username": jString, "status": jString,
		"createdAt": jTime, "updatedAt": jTime, "authenticators": jArray, "enrollment": jObject,
		"lastLoginDateSuccess": jAbsent, "lastLoginDateFailure": jAbsent, "exceededRateLimits": jAbsent})
	if u["status"] != cloudapi.UserNew || len(u["authenticators"].([]any)) != 0 {
		t.Errorf("a new user: status %v, authenticators %v", u["status"], u["authenticators"])
	}
	en, _ := u["enrollment"].(obj)
	checkShape(t, "enrollment", en, map[string]string{"transactionId": jUUID, "statusToken": jString, "qrCode": jObject, "appLinkUri": jString})
	qr, _ := en["qrCode"].(obj)
	checkShape(t, "qrCode", qr, map[string]string{"type": jString, "size": jNumber, "dataUri": jString})
	uri, _ := qr["dataUri"].(string)
	png, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(uri, "data:image/png;base64,"))
	if err != nil || qr["type"] != "image/png" || !strings.HasPrefix(uri, "data:image/png;base64,") {
		t.Fatalf("qrCode %v: %v", qr, err)
	}
	// size is the PNG's side in pixels (whole pixels per module, at most 300).
	if cfg, err := stdpng.DecodeConfig(bytes.NewReader(png)); err != nil || qr["size"] != float64(cfg.Width) || cfg.Width > emulator.QRSize {
		t.Errorf("qrCode size %v, PNG %+v %v", qr["size"], cfg, err)
	}

	// A second enrolment of a user with a phone lists that authenticator.
	c.enrolled(newDevice(), "erin")
	_, u = c.rawJSON("POST", cloudapi.PathEnroll, backendAuth, mustJSON(cloudapi.EnrollRequest{Username: "erin"}))
	as, _ := u["authenticators"].([]any)
	if u["status"] != cloudapi.UserActive || len(as) != 1 {
		t.Fatalf("second enrolment: status %v, authenticators %v", u["status"], u["authenticators"])
	}
	checkShape(t, "enroll authenticator", as[0].(obj), authenticatorShape)
}

// TestUserShape: the users endpoint's user carries lastLoginDateSuccess and
// lastLoginDateFailure, kept on the emulator's clock as approvals succeed
// and fail (an approval cut short by removing its authenticator is no
// login), and each authenticator a uaf object whose deviceRef is one UUID
// per phone.
func TestUserShape(t *testing.T) {
	c := newCloud(t)
	d1, d2 := newDevice(), newDevice()
	c.enrolled(d1, "ivy")
	c.enrolled(d2, "ivy")
	pk := newPhoneKey(t)
	if code := c.bind(d1, pk, pk.id); code != 200 {
		t.Fatalf("bind: %d", code)
	}
	path := "/api/v1/users?username=ivy"
	_, u := c.rawJSON("GET", path, backendAuth, nil)
	checkShape(t, "user", u, map[string]string{"userId": jUUID, "username": jString, "status": jString,
		"createdAt": jTime, "updatedAt": jTime, "authenticators": jArray,
		"lastLoginDateSuccess": jAbsent, "lastLoginDateFailure": jAbsent, "exceededRateLimits": jAbsent, "enrollment": jAbsent})
	as, _ := u["authenticators"].([]any)
	if len(as) != 2 {
		t.Fatalf("authenticators %v", u["authenticators"])
	}
	for i, a := range as {
		checkShape(t, "authenticator", a.(obj), authenticatorShape)
		ua, _ := a.(obj)["uaf"].(obj)
		want := map[string]string{"userDisabledPushNotification": jBool, "deviceRef": jAbsent, "userAgent": jAbsent}
		if i == 0 { // d1 registered its push target
			want["deviceRef"] = jUUID
		}
		checkShape(t, "uaf", ua, want)
	}
	// Another account bound to the same phone key has the same deviceRef.
	d3 := newDevice()
	c.enrolled(d3, "jack")
	if code := c.bind(d3, pk, pk.id); code != 200 {
		t.Fatalf("bind: %d", code)
	}
	var ivy, jack cloudapi.User
	c.do("GET", path, backendAuth, nil, &ivy)
	c.do("GET", "/api/v1/users?username=jack", backendAuth, nil, &jack)
	if ivy.Authenticators[0].UAF.DeviceRef != jack.Authenticators[0].UAF.DeviceRef {
		t.Errorf("one phone, two deviceRefs: %s %s", ivy.Authenticators[0].UAF.DeviceRef, jack.Authenticators[0].UAF.DeviceRef)
	}

	// A successful approval.
	before := c.clock()
	ap := c.approve(cloudapi.ApprovalRequest{Username: "ivy", AuthenticatorID: ivy.Authenticators[0].AuthenticatorID})
	if code, sb := c.answer(d1, ap.TransactionID, 0); code != 200 {
		t.Fatalf("answer: %d %+v", code, sb)
	}
	after := c.clock()
	_, u = c.rawJSON("GET", path, backendAuth, nil)
	checkShape(t, "user after a login", u, map[string]string{"lastLoginDateSuccess": jTime, "lastLoginDateFailure": jAbsent})
	ok := asTime(t, u, "lastLoginDateSuccess")
	if ok.Before(before.Truncate(time.Second)) || ok.After(after) {
		t.Fatalf("lastLoginDateSuccess %s, not between %s and %s", ok, before, after)
	}

	// A failed one (it expires), a day later on the emulator's clock.
	if _, err := c.srv.AdvanceClock(24 * time.Hour); err != nil {
		t.Fatal(err)
	}
	ap = c.approve(cloudapi.ApprovalRequest{Username: "ivy"})
	if err := c.srv.ExpireOperation(context.Background(), ap.TransactionID); err != nil {
		t.Fatal(err)
	}
	_, u = c.rawJSON("GET", path, backendAuth, nil)
	checkShape(t, "user after a failed login", u, map[string]string{"lastLoginDateSuccess": jTime, "lastLoginDateFailure": jTime})
	failed := asTime(t, u, "lastLoginDateFailure")
	if !asTime(t, u, "lastLoginDateSuccess").Equal(ok) || failed.Sub(ok) < 24*time.Hour {
		t.Fatalf("after the failure: success %v, failure %v (success was %s)", u["lastLoginDateSuccess"], failed, ok)
	}

	// Removing the authenticator an approval waits for is not a login.
	if _, err := c.srv.AdvanceClock(time.Hour); err != nil {
		t.Fatal(err)
	}
	ap = c.approve(cloudapi.ApprovalRequest{Username: "ivy", AuthenticatorID: ivy.Authenticators[1].AuthenticatorID})
	if code := c.do("DELETE", cloudapi.PathAuthenticators+"/"+ivy.Authenticators[1].AuthenticatorID, backendAuth, nil, nil); code != 204 {
		t.Fatalf("delete authenticator: %d", code)
	}
	if s := c.status(ap.StatusToken); s != cloudapi.StatusFailed {
		t.Fatalf("approval of a removed authenticator: %s", s)
	}
	_, u = c.rawJSON("GET", path, backendAuth, nil)
	if !asTime(t, u, "lastLoginDateFailure").Equal(failed) {
		t.Fatalf("a removed authenticator moved lastLoginDateFailure to %v", u["lastLoginDateFailure"])
	}
}

// TestExceededRateLimitsShape: while the login rate limit holds a user
// back (the next login request without a device signature would be
// answered 429), the user carries exceededRateLimits: the limit, its period
// and when the next request is allowed. Once the bucket refills on the
// emulator's clock the field is gone.
func TestExceededRateLimitsShape(t *testing.T) {
	var offset atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	c := newCloud(t, emulator.WithClock(clock), emulator.WithLoginRateLimit(2, time.Minute))
	c.enrolled(newDevice(), "kim")
	path := "/api/v1/users?username=kim"
	if code, _, body := c.rawLoginRequest("kim"); code == 429 {
		t.Fatalf("first login request refused: %s", body)
	}
	_, u := c.rawJSON("GET", path, backendAuth, nil)
	checkShape(t, "user within the limit", u, map[string]string{"exceededRateLimits": jAbsent})
	if code, _, body := c.rawLoginRequest("kim"); code == 429 {
		t.Fatalf("second login request refused: %s", body)
	}
	_, u = c.rawJSON("GET", path, backendAuth, nil)
	checkShape(t, "blocked user", u, map[string]string{"exceededRateLimits": jArray})
	if code, _, body := c.rawLoginRequest("kim"); code != 429 {
		t.Fatalf("third login request in a minute: %d %s", code, body)
	}
	_, u = c.rawJSON("GET", path, backendAuth, nil)
	limits, _ := u["exceededRateLimits"].([]any)
	if len(limits) != 1 {
		t.Fatalf("exceededRateLimits %v", u["exceededRateLimits"])
	}
	l, _ := limits[0].(obj)
	checkShape(t, "exceeded limit", l, map[string]string{"name": jString, "limit": jNumber, "period": jString, "retryAt": jTime})
	if l["name"] != cloudapi.RateLimitLogin || l["limit"] != float64(2) || l["period"] != "1m0s" {
		t.Errorf("exceeded limit %v", l)
	}
	now := c.clock()
	if at := asTime(t, l, "retryAt"); at.Before(now.Add(-time.Second)) || at.After(now.Add(31*time.Second)) {
		t.Errorf("retryAt %s, want within 30 s of %s", at, now)
	}
	// Others are not held back.
	c.enrolled(newDevice(), "lee")
	_, other := c.rawJSON("GET", "/api/v1/users?username=lee", backendAuth, nil)
	checkShape(t, "another user", other, map[string]string{"exceededRateLimits": jAbsent})

	offset.Add(int64(time.Minute))
	_, u = c.rawJSON("GET", path, backendAuth, nil)
	checkShape(t, "user a minute later", u, map[string]string{"exceededRateLimits": jAbsent})
	if code, _, body := c.rawLoginRequest("kim"); code == 429 {
		t.Fatalf("login request a minute later refused: %s", body)
	}
}

// TestApprovalAndStatusShape: the approval answer (push, and app with its
// QR code and app link) and the status answer.
func TestApprovalAndStatusShape(t *testing.T) {
	c := newCloud(t)
	d := newDevice()
	c.enrolled(d, "max")
	code, ap := c.rawJSON("POST", cloudapi.PathApproval, backendAuth, mustJSON(cloudapi.ApprovalRequest{Username: "max"}))
	if code != 200 {
		t.Fatalf("approval: %d %v", code, ap)
	}
	checkShape(t, "push approval", ap, map[string]string{"transactionId": jUUID, "statusToken": jString, "userId": jUUID,
		"username": jString, "createdAt": jTime, "qrCode": jAbsent, "appLinkUri": jAbsent})
	code, app := c.rawJSON("POST", cloudapi.PathApproval, backendAuth, mustJSON(cloudapi.ApprovalRequest{Username: "max", Channel: cloudapi.ChannelApp}))
	if code != 200 {
		t.Fatalf("app approval: %d %v", code, app)
	}
	checkShape(t, "app approval", app, map[string]string{"transactionId": jUUID, "statusToken": jString, "userId": jUUID,
		"username": jString, "createdAt": jTime, "qrCode": jObject, "appLinkUri": jString})
	checkShape(t, "app approval qrCode", app["qrCode"].(obj), map[string]string{"type": jString, "size": jNumber, "dataUri": jString})

	st := mustJSON(cloudapi.StatusRequest{StatusToken: ap["statusToken"].(string)})
	_, s := c.rawJSON("POST", cloudapi.PathStatus, nil, st)
	checkShape(t, "pending status", s, map[string]string{"transactionId": jUUID, "status": jString, "userId": jUUID,
		"username": jString, "createdAt": jTime, "lastUpdatedAt": jTime, "token": jAbsent})
	if code, sb := c.answer(d, ap["transactionId"].(string), 0); code != 200 {
		t.Fatalf("answer: %d %+v", code, sb)
	}
	_, s = c.rawJSON("POST", cloudapi.PathStatus, nil, st)
	checkShape(t, "succeeded status", s, map[string]string{"transactionId": jUUID, "status": jString, "userId": jUUID,
		"username": jString, "createdAt": jTime, "lastUpdatedAt": jTime, "token": jString})
	if s["status"] != cloudapi.StatusSucceeded {
		t.Errorf("status %v", s["status"])
	}
}

// TestErrorBodyShape: every error of the backend API, whatever its
// status, is a JSON object with the status as a number, its text and a
// message, served as application/json.
func TestErrorBodyShape(t *testing.T) {
	c := newCloud(t, emulator.WithLoginRateLimit(1, time.Hour))
	c.enrolled(newDevice(), "ned")
	c.rawLoginRequest("ned")
	for _, tc := range []struct {
		name, method, path string
		hdr                map[string]string
		body               string
		ctype              string
		want               int
	}{
		{"bad username", "POST", cloudapi.PathEnroll, backendAuth, `{"username":"no spaces"}`, "application/json", 400},
		{"no credentials", "POST", cloudapi.PathApproval, nil, `{"username":"ned"}`, "application/json", 401},
		{"unknown user", "GET", cloudapi.PathUsers + "/" + uuid.NewString(), backendAuth, "", "", 404},
		{"wrong method", "PUT", cloudapi.PathStatus, nil, `{}`, "application/json", 405},
		{"too many authenticators", "", "", nil, "", "", 409},
		{"body too large", "POST", cloudapi.PathEnroll, backendAuth, `{"username":"` + strings.Repeat("a", cloudapi.MaxBody) + `"}`, "application/json", 413},
		{"form body", "POST", cloudapi.PathEnroll, backendAuth, "username=ned", "application/x-www-form-urlencoded", 415},
		{"rate limited", "POST", "/api/v1/login-requests", nil, "", "", 429},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var resp *http.Response
			var err error
			switch tc.want {
			case 409:
				for range cloudapi.MaxAuthenticators - 1 {
					c.enrolled(newDevice(), "ned")
				}
				req, _ := http.NewRequest("POST", c.url+cloudapi.PathEnroll, strings.NewReader(`{"username":"ned"}`))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", backendAuth["Authorization"])
				resp, err = http.DefaultClient.Do(req)
			case 429:
				code, hdr, body := c.rawLoginRequest("ned")
				resp = &http.Response{StatusCode: code, Header: hdr, Body: io.NopCloser(strings.NewReader(body))}
			default:
				req, _ := http.NewRequest(tc.method, c.url+tc.path, strings.NewReader(tc.body))
				if tc.ctype != "" {
					req.Header.Set("Content-Type", tc.ctype)
				}
				for k, v := range tc.hdr {
					req.Header.Set(k, v)
				}
				resp, err = http.DefaultClient.Do(req)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.want {
				t.Fatalf("HTTP %d, want %d: %s", resp.StatusCode, tc.want, b)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			var o obj
			if err := json.Unmarshal(b, &o); err != nil {
				t.Fatalf("not a JSON object: %s", b)
			}
			checkShape(t, "error", o, map[string]string{"status": jNumber, "error": jString, "message": jString})
			if o["status"] != float64(tc.want) || o["error"] != http.StatusText(tc.want) || o["message"] == "" {
				t.Errorf("error body %v", o)
			}
		})
	}
}
