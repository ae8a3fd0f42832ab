package emulator

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/authphone/authphone/sdk/adminapi"
)

// The SQL stores (SQLite and PostgreSQL) share one schema and one Tx: a
// table per kind with real columns, an index for every lookup a handler
// makes, and an expiry column (indexed) per kind the sweep removes.

// dialect is what differs between the SQL stores.
type dialect struct {
	name     string
	blob     string // the binary column type
	numbered bool   // placeholders are $1, $2… instead of ?
	// steps are migration steps of this dialect alone, by the version
	// they bring a database to, run after that version's migrations text.
	steps map[int]func(context.Context, *sql.Tx) error
}

var (
	sqliteDialect   = dialect{name: "sqlite", blob: "BLOB", steps: sqliteSteps}
	postgresDialect = dialect{name: "postgres", blob: "BYTEA", numbered: true}
)

// schemaVersion is the version migrations bring a database to.
const schemaVersion = 9

// migrations[i] brings a database from version i to i+1, on both
// dialects (dialect.steps adds a dialect's own). Since version 8 a SQLite
// file has no secondary indexes (sqliteOneTree): an index added here is
// for PostgreSQL, and SQLite's step of that version drops it.
var migrations = []string{
	`CREATE TABLE users (
		id TEXT PRIMARY KEY, username TEXT NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,
		activated BOOLEAN NOT NULL);
	CREATE UNIQUE INDEX users_username ON users (username) WHERE username <> '';
	CREATE TABLE authenticators (
		id TEXT PRIMARY KEY, user_id TEXT NOT NULL, key_id TEXT NOT NULL, aaid TEXT NOT NULL, public_key {blob} NOT NULL,
		sign_counter BIGINT NOT NULL, name TEXT NOT NULL, device_id TEXT NOT NULL, type TEXT NOT NULL,
		created_at BIGINT NOT NULL, deleted BOOLEAN NOT NULL);
	CREATE UNIQUE INDEX authenticators_key_id ON authenticators (key_id);
	CREATE INDEX authenticators_user_id ON authenticators (user_id);
	CREATE TABLE transactions (
		id TEXT PRIMARY KEY, kind TEXT NOT NULL, user_id TEXT NOT NULL, authenticator_id TEXT NOT NULL,
		message TEXT NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL, token TEXT NOT NULL,
		created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, sweep_at BIGINT NOT NULL);
	CREATE INDEX transactions_pending_user ON transactions (user_id) WHERE status = 'pending';
	CREATE INDEX transactions_pending_authenticator ON transactions (authenticator_id) WHERE status = 'pending';
	CREATE INDEX transactions_sweep ON transactions (sweep_at);
	CREATE TABLE dispatch_tokens (
		token TEXT PRIMARY KEY, kind TEXT NOT NULL, transaction_id TEXT NOT NULL, authenticator_id TEXT NOT NULL,
		expires_at BIGINT NOT NULL, redeemed BOOLEAN NOT NULL);
	CREATE INDEX dispatch_tokens_expiry ON dispatch_tokens (expires_at);
	CREATE TABLE sessions (
		server_data TEXT PRIMARY KEY, op TEXT NOT NULL, challenge TEXT NOT NULL, transaction_id TEXT NOT NULL,
		authenticator_id TEXT NOT NULL, policy TEXT NOT NULL, expires_at BIGINT NOT NULL);
	CREATE INDEX sessions_transaction ON sessions (transaction_id);
	CREATE INDEX sessions_expiry ON sessions (expires_at);
	CREATE TABLE inbox (
		id TEXT PRIMARY KEY, authenticator_id TEXT NOT NULL, login_request_id TEXT NOT NULL, token TEXT NOT NULL,
		transaction_id TEXT NOT NULL, kind TEXT NOT NULL, payload TEXT NOT NULL, notification TEXT NOT NULL,
		message TEXT NOT NULL, created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, seq BIGINT NOT NULL);
	CREATE INDEX inbox_authenticator ON inbox (authenticator_id, created_at, seq);
	CREATE INDEX inbox_transaction ON inbox (transaction_id) WHERE transaction_id <> '';
	CREATE INDEX inbox_login_request ON inbox (login_request_id) WHERE login_request_id <> '';
	CREATE INDEX inbox_expiry ON inbox (expires_at);
	CREATE TABLE intents (
		token TEXT PRIMARY KEY, user_id TEXT NOT NULL, username TEXT NOT NULL, operation TEXT NOT NULL,
		issued_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, used BOOLEAN NOT NULL);
	CREATE INDEX intents_expiry ON intents (expires_at);
	CREATE TABLE nonces (nonce TEXT PRIMARY KEY, until BIGINT NOT NULL);
	CREATE INDEX nonces_until ON nonces (until);
	CREATE TABLE revoked (jti TEXT PRIMARY KEY, until BIGINT NOT NULL);
	CREATE INDEX revoked_until ON revoked (until);
	CREATE TABLE login_requests (
		id TEXT PRIMARY KEY, user_id TEXT NOT NULL, identifier TEXT NOT NULL, code_challenge TEXT NOT NULL,
		poll_token TEXT NOT NULL, device_name TEXT NOT NULL, ip TEXT NOT NULL, binding_code TEXT NOT NULL,
		status TEXT NOT NULL, signature TEXT NOT NULL, approved_by TEXT NOT NULL, signed_at BIGINT NOT NULL,
		issued BOOLEAN NOT NULL, last_poll BIGINT NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,
		expires_at BIGINT NOT NULL);
	CREATE INDEX login_requests_expiry ON login_requests (expires_at);
	CREATE TABLE pairings (
		id TEXT PRIMARY KEY, user_id TEXT NOT NULL, public_key TEXT NOT NULL, key_id TEXT NOT NULL,
		device_name TEXT NOT NULL, status TEXT NOT NULL, authenticator_id TEXT NOT NULL,
		created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL);
	CREATE INDEX pairings_expiry ON pairings (expires_at);
	CREATE TABLE refresh_tokens (
		token TEXT PRIMARY KEY, chain_id TEXT NOT NULL, user_id TEXT NOT NULL, username TEXT NOT NULL,
		used BOOLEAN NOT NULL, expires_at BIGINT NOT NULL);
	CREATE INDEX refresh_tokens_chain ON refresh_tokens (chain_id);
	CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);
	CREATE TABLE chains (id TEXT PRIMARY KEY, revoked BOOLEAN NOT NULL);
	CREATE TABLE chain_tokens (jti TEXT PRIMARY KEY, chain_id TEXT NOT NULL, until BIGINT NOT NULL);
	CREATE INDEX chain_tokens_chain ON chain_tokens (chain_id);
	CREATE INDEX chain_tokens_until ON chain_tokens (until);
	CREATE TABLE meta (name TEXT PRIMARY KEY, value {blob} NOT NULL)`,
	// 2: number matching.
	`ALTER TABLE transactions ADD COLUMN number INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE transactions ADD COLUMN choices TEXT NOT NULL DEFAULT ''`,
	// 3: the event log. event_seq holds the last ID given: a transaction
	// takes its IDs from it just before it commits, so IDs follow the
	// commit order (on PostgreSQL two concurrent loggers conflict on that
	// row and one is run again).
	`CREATE TABLE events (
		id BIGINT PRIMARY KEY, at BIGINT NOT NULL, type TEXT NOT NULL, user_id TEXT NOT NULL, username TEXT NOT NULL,
		authenticator_id TEXT NOT NULL, operation_id TEXT NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL,
		data TEXT NOT NULL);
	CREATE INDEX events_at ON events (at);
	CREATE TABLE event_seq (last BIGINT NOT NULL);
	INSERT INTO event_seq (last) VALUES (0)`,
	// 4: dispatch tokens by transaction (the console shows an operation's QR code).
	`CREATE INDEX dispatch_tokens_transaction ON dispatch_tokens (transaction_id) WHERE transaction_id <> ''`,
	// 5: intent tokens limited to channels (comma-separated; '' = all).
	`ALTER TABLE intents ADD COLUMN channels TEXT NOT NULL DEFAULT ''`,
	// 6: pending transactions by expiry (their expiry is logged).
	`CREATE INDEX transactions_pending_expiry ON transactions (expires_at) WHERE status = 'pending'`,
	// 7: a user's last successful and last failed login (0: never).
	`ALTER TABLE users ADD COLUMN last_login_success BIGINT NOT NULL DEFAULT 0;
	ALTER TABLE users ADD COLUMN last_login_failure BIGINT NOT NULL DEFAULT 0`,
	// 8: on SQLite, each table one B-tree (sqliteOneTree); the same
	// schema on PostgreSQL.
	``,
	// 9: no new column: a succeeded transaction's token column may hold
	// its token's signing input (signed when read). The version is raised
	// so that an emulator from before refuses the database
	// (ErrSchemaTooNew) instead of answering that input as the token.
	``,
}

