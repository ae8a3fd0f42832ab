package emulator

import (
	"cmp"
	"container/heap"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/authphone/authphone/sdk/adminapi"
)

// MemoryStore keeps the state in maps, with an index map per secondary key
// kept up to date on every write and a min-heap of expiry times per kind for
// the sweep. Update runs one transaction at a time under a lock and undoes
// its writes if fn fails; View runs under a read lock. Its zero value is not
// usable; call NewMemoryStore.
type MemoryStore struct {
	mu   sync.RWMutex
	seq  int64
	subs subscribers

	users       *memTable[User]
	auths       *memTable[memAuth]
	txs         *memTable[Transaction]
	tokens      *memTable[DispatchToken]
	sessions    *memTable[Session]
	inbox       *memTable[InboxItem]
	intents     *memTable[Intent]
	nonces      *memTable[expiring]
	revoked     *memTable[expiring]
	logins      *memTable[LoginRequest]
	pairings    *memTable[Pairing]
	refresh     *memTable[RefreshToken]
	chains      *memTable[TokenChain]
	chainTokens *memTable[expiring]
	meta        map[string][]byte
	closed      bool
	// journal, if set, makes each transaction durable before it is seen.
	journal journal

	// events is the event log, by ID; lastEvent the newest ID ever given.
	events    []*adminapi.Event
	lastEvent int64
}

// expiring is a key kept until a time (nonces, revocations, chain tokens).
type expiring struct {
	Key   string
	Group string // chain tokens: the chain
	Until time.Time
}

// Index names.
const (
	byName    = "name"
	byUser    = "user"
	byKeyID   = "keyID"
	byAuth    = "auth"
	byTx      = "tx"
	byLogin   = "login"
	byChain   = "chain"
	byGroup   = "group"
	byPending = "pending"
	noExpiry  = 0
)

// NewMemoryStore returns an empty in-memory store.
func NewMemoryStore() *MemoryStore {
	later := func(a, b time.Time) time.Time {
		if a.After(b) {
			return a
		}
		return b
	}
	m := &MemoryStore{meta: map[string][]byte{}}
	m.users = newTable("users", func(u *User) string { return u.ID }, nil, nil, index(byName, func(u *User) string { return u.Username }))
	m.auths = newTable("authenticators", func(a *memAuth) string { return a.ID }, nil, nil,
		index(byKeyID, func(a *memAuth) string { return a.KeyID }),
		index(byUser, func(a *memAuth) string { return a.UserID }))
	pending := func(f func(*Transaction) string) func(*Transaction) string {
		return func(t *Transaction) string {
			if t.Status != "pending" {
				return ""
			}
			return f(t)
		}
	}
	m.txs = newTable("transactions", func(t *Transaction) string { return t.ID },
		func(t *Transaction) *Transaction { c := *t; c.Choices = slices.Clone(t.Choices); return &c },
		func(t *Transaction) (time.Time, bool) { return later(t.ExpiresAt, t.UpdatedAt), false },
		index(byUser, pending(func(t *Transaction) string { return t.UserID })),
		index(byPending, pending(func(*Transaction) string { return "pending" })),
		index(byAuth, pending(func(t *Transaction) string { return t.AuthenticatorID })))
	m.tokens = newTable("dispatch_tokens", func(t *DispatchToken) string { return t.Token }, nil,
		func(t *DispatchToken) (time.Time, bool) { return t.ExpiresAt, false },
		index(byTx, func(t *DispatchToken) string { return t.TransactionID }))
	m.sessions = newTable("sessions", func(s *Session) string { return s.ServerData },
		func(s *Session) *Session { c := *s; c.Policy = slices.Clone(s.Policy); return &c },
		func(s *Session) (time.Time, bool) { return s.ExpiresAt, true },
		index(byTx, func(s *Session) string { return s.TransactionID }))
	m.inbox = newTable("inbox", func(i *InboxItem) string { return i.ID }, nil,
		func(i *InboxItem) (time.Time, bool) { return i.ExpiresAt, false },
		index(byAuth, func(i *InboxItem) string { return i.AuthenticatorID }),
		index(byTx, func(i *InboxItem) string { return i.TransactionID }),
		index(byLogin, func(i *InboxItem) string { return i.LoginRequestID }))
	m.intents = newTable("intents", func(i *Intent) string { return i.Token }, nil,
		func(i *Intent) (time.Time, bool) { return i.ExpiresAt, false })
	untilNow := func(e *expiring) (time.Time, bool) { return e.Until, true }
	m.nonces = newTable("nonces", func(e *expiring) string { return e.Key }, nil, untilNow)
	m.revoked = newTable("revoked", func(e *expiring) string { return e.Key }, nil, untilNow)
	m.chainTokens = newTable("chain_tokens", func(e *expiring) string { return e.Key }, nil, untilNow,
		index(byGroup, func(e *expiring) string { return e.Group }))
	m.logins = newTable("login_requests", func(l *LoginRequest) string { return l.ID }, nil,
		func(l *LoginRequest) (time.Time, bool) { return l.ExpiresAt, false })
	m.pairings = newTable("pairings", func(p *Pairing) string { return p.ID }, nil,
		func(p *Pairing) (time.Time, bool) { return p.ExpiresAt, false })
	m.refresh = newTable("refresh_tokens", func(r *RefreshToken) string { return r.Token }, nil,
		func(r *RefreshToken) (time.Time, bool) { return r.ExpiresAt, true },
		index(byChain, func(r *RefreshToken) string { return r.ChainID }))
	m.chains = newTable("chains", func(c *TokenChain) string { return c.ID }, nil, nil)
	return m
}

