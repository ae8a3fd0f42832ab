// Package emulator is the local authentication cloud: the backend REST API of
// cloud-api.md (Nevis Authentication Cloud compatible), the device API of
// device-api.md (dispatch tokens, FIDO UAF 1.1 registration and
// authentication, push inbox, decline, deregistration) and a token issuer,
// served with net/http on loopback. It shares only wire-format packages with
// the phone SDK.
//
// A Server works in memory by default; WithStore plugs in another Store.
package emulator

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/authphone/authphone/sdk/adminapi"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/deviceapi"
	"github.com/authphone/authphone/sdk/trustapi"
	"github.com/authphone/authphone/sdk/uaf"
)

// Server is an emulated authentication cloud. Create it with New; it is safe
// for concurrent use.
type Server struct {
	cfg    config
	store  Store
	issuer *issuer
	hub    *hub
	mux    *http.ServeMux
	// dataClient forwards getData to the data service.
	dataClient *http.Client

	chaos chaosState

	deviceKeys deviceKeyCache // parsed device keys of POST /_app/inboxes

	stopping chan struct{} // closed by Close: long-polls answer at once
	stopOnce sync.Once

	unsubscribe func()

	loginLimit, deviceLimit *limiter
	qrs                     qrCache

	// clockOffset (nanoseconds) is added to cfg.now: AdvanceClock moves it.
	clockOffset atomic.Int64
	// longPolls counts the ?wait= requests blocked in longPollAny now.
	longPolls atomic.Int64

	mu      sync.RWMutex
	baseURL string
	httpSrv *http.Server
	ln      net.Listener
}

type config struct {
	accessKey   string
	enrollTTL   time.Duration
	approvalTTL time.Duration
	tokenTTL    time.Duration
	intentTTL   time.Duration
	logger      *slog.Logger
	store       Store
	now         func() time.Time
	baseURL     string

	dataService      string
	protocolVersions []string
	maxData          int64
	dataTimeout      time.Duration

	loginTTL     time.Duration
	accessTTL    time.Duration
	clientID     string
	otherClients []string
	pollInterval time.Duration

	retention time.Duration

	timeouts              Timeouts
	h2c                   bool // WithH2C
	loginRate, deviceRate rate

	clockControl bool // POST /api/v1/admin/clock answers

	webhooks []adminapi.WebhookRequest // WithWebhook

	upv    uaf.Version // zero: 1.1
	facets []string

	regPolicy *uaf.Policy // WithRegistrationPolicy; nil: the AAID list

	chaos cloudapi.Chaos
}

// WithTrustedFacets sets the facet IDs (besides the cloud's own origin) the
// cloud accepts in fcParams; default deviceapi.DefaultFacetID.
func WithTrustedFacets(ids ...string) Option { return func(c *config) { c.facets = ids } }

// WithRegistrationPolicy makes the cloud send p (plus the user's existing
// keys under disallowed) in its enrolment requests instead of its own
// AAID list, as a real UAF server configured with that policy does, and
// refuse a registration it does not accept. The cloud has no authenticator
// metadata: it judges an authenticator by the virtual phone's description
// of its AAID (deviceapi.DescribeAlg) with the KRD's signature algorithm.
// The AAID must still be one of the real SDK's.
func WithRegistrationPolicy(p uaf.Policy) Option { return func(c *config) { c.regPolicy = &p } }

// WithUAFVersion makes the cloud send its UAF requests (and expect the
// answers) in protocol version v, 1.0 or 1.1 (the default), as a UAF 1.0
// server does.
func WithUAFVersion(v uaf.Version) Option { return func(c *config) { c.upv = v } }

// uafVersion is the UAF version the cloud speaks.
func (c *config) uafVersion() uaf.Version {
	if c.upv == (uaf.Version{}) {
		return uaf.V1_1
	}
	return c.upv
}

// Option configures a Server.
type Option func(*config)

// WithAccessKey fixes the backend access key (otherwise a new HS512 JWT).
func WithAccessKey(k string) Option { return func(c *config) { c.accessKey = k } }

