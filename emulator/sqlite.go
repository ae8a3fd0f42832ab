package emulator

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	_ "modernc.org/sqlite" // the database/sql driver "sqlite", pure Go
)

// SQLiteStore keeps the state in a SQLite file (modernc.org/sqlite, no
// cgo): one table per kind, in WAL mode, every transaction a SQLite
// transaction, so an emulator restarted with the same file loses nothing it
// acknowledged. Writes go through one connection (SQLite has one writer),
// group-committed (see Update); reads run on their own connections beside
// it.
type SQLiteStore struct {
	path   string
	writer *sql.DB
	reader *sql.DB
	// wstmts and rstmts keep the prepared statements of each.
	wstmts, rstmts *stmtCache
	seq            atomic.Int64
	subs           subscribers
	// writes feeds writeLoop, which owns the writer; stop ends it and
	// stopped says it ended.
	writes        chan *writeReq
	stop, stopped chan struct{}
	closeOnce     sync.Once
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
	s.writes, s.stop, s.stopped = make(chan *writeReq), make(chan struct{}), make(chan struct{})
	go s.writeLoop()
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
//
// Updates are group-committed: one goroutine owns the writer connection
// and, when several Updates wait, runs them one after the other inside one
// SQLite transaction, each in a savepoint of its own (a failed fn is rolled
// back to its savepoint, alone), and commits them together: one fsync of
// the WAL for all. Each sees the writes of those before it, as if run one
// by one; none returns before the commit is on disk; if the commit fails,
// none of them happened and each gets ErrUnavailable. A lone Update is a
// plain transaction, without savepoint and without waiting for company.
func (s *SQLiteStore) Update(ctx context.Context, fn func(Tx) error) error {
	r := &writeReq{ctx: context.WithoutCancel(ctx), fn: fn, done: make(chan writeResult, 1)}
	select {
	case s.writes <- r:
	case <-s.stop:
		return unavailable(errClosed)
	}
	res := <-r.done
	if res.panicked {
		panic(res.panicValue)
	}
	return res.err
}

var errClosed = errors.New("the store is closed")

// maxGroup bounds how many Updates one commit carries.
const maxGroup = 64

// writeReq is an Update waiting for the writer.
type writeReq struct {
	ctx  context.Context
	fn   func(Tx) error
	done chan writeResult
}

type writeResult struct {
	err        error
	panicked   bool
	panicValue any
}

// writeLoop runs the Updates, a group at a time, until Close.
func (s *SQLiteStore) writeLoop() {
	defer close(s.stopped)
	for {
		var group []*writeReq
		select {
		case r := <-s.writes:
			group = append(group, r)
		case <-s.stop:
			return
		}
	more:
		for len(group) < maxGroup {
			select {
			case r := <-s.writes:
				group = append(group, r)
			default:
				break more
			}
		}
		s.commitGroup(group)
	}
}

// ran is one Update of a group, run.
type ran struct {
	t      *sqlTx
	res    writeResult
	commit bool // its writes stay (then res.err is returned after the commit)
}

// run calls r's fn on t, turning a panic into a result.
func (r *writeReq) run(t *sqlTx) (commit bool, res writeResult) {
	defer func() {
		if v := recover(); v != nil {
			commit, res = false, writeResult{panicked: true, panicValue: v}
		}
	}()
	commit, err := keeps(r.fn(t))
	if commit {
		if ferr := t.flushEvents(); ferr != nil {
			return false, writeResult{err: ferr}
		}
	}
	return commit, writeResult{err: err}
}

func (s *SQLiteStore) commitGroup(group []*writeReq) {
	fail := func(err error) {
		for _, r := range group {
			r.done <- writeResult{err: unavailable(err)}
		}
	}
	tx, err := s.writer.BeginTx(context.Background(), nil)
	if err != nil {
		fail(err)
		return
	}
	savepoints := len(group) > 1
	runs := make([]ran, len(group))
	for i, r := range group {
		t := &sqlTx{ctx: r.ctx, tx: tx, d: sqliteDialect, write: true, seq: &s.seq, cache: s.wstmts}
		runs[i].t = t
		if savepoints {
			if _, err := t.exec("SAVEPOINT w"); err != nil {
				_ = tx.Rollback()
				fail(err)
				return
			}
		}
		runs[i].commit, runs[i].res = r.run(t)
		switch {
		case !savepoints && !runs[i].commit:
			_ = tx.Rollback()
			r.done <- runs[i].res
			t.done()
			return
		case !runs[i].commit && errors.Is(runs[i].res.err, ErrUnavailable):
			// The database failed under it: SQLite may have rolled the
			// whole transaction back already, so no savepoint can be
			// trusted. None of the group happened; each may retry.
			_ = tx.Rollback()
			fail(runs[i].res.err)
			return
		case !runs[i].commit:
			_, err = t.exec("ROLLBACK TO w")
			if err == nil {
				_, err = t.exec("RELEASE w")
			}
		default:
			if savepoints {
				_, err = t.exec("RELEASE w")
			}
		}
		if err != nil {
			_ = tx.Rollback()
			fail(err)
			return
		}
	}
	cerr := tx.Commit()
	for i, r := range group {
		res := runs[i].res
		if runs[i].commit {
			if cerr != nil {
				res = writeResult{err: unavailable(cerr)}
			} else {
				s.subs.publish(runs[i].t.wake)
			}
		}
		r.done <- res
	}
	for _, ru := range runs {
		ru.t.done() // the writer is free again: prepare what ran unprepared
	}
}

// Subscribe calls fn with the keys committed transactions wake.
func (s *SQLiteStore) Subscribe(fn func(string)) func() { return s.subs.add(fn) }

// Path is the database file.
func (s *SQLiteStore) Path() string { return s.path }

// Close closes the database.
func (s *SQLiteStore) Close() error {
	s.closeOnce.Do(func() {
		if s.stop != nil {
			close(s.stop)
			<-s.stopped
		}
	})
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
