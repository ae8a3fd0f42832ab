package cloudapi

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// The hand-written encoders and decoders against encoding/json: random
// values, then random mutations of their JSON.

var fastStrings = []string{"", "a", "user-1", "Ünïcødé", "a<b>&c", `q"uote\`, "tab\tnl\n", "\x00\x1f", "\u2028\u2029", "\xff\xfe",
	"data:image/png;base64,iVBORw0KGgo+/=", "http://cloud.invalid/open?dispatchTokenResponse=eyJ&x=1", "7f1c5e8a-0b4e-4c1f-9a55-3e2d1c0b9a87"}

func fastString(r *rand.Rand) string {
	if r.IntN(3) == 0 {
		b := make([]byte, r.IntN(12))
		for i := range b {
			b[i] = byte(r.IntN(256))
			if r.IntN(2) == 0 {
				b[i] = byte(0x20 + r.IntN(0x5f))
			}
		}
		return string(b)
	}
	return fastStrings[r.IntN(len(fastStrings))]
}

func fastTime(r *rand.Rand) time.Time {
	switch r.IntN(6) {
	case 0:
		return time.Time{}
	case 1:
		return time.Date(10000+r.IntN(5), 1, 2, 3, 4, 5, 0, time.UTC) // MarshalJSON refuses it
	case 2:
		return time.Date(2026, 12, 3, 9, 0, 0, r.IntN(1e9), time.FixedZone("", 3600*r.IntN(5)+60*r.IntN(3)+r.IntN(2)))
	}
	return time.Date(1990+r.IntN(60), time.Month(1+r.IntN(12)), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), r.IntN(3)*r.IntN(1e9), time.UTC)
}

func fastInt(r *rand.Rand) int {
	switch r.IntN(4) {
	case 0:
		return 0
	case 1:
		return -r.IntN(1000)
	}
	return r.IntN(1 << 20)
}

func fastQR(r *rand.Rand) *QRCode {
	if r.IntN(3) == 0 {
		return nil
	}
	return &QRCode{Type: fastString(r), Size: fastInt(r), DataURI: fastString(r), URL: fastString(r)}
}

func randomUser(r *rand.Rand) *User {
	u := &User{UserID: fastString(r), Username: fastString(r), Status: fastString(r), CreatedAt: fastTime(r), UpdatedAt: fastTime(r),
		LastLoginDateSuccess: fastTime(r), LastLoginDateFailure: fastTime(r)}
	if r.IntN(3) == 0 {
		u.ExceededRateLimits = []RateLimit{}
		for range r.IntN(3) {
			u.ExceededRateLimits = append(u.ExceededRateLimits, RateLimit{Name: fastString(r), Limit: fastInt(r), Period: fastString(r), RetryAt: fastTime(r)})
		}
	}
	if r.IntN(5) != 0 {
		u.Authenticators = []Authenticator{}
		for range r.IntN(3) {
			a := Authenticator{AuthenticatorID: fastString(r), Name: fastString(r), Type: fastString(r), AuthenticatorType: fastString(r),
				State: fastString(r), EnrolledAt: fastTime(r), UpdatedAt: fastTime(r), CreatedAt: fastTime(r)}
			if r.IntN(3) != 0 {
				a.UAF = &AuthenticatorUAF{UserAgent: fastString(r), DeviceRef: fastString(r), UserDisabledPushNotification: r.IntN(2) == 0}
			}
			u.Authenticators = append(u.Authenticators, a)
		}
	}
	if r.IntN(3) != 0 {
		u.Enrollment = &Enrollment{TransactionID: fastString(r), StatusToken: fastString(r), QRCode: fastQR(r), AppLinkURI: fastString(r)}
	}
	return u
}

func randomApproval(r *rand.Rand) *ApprovalResponse {
	return &ApprovalResponse{TransactionID: fastString(r), StatusToken: fastString(r), UserID: fastString(r), Username: fastString(r),
		CreatedAt: fastTime(r), QRCode: fastQR(r), AppLinkURI: fastString(r), Number: fastInt(r)}
}

func randomStatus(r *rand.Rand) *StatusResponse {
	return &StatusResponse{TransactionID: fastString(r), Status: fastString(r), UserID: fastString(r), Username: fastString(r),
		Token: fastString(r), CreatedAt: fastTime(r), LastUpdatedAt: fastTime(r), Reason: fastString(r)}
}

// fastCase is one of the three types: a random value, its encoder, its
// decoder.
type fastCase struct {
	name   string
	random func(*rand.Rand) any
	append func([]byte, any) ([]byte, error)
	decode func([]byte, any) error
	zero   func() any
}

var fastCases = []fastCase{
	{"User", func(r *rand.Rand) any { return randomUser(r) },
		func(b []byte, v any) ([]byte, error) { return AppendUser(b, v.(*User)) },
		func(b []byte, v any) error { return DecodeUser(b, v.(*User)) }, func() any { return new(User) }},
	{"ApprovalResponse", func(r *rand.Rand) any { return randomApproval(r) },
		func(b []byte, v any) ([]byte, error) { return AppendApprovalResponse(b, v.(*ApprovalResponse)) },
		func(b []byte, v any) error { return DecodeApprovalResponse(b, v.(*ApprovalResponse)) }, func() any { return new(ApprovalResponse) }},
	{"StatusResponse", func(r *rand.Rand) any { return randomStatus(r) },
		func(b []byte, v any) ([]byte, error) { return AppendStatusResponse(b, v.(*StatusResponse)) },
		func(b []byte, v any) error { return DecodeStatusResponse(b, v.(*StatusResponse)) }, func() any { return new(StatusResponse) }},
}

func TestFastEncodeMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, c := range fastCases {
		for i := range 20000 {
			v := c.random(r)
			want, werr := json.Marshal(v)
			got, gerr := c.append([]byte("prefix"), v)
			if (werr != nil) != (gerr != nil) {
				t.Fatalf("%s %d: error %v, encoding/json %v", c.name, i, gerr, werr)
			}
			if werr == nil && !bytes.Equal(got, append([]byte("prefix"), want...)) {
				t.Fatalf("%s %d:\n got %s\nwant prefix%s", c.name, i, got, want)
			}
		}
	}
}

// checkDecode decodes b both ways into zero values: the same value, and
// an error from both or neither.
func checkDecode(t *testing.T, c fastCase, b []byte) {
	t.Helper()
	want, got := c.zero(), c.zero()
	werr := json.Unmarshal(b, want)
	gerr := c.decode(b, got)
	if (werr != nil) != (gerr != nil) {
		t.Fatalf("%s %q: error %v, encoding/json %v", c.name, b, gerr, werr)
	}
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("%s %q:\n got %+v\nwant %+v", c.name, b, got, want)
	}
}

func TestFastDecodeMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, c := range fastCases {
		for range 5000 {
			b, err := json.Marshal(c.random(r))
			if err != nil {
				continue
			}
			checkDecode(t, c, b)
			for range 8 {
				checkDecode(t, c, mutate(r, b))
			}
		}
	}
	for _, b := range []string{`{}`, ` { } `, `{"authenticators":[]}`, `{"authenticators":null}`, `{"userId":"a","userId":"b"}`,
		`{"USERID":"a"}`, `{"status":"a"}x`, `{"enrollment":{}}`, `{"enrollment":null}`, `{"number":1.0}`, `{"number":01}`,
		`{"number":-0}`, `{"number":99999999999999999999}`, `{"size":1e2}`, `{"createdAt":"2026-12-03T09:00:00Z"}`,
		`{"createdAt":"2026-12-03T09:00:00+01:00"}`, `{"createdAt":"2026-12-03 09:00:00Z"}`, `{"createdAt":null}`,
		`{"exceededRateLimits":[{"name":"login","limit":3,"period":"1m0s","retryAt":"2026-12-03T09:00:00Z"}]}`,
		`{"authenticators":[{"uaf":{"userDisabledPushNotification":true}}]}`, `{"authenticators":[{"uaf":{"userDisabledPushNotification":1}}]}`,
		`{"token":"a\"b"}`, `{"token":"a\u0041"}`, `{"token":"é"}`, `[]`, `null`, ``, `{"a":1}`, `{"userId":"a",}`, `{"userId" : "a" , "status":"x"}`,
		"{\"userId\":\"a\"}\n", `{"qrCode":{"type":"png","size":256,"url":"u"}}`} {
		for _, c := range fastCases {
			checkDecode(t, c, []byte(b))
		}
	}
}

// mutate changes b at random: a byte deleted, inserted, replaced or
// doubled, white space added, or a key's case changed.
func mutate(r *rand.Rand, b []byte) []byte {
	out := bytes.Clone(b)
	if len(out) == 0 {
		return out
	}
	i := r.IntN(len(out))
	switch r.IntN(6) {
	case 0:
		return append(out[:i:i], out[i+1:]...)
	case 1:
		const ins = "{}[],:\"\\ 0-1.eEtfn\x00é"
		return append(out[:i:i], append([]byte{ins[r.IntN(len(ins))]}, out[i:]...)...)
	case 2:
		out[i] = byte(r.IntN(256))
	case 3:
		return append(out[:i:i], append([]byte{out[i]}, out[i:]...)...)
	case 4:
		return append(out[:i:i], append([]byte(" \n\t"), out[i:]...)...)
	case 5:
		if c := out[i]; c >= 'a' && c <= 'z' {
			out[i] = c - 32
		}
	}
	return out
}

func FuzzDecodeFast(f *testing.F) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, c := range fastCases {
		b, _ := json.Marshal(c.random(r))
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, c := range fastCases {
			checkDecode(t, c, b)
		}
	})
}

// TestFastPathTaken checks that the answers the emulator gives are read
// and written by hand, not handed on to encoding/json.
func TestFastPathTaken(t *testing.T) {
	now := time.Date(2026, 12, 3, 9, 0, 0, 123456789, time.UTC)
	u := &User{UserID: "7f1c5e8a-0b4e-4c1f-9a55-3e2d1c0b9a87", Username: "user-1", Status: UserNew, CreatedAt: now, UpdatedAt: now,
		Authenticators: []Authenticator{{AuthenticatorID: "a", Name: "authphone", Type: "cli", AuthenticatorType: "app", State: "active",
			EnrolledAt: now, UpdatedAt: now, CreatedAt: now, UAF: &AuthenticatorUAF{DeviceRef: "d"}}},
		Enrollment: &Enrollment{TransactionID: "t", StatusToken: "st.t.mac",
			QRCode: &QRCode{Type: "image/png", Size: 256, URL: "http://cloud.invalid/qr/x.png"}, AppLinkURI: "http://cloud.invalid/open?dispatchTokenResponse=eyJ"}}
	a := &ApprovalResponse{TransactionID: "t", StatusToken: "st.t.mac", UserID: "u", Username: "user-1", CreatedAt: now, Number: 42}
	s := &StatusResponse{TransactionID: "t", Status: StatusSucceeded, UserID: "u", Username: "user-1", Token: "a.b.c", CreatedAt: now, LastUpdatedAt: now}
	buf := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(100, func() { _, _ = AppendUser(buf[:0], u) }); n != 0 {
		t.Errorf("AppendUser: %v allocations: it gave up", n)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = AppendApprovalResponse(buf[:0], a) }); n != 0 {
		t.Errorf("AppendApprovalResponse: %v allocations: it gave up", n)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = AppendStatusResponse(buf[:0], s) }); n != 0 {
		t.Errorf("AppendStatusResponse: %v allocations: it gave up", n)
	}
	b, _ := json.Marshal(u)
	if !fastDecodeUser(b, new(User)) {
		t.Error("fastDecodeUser gave up")
	}
	b, _ = json.Marshal(a)
	if !fastDecodeApprovalResponse(b, new(ApprovalResponse)) {
		t.Error("fastDecodeApprovalResponse gave up")
	}
	b, _ = json.Marshal(s)
	if !fastDecodeStatusResponse(append(b, '\n'), new(StatusResponse)) {
		t.Error("fastDecodeStatusResponse gave up")
	}
}

func randomRequest(r *rand.Rand) any {
	switch r.IntN(3) {
	case 0:
		return EnrollRequest{Username: fastString(r), UserID: fastString(r), Channel: fastString(r)}
	case 1:
		return ApprovalRequest{Username: fastString(r), UserID: fastString(r), Channel: fastString(r), Message: fastString(r),
			NotificationMessage: fastString(r), AuthenticatorID: fastString(r), Prompt: r.IntN(2) == 0, NumberMatching: r.IntN(2) == 0}
	}
	return StatusRequest{StatusToken: fastString(r)}
}

func TestFastRequestsMatchEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	check := func(v any, b []byte) {
		t.Helper()
		want := reflect.New(reflect.TypeOf(v)).Interface()
		got := reflect.New(reflect.TypeOf(v)).Interface()
		werr := json.Unmarshal(b, want)
		gerr := Unmarshal(b, got)
		if (werr != nil) != (gerr != nil) || !reflect.DeepEqual(want, got) {
			t.Fatalf("%T %q:\n got %+v %v\nwant %+v %v", v, b, got, gerr, want, werr)
		}
	}
	for i := range 30000 {
		v := randomRequest(r)
		want, _ := json.Marshal(v)
		got, err := Marshal(v)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%d %T:\n got %s %v\nwant %s", i, v, got, err, want)
		}
		check(v, want)
		for range 4 {
			check(v, mutate(r, want))
		}
	}
	for _, c := range []struct {
		v any
		n int
	}{{EnrollRequest{}, 3}, {ApprovalRequest{}, 8}, {StatusRequest{}, 1}} {
		if got := reflect.TypeOf(c.v).NumField(); got != c.n {
			t.Errorf("%T has %d fields, its hand-written JSON %d: write the new ones (fastjson.go)", c.v, got, c.n)
		}
		b, _ := json.Marshal(c.v)
		if !fastDecodeRequest(b, reflect.New(reflect.TypeOf(c.v)).Interface()) {
			t.Errorf("%T was not read by hand", c.v)
		}
	}
	// A filled value goes to encoding/json, which keeps what the JSON does not name.
	got, want := ApprovalRequest{Message: "kept"}, ApprovalRequest{Message: "kept"}
	_ = Unmarshal([]byte(`{"username":"a"}`), &got)
	_ = json.Unmarshal([]byte(`{"username":"a"}`), &want)
	if got != want {
		t.Errorf("%+v, want %+v", got, want)
	}
}
