package emulator

import (
	"encoding/json"
	"net/http"
	"sync"

	"github.com/authphone/authphone/internal/jsonfast"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/deviceapi"
)

// The answers of an enrolment and an approval are written by hand:
// exactly the bytes json.Encoder writes (tested against it); any other
// value, or one the hand code does not take, goes to encoding/json.

// answerBufs holds the buffers the hand-written answers are built in.
var answerBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// writeFast writes v as json.NewEncoder(w).Encode(v) would, if it is one
// of the hand-written answers; it reports whether it was.
func writeFast(w http.ResponseWriter, v any) bool {
	bp := answerBufs.Get().(*[]byte)
	b, ok := appendAnswer((*bp)[:0], v)
	if ok {
		_, _ = w.Write(append(b, '\n'))
	}
	if cap(b) <= 64<<10 {
		*bp = b[:0]
		answerBufs.Put(bp)
	}
	return ok
}

// appendAnswer appends json.Marshal(v) for the answers written by hand;
// false for any other value, or an error (encoding/json then has its say).
func appendAnswer(b []byte, v any) ([]byte, bool) {
	var err error
	switch v := v.(type) {
	case cloudapi.User:
		b, err = cloudapi.AppendUser(b, &v)
	case cloudapi.ApprovalResponse:
		b, err = cloudapi.AppendApprovalResponse(b, &v)
	case cloudapi.StatusResponse:
		b, err = cloudapi.AppendStatusResponse(b, &v)
	case deviceapi.RedeemResponse:
		return appendRedeemResponse(b, &v)
	case deviceapi.StatusBody:
		return appendStatusBody(b, &v)
	default:
		return b, false
	}
	return b, err == nil
}

func appendRedeemResponse(b []byte, r *deviceapi.RedeemResponse) ([]byte, bool) {
	w := jsonfast.NewWriter(b)
	w.Raw(`{"statusCode":`)
	w.Int(int64(r.StatusCode))
	w.Raw(`,"uafRequest":`)
	w.String(r.UAFRequest)
	w.Raw(`,"op":`)
	w.String(r.Op)
	w.Raw(`,"lifetimeMillis":`)
	w.Int(r.LifetimeMillis)
	if len(r.NumberChoices) > 0 {
		w.Raw(`,"numberChoices":[`)
		for i, n := range r.NumberChoices {
			if i > 0 {
				w.Byte(',')
			}
			w.Int(int64(n))
		}
		w.Byte(']')
	}
	w.Byte('}')
	return w.B, w.OK
}

func appendStatusBody(b []byte, s *deviceapi.StatusBody) ([]byte, bool) {
	w := jsonfast.NewWriter(b)
	w.Raw(`{"statusCode":`)
	w.Int(int64(s.StatusCode))
	if s.Description != "" {
		w.Raw(`,"description":`)
		w.String(s.Description)
	}
	if s.UserID != "" {
		w.Raw(`,"userId":`)
		w.String(s.UserID)
	}
	if s.AuthenticatorID != "" {
		w.Raw(`,"authenticatorId":`)
		w.String(s.AuthenticatorID)
	}
	w.Byte('}')
	return w.B, w.OK
}

// encodeJSON is json.NewEncoder(w).Encode(v).
func encodeJSON(w http.ResponseWriter, v any) {
	if !writeFast(w, v) {
		_ = json.NewEncoder(w).Encode(v)
	}
}

// decodeUAFBody is json.Unmarshal(b, body) for a zero *body: the UAF
// response (a JSON message inside a JSON string) is read by hand when the
// body is just that; a context goes to encoding/json.
func decodeUAFBody(b []byte, body *deviceapi.UAFBody) error {
	if fastUAFBody(b, body) {
		return nil
	}
	*body = deviceapi.UAFBody{}
	return json.Unmarshal(b, body)
}

// fastUAFBody reads a UAF body by hand, or reports false.
func fastUAFBody(b []byte, body *deviceapi.UAFBody) bool {
	r := jsonfast.NewReader(b)
	r.Object(func(k []byte) int {
		if string(k) == "uafResponse" {
			r.Text(&body.UAFResponse)
			return 0
		}
		return -1
	})
	r.End()
	return r.OK
}
