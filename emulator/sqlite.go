package emulator

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"

	_ "modernc.org/sqlite" // the database/sql driver "sqlite", pure Go
)

// SQLiteStore keeps the state in a SQLite file (modernc.org/sqlite, no
// cgo): one table per kind, in WAL mode, every transaction a SQLite
// transaction, so an emulator restarted with the same file loses nothing it
// acknowledged. Writes go through one connection (SQLite has one writer);
// reads run on their own connections beside it.
type SQLiteStore struct {
	path   string
	writer *sql.DB
	reader *sql.DB
	// wstmts and rstmts keep the prepared statements of each.
	wstmts, rstmts *stmtCache
	seq            atomic.Int64
	subs           subscribers
}

// SQLiteOption configures OpenSQLite.
type SQLiteOption func(*sqliteConfig)

type sqliteConfig struct{ sync string }

// WithSQLiteSync sets SQLite's synchronous pragma: "full" (the default:
// a commit survives a power loss) or "normal" (faster; a commit survives a
// crash of the process, not of the machine).
func WithSQLiteSync(mode string) SQLiteOption { return func(c *sqliteConfig) { c.sync = mode } }

// ErrBadSync is returned for a synchronous mode other than full or normal.
var ErrBadSync = errors.New(`the sync mode must be "full" or "normal"`)

// OpenSQLite opens (or creates) the store at path. Every file it creates
// (the database, its -wal and -shm) is readable by the owner only from its
// first byte: they hold the signing keys and the access key.
func OpenSQLite(path string, opts ...SQLiteOption) (*SQLiteStore, error) {
	cfg := sqliteConfig{sync: "full"}
	for _, o := range opts {
		o(&cfg)
	}
	cfg.sync = strings.ToLower(cfg.sync)
	if cfg.sync != "full" && cfg.sync != "normal" {
		return nil, fmt.Errorf("%w, not %q", ErrBadSync, cfg.sync)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("database path %s: %w", path, err)
	}
	// SQLite gives the -wal and -shm files the database file's mode; the
	// umask covers the moment each is created.
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	// A file made by someone else with a looser mode is tightened: SQLite
	// copies it onto the -wal and -shm files.
	err = f.Chmod(0o600)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("make %s readable by its owner only: %w", path, err)
	}
	s := &SQLiteStore{path: abs}
	base := sqliteURI(abs) + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(" + cfg.sync + ")" +
		"&_pragma=foreign_keys(0)"
	if s.writer, err = sql.Open("sqlite", base+"&_txlock=immediate"); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	s.writer.SetMaxOpenConns(1)
	s.writer.SetConnMaxLifetime(0)
	s.writer.SetMaxIdleConns(1)
	ctx := context.Background()
	if err := migrate(ctx, s.writer, sqliteDialect, ""); err != nil {
		s.writer.Close()
		if errors.Is(err, ErrSchemaTooNew) {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return nil, fmt.Errorf("%s is not a usable SQLite database (%v); move it aside to start afresh", path, err)
	}
	if s.reader, err = sql.Open("sqlite", base+"&_pragma=query_only(1)"); err != nil {
		s.writer.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	s.wstmts, s.rstmts = newStmtCache(s.writer), newStmtCache(s.reader)
	s.reader.SetMaxOpenConns(4)
	s.reader.SetMaxIdleConns(4)
	var seq sql.NullInt64
	if err := s.writer.QueryRowContext(ctx, `SELECT MAX(seq) FROM inbox`).Scan(&seq); err != nil {
		s.Close()
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	s.seq.Store(seq.Int64)
	return s, nil
}

// sqliteURI makes a file: URI of an absolute path, escaping every byte
// that is not plainly safe (so # ? % and spaces in a name stay in it).
func sqliteURI(abs string) string {
	var b strings.Builder
	b.WriteString("file:")
	for i := 0; i < len(abs); i++ {
		c := abs[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.IndexByte("/-._~", c) >= 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// View runs fn in a read transaction: one consistent snapshot.
func (s *SQLiteStore) View(ctx context.Context, fn func(Tx) error) error {
	tx, err := s.reader.BeginTx(ctx, nil)
	if err != nil {
		return unavailable(err)
	}
	t := &sqlTx{ctx: ctx, tx: tx, d: sqliteDialect, seq: &s.seq, cache: s.rstmts}
	err = fn(t)
	_ = tx.Rollback()
	t.done()
	return err
}

// Update runs fn in a write transaction and commits it. The transaction
// runs to its end even if the request is cancelled: a change the cloud
// began it finishes or undoes, never half does.
func (s *SQLiteStore) Update(ctx context.Context, fn func(Tx) error) error {
	ctx = context.WithoutCancel(ctx)
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return unavailable(err)
	}
	t := &sqlTx{ctx: ctx, tx: tx, d: sqliteDialect, write: true, seq: &s.seq, cache: s.wstmts}
	defer t.done()
	commit, err := keeps(fn(t))
	if !commit {
		_ = tx.Rollback()
		return err
	}
	if ferr := t.flushEvents(); ferr != nil {
		_ = tx.Rollback()
		return ferr
	}
	if cerr := tx.Commit(); cerr != nil {
		return unavailable(cerr)
	}
	s.subs.publish(t.wake)
	return err
}

// Subscribe calls fn with the keys committed transactions wake.
func (s *SQLiteStore) Subscribe(fn func(string)) func() { return s.subs.add(fn) }

// Path is the database file.
func (s *SQLiteStore) Path() string { return s.path }

// Close closes the database.
func (s *SQLiteStore) Close() error {
	var errs []error
	for _, c := range []*stmtCache{s.rstmts, s.wstmts} {
		if c != nil {
			errs = append(errs, c.close())
		}
	}
	if s.reader != nil {
		errs = append(errs, s.reader.Close())
	}
	return errors.Join(append(errs, s.writer.Close())...)
}
