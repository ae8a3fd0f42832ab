package emulator

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/authphone/authphone/sdk/cloudapi"
)

// WithClockControl lets backend clients (with the access key) move the
// emulator's clock forward through POST /api/v1/admin/clock, so a QA script
// expires an operation at once instead of sleeping past its TTL (ours: the
// contract has no such call). Without it that call answers 403; GET, which
// only reads the clock, always answers.
func WithClockControl() Option { return func(c *config) { c.clockControl = true } }

// ErrClockBackwards is AdvanceClock asked to move the clock back.
var ErrClockBackwards = errors.New("the emulator's clock only moves forward")

// AdvanceClock moves the server's clock forward by d: every TTL and expiry
// check (enrolments, approvals, sessions, tokens, login requests, pairings)
// sees the new time at once, and waiting long-polls re-check. Devices keep
// their own clocks: the freshness of their signatures is still checked
// against the unmoved clock, so phones go on working after any advance. The
// tokens the cloud issues carry the moved time. The offset is this
// process's: replicas each keep their own. It returns the new time.
func (s *Server) AdvanceClock(d time.Duration) (time.Time, error) {
	if d < 0 {
		return time.Time{}, fmt.Errorf("%w: %s is negative", ErrClockBackwards, d)
	}
	s.clockOffset.Add(int64(d))
	s.hub.SignalAll()
	return s.now(), nil
}

func (s *Server) handleClock(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		if !s.cfg.clockControl {
			s.fail(w, r, errf(http.StatusForbidden, "this emulator's clock cannot be moved: start it with --clock-control"))
			return
		}
		var req cloudapi.ClockRequest
		if err := readJSON(w, r, &req); err != nil {
			s.fail(w, r, err)
			return
		}
		d, err := time.ParseDuration(req.Advance)
		if err != nil || d <= 0 {
			s.fail(w, r, errf(http.StatusBadRequest, "advance must be a positive Go duration such as \"90s\"; got %q", req.Advance))
			return
		}
		if _, err := s.AdvanceClock(d); err != nil {
			s.fail(w, r, errf(http.StatusBadRequest, "%v", err))
			return
		}
	}
	writeJSON(w, http.StatusOK, cloudapi.ClockResponse{Now: s.now(), Offset: time.Duration(s.clockOffset.Load()).String()})
}