// WithEnrollTTL sets how long an enrolment stays pending (default 5 minutes).
func WithEnrollTTL(d time.Duration) Option { return func(c *config) { c.enrollTTL = d } }

// WithApprovalTTL sets how long an approval stays pending (default 2 minutes).
func WithApprovalTTL(d time.Duration) Option { return func(c *config) { c.approvalTTL = d } }

// WithLogger sets the request logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithStore sets where state lives (default: memory).
func WithStore(s Store) Option { return func(c *config) { c.store = s } }

// WithClock replaces time.Now, for tests.
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// WithBaseURL fixes the public base URL (otherwise the listening address).
func WithBaseURL(u string) Option { return func(c *config) { c.baseURL = strings.TrimRight(u, "/") } }

// New creates a Server.
func New(opts ...Option) (*Server, error) {
	cfg := config{
		enrollTTL: 5 * time.Minute, approvalTTL: 2 * time.Minute,
		tokenTTL: 10 * time.Minute, intentTTL: 5 * time.Minute,
		logger: slog.New(slog.DiscardHandler), now: time.Now,
		protocolVersions: []string{"v1_1", ProtocolV1_2}, maxData: DefaultMaxData, dataTimeout: 10 * time.Second,
		loginTTL: trustapi.DefaultRequestTTL, accessTTL: trustapi.DefaultAccessTokenLifetime, clientID: trustapi.DefaultClientID, facets: []string{deviceapi.DefaultFacetID},
		pollInterval: trustapi.DefaultPollInterval, retention: Retention,
		timeouts:  Timeouts{Header: DefaultHeaderTimeout, Body: DefaultBodyTimeout, Idle: DefaultIdleTimeout},
		loginRate: rate{DefaultLoginRate, DefaultLoginPer},
	}
	for _, o := range opts {
		o(&cfg)
	}
	for _, id := range cfg.facets {
		if err := uaf.CheckFacetID(id); err != nil {
			return nil, fmt.Errorf("emulator: trusted facet: %w", err)
		}
	}
	if cfg.store == nil {
		cfg.store = NewMemoryStore()
	}
	if err := cfg.chaos.Validate(); err != nil {
		return nil, fmt.Errorf("emulator: %w", err)
	}
	is, err := loadIssuer(&cfg)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, store: cfg.store, issuer: is, hub: newHub(), mux: http.NewServeMux(), baseURL: cfg.baseURL,
		dataClient: &http.Client{}, stopping: make(chan struct{}), chaos: chaosState{c: cfg.chaos},
		loginLimit: newLimiter(cfg.loginRate, cfg.now), deviceLimit: newLimiter(cfg.deviceRate, cfg.now)}
	s.unsubscribe = s.store.Subscribe(func(key string) {
		switch key {
		case wakeAllKey:
			s.reloadIssuer()
			s.hub.SignalAll()
			return
		case issuerWaitKey:
			s.reloadIssuer()
		}
		s.hub.Signal(key)
	})
	s.routes()
	for _, h := range cfg.webhooks {
		if _, err := s.AddWebhook(context.Background(), h.URL, h.Secret); err != nil {
			return nil, fmt.Errorf("emulator: webhook: %w", err)
		}
	}
	return s, nil
}