var errReadOnly = errors.New("emulator store: a write inside View")

// View runs fn under the read lock.
func (m *MemoryStore) View(_ context.Context, fn func(Tx) error) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return unavailable(errClosed)
	}
	tx := newMemTx(m, false)
	defer tx.free()
	return fn(tx)
}

// Update runs fn under the write lock; if fn fails, its writes are undone.
func (m *MemoryStore) Update(ctx context.Context, fn func(Tx) error) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return unavailable(errClosed)
	}
	tx := newMemTx(m, true)
	defer tx.free()
	commit, err := keeps(fn(tx))
	if !commit {
		tx.rollback()
	} else {
		lastEvent, nEvents := m.lastEvent, len(m.events)
		for _, e := range tx.events {
			m.lastEvent++
			e.ID = m.lastEvent
			m.events = append(m.events, e)
		}
		if m.journal != nil && (len(tx.changes) > 0 || len(tx.events) > 0 || tx.cutEvents != 0) {
			c := &changeSet{rows: tx.changes, events: tx.events, cutEvents: tx.cutEvents, lastEvent: m.lastEvent}
			if jerr := m.journal(context.WithoutCancel(ctx), c); jerr != nil {
				clear(m.events[nEvents:])
				m.events, m.lastEvent = m.events[:nEvents], lastEvent
				tx.rollback()
				commit, err = false, jerr
			}
		}
		if commit && len(tx.events) > 0 {
			tx.wake = append(tx.wake, eventsWaitKey)
		}
	}
	m.mu.Unlock()
	if commit {
		m.subs.publish(tx.wake)
	}
	return err
}

// Subscribe calls fn with the keys committed transactions wake.
func (m *MemoryStore) Subscribe(fn func(string)) func() { return m.subs.add(fn) }

// Close does nothing: the state goes with the process.
func (m *MemoryStore) Close() error { return nil }

// subscribers is the list of Subscribe callbacks.
type subscribers struct {
	mu  sync.Mutex
	n   int
	fns map[int]func(string)
}

func (s *subscribers) add(fn func(string)) func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fns == nil {
		s.fns = map[int]func(string){}
	}
	s.n++
	id := s.n
	s.fns[id] = fn
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.fns, id)
	}
}

func (s *subscribers) publish(keys []string) {
	if len(keys) == 0 {
		return
	}
	s.mu.Lock()
	fns := slices.Collect(maps.Values(s.fns))
	s.mu.Unlock()
	for _, fn := range fns {
		for _, k := range keys {
			fn(k)
		}
	}
}

// memTable is one kind: rows by primary key, secondary indexes, and a heap
// of expiry times.
type memTable[V any] struct {
	name  string // the SQL table a journal writes it to
	rows  map[string]*V
	key   func(*V) string
	clone func(*V) *V
	// expiry gives when a row expires; retained kinds are swept only once
	// the retention has passed since.
	expiry   func(*V) time.Time
	retained bool
	idx      map[string]*memIndex[V]
	heap     expHeap
}

