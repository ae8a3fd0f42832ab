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
	"syscall"

	"modernc.org/sqlite" // the database/sql driver "sqlite", pure Go
)

// SQLiteStore keeps the state in a SQLite file (modernc.org/sqlite, no
// cgo): one table per kind with real columns and indexes, in WAL mode.
//
// The emulator is the file's only user (OpenSQLite takes a lock on it), so
// the store also keeps every row in memory, in a MemoryStore with its
// indexes: reads never touch SQLite, and a transaction runs against memory
// under the store's write lock. Before that lock is released, what the
// transaction changed (the rows written and deleted, in order, and the
// events logged) is written to SQLite in one SQLite transaction and
// committed, with synchronous=FULL an fdatasync of the WAL (syncWAL).
// Only then can anyone see the change; if the commit fails the change is
// undone in memory too and Update returns ErrUnavailable. Updates that
// queue meanwhile commit together (a group commit, see Update). Opening the file
// loads every row back, so an emulator restarted on it loses nothing it
// acknowledged.
type SQLiteStore struct {
	path string
	// db is the one connection to the file; jw the journal's writer on
	// it (its prepared statements), for the driver connection jconn.
	db    *sql.DB
	jw    *journalWriter
	jconn any
	mem   *MemoryStore
	// lock is the database file, open and flock'ed while the store is.
	lock      *os.File
	closeOnce sync.Once
	// full: synchronous=FULL, the store's own (see syncWAL, and
	// changeSet.mustSync for what waits); the connection itself is always
	// on NORMAL.
	full bool
	// wal is the database's -wal file, opened when a commit first syncs
	// it (see syncWAL); syncFile makes a file's writes durable
	// (fdatasync; tests replace it).
	wal      *os.File
	syncFile func(*os.File) error
	// writeFault, when not nil (tests), is asked before each transaction's
	// changes are written; an error fails the group's SQLite transaction
	// as a failed statement would.
	writeFault func(*changeSet) error
	// walPath is SQLite's -wal file: beside the database file as SQLite
	// names it (a symlinked --db resolved), not beside the path given.
	walPath string
	// broken, once a sync failed, is why the store takes no more writes.
	broken error

	// gmu guards the group commit (see Update): queue are the Updates
	// waiting for the next group, leading whether one is running (its
	// leader hands the queue on as the next group once it is done).
	gmu     sync.Mutex
	queue   []*groupedUpdate
	leading bool
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

// ErrInUse is returned when another store (another emulator) has the
// database open.
var ErrInUse = errors.New("another emulator is using the database")

// OpenSQLite opens (or creates) the store at path and loads it. Every file
// it creates (the database and its -wal; with locking_mode=EXCLUSIVE there
// is no -shm) is readable by the owner only from its first byte: they hold the signing keys and the access key.
// One store at a time may have a file open: a second gets ErrInUse.
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
	// SQLite gives the -wal file the database file's mode; the
	// umask covers the moment each is created.
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	// A file made by someone else with a looser mode is tightened: SQLite
	// copies it onto the -wal file.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, fmt.Errorf("make %s readable by its owner only: %w", path, err)
	}
	// The rows are kept in memory: a second writer would go unseen. flock
	// is apart from the POSIX locks SQLite takes, and the descriptor stays
	// open until Close (closing another descriptor of the file would drop
	// SQLite's own locks).
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w: stop it, or give this one another --db", path, ErrInUse)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// SQLite's own syncs (a checkpoint's, a new WAL header's) use
	// fdatasync, as SQLite does wherever its configure script finds it
	// (every Linux build), and so do the store's syncs of a commit
	// (syncWAL): as durable as fsync, without also flushing the file's
	// timestamps through the file system's journal. Where there is none,
	// fsync stays.
	_, _ = sqlite.Fdatasync(true)
	s := &SQLiteStore{path: abs, lock: f, mem: NewMemoryStore(), full: cfg.sync == "full", syncFile: fdatasync}
	// locking_mode=EXCLUSIVE (before WAL is on): the one connection holds
	// the file's locks from its first transaction to Close, so a
	// transaction takes no fcntl locks and the WAL's index lives in the
	// process's memory, not in a shared -shm file; nobody else may use the
	// file anyway (the flock above). synchronous=NORMAL either way: with
	// full the store syncs the WAL itself (syncWAL). The page cache stays
	// SQLite's 2 MiB: a larger one reads fewer pages back through the OS
	// but costs as much CPU as it saves (ARCHITECTURE.md, issue 9).
	dsn := sqliteURI(abs) + "?_pragma=busy_timeout(10000)&_pragma=locking_mode(EXCLUSIVE)&_pragma=journal_mode(WAL)&_pragma=synchronous(normal)" +
		"&_pragma=foreign_keys(0)&_txlock=immediate"
	if s.db, err = sql.Open("sqlite", dsn); err != nil {
		f.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	s.db.SetMaxOpenConns(1)
	s.db.SetConnMaxLifetime(0)
	s.db.SetMaxIdleConns(1)
	ctx := context.Background()
	if err := migrate(ctx, s.db, sqliteDialect, ""); err != nil {
		s.Close()
		if errors.Is(err, ErrSchemaTooNew) {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return nil, fmt.Errorf("%s is not a usable SQLite database (%v); move it aside to start afresh", path, err)
	}
	// The -wal the store syncs is the one SQLite writes: beside the file
	// SQLite opened, which is the target when the path is a symlink.
	var main string
	if err := s.db.QueryRowContext(ctx, "SELECT file FROM pragma_database_list WHERE name = 'main'").Scan(&main); err != nil || main == "" {
		s.Close()
		return nil, fmt.Errorf("%s: SQLite does not say which file it opened (%v)", path, err)
	}
	s.walPath = main + "-wal"
	if err := s.load(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	s.mem.journal = s.write
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

// View runs fn on the rows in memory: what the last committed
// transaction left.
func (s *SQLiteStore) View(ctx context.Context, fn func(Tx) error) error { return s.mem.View(ctx, fn) }

// Update runs fn and commits what it wrote to the file before anyone sees
// it (see SQLiteStore). Updates run one at a time; the commit happens even
// if the request is cancelled: a change the cloud began it finishes or
// undoes, never half does.
//
// Updates that arrive while another's commit is being written (or synced)
// wait, and then run together as a group (runGroup): one after the other
// on memory under the write lock, as they would have, and then their
// changes go to the file in one SQLite transaction with at most one sync.
// Nobody can read any of them before that sync (the lock is held until
// then), and if the commit or the sync fails every Update of the group is
// undone and fails with ErrUnavailable: the file holds all of them or
// none, and so does memory. An Update alone is a group of one.
func (s *SQLiteStore) Update(ctx context.Context, fn func(Tx) error) error {
	r := &groupedUpdate{ctx: ctx, fn: fn, wake: make(chan bool, 1)}
	s.gmu.Lock()
	s.queue = append(s.queue, r)
	if s.leading {
		s.gmu.Unlock()
		if lead := <-r.wake; !lead {
			return r.result()
		}
		s.gmu.Lock() // r leads the next group, with r in it
	}
	s.leading = true
	queue := s.queue
	group := queue[:min(len(queue), maxGroup)]
	s.queue = nil
	if len(queue) > len(group) {
		s.queue = append(s.queue, queue[len(group):]...)
	}
	s.gmu.Unlock()
	done := s.runGroup(group)
	s.gmu.Lock()
	if len(s.queue) > 0 {
		// The first that waited leads the next group (which may start
		// now: this one is committed); the others stay queued for it.
		s.queue[0].wake <- true
	} else {
		s.leading = false
	}
	s.gmu.Unlock()
	// The wake-ups of what committed, then the results, as an Update on
	// its own would: its keys are published before it returns, and a
	// subscriber may run an Update of its own (it would wait for this
	// group forever if the group were not handed on first).
	for _, tx := range done {
		s.mem.subs.publish(tx.wake)
		tx.free()
	}
	for _, m := range group {
		if m != r {
			m.wake <- false
		}
	}
	return r.result()
}

// maxGroup bounds a group: the first of a group waits for every other's
// function and writes, and readers for the whole group.
const maxGroup = 128

// groupedUpdate is one Update waiting for, or in, a group (see Update).
type groupedUpdate struct {
	ctx context.Context
	fn  func(Tx) error
	err error
	// panicked is what fn panicked with, raised again by result on the
	// Update's own goroutine (the group runs on its leader's).
	panicked any
	// wake is sent false once the Update has run (err is its result),
	// or true when it is to lead the next group.
	wake chan bool
}

// errPanicked is the error of an Update whose function panicked.
var errPanicked = errors.New("the transaction's function panicked")

// run runs the Update's function on tx; a panic is kept (panicked) and
// ends it as a failure, so the group goes on.
func (r *groupedUpdate) run(tx Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			r.panicked, err = p, errPanicked
		}
	}()
	return r.fn(tx)
}

// result is the Update's error, or its function's panic raised again.
func (r *groupedUpdate) result() error {
	if r.panicked != nil {
		panic(r.panicked)
	}
	return r.err
}

var errClosed = errors.New("the store is closed")

// Subscribe calls fn with the keys committed transactions wake.
func (s *SQLiteStore) Subscribe(fn func(string)) func() { return s.mem.Subscribe(fn) }

// Path is the database file.
func (s *SQLiteStore) Path() string { return s.path }

// Close waits for the transaction running, if any, and closes the file.
func (s *SQLiteStore) Close() error {
	var errs []error
	s.closeOnce.Do(func() {
		s.mem.mu.Lock()
		s.mem.closed = true
		s.mem.mu.Unlock()
		if s.jw != nil {
			if conn, err := s.db.Conn(context.Background()); err != nil {
				errs = append(errs, err)
			} else {
				errs = append(errs, conn.Raw(func(dc any) error {
					if dc != s.jconn {
						return nil // prepared on a connection gone
					}
					return s.jw.close()
				}), conn.Close())
			}
		}
		if s.db != nil {
			errs = append(errs, s.db.Close())
		}
		if s.wal != nil {
			errs = append(errs, s.wal.Close())
		}
		errs = append(errs, s.lock.Close())
	})
	return errors.Join(errs...)
}

// sqliteSteps are the SQLite store's own migration steps.
var sqliteSteps = map[int]func(context.Context, *sql.Tx) error{8: sqliteOneTree}

// sqliteOneTree (schema version 8) rebuilds every table so that a row
// write changes as few pages as it can, each of which is a WAL frame of
// the commit (written, checksummed and synced):
//   - a table with a text primary key becomes WITHOUT ROWID: its rows are
//     kept in the key's B-tree, not in a rowid table beside a unique index
//     on the key; events, keyed by a number, has its key as the rowid
//     (INTEGER PRIMARY KEY, as BIGINT before). The columns and keys stay as
//     they were, and as they are on PostgreSQL;
//   - the secondary indexes are not made again. The store reads the file
//     only when it opens, every row of every table (the lookups by
//     username, keyID, user, inbox… are the memory store's indexes), so an
//     index there is only written, never read: the indexes were about 60%
//     of the pages an approval's commits wrote (99 pwrite calls to the WAL
//     per approval with them, 38 without). PostgreSQL, which reads by them,
//     keeps them. A CREATE INDEX in a later migration is for PostgreSQL
//     only (see migrations).
func sqliteOneTree(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT name, sql FROM sqlite_master WHERE type = 'table'
		AND name NOT IN ('schema_version', 'event_seq') AND name NOT LIKE 'sqlite%' ORDER BY name`)
	if err != nil {
		return err
	}
	var tables [][2]string
	for rows.Next() {
		var name, def string
		if err := rows.Scan(&name, &def); err != nil {
			rows.Close()
			return err
		}
		tables = append(tables, [2]string{name, def})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, t := range tables {
		name, def := t[0], t[1]
		head := "CREATE TABLE " + name + " ("
		if !strings.HasPrefix(def, head) {
			return fmt.Errorf("table %s: unexpected definition %q", name, def)
		}
		def = "CREATE TABLE " + name + "_new (" + def[len(head):]
		if name == "events" {
			const key = "id BIGINT PRIMARY KEY"
			if !strings.Contains(def, key) {
				return fmt.Errorf("table events: no %q in %q", key, def)
			}
			def = strings.Replace(def, key, "id INTEGER PRIMARY KEY", 1)
		} else {
			def += " WITHOUT ROWID"
		}
		// DROP TABLE drops the table's indexes with it.
		for _, q := range []string{def,
			"INSERT INTO " + name + "_new SELECT * FROM " + name,
			"DROP TABLE " + name,
			"ALTER TABLE " + name + "_new RENAME TO " + name,
		} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("table %s: %w", name, err)
			}
		}
	}
	return nil
}