// loadIssuer takes the issuer and the generated access key from the store,
// or makes and stores new ones: a restarted emulator with a file store keeps
// verifying what it issued and keeps its access key, and replicas on one
// database share them. The candidates are made before the transaction; the
// first replica to commit wins and the others take its.
func loadIssuer(cfg *config) (*issuer, error) {
	ctx := context.Background()
	fresh, err := newIssuer()
	if err != nil {
		return nil, fmt.Errorf("emulator: make signing key: %w", err)
	}
	freshDoc, err := json.Marshal(fresh.export())
	if err != nil {
		return nil, fmt.Errorf("emulator: %w", err)
	}
	freshKey := ""
	if cfg.accessKey == "" {
		if freshKey, err = accessKeyJWT("authphone-emulator", cfg.now()); err != nil {
			return nil, fmt.Errorf("emulator: make access key: %w", err)
		}
	}
	var doc, key []byte
	err = cfg.store.Update(ctx, func(st Tx) error {
		if doc, err = st.Meta(metaIssuer); err != nil {
			return err
		}
		if doc == nil {
			doc = freshDoc
			if err := st.PutMeta(metaIssuer, doc); err != nil {
				return err
			}
		}
		if freshKey == "" {
			return nil
		}
		if key, err = st.Meta(metaAccessKey); err != nil {
			return err
		}
		if key == nil {
			key = []byte(freshKey)
			return st.PutMeta(metaAccessKey, key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("emulator: keep the signing key: %w", err)
	}
	if freshKey != "" {
		cfg.accessKey = string(key)
	}
	return issuerFromDoc(doc)
}

func issuerFromDoc(doc []byte) (*issuer, error) {
	var saved IssuerState
	if err := json.Unmarshal(doc, &saved); err != nil {
		return nil, fmt.Errorf("emulator: the stored signing keys are damaged: %w", err)
	}
	is, err := issuerFrom(&saved)
	if err != nil {
		return nil, fmt.Errorf("emulator: %w", err)
	}
	return is, nil
}

// saveIssuer stores the issuer's keys (after a rotation) and wakes the
// other replicas to reload them.
func (s *Server) saveIssuer(ctx context.Context) error {
	doc, err := json.Marshal(s.issuer.export())
	if err != nil {
		return err
	}
	return s.store.Update(ctx, func(st Tx) error {
		st.Wake(issuerWaitKey)
		return st.PutMeta(metaIssuer, doc)
	})
}

// issuerWaitKey is woken when the signing keys change.
const issuerWaitKey = "meta/issuer"

// reloadIssuer takes the signing keys another replica stored.
func (s *Server) reloadIssuer() {
	var doc []byte
	err := s.store.View(context.Background(), func(st Tx) error {
		var err error
		doc, err = st.Meta(metaIssuer)
		return err
	})
	if err != nil || doc == nil {
		s.cfg.logger.Warn("reload signing keys", "err", err)
		return
	}
	is, err := issuerFromDoc(doc)
	if err != nil {
		s.cfg.logger.Warn("reload signing keys", "err", err)
		return
	}
	s.issuer.replace(is)
}

// AccessKey is the backend access key.
func (s *Server) AccessKey() string { return s.cfg.accessKey }

// URL is the base URL, once known (after Start, or from WithBaseURL).
func (s *Server) URL() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.baseURL
}

// Addr is the address a started server listens on (its URL may name a
// proxy instead: WithBaseURL).
func (s *Server) Addr() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Handler serves the whole API. Without WithBaseURL or Start, the base URL is
// taken from the first request's Host.
func (s *Server) Handler() http.Handler {
	return s.logRequests(s.limitDevices(s.withChaos(s.jsonErrors(s.mux))))
}

// Start listens on addr (e.g. "127.0.0.1:0") and serves in the background.
// It returns once the listener is bound; URL then answers.
func (s *Server) Start(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("emulator: listen on %s: %w", addr, err)
	}
	s.mu.Lock()
	if s.baseURL == "" {
		s.baseURL = "http://" + ln.Addr().String()
	}
	s.ln = ln
	t := s.cfg.timeouts
	s.httpSrv = newHTTPServer(s.Handler(), t, s.cfg.h2c)
	srv := s.httpSrv
	s.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
	go s.sweepLoop()
	go s.webhookLoop()
	return nil
}

// Close stops a started server, waiting for requests in flight (long-polls
// are cut short) up to ctx's deadline.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	srv := s.httpSrv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	s.stopOnce.Do(func() {
		close(s.stopping)
		s.unsubscribe()
	})
	return srv.Shutdown(ctx)
}