type memIndex[V any] struct {
	of func(*V) string
	m  map[string]keySet
}

// keySet is the primary keys an index value names. Most name one (a
// username, a keyID, a user's one authenticator): it is kept in the map
// slot itself, so a store of 100 000 users holds no map per user for the
// garbage collector to walk; more go to a map made for the second.
type keySet struct {
	one  string
	more map[string]struct{}
}

func (s keySet) add(k string) keySet {
	switch {
	case s.one == "" && len(s.more) == 0:
		s.one = k
	case s.one != k:
		if _, ok := s.more[k]; ok {
			break
		}
		if s.one == "" {
			s.one = k
			break
		}
		if s.more == nil {
			s.more = map[string]struct{}{}
		}
		s.more[k] = struct{}{}
	}
	return s
}

func (s keySet) remove(k string) keySet {
	if s.one == k {
		s.one = ""
		for m := range s.more { // keep one in the slot
			s.one = m
			delete(s.more, m)
			break
		}
	} else {
		delete(s.more, k)
	}
	if len(s.more) == 0 {
		s.more = nil
	}
	return s
}

func (s keySet) empty() bool { return s.one == "" && len(s.more) == 0 }

// keys lists the keys of the index value ik (a copy: the caller may
// change the table meanwhile).
func (ix *memIndex[V]) keys(ik string) []string {
	s := ix.m[ik]
	if s.empty() {
		return nil
	}
	out := make([]string, 0, 1+len(s.more))
	out = append(out, s.one)
	for k := range s.more {
		out = append(out, k)
	}
	return out
}

func index[V any](name string, of func(*V) string) func(map[string]*memIndex[V]) {
	return func(m map[string]*memIndex[V]) { m[name] = &memIndex[V]{of: of, m: map[string]keySet{}} }
}

func newTable[V any](name string, key func(*V) string, clone func(*V) *V, expiry func(*V) (time.Time, bool), idx ...func(map[string]*memIndex[V])) *memTable[V] {
	if clone == nil {
		clone = func(v *V) *V { c := *v; return &c }
	}
	t := &memTable[V]{name: name, rows: map[string]*V{}, key: key, clone: clone, idx: map[string]*memIndex[V]{}}
	if expiry != nil {
		t.expiry = func(v *V) time.Time { at, _ := expiry(v); return at }
		_, now := expiry(new(V))
		t.retained = !now
	}
	for _, f := range idx {
		f(t.idx)
	}
	return t
}

// set stores v (nil: deletes) at k, keeping the indexes and the heap. An
// index value the old row had too is left as it is, and so is the heap
// when the expiry did not change (its entry for the old row stands for
// the new one: sweep compares the row's expiry with the entry's).
func (t *memTable[V]) set(k string, v *V) {
	old := t.rows[k]
	for _, ix := range t.idx {
		var was, is string
		if old != nil {
			was = ix.of(old)
		}
		if v != nil {
			is = ix.of(v)
		}
		if was == is {
			continue
		}
		if was != "" {
			if ks := ix.m[was].remove(k); ks.empty() {
				delete(ix.m, was)
			} else {
				ix.m[was] = ks
			}
		}
		if is != "" {
			ix.m[is] = ix.m[is].add(k)
		}
	}
	if v == nil {
		delete(t.rows, k)
		return
	}
	t.rows[k] = v
	if t.expiry != nil {
		at := t.expiry(v)
		if old == nil || !t.expiry(old).Equal(at) {
			heap.Push(&t.heap, expEntry{at: at, key: k})
		}
	}
}

func (t *memTable[V]) get(k string) *V {
	if v := t.rows[k]; v != nil {
		return t.clone(v)
	}
	return nil
}

// by lists the rows whose index name has the value ik, sorted by less.
func (t *memTable[V]) by(name, ik string, less func(a, b *V) int) []*V {
	var out []*V
	for _, k := range t.idx[name].keys(ik) {
		out = append(out, t.clone(t.rows[k]))
	}
	if less != nil {
		slices.SortFunc(out, less)
	}
	return out
}

