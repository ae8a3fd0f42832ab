package deviceapi

import (
	"encoding/json"

	"github.com/authphone/authphone/internal/jsonfast"
)

// The bodies of a redeem, a registration, an authentication and a push
// target, on both sides, written and read by hand: exactly json.Marshal's
// bytes and json.Unmarshal's values (anything the hand code does not take
// goes to encoding/json; tested against it).

// Marshal is json.Marshal(v).
func Marshal(v any) ([]byte, error) {
	if b, ok := AppendJSON(make([]byte, 0, sizeHint(v)), v); ok {
		return b, nil
	}
	return json.Marshal(v)
}

// sizeHint is about the size of v's JSON (UAF messages inside are
// escaped: about one byte in eight is a quote), so that Marshal writes it
// in one buffer.
func sizeHint(v any) int {
	switch v := v.(type) {
	case UAFBody:
		n := len(v.UAFResponse) + len(v.UAFResponse)/4 + 32
		if t := v.DispatchTarget; t != nil {
			n += len(t.SignatureKey) + len(t.Name) + len(t.DeviceID) + len(t.Dispatcher) + len(t.Username) + 100
		}
		return n
	case InboxesRequest:
		n := len(v.DeviceKey) + 40
		for _, k := range v.KeyIDs {
			n += len(k) + 3
		}
		return n
	case DispatchTarget:
		return len(v.SignatureKey) + len(v.Name) + len(v.DeviceID) + len(v.Dispatcher) + len(v.Username) + 80
	}
	return 128
}

// AppendJSON appends json.Marshal(v) to b for the bodies written by hand;
// false for any other value, or one the hand code does not take.
func AppendJSON(b []byte, v any) ([]byte, bool) {
	w := jsonfast.NewWriter(b)
	switch v := v.(type) {
	case RedeemRequest:
		w.Raw(`{"token":`)
		w.String(v.Token)
		w.Byte('}')
	case UAFBody:
		if len(v.Context) > 0 {
			return b, false
		}
		w.Raw(`{"uafResponse":`)
		w.String(v.UAFResponse)
		if v.DispatchTarget != nil {
			w.Raw(`,"dispatchTarget":`)
			if !appendDispatchTarget(&w, v.DispatchTarget) {
				return b, false
			}
		}
		w.Byte('}')
	case DispatchTarget:
		if !appendDispatchTarget(&w, &v) {
			return b, false
		}
	case RedeemResponse:
		appendRedeemResponse(&w, &v)
	case InboxesRequest:
		w.Raw(`{"deviceKey":`)
		if v.DeviceKey == nil {
			w.Raw("null")
		} else if plainRaw(v.DeviceKey) {
			w.B = append(w.B, v.DeviceKey...)
		} else {
			return b, false
		}
		w.Raw(`,"keyIds":`)
		appendStrings(&w, v.KeyIDs)
		if v.UAF {
			w.Raw(`,"uaf":true`)
		}
		w.Byte('}')
	case InboxesResponse:
		w.Raw(`{"messages":`)
		if v.Messages == nil {
			w.Raw("null")
		} else {
			w.Byte('[')
			for i := range v.Messages {
				if i > 0 {
					w.Byte(',')
				}
				if !appendInboxMessage(&w, &v.Messages[i]) {
					return b, false
				}
			}
			w.Byte(']')
		}
		if len(v.Unknown) > 0 {
			w.Raw(`,"unknown":`)
			appendStrings(&w, v.Unknown)
		}
		w.Byte('}')
	case StatusBody:
		w.Raw(`{"statusCode":`)
		w.Int(int64(v.StatusCode))
		if v.Description != "" {
			w.Raw(`,"description":`)
			w.String(v.Description)
		}
		if v.UserID != "" {
			w.Raw(`,"userId":`)
			w.String(v.UserID)
		}
		if v.AuthenticatorID != "" {
			w.Raw(`,"authenticatorId":`)
			w.String(v.AuthenticatorID)
		}
		if v.DispatchTarget {
			w.Raw(`,"dispatchTarget":true`)
		}
		w.Byte('}')
	case DispatchTargetResponse:
		w.Raw(`{"id":`)
		w.String(v.ID)
		w.Byte('}')
	default:
		return b, false
	}
	return w.B, w.OK
}