func (s *Server) base(r *http.Request) string {
	s.mu.RLock()
	b := s.baseURL
	s.mu.RUnlock()
	if b != "" {
		return b
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.baseURL == "" {
		s.baseURL = "http://" + r.Host
	}
	return s.baseURL
}

// now is the cloud's clock: TTLs, expiry and the tokens it issues.
func (s *Server) now() time.Time { return s.cfg.now().Add(s.offset()).UTC() }

// deviceNow is the devices' clock, which AdvanceClock does not move: the
// freshness of their signed timestamps is checked against it.
func (s *Server) deviceNow() time.Time { return s.cfg.now().UTC() }

func (s *Server) offset() time.Duration { return time.Duration(s.clockOffset.Load()) }

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET "+cloudapi.PathPing, s.backendAuth(s.handlePing))
	m.HandleFunc("POST "+cloudapi.PathEnroll, s.handleEnroll)
	m.HandleFunc("POST "+cloudapi.PathApproval, s.handleApproval)
	m.HandleFunc("POST "+cloudapi.PathStatus, s.handleStatus)
	m.HandleFunc("POST "+cloudapi.PathIntrospect, s.backendAuth(s.handleIntrospect))
	m.HandleFunc("POST "+cloudapi.PathIntent, s.backendAuth(s.handleIntent))
	m.HandleFunc("GET "+cloudapi.PathUsers, s.adminAuth(s.handleFindUser))
	m.HandleFunc("GET "+cloudapi.PathUsers+"/{userId}", s.backendAuth(s.handleGetUser))
	m.HandleFunc("PATCH "+cloudapi.PathUsers+"/{userId}", s.backendAuth(s.handlePatchUser))
	m.HandleFunc("DELETE "+cloudapi.PathUsers+"/{userId}", s.backendAuth(s.handleDeleteUser))
	m.HandleFunc("DELETE "+cloudapi.PathAuthenticators+"/{authenticatorId}", s.adminAuth(s.handleDeleteAuthenticator))

	m.HandleFunc("POST "+deviceapi.PathRedeem+"{kind}", s.handleRedeem)
	m.HandleFunc("POST "+deviceapi.PathRegistration, s.handleRegistration)
	m.HandleFunc("POST "+deviceapi.PathAuthentication, s.handleAuthentication)
	m.HandleFunc("POST "+deviceapi.PathDeregistration, s.handleDeregistration)
	m.HandleFunc("POST "+deviceapi.PathDispatchTargets, s.handleDispatchTarget)
	m.HandleFunc("GET "+deviceapi.PathInbox, s.handleInbox)
	m.HandleFunc("POST "+deviceapi.PathInboxes, s.handleInboxes)
	m.HandleFunc("POST "+deviceapi.PathDecline, s.handleDecline)
	m.HandleFunc("GET "+deviceapi.PathFacets, s.handleFacets)
	m.HandleFunc("POST "+deviceapi.PathHeadless, s.handleHeadless)
	m.HandleFunc("POST "+deviceapi.PathUpgrade, s.handleUpgrade)
	m.HandleFunc("POST "+deviceapi.PathData, s.handleData)
	m.HandleFunc("GET "+deviceapi.PathVersions, s.handleVersions)
	m.HandleFunc("GET /open", s.handleOpen)
	m.HandleFunc("GET "+PathQR+"{file}", s.handleQR)
	m.HandleFunc("GET "+trustapi.PathJWKS, s.handleJWKS)
	m.HandleFunc("GET "+trustapi.PathDiscovery, s.handleDiscovery)
	m.HandleFunc("POST "+trustapi.PathOAuthToken, s.handleOAuthToken)
	m.HandleFunc("POST "+trustapi.PathOAuthRevoke, s.handleOAuthRevoke)
	m.HandleFunc("POST "+trustapi.PathRotateKey, s.backendAuth(s.handleRotateKey))
	m.HandleFunc("GET "+cloudapi.PathClock, s.backendAuth(s.handleClock))
	m.HandleFunc("POST "+cloudapi.PathClock, s.backendAuth(s.handleClock))
	m.HandleFunc("POST "+trustapi.PathLoginRequests, s.handleCreateLoginRequest)
	m.HandleFunc("POST "+trustapi.PathLoginRequests+"/{id}/respond", s.handleRespondLoginRequest)
	m.HandleFunc("POST "+trustapi.PathLoginRequests+"/{id}/token", s.handleLoginToken)
	m.HandleFunc("POST "+trustapi.PathLoginRequests+"/{id}/cancel", s.handleCancelLoginRequest)
	m.HandleFunc("POST "+trustapi.PathPairings+"/{id}/cancel", s.handleCancelPairing)
	m.HandleFunc("POST "+trustapi.PathPairings, s.handleCreatePairing)
	m.HandleFunc("GET "+trustapi.PathPairings+"/{id}", s.handlePairingStatus)
	m.HandleFunc("POST "+trustapi.PathPairings+"/{id}/approve", s.handleApprovePairing)
	m.HandleFunc("GET "+trustapi.PathTrustedDevices, s.handleListTrusted)

	s.consoleRoutes()
	m.HandleFunc("GET "+adminapi.PathEvents, s.adminAuth(s.handleEvents))
	m.HandleFunc("GET "+adminapi.PathEventStream, s.adminAuth(s.handleEventStream))
	m.HandleFunc("GET "+cloudapi.PathStatus+"/{token}/events", s.handleStatusStream)
	m.HandleFunc("GET "+adminapi.PathState, s.adminAuth(s.handleState))
	m.HandleFunc("GET "+adminapi.PathOperations, s.adminAuth(s.handleOperations))
	m.HandleFunc("POST "+adminapi.PathOperations+"/{id}/expire", s.adminAuth(s.handleExpire))
	m.HandleFunc("POST "+adminapi.PathReset, s.adminAuth(s.handleReset))
	m.HandleFunc("GET "+adminapi.PathWebhooks, s.adminAuth(s.handleWebhooks))
	m.HandleFunc("POST "+adminapi.PathWebhooks, s.adminAuth(s.handleAddWebhook))
	m.HandleFunc("DELETE "+adminapi.PathWebhooks+"/{id}", s.adminAuth(s.handleRemoveWebhook))
	s.steerRoutes()
	m.HandleFunc("POST "+trustapi.PathTrustedDevices+"/{id}/remove", s.handleRemoveTrusted)
}