// sweep removes the rows whose expiry is before now (or, for kinds kept
// for the retention, before cutoff), in the order they expire.
func (t *memTable[V]) sweep(tx *memTx, now, cutoff time.Time) int {
	if t.expiry == nil {
		return 0
	}
	limit := now
	if t.retained {
		limit = cutoff
	}
	n := 0
	for len(t.heap) > 0 && t.heap[0].at.Before(limit) {
		e := heap.Pop(&t.heap).(expEntry)
		old := t.rows[e.key]
		if old == nil || !t.expiry(old).Equal(e.at) {
			continue // gone, or changed since: a later entry stands for it
		}
		t.set(e.key, nil)
		tx.undo = append(tx.undo, undoEntry{t: t, k: e.key, old: old})
		tx.changed(t.name, e.key, sweptRow)
		n++
	}
	return n
}

type expEntry struct {
	at  time.Time
	key string
}

type expHeap []expEntry

func (h expHeap) Len() int           { return len(h) }
func (h expHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h expHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expHeap) Push(x any)        { *h = append(*h, x.(expEntry)) }
func (h *expHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// memAuth is how the memory store keeps an authenticator: its public key
// as the 65 bytes of the uncompressed point, inside the row, instead of
// an *ecdsa.PublicKey (five objects: the key, two big.Ints and their
// words) for the garbage collector to walk. A row written since the store
// was made or loaded also keeps the parsed key (key), which reads share:
// an authenticator in use is not parsed again on every read (each
// verification of its signatures read it); one only loaded (a SQLite
// store's snapshot) is parsed on each read until it is next written.
// Readers never change a key they were given (no code changes an
// *ecdsa.PublicKey once made).
type memAuth struct {
	Authenticator // PublicKey nil when pub holds it
	pub           [65]byte
	packed        bool
	key           *ecdsa.PublicKey // the parsed pub, or nil
}

func packAuth(a *Authenticator) *memAuth {
	m := &memAuth{Authenticator: *a}
	if a.PublicKey != nil && a.PublicKey.Curve == elliptic.P256() {
		if b, err := a.PublicKey.Bytes(); err == nil && len(b) == len(m.pub) {
			copy(m.pub[:], b)
			m.packed, m.PublicKey = true, nil
		}
	}
	return m
}

// packAuthKeep is packAuth for a row written through a transaction: it
// keeps the parsed key too, the one old (the row written before, or nil)
// keeps when it is the same point, else one of its own made from the
// bytes (never the caller's, which the caller may reuse).
func packAuthKeep(a *Authenticator, old *memAuth) *memAuth {
	if old != nil && old.key != nil && a.PublicKey == old.key {
		m := &memAuth{Authenticator: *a, pub: old.pub, packed: true, key: old.key}
		m.PublicKey = nil
		return m
	}
	m := packAuth(a)
	if m.packed {
		if old != nil && old.key != nil && old.pub == m.pub {
			m.key = old.key
		} else {
			m.key, _ = ecdsa.ParseUncompressedPublicKey(elliptic.P256(), m.pub[:])
		}
	}
	return m
}

// unpack is a copy of the authenticator, nil for nil.
func (m *memAuth) unpack() *Authenticator {
	if m == nil {
		return nil
	}
	a := m.Authenticator
	switch {
	case m.key != nil:
		a.PublicKey = m.key
	case m.packed:
		// The bytes came from a valid key: parsing them cannot fail.
		a.PublicKey, _ = ecdsa.ParseUncompressedPublicKey(elliptic.P256(), m.pub[:])
	}
	return &a
}

// memTx is a transaction on a MemoryStore: writes apply at once (no one
// else runs meanwhile) and are undone, newest first, if the transaction
// fails.
type memTx struct {
	m      *MemoryStore
	write  bool
	undo   []undoEntry
	wake   []string
	events []*adminapi.Event
	// changes and cutEvents are what a journal is given (see journal):
	// every row written, in order, and the newest event ID swept away.
	changes   []change
	cutEvents int64
}

// changed notes a written row for the store's journal, if it has one.
func (tx *memTx) changed(table, key string, row any) {
	if tx.m.journal != nil {
		tx.changes = append(tx.changes, change{table: table, key: key, row: row})
	}
}

// journal, when a MemoryStore has one, makes its transactions durable
// (SQLiteStore): Update calls it under the write lock with what a
// transaction changed, once fn has succeeded and before anyone can see the
// change; if it fails, the transaction is undone and Update fails with
// its error.
type journal func(ctx context.Context, c *changeSet) error

// changeSet is one transaction's writes, in the order made.
type changeSet struct {
	rows []change
	// events are the events logged, their IDs set.
	events []*adminapi.Event
	// cutEvents, when not 0, is the newest event ID the sweep removed
	// (it removes the oldest events).
	cutEvents int64
	// lastEvent is the newest event ID given.
	lastEvent int64
}

// change is one row written: the stored value (a *User, *memAuth,
// *expiring…, never changed in place once stored; []byte for meta), nil
// when the row was deleted, sweptRow when the sweep removed it.
type change struct {
	table, key string
	row        any
}

// sweptRow is the row of a change the sweep made: the row expired and is
// gone.
var sweptRow = &struct{ swept bool }{true}

func (tx *memTx) rollback() {
	for i := len(tx.undo) - 1; i >= 0; i-- {
		if u := tx.undo[i]; u.fn != nil {
			u.fn()
		} else {
			u.t.restore(u.k, u.old)
		}
	}
	clear(tx.undo)
	tx.undo = tx.undo[:0]
}

// undoEntry undoes one write: fn, or else the row k of t set back to old
// (a *V, nil for none) — without a closure made for each write.
type undoEntry struct {
	t   restorer
	k   string
	old any
	fn  func()
}

type restorer interface{ restore(k string, old any) }

func (t *memTable[V]) restore(k string, old any) { v, _ := old.(*V); t.set(k, v) }

// memTxs holds the transactions of View and Update once done, with their
// slices, for the next ones.
var memTxs = sync.Pool{New: func() any { return new(memTx) }}

func newMemTx(m *MemoryStore, write bool) *memTx {
	tx := memTxs.Get().(*memTx)
	tx.m, tx.write = m, write
	return tx
}

// free gives tx back to memTxs, keeping the slices the store alone holds
// (the changes and events given to a journal are left to it). A
// transaction is not used once its fn has returned.
func (tx *memTx) free() {
	const keep = 256
	if tx.m.journal != nil || cap(tx.events) > keep || cap(tx.changes) > keep {
		tx.events, tx.changes = nil, nil
	}
	clear(tx.events)
	clear(tx.changes)
	tx.events, tx.changes = tx.events[:0], tx.changes[:0]
	if cap(tx.undo) > keep || cap(tx.wake) > keep {
		tx.undo, tx.wake = nil, nil
	}
	clear(tx.undo)
	clear(tx.wake)
	tx.undo, tx.wake = tx.undo[:0], tx.wake[:0]
	tx.m, tx.write, tx.cutEvents = nil, false, 0
	memTxs.Put(tx)
}

func put[V any](tx *memTx, t *memTable[V], v *V) error {
	if !tx.write {
		return errReadOnly
	}
	k := t.key(v)
	old := t.rows[k]
	t.set(k, t.clone(v))
	tx.undo = append(tx.undo, undoEntry{t: t, k: k, old: old})
	tx.changed(t.name, k, t.rows[k])
	return nil
}

func del[V any](tx *memTx, t *memTable[V], k string) error {
	if !tx.write {
		return errReadOnly
	}
	old := t.rows[k]
	if old == nil {
		return nil
	}
	t.set(k, nil)
	tx.undo = append(tx.undo, undoEntry{t: t, k: k, old: old})
	tx.changed(t.name, k, nil)
	return nil
}

// first is the one row of a unique index.
func first[V any](t *memTable[V], name, ik string) *V {
	if ik == "" {
		return nil
	}
	if k := t.idx[name].m[ik].one; k != "" {
		return t.clone(t.rows[k])
	}
	return nil
}

func byCreated[V any](created func(*V) time.Time, id func(*V) string) func(a, b *V) int {
	return func(a, b *V) int {
		if c := created(a).Compare(created(b)); c != 0 {
			return c
		}
		return cmp.Compare(id(a), id(b))
	}
}

var (
	usersOrder = byCreated(func(u *User) time.Time { return u.CreatedAt }, func(u *User) string { return u.ID })
	authsOrder = byCreated(func(a *Authenticator) time.Time { return a.CreatedAt }, func(a *Authenticator) string { return a.ID })
	txsOrder   = byCreated(func(t *Transaction) time.Time { return t.CreatedAt }, func(t *Transaction) string { return t.ID })
	inboxOrder = func(a, b *InboxItem) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.Seq, b.Seq)
	}
	sessOrder = func(a, b *Session) int { return cmp.Compare(a.ServerData, b.ServerData) }
	rtOrder   = func(a, b *RefreshToken) int { return cmp.Compare(a.Token, b.Token) }
)

