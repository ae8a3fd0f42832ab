package emulator

import (
	"crypto/ecdsa"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/deviceapi"
	"github.com/authphone/authphone/sdk/devsig"
	"github.com/authphone/authphone/sdk/dispatch"
	"github.com/authphone/authphone/sdk/uaf"
)

// handleInboxes answers POST /_app/inboxes[?wait=D] (ours): one long-poll
// for the inboxes of every account of a phone, signed once with the
// phone's device key, held up to cloudapi.MaxInboxesWait (5 minutes, not
// the API's minute: an idle phone always holds one). An account counts only if its dispatch target was
// registered with that device key (with the registration, or signed by the account's own key)
// (deviceId = its thumbprint); the others are answered as unknown. Like
// GET /_app/inbox, a removed authenticator still reads its removal notice.
// When some accounts are unknown the answer comes at once, without waiting,
// so the phone learns to read those one by one.
func (s *Server) handleInboxes(w http.ResponseWriter, r *http.Request) {
	wait, err := parseWaitUpTo(r, cloudapi.MaxInboxesWait)
	if err != nil {
		s.devFail(w, r, err)
		return
	}
	var req deviceapi.InboxesRequest
	body, err := readSigned(w, r, &req)
	if err != nil {
		s.devFail(w, r, err)
		return
	}
	if len(req.KeyIDs) == 0 || len(req.KeyIDs) > deviceapi.MaxInboxKeys {
		s.devFail(w, r, errf(http.StatusBadRequest, "keyIds must name 1 to %d accounts", deviceapi.MaxInboxKeys))
		return
	}
	pub, kid, err := s.deviceKeys.parse(req.DeviceKey)
	if err != nil {
		s.devFail(w, r, errf(http.StatusBadRequest, "deviceKey: %v", err))
		return
	}
	sig, err := devsig.Parse(r.Header.Get(devsig.HeaderName))
	if err != nil {
		s.devFail(w, r, errf(http.StatusUnauthorized, "%v", err))
		return
	}
	if sig.KeyID != kid {
		s.devFail(w, r, errf(http.StatusUnauthorized, "Device-Signature must be made with the deviceKey of the body (kid = its thumbprint)"))
		return
	}
	// Devices keep their own clocks: freshness against the unmoved clock,
	// the nonce kept on the moved one (as verifyDevice does).
	if err := sig.Verify(pub, r.Method, r.URL.Path, body, s.deviceNow(), devsig.MaxAge); err != nil {
		s.devFail(w, r, errf(http.StatusUnauthorized, "%v", err))
		return
	}
	until := time.Unix(sig.Claims.IssuedAt, 0).Add(devsig.MaxAge + 5*time.Second + s.offset())
	var aids, keyIDs, unknown []string
	err = s.store.Update(r.Context(), func(st Tx) error {
		aids, keyIDs, unknown = nil, nil, nil
		fresh, err := st.UseNonce(sig.Claims.Nonce, until)
		if err != nil {
			return err
		}
		if !fresh {
			return errf(http.StatusUnauthorized, "Device-Signature was already used (replay)")
		}
		var seen map[string]bool // repeated keyIDs count once (no map for the usual one)
		if len(req.KeyIDs) > 1 {
			seen = make(map[string]bool, len(req.KeyIDs))
		}
		for _, k := range req.KeyIDs {
			if seen[k] {
				continue
			}
			if seen != nil {
				seen[k] = true
			}
			a, err := st.AuthenticatorByKeyID(k)
			if err != nil {
				return err
			}
			if a == nil || a.DeviceID != kid {
				unknown = append(unknown, k)
				continue
			}
			aids, keyIDs = append(aids, a.ID), append(keyIDs, k)
		}
		return nil
	})
	if err != nil {
		s.devFail(w, r, err)
		return
	}
	msgs := []deviceapi.InboxMessage{}
	if len(unknown) > 0 {
		wait = 0 // answer at once: the phone reads those accounts on their own
	}
	if len(aids) > 0 {
		// A first read without a waiter: when a message is there (an
		// approval the phone was told of) the hub is not involved. When
		// none is, the long-poll reads again once its waiter is set, so no
		// signal in between is lost.
		if msgs, err = s.readInboxes(r, aids, keyIDs, msgs); err != nil {
			s.devFail(w, r, err)
			return
		}
		if len(msgs) == 0 && wait > 0 {
			var ok bool
			if msgs, ok, err = s.waitInboxes(r, aids, keyIDs, wait, msgs); !ok {
				return
			}
			if err != nil {
				s.devFail(w, r, err)
				return
			}
		}
	}
	if req.UAF && len(msgs) > 0 {
		if err := s.deliverRequests(r, msgs); err != nil {
			s.devFail(w, r, err)
			return
		}
	}
	slices.SortStableFunc(msgs, func(a, b deviceapi.InboxMessage) int { return a.CreatedAt.Compare(b.CreatedAt) })
	writeJSON(w, http.StatusOK, deviceapi.InboxesResponse{Messages: msgs, Unknown: unknown})
}

// readInboxes appends to msgs the messages of the authenticators aids,
// each with its keyID.
func (s *Server) readInboxes(r *http.Request, aids, keyIDs []string, msgs []deviceapi.InboxMessage) ([]deviceapi.InboxMessage, error) {
	now := s.now()
	err := s.store.View(r.Context(), func(st Tx) error {
		for i, aid := range aids {
			n := len(msgs)
			var err error
			if msgs, err = inboxIn(st, aid, now, msgs); err != nil {
				return err
			}
			for j := n; j < len(msgs); j++ {
				msgs[j].KeyID = keyIDs[i]
			}
		}
		return nil
	})
	return msgs, err
}

