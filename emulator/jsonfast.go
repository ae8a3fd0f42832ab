package emulator

import (
	"encoding/json"
	"net/http"
	"sync"

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
	default:
		return deviceapi.AppendJSON(b, v)
	}
	return b, err == nil
}

// encodeJSON is json.NewEncoder(w).Encode(v).
func encodeJSON(w http.ResponseWriter, v any) {
	if !writeFast(w, v) {
		_ = json.NewEncoder(w).Encode(v)
	}
}
