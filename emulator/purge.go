package emulator

import "time"

// Retention is how long the emulator keeps finished or expired operations
// before it forgets them; a status token of a forgotten transaction then
// reads "unknown" (cloud-api.md).
const Retention = time.Hour

// purgeEvery bounds how often a request pays for a purge.
const purgeEvery = time.Minute

// maybePurge forgets what expired more than Retention ago, at most once per
// purgeEvery. It runs inside Update.
func (s *Server) maybePurge(st *State, now time.Time) {
	s.mu.Lock()
	due := now.Sub(s.lastPurge) >= purgeEvery
	if due {
		s.lastPurge = now
	}
	s.mu.Unlock()
	if !due {
		return
	}
	cutoff := now.Add(-Retention)
	dropIf(st.Transactions, func(tx *Transaction) bool { return tx.ExpiresAt.Before(cutoff) && tx.UpdatedAt.Before(cutoff) })
	dropIf(st.Tokens, func(t *DispatchToken) bool { return t.ExpiresAt.Before(cutoff) })
	dropIf(st.Sessions, func(se *Session) bool { return se.ExpiresAt.Before(now) })
	dropIf(st.Intents, func(in *Intent) bool { return in.ExpiresAt.Before(cutoff) })
	dropIf(st.LoginRequests, func(lr *LoginRequest) bool { return lr.ExpiresAt.Before(cutoff) })
	dropIf(st.Pairings, func(p *Pairing) bool { return p.ExpiresAt.Before(cutoff) })
	dropIf(st.RefreshTokens, func(rt *RefreshToken) bool { return rt.ExpiresAt.Before(now) })
	dropIf(st.Revoked, func(until time.Time) bool { return until.Before(now) })
	dropIf(st.Nonces, func(until time.Time) bool { return until.Before(now) })
	for aid, items := range st.Inbox {
		kept := items[:0]
		for _, it := range items {
			if it.ExpiresAt.After(cutoff) {
				kept = append(kept, it)
			}
		}
		if len(kept) == 0 {
			delete(st.Inbox, aid)
		} else {
			st.Inbox[aid] = kept
		}
	}
}

// dropIf deletes the entries of m for which gone is true.
func dropIf[V any](m map[string]V, gone func(V) bool) {
	for k, v := range m {
		if gone(v) {
			delete(m, k)
		}
	}
}