// jsonErrors gives the mux's own 404 and 405 answers the API's error body.
func (s *Server) jsonErrors(next *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := next.Handler(r)
		if pattern != "" {
			next.ServeHTTP(w, r) // sets the path values
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if allow := rec.Header().Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		if rec.Code == http.StatusMethodNotAllowed {
			writeError(w, rec.Code, r.Method+" is not allowed on "+r.URL.Path+"; use "+rec.Header().Get("Allow"))
			return
		}
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
}

// apiError is an error with the HTTP status to answer.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func errf(status int, format string, a ...any) error {
	return &apiError{status: status, msg: fmt.Sprintf(format, a...)}
}

// writeError writes the Spring-style error body.
func writeError(w http.ResponseWriter, status int, msg string) {
	refusal(w, msg)
	writeJSON(w, status, cloudapi.ErrorBody{Status: status, Error: http.StatusText(status), Message: msg})
}

// fail answers err: an apiError as itself, a store failure as a 503 with
// a retry hint, anything else as a 500 without details (they go to the
// log).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		writeError(w, ae.status, ae.msg)
		return
	}
	if s.unavailable(w, r, err) {
		writeError(w, http.StatusServiceUnavailable, unavailableMsg)
		return
	}
	s.cfg.logger.Error("internal error", "path", r.URL.Path, "err", err)
	writeError(w, http.StatusInternalServerError, "internal error; see the emulator's log")
}

// unavailableMsg is what a client reads when the store failed.
const unavailableMsg = "the emulator could not save the change (nothing was changed); retry in a second"

// unavailable logs a store failure and sets Retry-After; it reports whether
// err is one.
func (s *Server) unavailable(w http.ResponseWriter, r *http.Request, err error) bool {
	if !errors.Is(err, ErrUnavailable) {
		return false
	}
	s.cfg.logger.Error("store unavailable", "path", r.URL.Path, "err", err)
	w.Header().Set("Retry-After", "1")
	return true
}

// jsonContentType is the Content-Type of every JSON answer, one shared
// value (a header value is never changed in place).
var jsonContentType = []string{"application/json"}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(status)
	encodeJSON(w, v)
}