// ErrSchemaTooNew is returned when a database was made by a newer emulator.
var ErrSchemaTooNew = errors.New("the database was made by a newer authphone")

// migrate brings db to schemaVersion, one transaction per step. lock, if
// not empty, is run first in each step's transaction (PostgreSQL takes an
// advisory lock so that replicas starting together migrate once).
func migrate(ctx context.Context, db *sql.DB, d dialect, lock string) error {
	return migrateTo(ctx, db, d, lock, schemaVersion)
}

// migrateTo brings db to version target (tests make old databases with it).
func migrateTo(ctx context.Context, db *sql.DB, d dialect, lock string, target int) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return err
	}
	for {
		done, err := migrateStep(ctx, db, d, lock, target)
		if err != nil || done {
			return err
		}
	}
}

func migrateStep(ctx context.Context, db *sql.DB, d dialect, lock string, target int) (done bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	if lock != "" {
		if _, err := tx.ExecContext(ctx, lock); err != nil {
			return false, err
		}
	}
	v := 0
	switch err := tx.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v); {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
			return false, err
		}
	case err != nil:
		return false, err
	}
	if v > schemaVersion {
		return false, fmt.Errorf("%w (schema version %d; this one knows up to %d): upgrade authphone", ErrSchemaTooNew, v, schemaVersion)
	}
	if v >= target {
		return true, nil
	}
	for _, stmt := range strings.Split(strings.ReplaceAll(migrations[v], "{blob}", d.blob), ";\n") {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return false, fmt.Errorf("schema version %d: %w", v+1, err)
		}
	}
	if step := d.steps[v+1]; step != nil {
		if err := step(ctx, tx); err != nil {
			return false, fmt.Errorf("schema version %d: %w", v+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, d.rebind(`UPDATE schema_version SET version = ?`), v+1); err != nil {
		return false, err
	}
	return false, tx.Commit()
}

// rebind turns ? placeholders into $n for PostgreSQL.
func (d dialect) rebind(q string) string {
	if !d.numbered {
		return q
	}
	var b strings.Builder
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Times are kept as Unix nanoseconds, the zero time as 0.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// unavailable wraps a database error: the transaction did not happen.
func unavailable(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// sqlTx is a Tx over a database/sql transaction.
type sqlTx struct {
	ctx   context.Context
	tx    *sql.Tx
	d     dialect
	write bool
	seq   *atomic.Int64
	wake  []string
	// events waits for flushEvents, just before the commit.
	events []*adminapi.Event
	// stmts caches the rebound text of each query.
	stmts map[string]string
	// cache, if not nil, keeps the store's prepared statements; missing
	// are the queries it did not have, prepared once the transaction ends.
	cache   *stmtCache
	missing []string
}

// stmtCache keeps one prepared statement per query text on a database;
// database/sql then keeps it prepared on every connection it ran on, so
// a query is parsed once per connection, not once per run (the SQLite
// parser was a fifth of an approval's CPU). Statements are prepared
// outside transactions: preparing on the database inside one would wait
// for the connection the transaction holds.
type stmtCache struct {
	db *sql.DB
	mu sync.RWMutex
	m  map[string]*sql.Stmt
}

func newStmtCache(db *sql.DB) *stmtCache { return &stmtCache{db: db, m: map[string]*sql.Stmt{}} }

func (c *stmtCache) get(q string) *sql.Stmt {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[q]
}

// prepare prepares the queries not yet kept. A query that fails to
// prepare stays unprepared (it runs, and reports its error, as text).
func (c *stmtCache) prepare(ctx context.Context, queries []string) {
	for _, q := range queries {
		if c.get(q) != nil {
			continue
		}
		st, err := c.db.PrepareContext(ctx, q)
		if err != nil {
			continue
		}
		c.mu.Lock()
		if c.m[q] == nil {
			c.m[q], st = st, nil
		}
		c.mu.Unlock()
		if st != nil {
			st.Close()
		}
	}
}

func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for q, st := range c.m {
		errs = append(errs, st.Close())
		delete(c.m, q)
	}
	return errors.Join(errs...)
}

// done prepares, after the transaction, the queries it ran unprepared.
func (t *sqlTx) done() {
	if t.cache != nil && len(t.missing) > 0 {
		t.cache.prepare(context.WithoutCancel(t.ctx), t.missing)
	}
}

// prepared is the transaction's statement for query, nil if the store
// keeps none (yet).
func (t *sqlTx) prepared(query string) *sql.Stmt {
	if t.cache == nil {
		return nil
	}
	st := t.cache.get(query)
	if st == nil {
		t.missing = append(t.missing, query)
		return nil
	}
	return t.tx.StmtContext(t.ctx, st)
}

func (t *sqlTx) queryRow(query string, args ...any) *sql.Row {
	query = t.q(query)
	if st := t.prepared(query); st != nil {
		return st.QueryRowContext(t.ctx, args...)
	}
	return t.tx.QueryRowContext(t.ctx, query, args...)
}

func (t *sqlTx) query(query string, args ...any) (*sql.Rows, error) {
	query = t.q(query)
	if st := t.prepared(query); st != nil {
		return st.QueryContext(t.ctx, args...)
	}
	return t.tx.QueryContext(t.ctx, query, args...)
}

// scanner is a row or rows.
type scanner interface{ Scan(dest ...any) error }

// kind maps one struct to its table.
type kind[V any] struct {
	table string
	cols  string // all columns, the key first
	args  func(*V) []any
	scan  func(scanner) (*V, error)
	// update is the SET clause of the upsert, computed once.
	update string
	insert string
}

func newKind[V any](table, cols string, args func(*V) []any, scan func(scanner) (*V, error)) *kind[V] {
	k := &kind[V]{table: table, cols: cols, args: args, scan: scan}
	names := strings.Split(cols, ", ")
	sets := make([]string, 0, len(names)-1)
	for _, c := range names[1:] {
		sets = append(sets, c+" = excluded."+c)
	}
	k.insert = "INSERT INTO " + table + " (" + cols + ") VALUES (" + strings.TrimSuffix(strings.Repeat("?, ", len(names)), ", ") + ")"
	if len(sets) > 0 {
		k.update = k.insert + " ON CONFLICT (" + names[0] + ") DO UPDATE SET " + strings.Join(sets, ", ")
	} else {
		k.update = k.insert + " ON CONFLICT (" + names[0] + ") DO NOTHING"
	}
	return k
}

func (t *sqlTx) q(query string) string {
	if !t.d.numbered {
		return query
	}
	if s, ok := t.stmts[query]; ok {
		return s
	}
	if t.stmts == nil {
		t.stmts = map[string]string{}
	}
	s := t.d.rebind(query)
	t.stmts[query] = s
	return s
}

func (t *sqlTx) exec(query string, args ...any) (sql.Result, error) {
	if !t.write {
		return nil, errReadOnly
	}
	query = t.q(query)
	var r sql.Result
	var err error
	if st := t.prepared(query); st != nil {
		r, err = st.ExecContext(t.ctx, args...)
	} else {
		r, err = t.tx.ExecContext(t.ctx, query, args...)
	}
	return r, unavailable(err)
}

func getOne[V any](t *sqlTx, k *kind[V], where string, args ...any) (*V, error) {
	row := t.queryRow("SELECT "+k.cols+" FROM "+k.table+" WHERE "+where, args...)
	v, err := k.scan(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return v, unavailable(err)
}

func getMany[V any](t *sqlTx, k *kind[V], where string, args ...any) ([]*V, error) {
	rows, err := t.query("SELECT "+k.cols+" FROM "+k.table+" WHERE "+where, args...)
	if err != nil {
		return nil, unavailable(err)
	}
	defer rows.Close()
	var out []*V
	for rows.Next() {
		v, err := k.scan(rows)
		if err != nil {
			return nil, unavailable(err)
		}
		out = append(out, v)
	}
	return out, unavailable(rows.Err())
}

func upsert[V any](t *sqlTx, k *kind[V], v *V) error {
	_, err := t.exec(k.update, k.args(v)...)
	return err
}

func pubBytes(p *ecdsa.PublicKey) []byte {
	b, _ := p.Bytes()
	return b
}

var (
	sqlUsers = newKind("users", "id, username, created_at, updated_at, activated, last_login_success, last_login_failure",
		func(u *User) []any {
			return []any{u.ID, u.Username, nanos(u.CreatedAt), nanos(u.UpdatedAt), u.Activated,
				nanos(u.LastLoginSuccess), nanos(u.LastLoginFailure)}
		},
		func(s scanner) (*User, error) {
			var u User
			var c, up, ok, failed int64
			err := s.Scan(&u.ID, &u.Username, &c, &up, &u.Activated, &ok, &failed)
			u.CreatedAt, u.UpdatedAt = fromNanos(c), fromNanos(up)
			u.LastLoginSuccess, u.LastLoginFailure = fromNanos(ok), fromNanos(failed)
			return &u, err
		})
	sqlAuths = newKind("authenticators", "id, user_id, key_id, aaid, public_key, sign_counter, name, device_id, type, created_at, deleted",
		func(a *Authenticator) []any {
			return []any{a.ID, a.UserID, a.KeyID, a.AAID, pubBytes(a.PublicKey), int64(a.SignCounter), a.Name, a.DeviceID, a.Type,
				nanos(a.CreatedAt), a.Deleted}
		},
		func(s scanner) (*Authenticator, error) {
			var a Authenticator
			var pub []byte
			var counter, c int64
			if err := s.Scan(&a.ID, &a.UserID, &a.KeyID, &a.AAID, &pub, &counter, &a.Name, &a.DeviceID, &a.Type, &c, &a.Deleted); err != nil {
				return nil, err
			}
			k, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), pub)
			if err != nil {
				return nil, fmt.Errorf("authenticator %s: stored key: %w", a.ID, err)
			}
			a.PublicKey, a.SignCounter, a.CreatedAt = k, uint32(counter), fromNanos(c)
			return &a, nil
		})
	sqlTxs = newKind("transactions", "id, kind, user_id, authenticator_id, message, status, reason, token, created_at, updated_at, expires_at, sweep_at, number, choices",
		func(t *Transaction) []any {
			sweep := t.ExpiresAt
			if t.UpdatedAt.After(sweep) {
				sweep = t.UpdatedAt
			}
			return []any{t.ID, t.Kind, t.UserID, t.AuthenticatorID, t.Message, t.Status, t.Reason, t.Token,
				nanos(t.CreatedAt), nanos(t.UpdatedAt), nanos(t.ExpiresAt), nanos(sweep), t.Number, joinInts(t.Choices)}
		},
		func(s scanner) (*Transaction, error) {
			var t Transaction
			var c, u, e, sw int64
			var choices string
			err := s.Scan(&t.ID, &t.Kind, &t.UserID, &t.AuthenticatorID, &t.Message, &t.Status, &t.Reason, &t.Token, &c, &u, &e, &sw, &t.Number, &choices)
			t.CreatedAt, t.UpdatedAt, t.ExpiresAt = fromNanos(c), fromNanos(u), fromNanos(e)
			if err == nil {
				t.Choices, err = splitInts(choices)
			}
			return &t, err
		})
	sqlTokens = newKind("dispatch_tokens", "token, kind, transaction_id, authenticator_id, expires_at, redeemed",
		func(t *DispatchToken) []any {
			return []any{t.Token, t.Kind, t.TransactionID, t.AuthenticatorID, nanos(t.ExpiresAt), t.Redeemed}
		},
		func(s scanner) (*DispatchToken, error) {
			var t DispatchToken
			var e int64
			err := s.Scan(&t.Token, &t.Kind, &t.TransactionID, &t.AuthenticatorID, &e, &t.Redeemed)
			t.ExpiresAt = fromNanos(e)
			return &t, err
		})
	sqlSessions = newKind("sessions", "server_data, op, challenge, transaction_id, authenticator_id, policy, expires_at",
		func(x *Session) []any {
			return []any{x.ServerData, x.Op, x.Challenge, x.TransactionID, x.AuthenticatorID, strings.Join(x.Policy, ","), nanos(x.ExpiresAt)}
		},
		func(s scanner) (*Session, error) {
			var x Session
			var policy string
			var e int64
			err := s.Scan(&x.ServerData, &x.Op, &x.Challenge, &x.TransactionID, &x.AuthenticatorID, &policy, &e)
			if policy != "" {
				x.Policy = strings.Split(policy, ",")
			}
			x.ExpiresAt = fromNanos(e)
			return &x, err
		})
	sqlInbox = newKind("inbox", "id, authenticator_id, login_request_id, token, transaction_id, kind, payload, notification, message, created_at, expires_at, seq",
		func(i *InboxItem) []any {
			return []any{i.ID, i.AuthenticatorID, i.LoginRequestID, i.Token, i.TransactionID, i.Kind, i.Payload, i.Notification, i.Message,
				nanos(i.CreatedAt), nanos(i.ExpiresAt), i.Seq}
		},
		func(s scanner) (*InboxItem, error) {
			var i InboxItem
			var c, e int64
			err := s.Scan(&i.ID, &i.AuthenticatorID, &i.LoginRequestID, &i.Token, &i.TransactionID, &i.Kind, &i.Payload, &i.Notification,
				&i.Message, &c, &e, &i.Seq)
			i.CreatedAt, i.ExpiresAt = fromNanos(c), fromNanos(e)
			return &i, err
		})
	sqlIntents = newKind("intents", "token, user_id, username, operation, issued_at, expires_at, used, channels",
		func(i *Intent) []any {
			return []any{i.Token, i.UserID, i.Username, i.Operation, nanos(i.IssuedAt), nanos(i.ExpiresAt), i.Used, strings.Join(i.Channels, ",")}
		},
		func(s scanner) (*Intent, error) {
			var i Intent
			var is, e int64
			var ch string
			err := s.Scan(&i.Token, &i.UserID, &i.Username, &i.Operation, &is, &e, &i.Used, &ch)
			i.IssuedAt, i.ExpiresAt = fromNanos(is), fromNanos(e)
			if ch != "" {
				i.Channels = strings.Split(ch, ",")
			}
			return &i, err
		})
	sqlLogins = newKind("login_requests", "id, user_id, identifier, code_challenge, poll_token, device_name, ip, binding_code, status, signature, approved_by, signed_at, issued, last_poll, created_at, updated_at, expires_at",
		func(l *LoginRequest) []any {
			return []any{l.ID, l.UserID, l.Identifier, l.CodeChallenge, l.PollToken, l.DeviceName, l.IP, l.BindingCode, l.Status,
				l.Signature, l.ApprovedBy, l.SignedAt, l.Issued, nanos(l.LastPoll), nanos(l.CreatedAt), nanos(l.UpdatedAt), nanos(l.ExpiresAt)}
		},
		func(s scanner) (*LoginRequest, error) {
			var l LoginRequest
			var lp, c, u, e int64
			err := s.Scan(&l.ID, &l.UserID, &l.Identifier, &l.CodeChallenge, &l.PollToken, &l.DeviceName, &l.IP, &l.BindingCode, &l.Status,
				&l.Signature, &l.ApprovedBy, &l.SignedAt, &l.Issued, &lp, &c, &u, &e)
			l.LastPoll, l.CreatedAt, l.UpdatedAt, l.ExpiresAt = fromNanos(lp), fromNanos(c), fromNanos(u), fromNanos(e)
			return &l, err
		})
	sqlPairings = newKind("pairings", "id, user_id, public_key, key_id, device_name, status, authenticator_id, created_at, expires_at",
		func(p *Pairing) []any {
			return []any{p.ID, p.UserID, p.PublicKey, p.KeyID, p.DeviceName, p.Status, p.AuthenticatorID, nanos(p.CreatedAt), nanos(p.ExpiresAt)}
		},
		func(s scanner) (*Pairing, error) {
			var p Pairing
			var c, e int64
			err := s.Scan(&p.ID, &p.UserID, &p.PublicKey, &p.KeyID, &p.DeviceName, &p.Status, &p.AuthenticatorID, &c, &e)
			p.CreatedAt, p.ExpiresAt = fromNanos(c), fromNanos(e)
			return &p, err
		})
	sqlRefresh = newKind("refresh_tokens", "token, chain_id, user_id, username, used, expires_at",
		func(r *RefreshToken) []any {
			return []any{r.Token, r.ChainID, r.UserID, r.Username, r.Used, nanos(r.ExpiresAt)}
		},
		func(s scanner) (*RefreshToken, error) {
			var r RefreshToken
			var e int64
			err := s.Scan(&r.Token, &r.ChainID, &r.UserID, &r.Username, &r.Used, &e)
			r.ExpiresAt = fromNanos(e)
			return &r, err
		})
	sqlChains = newKind("chains", "id, revoked",
		func(c *TokenChain) []any { return []any{c.ID, c.Revoked} },
		func(s scanner) (*TokenChain, error) {
			var c TokenChain
			err := s.Scan(&c.ID, &c.Revoked)
			return &c, err
		})
)

func (t *sqlTx) User(id string) (*User, error) { return getOne(t, sqlUsers, "id = ?", id) }
func (t *sqlTx) UserByName(n string) (*User, error) {
	if n == "" {
		return nil, nil
	}
	return getOne(t, sqlUsers, "username = ? AND username <> ''", n)
}
func (t *sqlTx) Users() ([]*User, error) {
	return getMany(t, sqlUsers, "1 = 1 ORDER BY created_at, id")
}
func (t *sqlTx) PutUser(u *User) error { return upsert(t, sqlUsers, u) }
func (t *sqlTx) DeleteUser(id string) error {
	_, err := t.exec("DELETE FROM users WHERE id = ?", id)
	return err
}
func (t *sqlTx) Authenticator(id string) (*Authenticator, error) {
	return getOne(t, sqlAuths, "id = ?", id)
}
func (t *sqlTx) AuthenticatorByKeyID(k string) (*Authenticator, error) {
	return getOne(t, sqlAuths, "key_id = ?", k)
}
func (t *sqlTx) UserAuthenticators(userID string) ([]*Authenticator, error) {
	return getMany(t, sqlAuths, "user_id = ? ORDER BY created_at, id", userID)
}
func (t *sqlTx) PutAuthenticator(a *Authenticator) error { return upsert(t, sqlAuths, a) }
func (t *sqlTx) DeleteAuthenticator(id string) error {
	_, err := t.exec("DELETE FROM authenticators WHERE id = ?", id)
	return err
}
func (t *sqlTx) Transaction(id string) (*Transaction, error) {
	return getOne(t, sqlTxs, "id = ?", id)
}
func (t *sqlTx) PendingTransactions(userID, authID string) ([]*Transaction, error) {
	switch {
	case userID != "" && authID != "":
		return getMany(t, sqlTxs, "user_id = ? AND authenticator_id = ? AND status = 'pending' ORDER BY created_at, id", userID, authID)
	case userID != "":
		return getMany(t, sqlTxs, "user_id = ? AND status = 'pending' ORDER BY created_at, id", userID)
	case authID != "":
		return getMany(t, sqlTxs, "authenticator_id = ? AND status = 'pending' ORDER BY created_at, id", authID)
	}
	return nil, nil
}
func (t *sqlTx) PutTransaction(x *Transaction) error { return upsert(t, sqlTxs, x) }
func (t *sqlTx) DispatchToken(tok string) (*DispatchToken, error) {
	return getOne(t, sqlTokens, "token = ?", tok)
}
func (t *sqlTx) PutDispatchToken(x *DispatchToken) error { return upsert(t, sqlTokens, x) }
func (t *sqlTx) Session(sd string) (*Session, error) {
	return getOne(t, sqlSessions, "server_data = ?", sd)
}
func (t *sqlTx) TransactionSessions(txID string) ([]*Session, error) {
	if txID == "" {
		return nil, nil
	}
	return getMany(t, sqlSessions, "transaction_id = ? ORDER BY server_data", txID)
}
func (t *sqlTx) PutSession(x *Session) error { return upsert(t, sqlSessions, x) }
func (t *sqlTx) DeleteSession(sd string) error {
	_, err := t.exec("DELETE FROM sessions WHERE server_data = ?", sd)
	return err
}
func (t *sqlTx) Inbox(aid string) ([]*InboxItem, error) {
	return getMany(t, sqlInbox, "authenticator_id = ? ORDER BY created_at, seq, id", aid)
}
func (t *sqlTx) InboxItems(txID, loginID string) ([]*InboxItem, error) {
	switch {
	case txID != "":
		return getMany(t, sqlInbox, "transaction_id = ? AND transaction_id <> '' ORDER BY created_at, seq, id", txID)
	case loginID != "":
		return getMany(t, sqlInbox, "login_request_id = ? AND login_request_id <> '' ORDER BY created_at, seq, id", loginID)
	}
	return nil, nil
}
func (t *sqlTx) PutInboxItem(i *InboxItem) error {
	if i.Seq == 0 {
		i.Seq = t.seq.Add(1)
	}
	return upsert(t, sqlInbox, i)
}
func (t *sqlTx) DeleteInboxItem(id string) error {
	_, err := t.exec("DELETE FROM inbox WHERE id = ?", id)
	return err
}
func (t *sqlTx) ClearInbox(aid string) error {
	_, err := t.exec("DELETE FROM inbox WHERE authenticator_id = ?", aid)
	return err
}
func (t *sqlTx) Intent(tok string) (*Intent, error) { return getOne(t, sqlIntents, "token = ?", tok) }
func (t *sqlTx) PutIntent(i *Intent) error          { return upsert(t, sqlIntents, i) }
func (t *sqlTx) UseNonce(n string, until time.Time) (bool, error) {
	r, err := t.exec("INSERT INTO nonces (nonce, until) VALUES (?, ?) ON CONFLICT (nonce) DO NOTHING", n, nanos(until))
	if err != nil {
		return false, err
	}
	k, err := r.RowsAffected()
	return k == 1, unavailable(err)
}
func (t *sqlTx) Revoke(jti string, until time.Time) error {
	_, err := t.exec("INSERT INTO revoked (jti, until) VALUES (?, ?) ON CONFLICT (jti) DO UPDATE SET until = excluded.until", jti, nanos(until))
	return err
}
func (t *sqlTx) IsRevoked(jti string) (bool, error) {
	var n int
	err := t.queryRow("SELECT COUNT(*) FROM revoked WHERE jti = ?", jti).Scan(&n)
	return n > 0, unavailable(err)
}
func (t *sqlTx) LoginRequest(id string) (*LoginRequest, error) {
	return getOne(t, sqlLogins, "id = ?", id)
}
func (t *sqlTx) PutLoginRequest(l *LoginRequest) error { return upsert(t, sqlLogins, l) }
func (t *sqlTx) Pairing(id string) (*Pairing, error)   { return getOne(t, sqlPairings, "id = ?", id) }
func (t *sqlTx) PutPairing(p *Pairing) error           { return upsert(t, sqlPairings, p) }
func (t *sqlTx) RefreshToken(tok string) (*RefreshToken, error) {
	return getOne(t, sqlRefresh, "token = ?", tok)
}
func (t *sqlTx) ChainRefreshTokens(chainID string) ([]*RefreshToken, error) {
	return getMany(t, sqlRefresh, "chain_id = ? ORDER BY token", chainID)
}
func (t *sqlTx) PutRefreshToken(r *RefreshToken) error { return upsert(t, sqlRefresh, r) }
func (t *sqlTx) Chain(id string) (*TokenChain, error)  { return getOne(t, sqlChains, "id = ?", id) }
func (t *sqlTx) PutChain(c *TokenChain) error          { return upsert(t, sqlChains, c) }
func (t *sqlTx) AddChainToken(chainID, jti string, until time.Time) error {
	_, err := t.exec("INSERT INTO chain_tokens (jti, chain_id, until) VALUES (?, ?, ?) ON CONFLICT (jti) DO UPDATE SET chain_id = excluded.chain_id, until = excluded.until",
		jti, chainID, nanos(until))
	return err
}
func (t *sqlTx) ChainTokens(chainID string) (map[string]time.Time, error) {
	rows, err := t.query("SELECT jti, until FROM chain_tokens WHERE chain_id = ?", chainID)
	if err != nil {
		return nil, unavailable(err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var jti string
		var until int64
		if err := rows.Scan(&jti, &until); err != nil {
			return nil, unavailable(err)
		}
		out[jti] = fromNanos(until)
	}
	return out, unavailable(rows.Err())
}
func (t *sqlTx) Meta(name string) ([]byte, error) {
	var v []byte
	err := t.queryRow("SELECT value FROM meta WHERE name = ?", name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return v, unavailable(err)
}
func (t *sqlTx) PutMeta(name string, v []byte) error {
	_, err := t.exec("INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value", name, v)
	return err
}

// sweeps are the deletes of Sweep: the first argument is now, the second
// the retention cutoff. Each uses its table's expiry index.
var sweeps = []struct {
	query    string
	retained bool
}{
	{"DELETE FROM transactions WHERE sweep_at < ?", true},
	{"DELETE FROM dispatch_tokens WHERE expires_at < ?", true},
	{"DELETE FROM sessions WHERE expires_at < ?", false},
	{"DELETE FROM inbox WHERE expires_at < ?", true},
	{"DELETE FROM intents WHERE expires_at < ?", true},
	{"DELETE FROM nonces WHERE until < ?", false},
	{"DELETE FROM revoked WHERE until < ?", false},
	{"DELETE FROM login_requests WHERE expires_at < ?", true},
	{"DELETE FROM pairings WHERE expires_at < ?", true},
	{"DELETE FROM refresh_tokens WHERE expires_at < ?", false},
	{"DELETE FROM chain_tokens WHERE until < ?", false},
	{"DELETE FROM events WHERE at < ?", true},
}

func (t *sqlTx) Sweep(now, cutoff time.Time) (int, error) {
	total := 0
	for _, s := range sweeps {
		limit := now
		if s.retained {
			limit = cutoff
		}
		r, err := t.exec(s.query, nanos(limit))
		if err != nil {
			return total, err
		}
		n, _ := r.RowsAffected()
		total += int(n)
	}
	return total, nil
}

func (t *sqlTx) Wake(keys ...string) { t.wake = append(t.wake, keys...) }

var sqlEvents = newKind("events", "id, at, type, user_id, username, authenticator_id, operation_id, status, reason, data",
	func(e *adminapi.Event) []any {
		data := ""
		if len(e.Data) > 0 {
			b, _ := json.Marshal(e.Data)
			data = string(b)
		}
		return []any{e.ID, nanos(e.Time), e.Type, e.UserID, e.Username, e.AuthenticatorID, e.OperationID, e.Status, e.Reason, data}
	},
	func(s scanner) (*adminapi.Event, error) {
		var e adminapi.Event
		var at int64
		var data string
		if err := s.Scan(&e.ID, &at, &e.Type, &e.UserID, &e.Username, &e.AuthenticatorID, &e.OperationID, &e.Status, &e.Reason, &data); err != nil {
			return nil, err
		}
		e.Time = fromNanos(at)
		if data != "" {
			if err := json.Unmarshal([]byte(data), &e.Data); err != nil {
				return nil, fmt.Errorf("event %d: stored data: %w", e.ID, err)
			}
		}
		return &e, nil
	})

func (t *sqlTx) AddEvent(e *adminapi.Event) error {
	if !t.write {
		return errReadOnly
	}
	c := *e
	t.events = append(t.events, &c)
	return nil
}

// flushEvents numbers the logged events from event_seq and writes them.
// The stores run it last before the commit: on PostgreSQL the row lock on
// event_seq is then held only for the commit itself.
func (t *sqlTx) flushEvents() error {
	if len(t.events) == 0 {
		return nil
	}
	var last int64
	err := t.queryRow("UPDATE event_seq SET last = last + ? RETURNING last", len(t.events)).Scan(&last)
	if err != nil {
		return unavailable(err)
	}
	next := last - int64(len(t.events))
	for _, e := range t.events {
		next++
		e.ID = next
		if _, err := t.exec(sqlEvents.insert, sqlEvents.args(e)...); err != nil {
			return err
		}
	}
	t.wake = append(t.wake, eventsWaitKey)
	return nil
}

func (t *sqlTx) Events(since int64, limit int) ([]*adminapi.Event, error) {
	if limit < 0 {
		return getMany(t, sqlEvents, "id > ? ORDER BY id", since)
	}
	return getMany(t, sqlEvents, "id > ? ORDER BY id LIMIT ?", since, limit)
}

func (t *sqlTx) LastEventID() (int64, error) {
	var last int64
	err := t.queryRow("SELECT last FROM event_seq").Scan(&last)
	return last, unavailable(err)
}

func (t *sqlTx) Transactions() ([]*Transaction, error) {
	return getMany(t, sqlTxs, "1 = 1 ORDER BY created_at, id")
}
func (t *sqlTx) LoginRequests() ([]*LoginRequest, error) {
	return getMany(t, sqlLogins, "1 = 1 ORDER BY created_at, id")
}
func (t *sqlTx) Pairings() ([]*Pairing, error) {
	return getMany(t, sqlPairings, "1 = 1 ORDER BY created_at, id")
}

func (t *sqlTx) Counts() (Counts, error) {
	var c Counts
	err := t.tx.QueryRowContext(t.ctx, `SELECT
		(SELECT COUNT(*) FROM users),
		(SELECT COUNT(*) FROM authenticators WHERE NOT deleted),
		(SELECT COUNT(*) FROM authenticators WHERE deleted),
		(SELECT COUNT(*) FROM transactions),
		(SELECT COUNT(*) FROM transactions WHERE status = 'pending'),
		(SELECT COUNT(*) FROM login_requests),
		(SELECT COUNT(*) FROM pairings),
		(SELECT COUNT(*) FROM inbox),
		(SELECT COUNT(*) FROM refresh_tokens)`).Scan(&c.Users, &c.Authenticators, &c.DeletedAuthenticators,
		&c.Transactions, &c.PendingTransactions, &c.LoginRequests, &c.Pairings, &c.Inbox, &c.RefreshTokens)
	return c, unavailable(err)
}

// resetTables are the tables Reset empties: all but meta and the event log.
var resetTables = []string{"users", "authenticators", "transactions", "dispatch_tokens", "sessions", "inbox", "intents",
	"nonces", "revoked", "login_requests", "pairings", "refresh_tokens", "chains", "chain_tokens"}

func (t *sqlTx) Reset() error {
	for _, table := range resetTables {
		if _, err := t.exec("DELETE FROM " + table); err != nil {
			return err
		}
	}
	return nil
}

// joinInts and splitInts keep a short list of numbers in a TEXT column.
func joinInts(ns []int) string {
	parts := make([]string, len(ns))
	for i, n := range ns {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ",")
}

func splitInts(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	var out []int
	for _, p := range strings.Split(s, ",") {
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil, fmt.Errorf("stored number list %q: %w", s, err)
		}
		out = append(out, n)
	}
	return out, nil
}

func (t *sqlTx) TransactionTokens(txID string) ([]*DispatchToken, error) {
	if txID == "" {
		return nil, nil
	}
	return getMany(t, sqlTokens, "transaction_id = ? AND transaction_id <> '' ORDER BY token", txID)
}

func (t *sqlTx) ExpiredPending(now time.Time, limit int) ([]*Transaction, error) {
	return getMany(t, sqlTxs, "status = 'pending' AND expires_at <= ? ORDER BY expires_at, id LIMIT ?", nanos(now), limit)
}