func (tx *memTx) User(id string) (*User, error) { return tx.m.users.get(id), nil }
func (tx *memTx) UserByName(n string) (*User, error) {
	return first(tx.m.users, byName, n), nil
}
func (tx *memTx) Users() ([]*User, error) {
	out := make([]*User, 0, len(tx.m.users.rows))
	for _, u := range tx.m.users.rows {
		out = append(out, tx.m.users.clone(u))
	}
	slices.SortFunc(out, usersOrder)
	return out, nil
}
func (tx *memTx) PutUser(u *User) error      { return put(tx, tx.m.users, u) }
func (tx *memTx) DeleteUser(id string) error { return del(tx, tx.m.users, id) }
func (tx *memTx) Authenticator(id string) (*Authenticator, error) {
	return tx.m.auths.rows[id].unpack(), nil
}
func (tx *memTx) AuthenticatorByKeyID(k string) (*Authenticator, error) {
	if k == "" {
		return nil, nil
	}
	return tx.m.auths.rows[tx.m.auths.idx[byKeyID].m[k].one].unpack(), nil
}
func (tx *memTx) UserAuthenticators(userID string) ([]*Authenticator, error) {
	keys := tx.m.auths.idx[byUser].keys(userID)
	out := make([]*Authenticator, 0, len(keys))
	for _, k := range keys {
		out = append(out, tx.m.auths.rows[k].unpack())
	}
	slices.SortFunc(out, authsOrder)
	return out, nil
}
func (tx *memTx) PutAuthenticator(a *Authenticator) error {
	if !tx.write {
		return errReadOnly
	}
	return put(tx, tx.m.auths, packAuthKeep(a, tx.m.auths.rows[a.ID]))
}
func (tx *memTx) DeleteAuthenticator(id string) error { return del(tx, tx.m.auths, id) }
func (tx *memTx) Transaction(id string) (*Transaction, error) {
	return tx.m.txs.get(id), nil
}
func (tx *memTx) PendingTransactions(userID, authID string) ([]*Transaction, error) {
	if userID != "" {
		out := tx.m.txs.by(byUser, userID, txsOrder)
		if authID != "" {
			out = slices.DeleteFunc(out, func(t *Transaction) bool { return t.AuthenticatorID != authID })
		}
		return out, nil
	}
	if authID == "" {
		return nil, nil
	}
	return tx.m.txs.by(byAuth, authID, txsOrder), nil
}
func (tx *memTx) PutTransaction(t *Transaction) error { return put(tx, tx.m.txs, t) }
func (tx *memTx) DispatchToken(t string) (*DispatchToken, error) {
	return tx.m.tokens.get(t), nil
}
func (tx *memTx) PutDispatchToken(t *DispatchToken) error { return put(tx, tx.m.tokens, t) }
func (tx *memTx) Session(sd string) (*Session, error)     { return tx.m.sessions.get(sd), nil }
func (tx *memTx) TransactionSessions(txID string) ([]*Session, error) {
	if txID == "" {
		return nil, nil
	}
	return tx.m.sessions.by(byTx, txID, sessOrder), nil
}
func (tx *memTx) PutSession(s *Session) error   { return put(tx, tx.m.sessions, s) }
func (tx *memTx) DeleteSession(sd string) error { return del(tx, tx.m.sessions, sd) }
func (tx *memTx) Inbox(aid string) ([]*InboxItem, error) {
	return tx.m.inbox.by(byAuth, aid, inboxOrder), nil
}
func (tx *memTx) InboxItems(txID, loginID string) ([]*InboxItem, error) {
	switch {
	case txID != "":
		return tx.m.inbox.by(byTx, txID, inboxOrder), nil
	case loginID != "":
		return tx.m.inbox.by(byLogin, loginID, inboxOrder), nil
	}
	return nil, nil
}
func (tx *memTx) PutInboxItem(it *InboxItem) error {
	if it.Seq == 0 {
		if old := tx.m.inbox.rows[it.ID]; old != nil {
			it.Seq = old.Seq
		} else {
			tx.m.seq++
			it.Seq = tx.m.seq
		}
	}
	return put(tx, tx.m.inbox, it)
}
func (tx *memTx) DeleteInboxItem(id string) error { return del(tx, tx.m.inbox, id) }
func (tx *memTx) ClearInbox(aid string) error {
	for _, k := range tx.m.inbox.idx[byAuth].keys(aid) {
		if err := del(tx, tx.m.inbox, k); err != nil {
			return err
		}
	}
	return nil
}
func (tx *memTx) Intent(t string) (*Intent, error) { return tx.m.intents.get(t), nil }
func (tx *memTx) PutIntent(i *Intent) error        { return put(tx, tx.m.intents, i) }
func (tx *memTx) UseNonce(n string, until time.Time) (bool, error) {
	if !tx.write {
		return false, errReadOnly
	}
	if tx.m.nonces.rows[n] != nil {
		return false, nil
	}
	return true, put(tx, tx.m.nonces, &expiring{Key: n, Until: until})
}
func (tx *memTx) Revoke(jti string, until time.Time) error {
	return put(tx, tx.m.revoked, &expiring{Key: jti, Until: until})
}
func (tx *memTx) IsRevoked(jti string) (bool, error) { return tx.m.revoked.rows[jti] != nil, nil }
func (tx *memTx) LoginRequest(id string) (*LoginRequest, error) {
	return tx.m.logins.get(id), nil
}
func (tx *memTx) PutLoginRequest(l *LoginRequest) error { return put(tx, tx.m.logins, l) }
func (tx *memTx) Pairing(id string) (*Pairing, error)   { return tx.m.pairings.get(id), nil }
func (tx *memTx) PutPairing(p *Pairing) error           { return put(tx, tx.m.pairings, p) }
func (tx *memTx) RefreshToken(t string) (*RefreshToken, error) {
	return tx.m.refresh.get(t), nil
}
func (tx *memTx) ChainRefreshTokens(chainID string) ([]*RefreshToken, error) {
	return tx.m.refresh.by(byChain, chainID, rtOrder), nil
}
func (tx *memTx) PutRefreshToken(r *RefreshToken) error { return put(tx, tx.m.refresh, r) }
func (tx *memTx) Chain(id string) (*TokenChain, error)  { return tx.m.chains.get(id), nil }
func (tx *memTx) PutChain(c *TokenChain) error          { return put(tx, tx.m.chains, c) }
func (tx *memTx) AddChainToken(chainID, jti string, until time.Time) error {
	return put(tx, tx.m.chainTokens, &expiring{Key: jti, Group: chainID, Until: until})
}
func (tx *memTx) ChainTokens(chainID string) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	for _, k := range tx.m.chainTokens.idx[byGroup].keys(chainID) {
		out[k] = tx.m.chainTokens.rows[k].Until
	}
	return out, nil
}
func (tx *memTx) Meta(name string) ([]byte, error) { return slices.Clone(tx.m.meta[name]), nil }
func (tx *memTx) PutMeta(name string, v []byte) error {
	if !tx.write {
		return errReadOnly
	}
	old, had := tx.m.meta[name]
	tx.m.meta[name] = slices.Clone(v)
	tx.changed("meta", name, tx.m.meta[name])
	m := tx.m
	tx.undo = append(tx.undo, undoEntry{fn: func() {
		if had {
			m.meta[name] = old
		} else {
			delete(m.meta, name)
		}
	}})
	return nil
}
func (tx *memTx) Sweep(now, cutoff time.Time) (int, error) {
	if !tx.write {
		return 0, errReadOnly
	}
	m := tx.m
	n := m.txs.sweep(tx, now, cutoff) + m.tokens.sweep(tx, now, cutoff) + m.sessions.sweep(tx, now, cutoff) +
		m.inbox.sweep(tx, now, cutoff) + m.intents.sweep(tx, now, cutoff) + m.nonces.sweep(tx, now, cutoff) +
		m.revoked.sweep(tx, now, cutoff) + m.logins.sweep(tx, now, cutoff) + m.pairings.sweep(tx, now, cutoff) +
		m.refresh.sweep(tx, now, cutoff) + m.chainTokens.sweep(tx, now, cutoff)
	old := m.events
	i := 0
	for i < len(old) && old[i].Time.Before(cutoff) {
		i++
	}
	if i > 0 {
		m.events = slices.Clone(old[i:])
		tx.undo = append(tx.undo, undoEntry{fn: func() { m.events = old }})
		tx.cutEvents = old[i-1].ID
	}
	return n + i, nil
}
func (tx *memTx) Wake(keys ...string) { tx.wake = append(tx.wake, keys...) }

