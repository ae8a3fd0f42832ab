package cloudapi

import (
	"encoding/json"

	"github.com/authphone/authphone/internal/jsonfast"
)

// The answers of enroll, approval and status, the backend API's hot path,
// written and read by hand: exactly json.Marshal's bytes and
// json.Unmarshal's values (anything the hand code does not take goes to
// encoding/json; tested against it).

// AppendUser appends json.Marshal(u) to b.
func AppendUser(b []byte, u *User) ([]byte, error) {
	w := jsonfast.NewWriter(b)
	w.Raw(`{"userId":`)
	w.String(u.UserID)
	if u.Username != "" {
		w.Raw(`,"username":`)
		w.String(u.Username)
	}
	w.Raw(`,"status":`)
	w.String(u.Status)
	w.Raw(`,"createdAt":`)
	w.Time(u.CreatedAt)
	w.Raw(`,"updatedAt":`)
	w.Time(u.UpdatedAt)
	if !u.LastLoginDateSuccess.IsZero() {
		w.Raw(`,"lastLoginDateSuccess":`)
		w.Time(u.LastLoginDateSuccess)
	}
	if !u.LastLoginDateFailure.IsZero() {
		w.Raw(`,"lastLoginDateFailure":`)
		w.Time(u.LastLoginDateFailure)
	}
	if len(u.ExceededRateLimits) > 0 {
		w.Raw(`,"exceededRateLimits":[`)
		for i := range u.ExceededRateLimits {
			if i > 0 {
				w.Byte(',')
			}
			l := &u.ExceededRateLimits[i]
			w.Raw(`{"name":`)
			w.String(l.Name)
			w.Raw(`,"limit":`)
			w.Int(int64(l.Limit))
			w.Raw(`,"period":`)
			w.String(l.Period)
			w.Raw(`,"retryAt":`)
			w.Time(l.RetryAt)
			w.Byte('}')
		}
		w.Byte(']')
	}
	w.Raw(`,"authenticators":`)
	if u.Authenticators == nil {
		w.Raw("null")
	} else {
		w.Byte('[')
		for i := range u.Authenticators {
			if i > 0 {
				w.Byte(',')
			}
			appendAuthenticator(&w, &u.Authenticators[i])
		}
		w.Byte(']')
	}
	if e := u.Enrollment; e != nil {
		w.Raw(`,"enrollment":{"transactionId":`)
		w.String(e.TransactionID)
		w.Raw(`,"statusToken":`)
		w.String(e.StatusToken)
		if e.QRCode != nil {
			w.Raw(`,"qrCode":`)
			appendQRCode(&w, e.QRCode)
		}
		if e.AppLinkURI != "" {
			w.Raw(`,"appLinkUri":`)
			w.String(e.AppLinkURI)
		}
		w.Byte('}')
	}
	w.Byte('}')
	if !w.OK {
		return marshalAppend(b, *u) // a copy: u does not escape
	}
	return w.B, nil
}

func appendAuthenticator(w *jsonfast.Writer, a *Authenticator) {
	w.Raw(`{"authenticatorId":`)
	w.String(a.AuthenticatorID)
	w.Raw(`,"name":`)
	w.String(a.Name)
	w.Raw(`,"type":`)
	w.String(a.Type)
	w.Raw(`,"authenticatorType":`)
	w.String(a.AuthenticatorType)
	w.Raw(`,"state":`)
	w.String(a.State)
	w.Raw(`,"enrolledAt":`)
	w.Time(a.EnrolledAt)
	w.Raw(`,"updatedAt":`)
	w.Time(a.UpdatedAt)
	w.Raw(`,"createdAt":`)
	w.Time(a.CreatedAt)
	if u := a.UAF; u != nil {
		w.Raw(`,"uaf":{`)
		comma := false
		if u.UserAgent != "" {
			w.Raw(`"userAgent":`)
			w.String(u.UserAgent)
			comma = true
		}
		if u.DeviceRef != "" {
			if comma {
				w.Byte(',')
			}
			w.Raw(`"deviceRef":`)
			w.String(u.DeviceRef)
			comma = true
		}
		if comma {
			w.Byte(',')
		}
		w.Raw(`"userDisabledPushNotification":`)
		w.Bool(u.UserDisabledPushNotification)
		w.Byte('}')
	}
	w.Byte('}')
}

