package emulator

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/authphone/authphone/sdk/adminapi"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/deviceapi"
	"github.com/authphone/authphone/sdk/uaf"
	"github.com/google/uuid"
)

// Transaction kinds of the secure channel (ours).
const (
	KindHeadless = "headless"
	KindUpgrade  = "upgrade"
)

// ProtocolV1_2 is the second-factor server protocol version that headless
// accounts need.
const ProtocolV1_2 = deviceapi.ProtocolV1_2

// DefaultMaxData is the default getData payload limit.
const DefaultMaxData = 1 << 20

// WithDataService sets the app's data service that getData forwards to
// (default: a built-in one that describes the caller and echoes the payload).
func WithDataService(url string) Option { return func(c *config) { c.dataService = url } }

// WithProtocolVersions sets the second-factor server protocol versions the
// cloud serves (default v1_1 and v1_2; headless accounts need v1_2).
func WithProtocolVersions(vs ...string) Option { return func(c *config) { c.protocolVersions = vs } }

// WithMaxData sets the largest getData payload (default 1 MiB).
func WithMaxData(n int64) Option { return func(c *config) { c.maxData = n } }

// WithDataTimeout bounds how long the data service may take (default 10 s).
func WithDataTimeout(d time.Duration) Option { return func(c *config) { c.dataTimeout = d } }

// dataJWTTTL is the life of the token the data service receives.
const dataJWTTTL = 60 * time.Second

func (s *Server) servesV1_2() bool { return slices.Contains(s.cfg.protocolVersions, ProtocolV1_2) }

func (s *Server) handleHeadless(w http.ResponseWriter, r *http.Request) {
	var req deviceapi.HeadlessRequest
	if err := readJSON(w, r, &req); err != nil {
		s.devFail(w, r, err)
		return
	}
	if !s.servesV1_2() {
		s.devFail(w, r, deverr(http.StatusBadRequest, deviceapi.StatusUnacceptableClientCaps,
			"this cloud does not serve protocol version v1_2, which headless accounts need; start the emulator with --protocol-versions v1_1,v1_2"))
		return
	}
	if req.ProtocolVersion != ProtocolV1_2 {
		s.devFail(w, r, deverr(http.StatusBadRequest, deviceapi.StatusUnacceptableClientCaps, "a headless registration needs protocolVersion v1_2"))
		return
	}
	now := s.now()
	tx := &Transaction{ID: uuid.NewString(), Kind: KindHeadless, Status: cloudapi.StatusPending,
		CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(s.cfg.enrollTTL)}
	s.startRegistration(w, r, tx, nil, []string{deviceapi.AAIDHeadless})
}

func (s *Server) handleUpgrade(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r)
	if err != nil {
		s.devFail(w, r, err)
		return
	}
	now := s.now()
	tx := &Transaction{ID: uuid.NewString(), Kind: KindUpgrade, Status: cloudapi.StatusPending,
		CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(s.cfg.enrollTTL)}
	proof, err := s.verifyDevice(r, body, false)
	if err != nil {
		s.devFail(w, r, err)
		return
	}
	auth := func(st Tx) error {
		a, err := proof.use(st)
		if err != nil {
			return err
		}
		if a.AAID != deviceapi.AAIDHeadless {
			return errf(http.StatusConflict, "this account already has a second factor; only headless accounts are upgraded")
		}
		tx.UserID, tx.AuthenticatorID = a.UserID, a.ID
		return nil
	}
	s.startRegistration(w, r, tx, auth, registrationPolicy)
}