func cloneEvent(e *adminapi.Event) *adminapi.Event {
	c := *e
	c.Data = maps.Clone(e.Data)
	return &c
}

func (tx *memTx) AddEvent(e *adminapi.Event) error {
	if !tx.write {
		return errReadOnly
	}
	tx.events = append(tx.events, cloneEvent(e))
	return nil
}
func (tx *memTx) Events(since int64, limit int) ([]*adminapi.Event, error) {
	ev := tx.m.events
	i, _ := slices.BinarySearchFunc(ev, since+1, func(e *adminapi.Event, id int64) int { return cmp.Compare(e.ID, id) })
	ev = ev[i:]
	if limit >= 0 && len(ev) > limit {
		ev = ev[:limit]
	}
	out := make([]*adminapi.Event, len(ev))
	for i, e := range ev {
		out[i] = cloneEvent(e)
	}
	return out, nil
}
func (tx *memTx) LastEventID() (int64, error) { return tx.m.lastEvent, nil }

// all lists every row of a table, sorted by less.
func all[V any](t *memTable[V], less func(a, b *V) int) []*V {
	out := make([]*V, 0, len(t.rows))
	for _, v := range t.rows {
		out = append(out, t.clone(v))
	}
	slices.SortFunc(out, less)
	return out
}

var (
	loginsOrder   = byCreated(func(l *LoginRequest) time.Time { return l.CreatedAt }, func(l *LoginRequest) string { return l.ID })
	pairingsOrder = byCreated(func(p *Pairing) time.Time { return p.CreatedAt }, func(p *Pairing) string { return p.ID })
)