func appendQRCode(w *jsonfast.Writer, q *QRCode) {
	w.Raw(`{"type":`)
	w.String(q.Type)
	w.Raw(`,"size":`)
	w.Int(int64(q.Size))
	if q.DataURI != "" {
		w.Raw(`,"dataUri":`)
		w.String(q.DataURI)
	}
	if q.URL != "" {
		w.Raw(`,"url":`)
		w.String(q.URL)
	}
	w.Byte('}')
}

// AppendApprovalResponse appends json.Marshal(a) to b.
func AppendApprovalResponse(b []byte, a *ApprovalResponse) ([]byte, error) {
	w := jsonfast.NewWriter(b)
	w.Raw(`{"transactionId":`)
	w.String(a.TransactionID)
	w.Raw(`,"statusToken":`)
	w.String(a.StatusToken)
	w.Raw(`,"userId":`)
	w.String(a.UserID)
	if a.Username != "" {
		w.Raw(`,"username":`)
		w.String(a.Username)
	}
	w.Raw(`,"createdAt":`)
	w.Time(a.CreatedAt)
	if a.QRCode != nil {
		w.Raw(`,"qrCode":`)
		appendQRCode(&w, a.QRCode)
	}
	if a.AppLinkURI != "" {
		w.Raw(`,"appLinkUri":`)
		w.String(a.AppLinkURI)
	}
	if a.Number != 0 {
		w.Raw(`,"number":`)
		w.Int(int64(a.Number))
	}
	w.Byte('}')
	if !w.OK {
		return marshalAppend(b, *a) // a copy: a does not escape
	}
	return w.B, nil
}

// AppendStatusResponse appends json.Marshal(s) to b.
func AppendStatusResponse(b []byte, s *StatusResponse) ([]byte, error) {
	w := jsonfast.NewWriter(b)
	w.Byte('{')
	if s.TransactionID != "" {
		w.Raw(`"transactionId":`)
		w.String(s.TransactionID)
		w.Byte(',')
	}
	w.Raw(`"status":`)
	w.String(s.Status)
	if s.UserID != "" {
		w.Raw(`,"userId":`)
		w.String(s.UserID)
	}
	if s.Username != "" {
		w.Raw(`,"username":`)
		w.String(s.Username)
	}
	if s.Token != "" {
		w.Raw(`,"token":`)
		w.String(s.Token)
	}
	if !s.CreatedAt.IsZero() {
		w.Raw(`,"createdAt":`)
		w.Time(s.CreatedAt)
	}
	if !s.LastUpdatedAt.IsZero() {
		w.Raw(`,"lastUpdatedAt":`)
		w.Time(s.LastUpdatedAt)
	}
	if s.Reason != "" {
		w.Raw(`,"reason":`)
		w.String(s.Reason)
	}
	w.Byte('}')
	if !w.OK {
		return marshalAppend(b, *s) // a copy: s does not escape
	}
	return w.B, nil
}

func marshalAppend(b []byte, v any) ([]byte, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return b, err
	}
	return append(b, j...), nil
}

// DecodeUser is json.Unmarshal(b, u) for a zero *u.
func DecodeUser(b []byte, u *User) error {
	if fastDecodeUser(b, u) {
		return nil
	}
	*u = User{}
	return json.Unmarshal(b, u)
}

// fastDecodeUser reads b by hand, or reports false.
func fastDecodeUser(b []byte, u *User) bool {
	r := jsonfast.NewReader(b)
	r.Object(func(k []byte) int {
		switch string(k) {
		case "userId":
			r.String(&u.UserID)
			return 0
		case "username":
			r.String(&u.Username)
			return 1
		case "status":
			r.String(&u.Status)
			return 2
		case "createdAt":
			r.Time(&u.CreatedAt)
			return 3
		case "updatedAt":
			r.Time(&u.UpdatedAt)
			return 4
		case "lastLoginDateSuccess":
			r.Time(&u.LastLoginDateSuccess)
			return 5
		case "lastLoginDateFailure":
			r.Time(&u.LastLoginDateFailure)
			return 6
		case "exceededRateLimits":
			u.ExceededRateLimits = []RateLimit{}
			r.Array(func() {
				var l RateLimit
				r.Object(func(k []byte) int {
					switch string(k) {
					case "name":
						r.String(&l.Name)
						return 0
					case "limit":
						readInt(&r, &l.Limit)
						return 1
					case "period":
						r.String(&l.Period)
						return 2
					case "retryAt":
						r.Time(&l.RetryAt)
						return 3
					}
					return -1
				})
				u.ExceededRateLimits = append(u.ExceededRateLimits, l)
			})
			return 7
		case "authenticators":
			u.Authenticators = []Authenticator{}
			r.Array(func() {
				var a Authenticator
				readAuthenticator(&r, &a)
				u.Authenticators = append(u.Authenticators, a)
			})
			return 8
		case "enrollment":
			e := new(Enrollment)
			u.Enrollment = e
			r.Object(func(k []byte) int {
				switch string(k) {
				case "transactionId":
					r.String(&e.TransactionID)
					return 0
				case "statusToken":
					r.String(&e.StatusToken)
					return 1
				case "qrCode":
					e.QRCode = new(QRCode)
					readQRCode(&r, e.QRCode)
					return 2
				case "appLinkUri":
					r.String(&e.AppLinkURI)
					return 3
				}
				return -1
			})
			return 9
		}
		return -1
	})
	r.End()
	return r.OK
}