// appendDispatchTarget writes v; false for a signature key json.Marshal
// would write otherwise.
func appendDispatchTarget(w *jsonfast.Writer, v *DispatchTarget) bool {
	w.Raw(`{"name":`)
	w.String(v.Name)
	w.Raw(`,"deviceId":`)
	w.String(v.DeviceID)
	w.Raw(`,"dispatcher":`)
	w.String(v.Dispatcher)
	if v.Username != "" {
		w.Raw(`,"username":`)
		w.String(v.Username)
	}
	w.Raw(`,"signatureKey":`)
	if v.SignatureKey == nil {
		w.Raw("null")
	} else if plainRaw(v.SignatureKey) {
		w.B = append(w.B, v.SignatureKey...)
	} else {
		return false
	}
	w.Byte('}')
	return true
}

func appendRedeemResponse(w *jsonfast.Writer, v *RedeemResponse) {
	w.Raw(`{"statusCode":`)
	w.Int(int64(v.StatusCode))
	w.Raw(`,"uafRequest":`)
	w.String(v.UAFRequest)
	w.Raw(`,"op":`)
	w.String(v.Op)
	w.Raw(`,"lifetimeMillis":`)
	w.Int(v.LifetimeMillis)
	if len(v.NumberChoices) > 0 {
		w.Raw(`,"numberChoices":`)
		appendInts(w, v.NumberChoices)
	}
	w.Byte('}')
}

func appendInts(w *jsonfast.Writer, ns []int) {
	w.Byte('[')
	for i, n := range ns {
		if i > 0 {
			w.Byte(',')
		}
		w.Int(int64(n))
	}
	w.Byte(']')
}

// appendStrings writes ss, null when nil.
func appendStrings(w *jsonfast.Writer, ss []string) {
	if ss == nil {
		w.Raw("null")
		return
	}
	w.Byte('[')
	for i, s := range ss {
		if i > 0 {
			w.Byte(',')
		}
		w.String(s)
	}
	w.Byte(']')
}

// appendInboxMessage writes m; false for a message with a login request
// (left to encoding/json).
func appendInboxMessage(w *jsonfast.Writer, m *InboxMessage) bool {
	if m.LoginRequest != nil {
		return false
	}
	w.Raw(`{"id":`)
	w.String(m.ID)
	w.Raw(`,"createdAt":`)
	w.Time(m.CreatedAt)
	w.Raw(`,"expiresAt":`)
	w.Time(m.ExpiresAt)
	w.Raw(`,"payload":`)
	w.String(m.Payload)
	if m.NotificationMessage != "" {
		w.Raw(`,"notificationMessage":`)
		w.String(m.NotificationMessage)
	}
	if m.Kind != "" {
		w.Raw(`,"kind":`)
		w.String(string(m.Kind))
	}
	if m.Message != "" {
		w.Raw(`,"message":`)
		w.String(m.Message)
	}
	if m.TransactionID != "" {
		w.Raw(`,"transactionId":`)
		w.String(m.TransactionID)
	}
	if len(m.NumberChoices) > 0 {
		w.Raw(`,"numberChoices":`)
		appendInts(w, m.NumberChoices)
	}
	if m.KeyID != "" {
		w.Raw(`,"keyId":`)
		w.String(m.KeyID)
	}
	if m.UAF != nil {
		w.Raw(`,"uaf":`)
		appendRedeemResponse(w, m.UAF)
	}
	w.Byte('}')
	return true
}

// plainRaw reports whether json.Marshal writes raw as it is: valid JSON,
// compact, printable ASCII without the characters it escapes for HTML.
func plainRaw(raw json.RawMessage) bool {
	inString := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c < 0x20 || c >= 0x7f || c == '<' || c == '>' || c == '&':
			return false
		case c == '\\':
			return false // an escape: encoding/json may write it otherwise
		case c == '"':
			inString = !inString
		case !inString && c == ' ':
			return false
		}
	}
	return json.Valid(raw)
}