func (tx *memTx) Transactions() ([]*Transaction, error) { return all(tx.m.txs, txsOrder), nil }
func (tx *memTx) LoginRequests() ([]*LoginRequest, error) {
	return all(tx.m.logins, loginsOrder), nil
}
func (tx *memTx) Pairings() ([]*Pairing, error) { return all(tx.m.pairings, pairingsOrder), nil }
func (tx *memTx) Counts() (Counts, error) {
	m := tx.m
	c := Counts{Users: len(m.users.rows), Transactions: len(m.txs.rows), LoginRequests: len(m.logins.rows),
		Pairings: len(m.pairings.rows), Inbox: len(m.inbox.rows), RefreshTokens: len(m.refresh.rows)}
	for _, a := range m.auths.rows {
		if a.Deleted {
			c.DeletedAuthenticators++
		} else {
			c.Authenticators++
		}
	}
	for _, t := range m.txs.rows {
		if t.Status == "pending" {
			c.PendingTransactions++
		}
	}
	return c, nil
}

// clearAll deletes every row of a table (undone if the transaction fails).
func clearAll[V any](tx *memTx, t *memTable[V]) error {
	for k := range t.rows {
		if err := del(tx, t, k); err != nil {
			return err
		}
	}
	return nil
}

func (tx *memTx) Reset() error {
	m := tx.m
	return errors.Join(clearAll(tx, m.users), clearAll(tx, m.auths), clearAll(tx, m.txs), clearAll(tx, m.tokens), clearAll(tx, m.sessions),
		clearAll(tx, m.inbox), clearAll(tx, m.intents), clearAll(tx, m.nonces), clearAll(tx, m.revoked), clearAll(tx, m.logins),
		clearAll(tx, m.pairings), clearAll(tx, m.refresh), clearAll(tx, m.chains), clearAll(tx, m.chainTokens))
}

func (tx *memTx) TransactionTokens(txID string) ([]*DispatchToken, error) {
	if txID == "" {
		return nil, nil
	}
	return tx.m.tokens.by(byTx, txID, func(a, b *DispatchToken) int { return cmp.Compare(a.Token, b.Token) }), nil
}

func (tx *memTx) ExpiredPending(now time.Time, limit int) ([]*Transaction, error) {
	var out []*Transaction
	for _, k := range tx.m.txs.idx[byPending].keys("pending") {
		if t := tx.m.txs.rows[k]; !now.Before(t.ExpiresAt) {
			out = append(out, tx.m.txs.clone(t))
		}
	}
	slices.SortFunc(out, func(a, b *Transaction) int {
		if c := a.ExpiresAt.Compare(b.ExpiresAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}
