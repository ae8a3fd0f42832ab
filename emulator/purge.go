package emulator

import (
	"context"
	"time"
)

// Retention is how long the emulator keeps finished or expired operations
// by default before it forgets them; a status token of a forgotten
// transaction then reads "unknown" (cloud-api.md).
const Retention = time.Hour

// sweepEvery is how often the background sweep runs.
const sweepEvery = time.Minute

// expireEvery is how often a started server looks for operations whose
// time is up, to log their expiry.
const expireEvery = time.Second

// WithRetention sets how long finished or expired operations are kept
// (default Retention).
func WithRetention(d time.Duration) Option { return func(c *config) { c.retention = d } }

// Sweep forgets, in one transaction, what expired: operations, tokens and
// messages more than the retention ago, sessions, nonces and revocations
// once they expire. A started server runs it every minute; it returns how
// many records it removed.
func (s *Server) Sweep(ctx context.Context) (int, error) {
	now := s.now()
	n := 0
	err := s.store.Update(ctx, func(st Tx) error {
		var err error
		n, err = st.Sweep(now, now.Add(-s.cfg.retention))
		return err
	})
	return n, err
}

// sweepLoop sweeps every sweepEvery, and logs expiries every expireEvery,
// until the server stops.
func (s *Server) sweepLoop() {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	e := time.NewTicker(expireEvery)
	defer e.Stop()
	for {
		select {
		case <-s.stopping:
			return
		case <-e.C:
			s.expireDue(context.Background())
		case <-t.C:
			if _, err := s.Sweep(context.Background()); err != nil {
				s.cfg.logger.Warn("sweep", "err", err)
			}
		}
	}
}