// Unmarshal is json.Unmarshal(b, v); the bodies AppendJSON writes are read
// by hand into a zero value.
func Unmarshal(b []byte, v any) error {
	if decodeFast(b, v) {
		return nil
	}
	return json.Unmarshal(b, v)
}

// decodeFast reads b by hand into v if v is a zero body of one of the
// types AppendJSON writes; false (v unchanged) otherwise.
func decodeFast(b []byte, v any) bool {
	switch v := v.(type) {
	case *RedeemRequest:
		if *v != (RedeemRequest{}) {
			return false
		}
		var out RedeemRequest
		r := jsonfast.NewReader(b)
		r.Object(func(k []byte) int {
			if string(k) == "token" {
				r.String(&out.Token)
				return 0
			}
			return -1
		})
		r.End()
		if r.OK {
			*v = out
		}
		return r.OK
	case *UAFBody:
		if v.UAFResponse != "" || v.Context != nil || v.DispatchTarget != nil {
			return false
		}
		var out UAFBody
		r := jsonfast.NewReader(b)
		r.Object(func(k []byte) int {
			switch string(k) {
			case "uafResponse":
				r.Text(&out.UAFResponse)
				return 0
			case "dispatchTarget":
				out.DispatchTarget = new(DispatchTarget)
				readDispatchTarget(&r, out.DispatchTarget) // a null fails the read: encoding/json's rules
				return 1
			}
			return -1
		})
		r.End()
		if r.OK {
			*v = out
		}
		return r.OK
	case *DispatchTarget:
		if v.Name != "" || v.DeviceID != "" || v.Dispatcher != "" || v.Username != "" || v.SignatureKey != nil {
			return false
		}
		var out DispatchTarget
		r := jsonfast.NewReader(b)
		readDispatchTarget(&r, &out)
		r.End()
		if r.OK {
			*v = out
		}
		return r.OK
	case *RedeemResponse:
		if v.StatusCode != 0 || v.UAFRequest != "" || v.Op != "" || v.LifetimeMillis != 0 || v.NumberChoices != nil {
			return false
		}
		var out RedeemResponse
		r := jsonfast.NewReader(b)
		readRedeemResponse(&r, &out)
		r.End()
		if r.OK {
			*v = out
		}
		return r.OK
	case *InboxesRequest:
		if v.DeviceKey != nil || v.KeyIDs != nil || v.UAF {
			return false
		}
		var out InboxesRequest
		r := jsonfast.NewReader(b)
		r.Object(func(k []byte) int {
			switch string(k) {
			case "deviceKey":
				raw := r.Raw()
				if string(raw) == "null" {
					r.Fail() // encoding/json leaves a RawMessage as "null": its own rules
				}
				out.DeviceKey = append(json.RawMessage(nil), raw...)
				return 0
			case "keyIds":
				out.KeyIDs = readStrings(&r)
				return 1
			case "uaf":
				r.Bool(&out.UAF)
				return 2
			}
			return -1
		})
		r.End()
		if r.OK {
			*v = out
		}
		return r.OK
	case *InboxesResponse:
		if v.Messages != nil || v.Unknown != nil {
			return false
		}
		var out InboxesResponse
		r := jsonfast.NewReader(b)
		r.Object(func(k []byte) int {
			switch string(k) {
			case "messages":
				out.Messages = []InboxMessage{}
				r.Array(func() {
					out.Messages = append(out.Messages, InboxMessage{})
					readInboxMessage(&r, &out.Messages[len(out.Messages)-1])
				})
				return 0
			case "unknown":
				out.Unknown = readStrings(&r)
				return 1
			}
			return -1
		})
		r.End()
		if r.OK {
			*v = out
		}
		return r.OK
	case *StatusBody:
		if *v != (StatusBody{}) {
			return false
		}
		var out StatusBody
		r := jsonfast.NewReader(b)
		r.Object(func(k []byte) int {
			switch string(k) {
			case "statusCode":
				readInt(&r, &out.StatusCode)
				return 0
			case "description":
				r.Text(&out.Description)
				return 1
			case "userId":
				r.String(&out.UserID)
				return 2
			case "authenticatorId":
				r.String(&out.AuthenticatorID)
				return 3
			case "dispatchTarget":
				r.Bool(&out.DispatchTarget)
				return 4
			}
			return -1
		})
		r.End()
		if r.OK {
			*v = out
		}
		return r.OK
	case *DispatchTargetResponse:
		if *v != (DispatchTargetResponse{}) {
			return false
		}
		var out DispatchTargetResponse
		r := jsonfast.NewReader(b)
		r.Object(func(k []byte) int {
			if string(k) == "id" {
				r.String(&out.ID)
				return 0
			}
			return -1
		})
		r.End()
		if r.OK {
			*v = out
		}
		return r.OK
	}
	return false
}

