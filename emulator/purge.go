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
	for id, tx := range st.Transactions {
		if tx.ExpiresAt.Before(cutoff) && tx.UpdatedAt.Before(cutoff) {
			delete(st.Transactions, id)
		}
	}
	for k, t := range st.Tokens {
		if t.ExpiresAt.Before(cutoff) {
			delete(st.Tokens, k)
		}
	}
	for k, se := range st.Sessions {
		if se.ExpiresAt.Before(now) {
			delete(st.Sessions, k)
		}
	}
	for k, in := range st.Intents {
		if in.ExpiresAt.Before(cutoff) {
			delete(st.Intents, k)
		}
	}
	for k, lr := range st.LoginRequests {
		if lr.ExpiresAt.Before(cutoff) {
			delete(st.LoginRequests, k)
		}
	}
	for k, p := range st.Pairings {
		if p.ExpiresAt.Before(cutoff) {
			delete(st.Pairings, k)
		}
	}
	for k, rt := range st.RefreshTokens {
		if rt.ExpiresAt.Before(now) {
			delete(st.RefreshTokens, k)
		}
	}
	for k, until := range st.Revoked {
		if until.Before(now) {
			delete(st.Revoked, k)
		}
	}
	for k, until := range st.Nonces {
		if until.Before(now) {
			delete(st.Nonces, k)
		}
	}
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