func readAuthenticator(r *jsonfast.Reader, a *Authenticator) {
	r.Object(func(k []byte) int {
		switch string(k) {
		case "authenticatorId":
			r.String(&a.AuthenticatorID)
			return 0
		case "name":
			r.String(&a.Name)
			return 1
		case "type":
			r.String(&a.Type)
			return 2
		case "authenticatorType":
			r.String(&a.AuthenticatorType)
			return 3
		case "state":
			r.String(&a.State)
			return 4
		case "enrolledAt":
			r.Time(&a.EnrolledAt)
			return 5
		case "updatedAt":
			r.Time(&a.UpdatedAt)
			return 6
		case "createdAt":
			r.Time(&a.CreatedAt)
			return 7
		case "uaf":
			u := new(AuthenticatorUAF)
			a.UAF = u
			r.Object(func(k []byte) int {
				switch string(k) {
				case "userAgent":
					r.String(&u.UserAgent)
					return 0
				case "deviceRef":
					r.String(&u.DeviceRef)
					return 1
				case "userDisabledPushNotification":
					r.Bool(&u.UserDisabledPushNotification)
					return 2
				}
				return -1
			})
			return 8
		}
		return -1
	})
}

func readQRCode(r *jsonfast.Reader, q *QRCode) {
	r.Object(func(k []byte) int {
		switch string(k) {
		case "type":
			r.String(&q.Type)
			return 0
		case "size":
			readInt(r, &q.Size)
			return 1
		case "dataUri":
			r.String(&q.DataURI)
			return 2
		case "url":
			r.String(&q.URL)
			return 3
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

// DecodeApprovalResponse is json.Unmarshal(b, a) for a zero *a.
func DecodeApprovalResponse(b []byte, a *ApprovalResponse) error {
	if fastDecodeApprovalResponse(b, a) {
		return nil
	}
	*a = ApprovalResponse{}
	return json.Unmarshal(b, a)
}

// fastDecodeApprovalResponse reads b by hand, or reports false.
func fastDecodeApprovalResponse(b []byte, a *ApprovalResponse) bool {
	r := jsonfast.NewReader(b)
	r.Object(func(k []byte) int {
		switch string(k) {
		case "transactionId":
			r.String(&a.TransactionID)
			return 0
		case "statusToken":
			r.String(&a.StatusToken)
			return 1
		case "userId":
			r.String(&a.UserID)
			return 2
		case "username":
			r.String(&a.Username)
			return 3
		case "createdAt":
			r.Time(&a.CreatedAt)
			return 4
		case "qrCode":
			a.QRCode = new(QRCode)
			readQRCode(&r, a.QRCode)
			return 5
		case "appLinkUri":
			r.String(&a.AppLinkURI)
			return 6
		case "number":
			readInt(&r, &a.Number)
			return 7
		}
		return -1
	})
	r.End()
	return r.OK
}

// DecodeStatusResponse is json.Unmarshal(b, s) for a zero *s.
func DecodeStatusResponse(b []byte, s *StatusResponse) error {
	if fastDecodeStatusResponse(b, s) {
		return nil
	}
	*s = StatusResponse{}
	return json.Unmarshal(b, s)
}

// fastDecodeStatusResponse reads b by hand, or reports false.
func fastDecodeStatusResponse(b []byte, s *StatusResponse) bool {
	r := jsonfast.NewReader(b)
	r.Object(func(k []byte) int {
		switch string(k) {
		case "transactionId":
			r.String(&s.TransactionID)
			return 0
		case "status":
			r.String(&s.Status)
			return 1
		case "userId":
			r.String(&s.UserID)
			return 2
		case "username":
			r.String(&s.Username)
			return 3
		case "token":
			r.String(&s.Token)
			return 4
		case "createdAt":
			r.Time(&s.CreatedAt)
			return 5
		case "lastUpdatedAt":
			r.Time(&s.LastUpdatedAt)
			return 6
		case "reason":
			r.String(&s.Reason)
			return 7
		}
		return -1
	})
	r.End()
	return r.OK
}

// Marshal is json.Marshal(v); the bodies of enroll, approval and status
// are written by hand.
func Marshal(v any) ([]byte, error) {
	w := jsonfast.NewWriter(nil)
	switch v := v.(type) {
	case EnrollRequest:
		w.Byte('{')
		fields(&w, "username", v.Username, "userId", v.UserID, "channel", v.Channel)
		w.Byte('}')
	case ApprovalRequest:
		w.Byte('{')
		c := fields(&w, "username", v.Username, "userId", v.UserID, "channel", v.Channel, "message", v.Message,
			"notificationMessage", v.NotificationMessage, "authenticatorId", v.AuthenticatorID)
		for _, f := range []struct {
			k string
			b bool
		}{{"prompt", v.Prompt}, {"numberMatching", v.NumberMatching}} {
			if f.b {
				if c {
					w.Byte(',')
				}
				w.Byte('"')
				w.Raw(f.k)
				w.Raw(`":true`)
				c = true
			}
		}
		w.Byte('}')
	case StatusRequest:
		w.Raw(`{"statusToken":`)
		w.String(v.StatusToken)
		w.Byte('}')
	default:
		return json.Marshal(v)
	}
	if !w.OK {
		return json.Marshal(v)
	}
	return w.B, nil
}

// fields writes the non-empty of key, value pairs (omitempty strings) and
// reports whether it wrote any.
func fields(w *jsonfast.Writer, kv ...string) bool {
	comma := false
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == "" {
			continue
		}
		if comma {
			w.Byte(',')
		}
		w.Byte('"')
		w.Raw(kv[i])
		w.Raw(`":`)
		w.String(kv[i+1])
		comma = true
	}
	return comma
}

// Unmarshal is json.Unmarshal(b, v); the bodies of enroll, approval and
// status are read by hand into a zero value.
func Unmarshal(b []byte, v any) error {
	if fastDecodeRequest(b, v) {
		return nil
	}
	return json.Unmarshal(b, v)
}

// fastDecodeRequest reads b by hand into v if v is a zero request of
// enroll, approval or status; false (v unchanged) otherwise.
func fastDecodeRequest(b []byte, v any) bool {
	r := jsonfast.NewReader(b)
	switch v := v.(type) {
	case *EnrollRequest:
		if *v != (EnrollRequest{}) {
			return false
		}
		var out EnrollRequest
		r.Object(func(k []byte) int {
			switch string(k) {
			case "username":
				r.Text(&out.Username)
				return 0
			case "userId":
				r.Text(&out.UserID)
				return 1
			case "channel":
				r.Text(&out.Channel)
				return 2
			}
			return -1
		})
		r.End()
		if r.OK {
			*v = out
		}
	case *ApprovalRequest:
		if *v != (ApprovalRequest{}) {
			return false
		}
		var out ApprovalRequest
		r.Object(func(k []byte) int {
			switch string(k) {
			case "username":
				r.Text(&out.Username)
				return 0
			case "userId":
				r.Text(&out.UserID)
				return 1
			case "channel":
				r.Text(&out.Channel)
				return 2
			case "message":
				r.Text(&out.Message)
				return 3
			case "notificationMessage":
				r.Text(&out.NotificationMessage)
				return 4
			case "authenticatorId":
				r.Text(&out.AuthenticatorID)
				return 5
			case "prompt":
				r.Bool(&out.Prompt)
				return 6
			case "numberMatching":
				r.Bool(&out.NumberMatching)
				return 7
			}
			return -1
		})
		r.End()
		if r.OK {
			*v = out
		}
	case *StatusRequest:
		if *v != (StatusRequest{}) {
			return false
		}
		var out StatusRequest
		r.Object(func(k []byte) int {
			if string(k) == "statusToken" {
				r.Text(&out.StatusToken)
				return 0
			}
			return -1
		})
		r.End()
		if r.OK {
			*v = out
		}
	default:
		return false
	}
	return r.OK
}