// startRegistration records tx and answers with a UAF RegistrationRequest
// accepting aaids; check (if not nil) runs first in the same transaction.
func (s *Server) startRegistration(w http.ResponseWriter, r *http.Request, tx *Transaction, check func(Tx) error, aaids []string) {
	now := s.now()
	sess := &Session{ServerData: randomToken(""), Challenge: challenge(), TransactionID: tx.ID, Op: string(uaf.OpReg),
		Policy: aaids, ExpiresAt: sessionLifetime(tx, now)}
	var resp deviceapi.RedeemResponse
	err := s.store.Update(r.Context(), func(st Tx) error {
		if check != nil {
			if err := check(st); err != nil {
				return err
			}
		}
		username := ""
		u, err := st.User(tx.UserID)
		if err != nil {
			return err
		}
		if u != nil {
			username = u.Username
		}
		pol, err := registrationPolicyFor(st, tx.UserID, policyOf(aaids))
		if err != nil {
			return err
		}
		msg, err := uaf.Encode(uaf.RegistrationRequest{Header: uaf.Header{UPV: s.cfg.uafVersion(), Op: uaf.OpReg, AppID: s.appID(r), ServerData: sess.ServerData},
			Challenge: sess.Challenge, Username: username, Policy: pol})
		if err != nil {
			return err
		}
		if err := st.PutTransaction(tx); err != nil {
			return err
		}
		if err := st.PutSession(sess); err != nil {
			return err
		}
		resp = deviceapi.RedeemResponse{StatusCode: deviceapi.StatusOK, UAFRequest: msg, Op: string(uaf.OpReg),
			LifetimeMillis: sess.ExpiresAt.Sub(now).Milliseconds()}
		return nil
	})
	if err != nil {
		s.devFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// DataRelayedHeader marks a response that comes from the data service.
const DataRelayedHeader = deviceapi.DataRelayedHeader

func (s *Server) handleData(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.maxData))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.devFail(w, r, errf(http.StatusRequestEntityTooLarge, "the payload is over the %d-byte limit; nothing was sent to the data service", s.cfg.maxData))
			return
		}
		s.devFail(w, r, errf(http.StatusBadRequest, "read payload: %v", err))
		return
	}
	got, err := s.deviceAuth(r, body, false)
	if err != nil {
		s.devFail(w, r, err)
		return
	}
	a := *got
	headless := a.AAID == deviceapi.AAIDHeadless
	ct := r.Header.Get("Content-Type")
	if s.cfg.dataService == "" {
		w.Header().Set(DataRelayedHeader, "builtin")
		out, err := s.builtinData(r.Context(), a, headless, ct, body)
		if err != nil {
			s.devFail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, out)
		s.emitNow(r.Context(), adminapi.Event{Type: adminapi.EventDataRelayed, UserID: a.UserID, AuthenticatorID: a.ID,
			Data: map[string]string{"service": "builtin", "bytes": strconv.Itoa(len(body)), "status": "200"}})
		return
	}
	now := s.now()
	tok, _ := newJWT(s.base(r), a.UserID, s.cfg.dataService, "", now, dataJWTTTL)
	_ = tok.Set("device", a.KeyID)
	_ = tok.Set("headless", headless)
	signed, err := s.issuer.sign(tok)
	if err != nil {
		s.devFail(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.dataTimeout)
	defer cancel()
	out, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.dataService, bytes.NewReader(body))
	if err != nil {
		s.devFail(w, r, err)
		return
	}
	if ct != "" {
		out.Header.Set("Content-Type", ct)
	}
	out.Header.Set("Authorization", "Bearer "+signed)
	resp, err := s.dataClient.Do(out)
	if err != nil {
		switch {
		case r.Context().Err() != nil:
			return // the phone gave up: nothing to answer
		case errors.Is(err, context.DeadlineExceeded):
			s.devFail(w, r, errf(http.StatusGatewayTimeout, "the data service at %s did not answer within %s", s.cfg.dataService, s.cfg.dataTimeout))
		default:
			s.devFail(w, r, errf(http.StatusBadGateway, "the data service at %s cannot be reached: %v", s.cfg.dataService, errors.Unwrap(err)))
		}
		return
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, s.cfg.maxData+1))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			s.devFail(w, r, errf(http.StatusGatewayTimeout, "the data service at %s did not finish its answer within %s", s.cfg.dataService, s.cfg.dataTimeout))
			return
		}
		s.devFail(w, r, errf(http.StatusBadGateway, "reading the data service's answer: %v", err))
		return
	}
	if int64(len(rb)) > s.cfg.maxData {
		s.devFail(w, r, errf(http.StatusBadGateway, "the data service's answer is over the %d-byte limit", s.cfg.maxData))
		return
	}
	if rct := resp.Header.Get("Content-Type"); rct != "" {
		w.Header().Set("Content-Type", rct)
	}
	w.Header().Set(DataRelayedHeader, "relayed")
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(rb)
	s.emitNow(r.Context(), adminapi.Event{Type: adminapi.EventDataRelayed, UserID: a.UserID, AuthenticatorID: a.ID,
		Data: map[string]string{"service": s.cfg.dataService, "bytes": strconv.Itoa(len(body)), "status": strconv.Itoa(resp.StatusCode)}})
}

// BuiltinData is what the built-in data service answers.
type BuiltinData struct {
	Service       string    `json:"service"`
	UserID        string    `json:"userId"`
	Username      string    `json:"username,omitempty"`
	DeviceKeyID   string    `json:"deviceKeyId"`
	Headless      bool      `json:"headless"`
	ContentType   string    `json:"contentType,omitempty"`
	Payload       string    `json:"payload,omitempty"`
	PayloadBase64 string    `json:"payloadBase64,omitempty"`
	ReceivedAt    time.Time `json:"receivedAt"`
}

func (s *Server) builtinData(ctx context.Context, a Authenticator, headless bool, ct string, body []byte) (BuiltinData, error) {
	out := BuiltinData{Service: "authphone built-in data service", UserID: a.UserID, DeviceKeyID: a.KeyID,
		Headless: headless, ContentType: ct, ReceivedAt: s.now()}
	err := s.store.View(ctx, func(st Tx) error {
		u, err := st.User(a.UserID)
		if u != nil {
			out.Username = u.Username
		}
		return err
	})
	if err != nil {
		return out, err
	}
	if utf8.Valid(body) && !strings.ContainsRune(string(body), 0) {
		out.Payload = string(body)
	} else {
		out.PayloadBase64 = base64.StdEncoding.EncodeToString(body)
	}
	return out, nil
}

// ServedVersions answers GET /_app/versions (ours): what the cloud speaks.
type ServedVersions struct {
	SecondFactorServer []string `json:"secondFactorServer"`
}

func (s *Server) handleVersions(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, ServedVersions{SecondFactorServer: s.cfg.protocolVersions})
}
