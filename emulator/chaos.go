package emulator

import (
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/authphone/authphone/sdk/adminapi"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/deviceapi"
)

// WithChaos starts the emulator misbehaving as c says (cloudapi.Chaos);
// Server.SetChaos and PUT /api/v1/admin/chaos change it while it runs.
func WithChaos(c cloudapi.Chaos) Option { return func(cfg *config) { cfg.chaos = c } }

// chaosState is the chaos in force, changed at run time.
type chaosState struct {
	mu sync.RWMutex
	c  cloudapi.Chaos
}

func (cs *chaosState) get() cloudapi.Chaos {
	cs.mu.RLock()
	defer cs.mu.RUnlock()
	return cs.c
}

func (cs *chaosState) set(c cloudapi.Chaos) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.c = c
}

// Chaos is the chaos in force.
func (s *Server) Chaos() cloudapi.Chaos { return s.chaos.get() }

// SetChaos changes the chaos in force; it fails if c is out of range.
func (s *Server) SetChaos(c cloudapi.Chaos) error {
	if err := c.Validate(); err != nil {
		return err
	}
	s.chaos.set(c)
	s.cfg.logger.Info("chaos", "set", c.String())
	return nil
}

// chance reports true with probability p.
func chance(p float64) bool { return p > 0 && (p >= 1 || rand.Float64() < p) }

// exemptFromChaos: the admin API stays reliable, so chaos can always be
// switched off.
func exemptFromChaos(r *http.Request) bool {
	return strings.HasPrefix(r.URL.Path, "/api/v1/admin/")
}

// chaosUnavailableMsg is what a client reads in a chaos 503.
const chaosUnavailableMsg = "the emulator is failing on purpose (chaos error-rate): nothing was done; retry"

// withChaos adds the latency and the 503s of the chaos in force. The 503
// comes before the handler, so nothing is done; it says so in the body of
// the API it answers (backend or device).
func (s *Server) withChaos(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := s.chaos.get()
		if !c.On() || exemptFromChaos(r) {
			next.ServeHTTP(w, r)
			return
		}
		if c.Latency > 0 {
			t := time.NewTimer(c.Latency)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			case <-s.stopping:
				t.Stop()
			}
		}
		if chance(c.ErrorRate) {
			s.cfg.logger.Info("chaos", "error", r.Method+" "+r.URL.Path)
			w.Header().Set("Retry-After", "1")
			if strings.HasPrefix(r.URL.Path, "/_app/") {
				refusal(w, chaosUnavailableMsg)
				writeJSON(w, http.StatusServiceUnavailable, deviceapi.StatusBody{StatusCode: deviceapi.StatusInternal, Description: chaosUnavailableMsg})
				return
			}
			writeError(w, http.StatusServiceUnavailable, chaosUnavailableMsg)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// dropPush reports whether the chaos in force loses the push message to
// authenticatorID (drop-push).
func (s *Server) dropPush(authenticatorID string) bool {
	if !chance(s.chaos.get().DropPush) {
		return false
	}
	s.cfg.logger.Info("chaos", "dropped push to", authenticatorID)
	return true
}

func (s *Server) handleGetChaos(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.chaos.get())
}

func (s *Server) handlePutChaos(w http.ResponseWriter, r *http.Request) {
	var c cloudapi.Chaos
	if err := readJSON(w, r, &c); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.SetChaos(c); err != nil {
		s.fail(w, r, errf(http.StatusBadRequest, "%v", err))
		return
	}
	writeJSON(w, http.StatusOK, s.chaos.get())
}

// steerRoutes serves the admin API of chaos and of export and import.
func (s *Server) steerRoutes() {
	s.mux.HandleFunc("GET "+cloudapi.PathAdminChaos, s.backendAuth(s.handleGetChaos))
	s.mux.HandleFunc("PUT "+cloudapi.PathAdminChaos, s.backendAuth(s.handlePutChaos))
	s.mux.HandleFunc("GET "+adminapi.PathExport, s.backendAuth(s.handleExport))
	s.mux.HandleFunc("POST "+adminapi.PathImport, s.backendAuth(s.handleImport))
}

// emitPushDropped logs, in the approval's transaction, a push that chaos
// kept from authenticatorID's inbox.
func (s *Server) emitPushDropped(st Tx, tx *Transaction, authenticatorID string) error {
	return s.emit(st, adminapi.Event{Type: adminapi.EventPushDropped, UserID: tx.UserID, AuthenticatorID: authenticatorID,
		OperationID: tx.ID, Reason: "chaos drop-push"})
}
