package emulator

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // the database/sql driver "pgx"
)

// PostgresStore keeps the state in PostgreSQL (github.com/jackc/pgx/v5), in
// the same tables as SQLiteStore. Several emulators on one database serve
// as one cloud: every Update is a SERIALIZABLE transaction (retried when it
// loses a race to a concurrent one, so a single-use token redeemed on two
// replicas at once is redeemed once), every View one REPEATABLE READ
// snapshot, and the long-poll keys a transaction wakes are sent with
// NOTIFY, which PostgreSQL delivers to every replica when, and only if, the
// transaction commits.
type PostgresStore struct {
	db   *sql.DB
	dsn  string
	seq  atomic.Int64
	subs subscribers

	stop      context.CancelFunc
	listening sync.WaitGroup
	ready     chan struct{} // closed once LISTEN first runs
	readyOnce sync.Once
}

// notifyChannel is the channel replicas LISTEN on.
const notifyChannel = "authphone"

// wakeAllKey, published when the listener reconnects, wakes every
// long-poll: a notification may have been missed meanwhile.
const wakeAllKey = "*"

// retryFor bounds how long Update keeps running a transaction that loses
// races to concurrent ones (each attempt after a random pause that grows
// to at most maxPause); past it the client gets a 503 to retry later.
const (
	retryFor = 10 * time.Second
	maxPause = 50 * time.Millisecond
)

// IsPostgresURL reports whether a --db value names a PostgreSQL database.
func IsPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// OpenPostgres connects to the database at dsn (a postgres:// URL),
// creates or migrates the tables (once, under an advisory lock, when
// replicas start together) and starts listening for the other replicas'
// wake-ups.
func OpenPostgres(ctx context.Context, dsn string) (*PostgresStore, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("the --db URL is not a PostgreSQL URL such as postgres://user@host/db: %w", err)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", redact(cfg), err)
	}
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to PostgreSQL at %s: %w", redact(cfg), err)
	}
	if err := migrate(ctx, db, postgresDialect, `SELECT pg_advisory_xact_lock(727165)`); err != nil {
		db.Close()
		return nil, fmt.Errorf("prepare the tables in %s: %w", redact(cfg), err)
	}
	s := &PostgresStore{db: db, dsn: dsn, ready: make(chan struct{})}
	var seq sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT MAX(seq) FROM inbox`).Scan(&seq); err != nil {
		db.Close()
		return nil, fmt.Errorf("read %s: %w", redact(cfg), err)
	}
	s.seq.Store(seq.Int64)
	lctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	s.listening.Add(1)
	go s.listen(lctx)
	select {
	case <-s.ready:
	case <-ctx.Done():
		s.Close()
		return nil, ctx.Err()
	case <-time.After(10 * time.Second):
		s.Close()
		return nil, fmt.Errorf("LISTEN on %s did not start within 10s", redact(cfg))
	}
	return s, nil
}

// redact names a database without its password.
func redact(c *pgx.ConnConfig) string {
	return fmt.Sprintf("%s@%s:%d/%s", c.User, c.Host, c.Port, c.Database)
}

// listen relays notifications to the subscribers, reconnecting when the
// connection drops.
func (s *PostgresStore) listen(ctx context.Context) {
	defer s.listening.Done()
	backoff := 50 * time.Millisecond
	first := true
	for ctx.Err() == nil {
		conn, err := pgx.Connect(ctx, s.dsn)
		if err == nil {
			if _, err = conn.Exec(ctx, "LISTEN "+notifyChannel); err == nil {
				s.readyOnce.Do(func() { close(s.ready) })
				if !first {
					s.subs.publish([]string{wakeAllKey})
				}
				first = false
				backoff = 50 * time.Millisecond
				for {
					n, werr := conn.WaitForNotification(ctx)
					if werr != nil {
						break
					}
					s.subs.publish([]string{n.Payload})
				}
			}
			conn.Close(context.Background())
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// View runs fn in a read-only REPEATABLE READ transaction: one snapshot.
func (s *PostgresStore) View(ctx context.Context, fn func(Tx) error) error {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return unavailable(err)
	}
	defer tx.Rollback()
	return fn(&sqlTx{ctx: ctx, tx: tx, d: postgresDialect, seq: &s.seq})
}

// Update runs fn in a SERIALIZABLE transaction and commits it, running it
// again when it lost a race to a concurrent transaction.
func (s *PostgresStore) Update(ctx context.Context, fn func(Tx) error) error {
	ctx = context.WithoutCancel(ctx)
	var err error
	start := time.Now()
	for attempt := 0; ; attempt++ {
		var wake []string
		var committed bool
		wake, committed, err = s.attempt(ctx, fn)
		if committed {
			s.subs.publish(wake)
			return err
		}
		if !retryable(err) {
			return err
		}
		if time.Since(start) > retryFor {
			return unavailable(fmt.Errorf("gave up after %d conflicting attempts in %s: %w", attempt+1, retryFor, err))
		}
		pause := min(time.Millisecond<<min(attempt, 6), maxPause)
		time.Sleep(time.Duration(rand.Int64N(int64(pause))) + time.Millisecond)
	}
}

// attempt runs fn once; committed reports whether its writes were kept
// (err is then fn's own, from commitWith).
func (s *PostgresStore) attempt(ctx context.Context, fn func(Tx) error) (wake []string, committed bool, err error) {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelSerializable})
	if err != nil {
		return nil, false, unavailable(err)
	}
	t := &sqlTx{ctx: ctx, tx: tx, d: postgresDialect, write: true, seq: &s.seq}
	commit, ferr := keeps(fn(t))
	if !commit {
		_ = tx.Rollback()
		return nil, false, ferr
	}
	if err := t.flushEvents(); err != nil {
		_ = tx.Rollback()
		return nil, false, err
	}
	for _, k := range t.wake {
		if _, err := tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, notifyChannel, k); err != nil {
			_ = tx.Rollback()
			return nil, false, unavailable(err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, false, unavailable(err)
	}
	return t.wake, true, ferr
}

// retryable reports a serialization failure, a deadlock or a unique
// violation from a concurrent insert: running the transaction again reads
// what the winner wrote.
func retryable(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "40001", "40P01", "23505":
		return true
	}
	return false
}

// Subscribe calls fn with the keys committed transactions wake, on this
// replica and on every other one.
func (s *PostgresStore) Subscribe(fn func(string)) func() { return s.subs.add(fn) }

// Close stops listening and closes the connections.
func (s *PostgresStore) Close() error {
	s.stop()
	s.listening.Wait()
	return s.db.Close()
}