// waitInboxes long-polls the inboxes of aids for up to wait, until one
// has a message; false if the client went away.
func (s *Server) waitInboxes(r *http.Request, aids, keyIDs []string, wait time.Duration, msgs []deviceapi.InboxMessage) ([]deviceapi.InboxMessage, bool, error) {
	wakeKeys := make([]string, len(aids))
	for i, aid := range aids {
		wakeKeys[i] = inboxWaitKey(aid)
	}
	var err error
	ok := s.longPollAny(r.Context(), wakeKeys, wait, func() (bool, time.Time) {
		msgs, err = s.readInboxes(r, aids, keyIDs, msgs[:0])
		return err != nil || len(msgs) > 0, time.Time{}
	})
	return msgs, ok, err
}

// deliverRequests adds to each approval among msgs (ours) the UAF request
// a redeem of its token would answer, so that the phone skips the redeem.
// The token is not spent: the request's serverData names the inbox item
// (deliveredServerData), and the first of an assertion answering it
// (spendDelivered), a decline, or a redeem of the token (which withdraws
// the item and the request with it) spends the token; every other answer
// is then refused. The message stays in the inbox until then, so a phone
// whose answer was lost reads it again and gets the same request (the same
// serverData and challenge) while it lives; one expired is replaced.
// Tokens already redeemed and operations no longer pending get none (the
// phone then redeems as usual and hears why).
func (s *Server) deliverRequests(r *http.Request, msgs []deviceapi.InboxMessage) error {
	now := s.now()
	upv, appID := s.cfg.uafVersion(), s.appID(r)
	return s.store.Update(r.Context(), func(st Tx) error {
		for i := range msgs {
			m := &msgs[i]
			m.UAF = nil // Update may run fn again
			if m.Kind != deviceapi.InboxAuthentication || m.TransactionID == "" {
				continue
			}
			tx, err := st.Transaction(m.TransactionID)
			if err != nil {
				return err
			}
			if tx == nil || effectiveStatus(tx, now) != cloudapi.StatusPending {
				continue
			}
			items, err := st.InboxItems(tx.ID, "")
			if err != nil {
				return err
			}
			j := slices.IndexFunc(items, func(it *InboxItem) bool { return it.ID == m.ID })
			if j < 0 {
				continue
			}
			dt, err := st.DispatchToken(items[j].Token)
			if err != nil {
				return err
			}
			if dt == nil || dt.Redeemed || dt.TransactionID != tx.ID || dt.Kind != string(dispatch.Authentication) || !now.Before(dt.ExpiresAt) {
				continue
			}
			ids, err := tokenTargets(st, tx, dt)
			if err != nil {
				return err
			}
			sessions, err := st.TransactionSessions(tx.ID)
			if err != nil {
				return err
			}
			var sess *Session
			for _, old := range sessions {
				if id, ok := deliveredItem(old.ServerData); !ok || id != m.ID {
					continue
				}
				if sess == nil && now.Before(old.ExpiresAt) {
					sess = old
				} else if err := st.DeleteSession(old.ServerData); err != nil {
					return err
				}
			}
			fresh := sess == nil
			if fresh {
				sess = &Session{ServerData: deliveredServerData(m.ID), Challenge: challenge(), TransactionID: tx.ID,
					ExpiresAt: sessionLifetime(tx, now)}
			}
			ar, err := authRequest(st, sess, tx, ids, uaf.Header{UPV: upv, AppID: appID, ServerData: sess.ServerData})
			var de *devError
			if errors.As(err, &de) {
				continue // the redeem says why
			}
			if err != nil {
				return err
			}
			enc, err := uaf.Encode(ar)
			if err != nil {
				return err
			}
			if fresh {
				if err := st.PutSession(sess); err != nil {
					return err
				}
			}
			m.UAF = &deviceapi.RedeemResponse{StatusCode: deviceapi.StatusOK, UAFRequest: enc, Op: string(uaf.OpAuth),
				LifetimeMillis: sess.ExpiresAt.Sub(now).Milliseconds()}
			if tx.Number != 0 {
				m.UAF.NumberChoices = tx.Choices
			}
		}
		return nil
	})
}

// deviceKeyCache remembers parsed device keys by their JWK text: a phone
// sends the same one with every read. It forgets everything past a bound.
type deviceKeyCache struct {
	mu sync.Mutex
	m  map[string]parsedDeviceKey
}

type parsedDeviceKey struct {
	pub *ecdsa.PublicKey
	id  string
}

const deviceKeyCacheSize = 100_000

func (c *deviceKeyCache) parse(jwkJSON []byte) (*ecdsa.PublicKey, string, error) {
	c.mu.Lock()
	k, ok := c.m[string(jwkJSON)]
	c.mu.Unlock()
	if ok {
		return k.pub, k.id, nil
	}
	pub, id, err := deviceapi.DeviceKey(jwkJSON)
	if err != nil {
		return nil, "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= deviceKeyCacheSize {
		c.m = map[string]parsedDeviceKey{}
	}
	c.m[string(jwkJSON)] = parsedDeviceKey{pub, id}
	return pub, id, nil
}