// readDispatchTarget reads an object into a zero *out.
func readDispatchTarget(r *jsonfast.Reader, out *DispatchTarget) {
	r.Object(func(k []byte) int {
		switch string(k) {
		case "name":
			r.String(&out.Name)
			return 0
		case "deviceId":
			r.String(&out.DeviceID)
			return 1
		case "dispatcher":
			r.String(&out.Dispatcher)
			return 2
		case "username":
			r.String(&out.Username)
			return 3
		case "signatureKey":
			raw := r.Raw()
			if string(raw) == "null" {
				r.Fail() // encoding/json leaves a RawMessage as "null": its own rules
			}
			out.SignatureKey = append(json.RawMessage(nil), raw...)
			return 4
		}
		return -1
	})
}

// readRedeemResponse reads an object into a zero *out.
func readRedeemResponse(r *jsonfast.Reader, out *RedeemResponse) {
	r.Object(func(k []byte) int {
		switch string(k) {
		case "statusCode":
			readInt(r, &out.StatusCode)
			return 0
		case "uafRequest":
			r.Text(&out.UAFRequest)
			return 1
		case "op":
			r.String(&out.Op)
			return 2
		case "lifetimeMillis":
			r.Int(&out.LifetimeMillis)
			return 3
		case "numberChoices":
			out.NumberChoices = readInts(r)
			return 4
		}
		return -1
	})
}

// readInts reads an array of ints (empty, not nil, for []).
func readInts(r *jsonfast.Reader) []int {
	out := []int{}
	r.Array(func() {
		var n int
		readInt(r, &n)
		out = append(out, n)
	})
	return out
}

// readStrings reads an array of strings (empty, not nil, for []; null
// fails the read: encoding/json's rules).
func readStrings(r *jsonfast.Reader) []string {
	out := []string{}
	r.Array(func() {
		var s string
		r.String(&s)
		out = append(out, s)
	})
	return out
}

// readInboxMessage reads an object into a zero *m (a login request, or a
// null, fails the read).
func readInboxMessage(r *jsonfast.Reader, m *InboxMessage) {
	r.Object(func(k []byte) int {
		switch string(k) {
		case "id":
			r.String(&m.ID)
			return 0
		case "createdAt":
			r.Time(&m.CreatedAt)
			return 1
		case "expiresAt":
			r.Time(&m.ExpiresAt)
			return 2
		case "payload":
			r.Text(&m.Payload)
			return 3
		case "notificationMessage":
			r.Text(&m.NotificationMessage)
			return 4
		case "kind":
			var s string
			r.Text(&s)
			m.Kind = InboxKind(s)
			return 5
		case "message":
			r.Text(&m.Message)
			return 6
		case "transactionId":
			r.String(&m.TransactionID)
			return 7
		case "numberChoices":
			m.NumberChoices = readInts(r)
			return 8
		case "keyId":
			r.String(&m.KeyID)
			return 9
		case "uaf":
			m.UAF = new(RedeemResponse)
			readRedeemResponse(r, m.UAF)
			return 10
		}
		return -1
	})
}

func readInt(r *jsonfast.Reader, n *int) {
	var v int64
	r.Int(&v)
	if int64(int(v)) != v {
		r.Fail()
	}
	*n = int(v)
}