// readJSON decodes a JSON body of at most cloudapi.MaxBody bytes
// (decodeBody).
func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	if err := checkContentType(r); err != nil {
		return err
	}
	if err := decodeBody(body, v); err != nil {
		return errf(http.StatusBadRequest, "request body is not valid JSON: %v", err)
	}
	return nil
}

// decodeBody is json.Unmarshal(b, v), the usual bodies of the backend and
// device APIs by hand (cloudapi.Unmarshal, deviceapi.Unmarshal).
func decodeBody(b []byte, v any) error {
	switch v.(type) {
	case *cloudapi.EnrollRequest, *cloudapi.ApprovalRequest, *cloudapi.StatusRequest:
		return cloudapi.Unmarshal(b, v)
	}
	return deviceapi.Unmarshal(b, v)
}

// checkContentType refuses a body that is neither JSON nor a UAF message.
// The two plain values, as clients send them, are taken without parsing.
func checkContentType(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	switch ct {
	case "", "application/json", "application/fido+uaf":
		return nil
	}
	mt, _, _ := mime.ParseMediaType(ct)
	if mt != "application/json" && mt != "application/fido+uaf" {
		return errf(http.StatusUnsupportedMediaType, "content type %q is not supported; send application/json", ct)
	}
	return nil
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	var b []byte
	var err error
	if n := r.ContentLength; n > 0 && n <= cloudapi.MaxBody {
		// The usual case: one allocation of the announced size, and a
		// check that the body is neither shorter nor longer.
		b = make([]byte, n)
		if _, err = io.ReadFull(r.Body, b); err == nil {
			var extra [1]byte
			if k, _ := r.Body.Read(extra[:]); k > 0 {
				err = fmt.Errorf("the body is longer than its Content-Length")
			}
		}
	} else {
		b, err = io.ReadAll(http.MaxBytesReader(w, r.Body, cloudapi.MaxBody))
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errf(http.StatusRequestEntityTooLarge, "request body is over %d bytes", cloudapi.MaxBody)
		}
		return nil, errf(http.StatusBadRequest, "read request body: %v", err)
	}
	return b, nil
}

// backendAuth requires the access key.
func (s *Server) backendAuth(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.isAccessKey(r) {
			writeError(w, http.StatusUnauthorized, "missing or wrong access key: send Authorization: Bearer <access key>")
			return
		}
		next(w, r)
	}
}

func bearer(r *http.Request) string {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return ""
	}
	return strings.TrimSpace(tok)
}

func (s *Server) isAccessKey(r *http.Request) bool {
	tok := bearer(r)
	return tok != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.accessKey)) == 1
}

// parseWait reads ?wait=DURATION, capped at cloudapi.MaxWait.
func parseWait(r *http.Request) (time.Duration, error) { return parseWaitUpTo(r, cloudapi.MaxWait) }

// parseWaitUpTo reads ?wait=DURATION, capped at most.
func parseWaitUpTo(r *http.Request, most time.Duration) (time.Duration, error) {
	v := r.URL.Query().Get("wait")
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, errf(http.StatusBadRequest, "wait=%q is not a duration such as 30s", v)
	}
	return min(d, most), nil
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	reason string // why the request was refused (see refusal)
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		if s.cfg.logger.Enabled(r.Context(), slog.LevelInfo) { // no attributes made for a discarded line
			s.cfg.logger.Info("request", "method", r.Method, "path", r.URL.Path, "status", rec.status, "duration", time.Since(start))
		}
		s.logRefusal(r, rec.status, rec.reason)
	})
}

func (s *Server) handlePing(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, "PONG")
}

// trustedFacets are the facet IDs the cloud accepts: its own web origin and
// the configured ones (default deviceapi.DefaultFacetID).
func (s *Server) trustedFacets(r *http.Request) []string {
	return append([]string{s.base(r)}, s.cfg.facets...)
}

// trustsFacet reports whether facetID is among trustedFacets.
func (s *Server) trustsFacet(r *http.Request, facetID string) bool {
	return facetID == s.base(r) || slices.Contains(s.cfg.facets, facetID)
}

// handleFacets serves the trusted facet list at the appID URL (UAF 1.1
// AppID and Facet specification), for UAF 1.0 and 1.1.
func (s *Server) handleFacets(w http.ResponseWriter, r *http.Request) {
	ids := s.trustedFacets(r)
	w.Header().Set("Content-Type", deviceapi.ContentTypeTrustedFacets)
	_ = json.NewEncoder(w).Encode(map[string]any{"trustedFacets": []any{
		map[string]any{"version": uaf.V1_0, "ids": ids}, map[string]any{"version": uaf.V1_1, "ids": ids}}})
}

func (s *Server) handleJWKS(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "max-age=60")
	writeJSON(w, http.StatusOK, s.issuer.jwks(s.now()))
}

// handleOpen answers an app link opened in a browser: it shows the payload.
func (s *Server) handleOpen(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Query().Get("dispatchTokenResponse")
	if p == "" {
		writeError(w, http.StatusBadRequest, "the link has no dispatchTokenResponse parameter")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "Open this link with authphone:\n\n  authphone scan '%s%s'\n", s.base(r), r.URL.RequestURI())
}

// readSigned reads a JSON body into v and returns its bytes too: a
// Device-Signature covers the exact bytes.
func readSigned(w http.ResponseWriter, r *http.Request, v any) ([]byte, error) {
	body, err := readBody(w, r)
	if err != nil {
		return nil, err
	}
	return body, jsonUnmarshal(body, v)
}

// longPoll answers a ?wait= request: it runs check, and while check says
// not done and the wait lasts, waits for key to be signalled (or for the
// expiry check reports, when sooner) and runs it again. It returns false if
// the client went away. A server shutting down ends every wait.
func (s *Server) longPoll(ctx context.Context, key string, wait time.Duration, check func() (done bool, expiresAt time.Time)) bool {
	return s.longPollAny(ctx, []string{key}, wait, check)
}

// longPollAny is longPoll woken by any of keys.
func (s *Server) longPollAny(ctx context.Context, keys []string, wait time.Duration, check func() (done bool, expiresAt time.Time)) bool {
	if wait <= 0 { // no wait: one check, no waiter
		check()
		return true
	}
	deadline := time.Now().Add(wait)
	waiting := false
	defer func() {
		if waiting {
			s.longPolls.Add(-1)
		}
	}()
	for {
		// Before check: a signal in between is not lost. forget drops the
		// waiter once it is done, so the hub keeps no waiters of
		// operations that ended or expired unsignalled.
		woken, forget := s.hub.WaitAny(keys)
		done, exp := check()
		left := time.Until(deadline)
		if done || left <= 0 {
			forget()
			return true
		}
		if !exp.IsZero() {
			if untilExpiry := exp.Sub(s.now()); untilExpiry < left {
				left = max(untilExpiry, time.Millisecond)
			}
		}
		if !waiting {
			waiting = true
			s.longPolls.Add(1)
		}
		t := time.NewTimer(left)
		select {
		case <-woken:
		case <-t.C:
		case <-s.stopping:
			deadline = time.Now()
		case <-ctx.Done():
			t.Stop()
			forget()
			return false
		}
		t.Stop()
		forget()
	}
}

func jsonUnmarshal(b []byte, v any) error {
	if err := deviceapi.Unmarshal(b, v); err != nil {
		return errf(http.StatusBadRequest, "request body is not valid JSON: %v", err)
	}
	return nil
}

// replace takes another issuer's keys and secret.
func (is *issuer) replace(from *issuer) {
	from.mu.RLock()
	keys, secret := from.keys, from.secret
	from.mu.RUnlock()
	is.mu.Lock()
	gone := false
	for _, old := range is.keys {
		if !slices.ContainsFunc(keys, func(k *signingKey) bool { return k.kid == old.kid }) {
			gone = true
		}
	}
	is.keys, is.secret = keys, secret
	is.mu.Unlock()
	if gone { // the cached tokens signed with it would no longer verify
		is.tokMu.Lock()
		is.signed = nil
		is.gen++
		is.tokMu.Unlock()
	}
}
